//! The router's durable state: one redb file (ACID, copy-on-write B-trees,
//! fsync on every commit; one commit carries the batches of every partition
//! that was ready, so the fsync is paid once per group, not per record).
//!
//! Tables:
//! - `state`: `<plugin>\0<key>` -> value;
//! - `processed_marks`: `<plugin>\0<event id>` -> its sequence number in
//!   `outbox`: small entries, many to a page, since event ids are random and
//!   every commit inserts and deletes them all over this table;
//! - `outbox`: (`plugin`, sequence) -> (event id, the outputs it produced),
//!   oldest first, so that a commit appends at one end and the window of
//!   processed ids stays bounded by deleting at the other (`keep` per
//!   plugin: the commit that marks an id past the window deletes the oldest
//!   one and its mark, inline, in the same transaction). Keeping the outputs
//!   (about 1 KB a record) in the marks' table instead, as the first layout
//!   did (`processed` and `processed_order`, migrated on open), copied a
//!   page of them for every insert and delete: a group commit cost about
//!   twice as much;
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
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, TableHandle};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
const MARKS: TableDefinition<&str, u64> = TableDefinition::new("processed_marks");
const OUTBOX: TableDefinition<(&str, u64), (&str, &[u8])> = TableDefinition::new("outbox");
/// The first layout of the processed marks: `<plugin>\0<event id>` -> outputs.
const OLD_PROCESSED: TableDefinition<&str, &[u8]> = TableDefinition::new("processed");
/// The first layout's order of them: (`plugin`, sequence) -> event id.
const OLD_ORDER: TableDefinition<(&str, u64), &str> = TableDefinition::new("processed_order");
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

/// [`join`] written into `buf`, which the commit reuses for every key.
fn join_into<'b>(buf: &'b mut String, plugin: &str, key: &str) -> &'b str {
    buf.clear();
    buf.push_str(plugin);
    buf.push('\0');
    buf.push_str(key);
    buf
}

/// The tables the commit check reads, inside the committing transaction.
struct Tables<'a, 't> {
    state: &'a Table<'t, &'static str, &'static [u8]>,
    marks: &'a Table<'t, &'static str, u64>,
}

impl Committed for Tables<'_, '_> {
    fn value_is(&self, plugin: &str, key: &str, expected: Option<&[u8]>) -> anyhow::Result<bool> {
        let now = self.state.get(join(plugin, key).as_str())?;
        Ok(now.as_ref().map(|v| v.value()) == expected)
    }

