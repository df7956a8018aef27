//! The state `switchyard replay` starts from: a snapshot of the plugin's
//! keys from the PostgreSQL or redb store, or nothing.

use super::ReplayArgs;
use crate::config::RouterConfig;
use crate::state::{DiskStore, MemoryStore, PgStore, StateStore};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An in-memory store seeded as the arguments say, and what it was seeded
/// from (for the header).
pub(super) fn seed(
    config: &RouterConfig,
    args: &ReplayArgs,
    plugin: &str,
) -> anyhow::Result<(Arc<MemoryStore>, String)> {
    let memory = Arc::new(MemoryStore::new());
    if args.empty_state {
        return Ok((memory, "empty (--empty-state)".into()));
    }
    let keep = config.state.keep_processed;
    let source: Box<dyn StateStore> = match args.state_url.clone().or(config.state.url.clone()) {
        Some(url) => Box::new(PgStore::connect(&url, 2, keep)?),
        None => {
            let dir = args
                .state_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(".switchyard/state"));
            Box::new(open_redb(&dir.join("state.redb"), keep)?)
        }
    };
    let snapshot = source
        .snapshot(plugin)
        .with_context(|| format!("reading `{plugin}`'s state from {}", source.describe()))?;
    for (key, value) in &snapshot {
        memory.seed(plugin, key, value.clone());
    }
    let shown = format!(
        "a snapshot of `{plugin}`'s {} key(s) in {}",
        snapshot.len(),
        source.describe()
    );
    Ok((memory, shown))
}

/// Opens the redb store at `file` to read it, with a one-line error when it
/// is missing or held by a running router.
pub(super) fn open_redb(file: &Path, keep: u64) -> anyhow::Result<DiskStore> {
    let advice = "pass --empty-state, or --state-url for a PostgreSQL store";
    if !file.is_file() {
        anyhow::bail!(
            "{}: no state store there; pass the router's --state-dir, or {advice}",
            file.display()
        );
    }
    DiskStore::open(file, keep).map_err(|e| {
        let in_use = e.chain().any(|c| {
            matches!(
                c.downcast_ref::<redb::DatabaseError>(),
                Some(redb::DatabaseError::DatabaseAlreadyOpen)
            )
        });
        if in_use {
            anyhow::anyhow!(
                "{}: in use by a running router (redb allows one process); {advice}",
                file.display()
            )
        } else {
            anyhow::anyhow!(
                "{}: cannot open the state store: {e:#}; {advice}",
                file.display()
            )
        }
    })
}
