//! The router's durable state: one redb file (ACID, copy-on-write B-trees,
//! fsync on every commit; one commit carries the batches of every partition
//! that was ready, so the fsync is paid once per group, not per record).
//!
//! Tables:
//! - `state`: `<plugin>\0<key>` -> value;
//! - the outbox, two tables keyed by (`plugin`, sequence): `processed_ids`
//!   -> the event id, and `processed_output_chunks` -> the outputs of that
//!   entry and of the entries after it in the same chunk ([`chunk`]);
//!   oldest first, so that a commit appends at one end and the window of
//!   processed ids stays bounded by deleting at the other (`keep` per
//!   plugin: a commit deletes the entries its appends push out of the
//!   window, one range a plugin, in the same transaction). They are the
//!   only record of the processed ids: an index in memory ([`marks`]),
//!   rebuilt on open from `processed_ids`, finds an id's entry; [`outbox`]
//!   appends, prunes and reads them. Four earlier layouts are migrated on
//!   open ([`migrate`]);
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
//! the `state` table and the outbox inside its write transaction (the
//! outbox through the index of processed ids, which the writer lock keeps
//! in step), and applies the plan in that same transaction; it opens the
//! timer tables only when the plan changes timers.

mod chunk;
mod marks;
mod migrate;
mod outbox;
mod timers;

use marks::{Change, MarkIndex};
use migrate::migrate_marks;
use outbox::{Append, WriteOutbox, read_outbox, trim};
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
use std::sync::{Mutex, RwLock};

const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
/// (`plugin`, sequence) -> the event id processed at it.
const IDS: TableDefinition<(&str, u64), &str> = TableDefinition::new("processed_ids");
/// (`plugin`, sequence) -> the outputs that event and the next ones of its
/// chunk produced ([`chunk`]).
const OUTPUTS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("processed_output_chunks");
const WASM: TableDefinition<&str, &[u8]> = TableDefinition::new("wasm");
const PLUGINS: TableDefinition<&str, &str> = TableDefinition::new("plugins");
/// Plugin state in a redb file.
pub struct DiskStore {
    db: Database,
    keep: u64,
    path: std::path::PathBuf,
    /// The processed ids, as of the last commit that landed (a moment
    /// behind it, until that commit's changes are in: see [`marks`]).
    marks: RwLock<MarkIndex>,
    /// Held through a commit and its change to `marks`, so that the next
    /// commit checks against an index that has it.
    writer: Mutex<()>,
}

fn join(plugin: &str, key: &str) -> String {
    format!("{plugin}\0{key}")
}

/// [`join`] written into `buf`, which the commit reuses for every key.
fn join_into<'b>(buf: &'b mut String, plugin: &str, key: &str) -> &'b str {
    buf.clear();
    buf.push_str(plugin);
    buf.push('\0');
    buf.push_str(key);
    buf
}

/// What the commit check reads: the tables inside the committing
/// transaction, and the index of processed ids, in step with them under the
/// writer lock.
struct Tables<'a, 't> {
    state: &'a Table<'t, &'static str, &'static [u8]>,
    outbox: &'a WriteOutbox<'t>,
    marks: &'a MarkIndex,
}

impl Committed for Tables<'_, '_> {
    fn value_is(&self, plugin: &str, key: &str, expected: Option<&[u8]>) -> anyhow::Result<bool> {
        let now = self.state.get(join(plugin, key).as_str())?;
        Ok(now.as_ref().map(|v| v.value()) == expected)
    }

    fn marked(&self, plugin: &str, event_id: &str) -> anyhow::Result<bool> {
        Ok(self.marks.find(self.outbox, plugin, event_id)?.is_some())
    }
}

/// The memory, in MiB, redb may keep of the file's pages, unless `[state]
/// cache_mib` says otherwise. redb's own default, 1 GiB, let the cache grow
/// to the whole outbox window (130 MB for the payment plugin at the default
/// `keep_processed`), faulting in about 5,000 fresh pages a second on the
/// commit thread. A commit touches the pages at each end of
/// the outbox tables, and the index answers processed ids from memory;
/// other pages come from the file through the kernel's page cache
/// (BENCHMARKS.md, item 19).
pub(crate) const CACHE_MIB: u64 = 32;

impl DiskStore {
    /// Opens (or creates) the store at `path`, remembering the last `keep`
    /// processed event ids of each plugin, with a cache of 32 MiB.
    pub fn open(path: &Path, keep: u64) -> anyhow::Result<Self> {
        Self::open_with_cache(path, keep, CACHE_MIB)
    }

