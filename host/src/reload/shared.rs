//! Versions kept in the state store: storing each change before it goes
//! live, adopting the stored versions at startup, and following the changes
//! other instances make to a shared store.

use super::{FOLLOW_EVERY, ReloadError, Reloader, how};
use crate::engine::PluginVersion;
use crate::registry::Plugin;
use crate::state::LiveVersion;
use std::collections::HashMap;
use std::sync::Arc;

impl Reloader {
    /// Stores plugin `name`'s live version as `version`, `how` and `paused`.
    pub(super) fn store(
        &self,
        name: &str,
        version: &PluginVersion,
        how: &str,
        paused: bool,
        with_wasm: bool,
    ) -> Result<(), ReloadError> {
        let Some(store) = &self.versions else {
            return Ok(());
        };
        let live = LiveVersion {
            plugin: name.to_string(),
            hash: version.hash.clone(),
            origin: how.to_string(),
            paused,
        };
        store
            .publish(&live, with_wasm.then_some(&version.wasm[..]))
            .map_err(|e| ReloadError::Store(format!("{e:#}")))
    }

    /// Applies the stored versions at startup; see the module docs.
    pub(crate) fn adopt(&self) -> anyhow::Result<()> {
        let Some(store) = &self.versions else {
            return Ok(());
        };
        let _changing = self.lock();
        let stored: HashMap<String, LiveVersion> = store
            .live()?
            .into_iter()
            .map(|l| (l.plugin.clone(), l))
            .collect();
        for row in stored.values() {
            if let Err(e) = self.apply_shadow(row) {
                tracing::warn!("{e:#}; no shadow runs");
            }
        }
        for plugin in self.registry.plugins() {
            let name = &plugin.spec.name;
            match stored.get(name) {
                Some(row) if row.origin != "file" => {
                    // A stored version that no longer loads (say, after the
                    // contract changed) must not stop the router: the file
                    // serves, and the store keeps the row for the others.
                    if let Err(e) = self.apply(plugin, row) {
                        tracing::warn!(
                            plugin = %name,
                            "the stored {} version {} cannot be used, the file serves: {e:#}",
                            row.origin,
                            &row.hash[..row.hash.len().min(12)]
                        );
                    }
                }
                row => {
                    let paused = row.is_some_and(|r| r.paused);
                    let current = plugin.current();
                    if row.is_none_or(|r| r.hash != current.hash) {
                        self.store(name, &current, "file", paused, true)
                            .map_err(anyhow::Error::msg)?;
                    }
                    plugin.set_paused(paused);
                }
            }
        }
        Ok(())
    }

    /// Makes `row` plugin's live version and pause state here.
    fn apply(&self, plugin: &Plugin, row: &LiveVersion) -> anyhow::Result<()> {
        let name = &plugin.spec.name;
        let current = plugin.current();
        if row.hash != current.hash {
            let previous = plugin.previous();
            let version = match previous.filter(|p| p.hash == row.hash) {
                Some(_) => plugin.rollback().expect("a previous version"),
                None => {
                    let store = self.versions.as_ref().expect("a version store");
                    let wasm = store.wasm(&row.hash)?.ok_or_else(|| {
                        anyhow::anyhow!("plugin `{name}`: version {} is not stored", row.hash)
                    })?;
                    let version = Arc::new(
                        self.engine
                            .load(name, &wasm)
                            .map_err(|e| anyhow::anyhow!("stored plugin `{name}`: {e}"))?,
                    );
                    plugin.install(version.clone(), how(&row.origin));
                    version
                }
            };
            self.metrics.live_version(name, version.label());
            tracing::info!(
                plugin = %name,
                from = current.label(),
                to = version.label(),
                "the stored version is live ({})",
                row.origin
            );
        }
        if plugin.is_paused() != row.paused {
            tracing::info!(plugin = %name, paused = row.paused, "the stored pause state applies");
            plugin.set_paused(row.paused);
        }
        Ok(())
    }

    /// Polls a shared store for changes made by other instances, every
    /// [`FOLLOW_EVERY`], until the reloader is dropped.
    pub(crate) fn follow(self: &Arc<Self>) -> std::io::Result<()> {
        if !self.versions.as_ref().is_some_and(|v| v.shared()) {
            return Ok(());
        }
        let this = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("switchyard-versions".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(FOLLOW_EVERY);
                    let Some(this) = this.upgrade() else { return };
                    let _changing = this.lock();
                    let stored = match this.versions.as_ref().expect("a version store").live() {
                        Ok(stored) => stored,
                        Err(e) => {
                            tracing::debug!("plugin versions: {e:#}");
                            continue;
                        }
                    };
                    for row in stored {
                        match this.apply_shadow(&row) {
                            Ok(true) => continue,
                            Ok(false) => {}
                            Err(e) => {
                                tracing::warn!("plugin versions: {e:#}");
                                continue;
                            }
                        }
                        if let Some(plugin) = this.registry.get(&row.plugin)
                            && let Err(e) = this.apply(plugin, &row)
                        {
                            tracing::warn!("plugin versions: {e:#}");
                        }
                    }
                }
            })?;
        Ok(())
    }
}