    fn marked(&self, plugin: &str, event_id: &str) -> anyhow::Result<bool> {
        Ok(self.marks.get(join(plugin, event_id).as_str())?.is_some())
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
        txn.open_table(MARKS)?;
        txn.open_table(OUTBOX)?;
        migrate_marks(&txn)?;
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
            let mut marks = txn.open_table(MARKS)?;
            let mut outbox = txn.open_table(OUTBOX)?;
            let plan = check(
                batches,
                &Tables {
                    state: &state,
                    marks: &marks,
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
            // The next sequence number of each plugin's processed ids.
            let mut next: HashMap<&str, u64> = HashMap::new();
            for Mark {
                plugin,
                event_id,
                outputs,
            } in &plan.marks
            {
                let seq = match next.get_mut(plugin) {
                    Some(seq) => seq,
                    None => next.entry(plugin).or_insert(next_seq(&outbox, plugin)?),
                };
                marks.insert(join_into(&mut buf, plugin, event_id), *seq)?;
                outbox.insert((*plugin, *seq), (*event_id, *outputs))?;
                // The window: the oldest id past `keep` goes, in this
                // same transaction.
                if *seq >= self.keep {
                    let gone = *seq - self.keep;
                    let old = outbox.remove((*plugin, gone))?;
                    if let Some(entry) = old {
                        // Its mark goes unless it was marked again since
                        // (possible only in a migrated file): then it is
                        // put back.
                        let mark = join_into(&mut buf, plugin, entry.value().0);
                        let removed = marks.remove(mark)?.map(|s| s.value());
                        if let Some(newer) = removed.filter(|s| *s != gone) {
                            marks.insert(mark, newer)?;
                        }
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

/// The sequence number `plugin`'s next processed event takes in `outbox`:
/// one past its newest entry.
fn next_seq(outbox: &Table<'_, (&str, u64), (&str, &[u8])>, plugin: &str) -> anyhow::Result<u64> {
    Ok(outbox
        .range((plugin, 0)..=(plugin, u64::MAX))?
        .next_back()
        .transpose()?
        .map_or(0, |(k, _)| k.value().1 + 1))
}

/// The processed marks and the outbox, in one read transaction.
struct Marks {
    marks: redb::ReadOnlyTable<&'static str, u64>,
    outbox: redb::ReadOnlyTable<(&'static str, u64), (&'static str, &'static [u8])>,
}

impl Marks {
    fn read(db: &Database) -> anyhow::Result<Self> {
        let txn = db.begin_read()?;
        Ok(Marks {
            marks: txn.open_table(MARKS)?,
            outbox: txn.open_table(OUTBOX)?,
        })
    }

    /// The outputs `plugin` produced for `event_id`, if it is marked.
    fn outputs(&self, plugin: &str, event_id: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(seq) = self.marks.get(join(plugin, event_id).as_str())? else {
            return Ok(None);
        };
        let entry = self.outbox.get((plugin, seq.value()))?;
        match entry {
            Some(entry) if entry.value().0 == event_id => Ok(Some(entry.value().1.to_vec())),
            _ => anyhow::bail!(
                "the processed mark of {plugin}'s event {event_id} has no outputs in the \
                 outbox: the state file is inconsistent; restore it from a backup or move \
                 it aside"
            ),
        }
    }
}

/// Moves the processed marks of the first layout (`processed`,
/// `processed_order`) into `processed_marks` and `outbox`, oldest first,
/// and drops the old tables; nothing to do in a file made since. The moved
/// marks are numbered after any already in `outbox` (a file that an older
/// router opened again after a newer one), so no entry is overwritten, and
/// a mark already there is replaced by the newer one. There is no way back:
/// an older router opening the file afterwards finds no processed marks.
fn migrate_marks(txn: &redb::WriteTransaction) -> anyhow::Result<()> {
    let old = txn.list_tables()?.any(|t| t.name() == OLD_PROCESSED.name());
    if !old {
        return Ok(());
    }
    let mut moved = 0u64;
    {
        let processed = txn.open_table(OLD_PROCESSED)?;
        let order = txn.open_table(OLD_ORDER)?;
        let mut marks = txn.open_table(MARKS)?;
        let mut outbox = txn.open_table(OUTBOX)?;
        let mut next: HashMap<String, u64> = HashMap::new();
        for entry in order.iter()? {
            let (key, id) = entry?;
            let (plugin, id) = (key.value().0, id.value());
            let mark = join(plugin, id);
            let Some(outputs) = processed.get(mark.as_str())? else {
                continue;
            };
            let seq = match next.get_mut(plugin) {
                Some(seq) => seq,
                None => next
                    .entry(plugin.to_string())
                    .or_insert(next_seq(&outbox, plugin)?),
            };
            marks.insert(mark.as_str(), *seq)?;
            outbox.insert((plugin, *seq), (id, outputs.value()))?;
            *seq += 1;
            moved += 1;
        }
    }
    txn.delete_table(OLD_PROCESSED)?;
    txn.delete_table(OLD_ORDER)?;
    tracing::info!("state: moved {moved} processed marks to the outbox layout");
    Ok(())
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
        let marks = Marks::read(&self.db)?;
        marks.outputs(plugin, event_id)
    }

    fn processed_many(
        &self,
        keys: &[(String, String)],
    ) -> anyhow::Result<HashMap<(String, String), Vec<u8>>> {
        // One read transaction for the lot, closed before the batch runs:
        // one held while plugins run would keep redb from reusing the pages
        // that commits free meanwhile.
        let marks = Marks::read(&self.db)?;
        let mut found = HashMap::new();
        for (plugin, id) in keys {
            if let Some(outputs) = marks.outputs(plugin, id)? {
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
