//! The router's durable state: one redb file (ACID, copy-on-write B-trees,
//! fsync on every commit; one commit carries the batches of every partition
//! that was ready, so the fsync is paid once per group, not per record).
//!
//! Tables:
//! - `state`: `<plugin>\0<key>` -> value;
//! - `processed`: `<plugin>\0<event id>` -> the outputs it produced;
//! - `processed_order`: (`plugin`, sequence) -> event id, oldest first, so
//!   the memory of processed ids stays bounded (`keep` per plugin: the
//!   commit that marks an id past the window deletes the oldest one, inline,
//!   in the same transaction);
//! - `wasm`: hash -> the plugin versions that went live (see [`VersionStore`]);
//! - `plugins`: plugin -> its live version (`hash\0origin\0paused`);
//! - `timers`: (`plugin`, name) -> the timer (due time, topic, partition,
//!   payload, context);
//! - `timers_due`: (topic, partition, due time, plugin, name), in an
//!   order-preserving byte encoding ([`due_key`]) -> (`plugin`, name): what
//!   [`StateStore::due_timers`] and [`StateStore::next_due`] range-scan, so
//!   they read only the asked partition's due timers, never the others;
//! - `timers_pending`: (plugin, due time, name), encoded the same way, and
//!   `timer_counts`: plugin -> how many timers it has, so that
//!   [`StateStore::pending_timers`] reads one entry of each per plugin
//!   whatever the number of timers.
//!
//! A commit checks the batches with the check every store shares, reading
//! the `state` and `processed` tables inside its write transaction, and
//! applies the plan in that same transaction; it opens the timer tables
//! only when the plan changes timers.

mod timers;

use timers::*;
#[cfg(test)]
mod tests;

use super::check::{Committed, Mark, check};
use super::{
    DueTimer, LiveVersion, RecordEffects, StateError, StateRead, StateStore, VersionStore,
};
use anyhow::Context;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
const PROCESSED: TableDefinition<&str, &[u8]> = TableDefinition::new("processed");
const ORDER: TableDefinition<(&str, u64), &str> = TableDefinition::new("processed_order");
const WASM: TableDefinition<&str, &[u8]> = TableDefinition::new("wasm");
const PLUGINS: TableDefinition<&str, &str> = TableDefinition::new("plugins");
/// Plugin state in a redb file.
pub struct DiskStore {
    db: Database,
    keep: u64,
    path: std::path::PathBuf,
}

fn join(plugin: &str, key: &str) -> String {
    format!("{plugin}\0{key}")
}

/// The tables the commit check reads, inside the committing transaction.
struct Tables<'a, 't> {
    state: &'a Table<'t, &'static str, &'static [u8]>,
    processed: &'a Table<'t, &'static str, &'static [u8]>,
}

impl Committed for Tables<'_, '_> {
    fn value_is(&self, plugin: &str, key: &str, expected: Option<&[u8]>) -> anyhow::Result<bool> {
        let now = self.state.get(join(plugin, key).as_str())?;
        Ok(now.as_ref().map(|v| v.value()) == expected)
    }

    fn marked(&self, plugin: &str, event_id: &str) -> anyhow::Result<bool> {
        Ok(self
            .processed
            .get(join(plugin, event_id).as_str())?
            .is_some())
    }
}

impl DiskStore {
    /// Opens (or creates) the store at `path`, remembering the last `keep`
    /// processed event ids of each plugin.
    pub fn open(path: &Path, keep: u64) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "{}: cannot create the state folder; pass a writable --state-dir",
                    dir.display()
                )
            })?;
        }
        let db = Database::create(path).with_context(|| {
            format!(
                "{}: cannot open the state store (is another router using it?)",
                path.display()
            )
        })?;
        let txn = db.begin_write()?;
        txn.open_table(STATE)?;
        txn.open_table(PROCESSED)?;
        txn.open_table(ORDER)?;
        txn.open_table(WASM)?;
        txn.open_table(PLUGINS)?;
        txn.open_table(TIMERS)?;
        txn.open_table(TIMERS_DUE)?;
        txn.open_table(TIMERS_PENDING)?;
        txn.open_table(TIMER_COUNTS)?;
        txn.commit()?;
        Ok(DiskStore {
            db,
            keep: keep.max(1),
            path: path.to_path_buf(),
        })
    }

    /// Checks and applies `batches` in one write transaction.
    fn apply(&self, batches: &[&[RecordEffects]]) -> anyhow::Result<Vec<usize>> {
        let txn = self.db.begin_write()?;
        let applied = {
            let mut state = txn.open_table(STATE)?;
            let mut processed = txn.open_table(PROCESSED)?;
            let mut order = txn.open_table(ORDER)?;
            let plan = check(
                batches,
                &Tables {
                    state: &state,
                    processed: &processed,
                },
            )?;
            for ((plugin, key), value) in &plan.writes {
                let key = join(plugin, key);
                match value {
                    Some(v) => state.insert(key.as_str(), *v)?,
                    None => state.remove(key.as_str())?,
                };
            }
            // The next sequence number of each plugin's processed ids.
            let mut next: HashMap<&str, u64> = HashMap::new();
            for Mark {
                plugin,
                event_id,
                outputs,
            } in &plan.marks
            {
                processed.insert(join(plugin, event_id).as_str(), *outputs)?;
                let seq = match next.get_mut(plugin) {
                    Some(seq) => seq,
                    None => {
                        let first = order
                            .range((*plugin, 0)..=(*plugin, u64::MAX))?
                            .next_back()
                            .transpose()?
                            .map(|(k, _)| k.value().1 + 1)
                            .unwrap_or(0);
                        next.entry(plugin).or_insert(first)
                    }
                };
                order.insert((*plugin, *seq), *event_id)?;
                // The window: the oldest id past `keep` goes, in this
                // same transaction.
                if *seq >= self.keep {
                    let old = order
                        .remove((*plugin, *seq - self.keep))?
                        .map(|id| id.value().to_string());
                    if let Some(id) = old {
                        processed.remove(join(plugin, &id).as_str())?;
                    }
                }
                *seq += 1;
            }
            apply_timers(&txn, &plan.timers)?;
            plan.applied
        };
        txn.commit()?;
        Ok(applied)
    }
}