    /// [`DiskStore::open`] with a cache of `cache_mib` MiB of the file's pages.
    pub fn open_with_cache(path: &Path, keep: u64, cache_mib: u64) -> anyhow::Result<Self> {
        let keep = keep.max(1);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "{}: cannot create the state folder; pass a writable --state-dir",
                    dir.display()
                )
            })?;
        }
        let db = Database::builder()
            .set_cache_size(usize::try_from(cache_mib << 20).unwrap_or(usize::MAX))
            .create(path)
            .with_context(|| {
                format!(
                    "{}: cannot open the state store (is another router using it?)",
                    path.display()
                )
            })?;
        let txn = db.begin_write()?;
        txn.open_table(STATE)?;
        txn.open_table(IDS)?;
        txn.open_table(OUTPUTS)?;
        migrate_marks(&txn)?;
        trim(&txn, keep)?;
        txn.open_table(WASM)?;
        txn.open_table(PLUGINS)?;
        txn.open_table(TIMERS)?;
        txn.open_table(TIMERS_DUE)?;
        txn.open_table(TIMERS_PENDING)?;
        txn.open_table(TIMER_COUNTS)?;
        txn.commit()?;
        let marks = MarkIndex::load(&db.begin_read()?.open_table(IDS)?)?;
        Ok(DiskStore {
            db,
            keep,
            path: path.to_path_buf(),
            marks: RwLock::new(marks),
            writer: Mutex::new(()),
        })
    }

    /// The index of processed ids, for reading.
    fn read_marks(&self) -> std::sync::RwLockReadGuard<'_, MarkIndex> {
        self.marks.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks and applies `batches` in one write transaction, then records
    /// its processed ids in the index.
    fn apply(&self, batches: &[&[RecordEffects]]) -> anyhow::Result<Vec<usize>> {
        let _writing = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let txn = self.db.begin_write()?;
        let mut changes = Vec::new();
        let applied = {
            let mut state = txn.open_table(STATE)?;
            let mut outbox = Append::open(&txn)?;
            let index = self.read_marks();
            let plan = check(
                batches,
                &Tables {
                    state: &state,
                    outbox: &outbox.tables,
                    marks: &index,
                },
            )?;
            let mut buf = String::new();
            for ((plugin, key), value) in &plan.writes {
                let key = join_into(&mut buf, plugin, key);
                match value {
                    Some(v) => state.insert(key, *v)?,
                    None => state.remove(key)?,
                };
            }
            changes.reserve(plan.marks.len() * 2);
            // Each plugin's first and last sequence this commit appends.
            let mut appended: Vec<(&str, u64, u64)> = Vec::new();
            for Mark {
                plugin,
                event_id,
                outputs,
            } in &plan.marks
            {
                let seq = outbox.push(plugin, event_id, outputs)?;
                changes.push(Change {
                    plugin,
                    hash: index.hash(event_id),
                    seq,
                    added: true,
                });
                match appended.iter_mut().find(|(p, ..)| p == plugin) {
                    Some((.., last)) => *last = seq,
                    None => appended.push((plugin, seq, seq)),
                }
            }
            // The window: the ids the appends pushed past `keep` go, in
            // this same transaction, as one range a plugin.
            for (plugin, first, last) in appended {
                let (start, end) = (
                    first.saturating_sub(self.keep),
                    (last + 1).saturating_sub(self.keep),
                );
                if end > start {
                    outbox.prune(plugin, start..end, &index, &mut changes)?;
                }
            }
            outbox.finish()?;
            apply_timers(&txn, &plan.timers)?;
            plan.applied
        };
        txn.commit()?;
        let mut index = self.marks.write().unwrap_or_else(|e| e.into_inner());
        index.apply(&changes);
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
        let seqs = self.read_marks().candidates(plugin, event_id);
        if seqs.is_empty() {
            return Ok(None);
        }
        marks::outputs(&read_outbox(&self.db)?, plugin, event_id, &seqs)
    }

    fn processed_many(
        &self,
        keys: &[(String, String)],
    ) -> anyhow::Result<HashMap<(String, String), Vec<u8>>> {
        // One read transaction for the lot, closed before the batch runs:
        // one held while plugins run would keep redb from reusing the pages
        // that commits free meanwhile.
        // The index is read first, and let go before the outbox is: the
        // commit thread waits for it after every commit. A commit that lands
        // in between may have added an id the candidates miss, or pruned
        // one they name (then not in the outbox): either answer is one the
        // store gave a moment apart, and the commit check decides.
        let candidates: Vec<Vec<u64>> = {
            let index = self.read_marks();
            keys.iter()
                .map(|(plugin, id)| index.candidates(plugin, id))
                .collect()
        };
        let mut found = HashMap::new();
        if candidates.iter().all(Vec::is_empty) {
            return Ok(found);
        }
        let outbox = read_outbox(&self.db)?;
        for ((plugin, id), seqs) in keys.iter().zip(&candidates) {
            if seqs.is_empty() {
                continue;
            }
            if let Some(outputs) = marks::outputs(&outbox, plugin, id, seqs)? {
                found.insert((plugin.clone(), id.clone()), outputs);
            }
        }
        Ok(found)
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