impl StateRead for DiskStore {
    fn get(&self, plugin: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(STATE)?;
        Ok(table
            .get(join(plugin, key).as_str())?
            .map(|v| v.value().to_vec()))
    }
}

impl StateStore for DiskStore {
    fn commit(&self, batches: &[&[RecordEffects]]) -> Result<Vec<usize>, StateError> {
        Ok(self.apply(batches)?)
    }

    fn processed(&self, plugin: &str, event_id: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PROCESSED)?;
        Ok(table
            .get(join(plugin, event_id).as_str())?
            .map(|v| v.value().to_vec()))
    }

    fn snapshot(&self, plugin: &str) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(STATE)?;
        let (from, to) = (format!("{plugin}\0"), format!("{plugin}\u{1}"));
        let mut out = BTreeMap::new();
        for entry in table.range(from.as_str()..to.as_str())? {
            let (k, v) = entry?;
            out.insert(k.value()[from.len()..].to_string(), v.value().to_vec());
        }
        Ok(out)
    }

    fn due_timers(
        &self,
        partition: &(String, i32),
        until_ms: i64,
        limit: usize,
    ) -> anyhow::Result<Vec<DueTimer>> {
        Ok(self.scan_due(partition, until_ms, limit)?.0)
    }

    fn next_due(&self, partition: &(String, i32)) -> anyhow::Result<Option<i64>> {
        let txn = self.db.begin_read()?;
        let index = txn.open_table(TIMERS_DUE)?;
        let prefix = partition_prefix(&partition.0, partition.1);
        let first = index
            .range(prefix.as_slice()..past(&prefix).as_slice())?
            .next()
            .transpose()?;
        first
            .map(|(key, _)| read_i64(&key.value()[prefix.len()..]))
            .transpose()
    }

    fn pending_timers(&self) -> anyhow::Result<BTreeMap<String, (u64, Option<i64>)>> {
        let txn = self.db.begin_read()?;
        let counts = txn.open_table(TIMER_COUNTS)?;
        let index = txn.open_table(TIMERS_PENDING)?;
        let mut out = BTreeMap::new();
        for entry in counts.iter()? {
            let (plugin, count) = entry?;
            let prefix = plugin_prefix(plugin.value());
            let first = index
                .range(prefix.as_slice()..past(&prefix).as_slice())?
                .next()
                .transpose()?;
            let earliest = first
                .map(|(key, _)| read_i64(&key.value()[prefix.len()..]))
                .transpose()?;
            out.insert(plugin.value().to_string(), (count.value(), earliest));
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        format!("redb at {}", self.path.display())
    }
}

impl VersionStore for DiskStore {
    fn live(&self) -> anyhow::Result<Vec<LiveVersion>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PLUGINS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (plugin, row) = entry?;
            let mut parts = row.value().split('\0');
            let (hash, origin, paused) = (parts.next(), parts.next(), parts.next());
            out.push(LiveVersion {
                plugin: plugin.value().to_string(),
                hash: hash.unwrap_or_default().to_string(),
                origin: origin.unwrap_or_default().to_string(),
                paused: paused == Some("1"),
            });
        }
        Ok(out)
    }

    fn publish(&self, live: &LiveVersion, wasm: Option<&[u8]>) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        {
            if let Some(wasm) = wasm {
                txn.open_table(WASM)?.insert(live.hash.as_str(), wasm)?;
            }
            let row = format!(
                "{}\0{}\0{}",
                live.hash,
                live.origin,
                if live.paused { "1" } else { "0" }
            );
            txn.open_table(PLUGINS)?
                .insert(live.plugin.as_str(), row.as_str())?;
        }
        txn.commit()?;
        Ok(())
    }

    fn wasm(&self, hash: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(WASM)?;
        Ok(table.get(hash)?.map(|v| v.value().to_vec()))
    }
}
