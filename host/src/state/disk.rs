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

use super::check::{Committed, Mark, check};
use super::timers::TimerOp;
use super::{
    DueTimer, LiveVersion, RecordEffects, StateError, StateRead, StateStore, Timer, VersionStore,
};
use anyhow::Context;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
const PROCESSED: TableDefinition<&str, &[u8]> = TableDefinition::new("processed");
const ORDER: TableDefinition<(&str, u64), &str> = TableDefinition::new("processed_order");
const WASM: TableDefinition<&str, &[u8]> = TableDefinition::new("wasm");
const PLUGINS: TableDefinition<&str, &str> = TableDefinition::new("plugins");
/// A stored timer: (due time, topic, partition, payload, context).
type TimerRow = (i64, &'static str, i32, &'static [u8], &'static [u8]);
/// (plugin, name) -> the timer.
const TIMERS: TableDefinition<(&str, &str), TimerRow> = TableDefinition::new("timers");
/// [`due_key`] -> (plugin, name).
const TIMERS_DUE: TableDefinition<&[u8], (&str, &str)> = TableDefinition::new("timers_due");
/// [`pending_key`] -> nothing.
const TIMERS_PENDING: TableDefinition<&[u8], ()> = TableDefinition::new("timers_pending");
/// plugin -> how many timers it has.
const TIMER_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("timer_counts");

/// Plugin state in a redb file.
pub(crate) struct DiskStore {
    db: Database,
    keep: u64,
    path: std::path::PathBuf,
}

fn join(plugin: &str, key: &str) -> String {
    format!("{plugin}\0{key}")
}

/// Appends `s` so that the bytes of encoded keys sort as their fields do:
/// each 0 byte becomes `0 0xFF`, and `0 1` ends the string (so a string
/// sorts before every longer string it starts, and the fields after it
/// cannot change that).
fn push_str(key: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        key.push(b);
        if b == 0 {
            key.push(0xFF);
        }
    }
    key.extend_from_slice(&[0, 1]);
}

/// Appends `v` big-endian with its sign bit flipped, so that negative
/// numbers sort first.
fn push_i32(key: &mut Vec<u8>, v: i32) {
    key.extend_from_slice(&((v as u32) ^ (1 << 31)).to_be_bytes());
}

/// Appends `v` like [`push_i32`].
fn push_i64(key: &mut Vec<u8>, v: i64) {
    key.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
}

/// The due time encoded at the start of `bytes` (by [`push_i64`]).
fn read_i64(bytes: &[u8]) -> anyhow::Result<i64> {
    let raw: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .context("a timer index key too short for its due time")?;
    Ok((u64::from_be_bytes(raw) ^ (1 << 63)) as i64)
}

/// The start of every `timers_due` key of `partition` of `topic`.
fn partition_prefix(topic: &str, partition: i32) -> Vec<u8> {
    let mut key = Vec::with_capacity(topic.len() + 6);
    push_str(&mut key, topic);
    push_i32(&mut key, partition);
    key
}

/// The `timers_due` key of a timer: (topic, partition, due time, plugin,
/// name), ordered as that tuple.
fn due_key(topic: &str, partition: i32, due_ms: i64, plugin: &str, name: &str) -> Vec<u8> {
    let mut key = partition_prefix(topic, partition);
    push_i64(&mut key, due_ms);
    push_str(&mut key, plugin);
    push_str(&mut key, name);
    key
}

/// The start of every `timers_pending` key of `plugin`.
fn plugin_prefix(plugin: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(plugin.len() + 2);
    push_str(&mut key, plugin);
    key
}

/// The `timers_pending` key of a timer: (plugin, due time, name).
fn pending_key(plugin: &str, due_ms: i64, name: &str) -> Vec<u8> {
    let mut key = plugin_prefix(plugin);
    push_i64(&mut key, due_ms);
    push_str(&mut key, name);
    key
}

/// The smallest key after every key that starts with `prefix`.
fn past(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while end.last() == Some(&0xFF) {
        end.pop();
    }
    // An encoded prefix starts with a UTF-8 byte or 0, never 0xFF.
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

/// Applies the timer ops of a plan in the committing transaction `txn`.
fn apply_timers(
    txn: &WriteTransaction,
    ops: &BTreeMap<(&str, &str), TimerOp<'_>>,
) -> anyhow::Result<()> {
    if ops.is_empty() {
        return Ok(());
    }
    let mut timers = txn.open_table(TIMERS)?;
    let mut due = txn.open_table(TIMERS_DUE)?;
    let mut pending = txn.open_table(TIMERS_PENDING)?;
    let mut counts = txn.open_table(TIMER_COUNTS)?;
    // How many timers each plugin gains (or loses).
    let mut added: BTreeMap<&str, i64> = BTreeMap::new();
    for (&(plugin, name), op) in ops {
        let old = timers.get((plugin, name))?.map(|row| {
            let (due_ms, topic, partition, ..) = row.value();
            (due_ms, topic.to_string(), partition)
        });
        let set = matches!(op, TimerOp::Set(_));
        if let Some((old_due, topic, partition)) = &old
            && (set || op.removes(*old_due))
        {
            due.remove(due_key(topic, *partition, *old_due, plugin, name).as_slice())?;
            pending.remove(pending_key(plugin, *old_due, name).as_slice())?;
            if !set {
                timers.remove((plugin, name))?;
                *added.entry(plugin).or_default() -= 1;
            }
        }
        if let TimerOp::Set(timer) = op {
            timers.insert(
                (plugin, name),
                (
                    timer.due_ms,
                    timer.topic.as_str(),
                    timer.partition,
                    timer.payload.as_slice(),
                    timer.context.as_slice(),
                ),
            )?;
            let key = due_key(&timer.topic, timer.partition, timer.due_ms, plugin, name);
            due.insert(key.as_slice(), (plugin, name))?;
            pending.insert(pending_key(plugin, timer.due_ms, name).as_slice(), ())?;
            if old.is_none() {
                *added.entry(plugin).or_default() += 1;
            }
        }
    }
    for (plugin, n) in added {
        let had = counts.get(plugin)?.map_or(0, |count| count.value());
        match had.saturating_add_signed(n) {
            0 => counts.remove(plugin)?,
            now => counts.insert(plugin, now)?,
        };
    }
    Ok(())
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
    pub(crate) fn open(path: &Path, keep: u64) -> anyhow::Result<Self> {
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

    /// The timers of `partition` due at or before `until_ms` (at most
    /// `limit`), and how many index entries the scan read: a range of the
    /// `timers_due` index that holds exactly that partition's timers due by
    /// then, so it reads no other partition's.
    fn scan_due(
        &self,
        partition: &(String, i32),
        until_ms: i64,
        limit: usize,
    ) -> anyhow::Result<(Vec<DueTimer>, usize)> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok((out, 0));
        }
        let txn = self.db.begin_read()?;
        let index = txn.open_table(TIMERS_DUE)?;
        let timers = txn.open_table(TIMERS)?;
        let prefix = partition_prefix(&partition.0, partition.1);
        let mut from = prefix.clone();
        push_i64(&mut from, i64::MIN);
        let mut until = prefix;
        push_i64(&mut until, until_ms);
        let mut read = 0;
        for entry in index.range(from.as_slice()..past(&until).as_slice())? {
            let (_, names) = entry?;
            read += 1;
            let (plugin, name) = names.value();
            let row = timers
                .get((plugin, name))?
                .with_context(|| format!("timer {plugin}/{name} is indexed but not stored"))?;
            let (due_ms, topic, partition, payload, context) = row.value();
            out.push(DueTimer {
                plugin: plugin.to_string(),
                name: name.to_string(),
                timer: Timer {
                    due_ms,
                    payload: payload.to_vec(),
                    topic: topic.to_string(),
                    partition,
                    context: context.to_vec(),
                },
            });
            if out.len() == limit {
                break;
            }
        }
        Ok((out, read))
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

#[cfg(test)]
mod tests {
    use super::super::{Effect, TimerChange};
    use super::*;

    #[test]
    fn disk_store_keeps_the_contract_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = DiskStore::open(&path, 100).unwrap();
        super::super::contract::check_store(&store);
        super::super::contract::check_versions(&store);
        drop(store);
        let store = DiskStore::open(&path, 100).unwrap();
        assert_eq!(store.get("p", "a").unwrap(), Some(b"z".to_vec()));
        assert_eq!(
            store.processed("p", "e1").unwrap(),
            Some(b"out-e1".to_vec())
        );
        // The contract's timers outlive it too.
        assert_eq!(store.next_due(&("in".into(), 0)).unwrap(), Some(50));
        assert_eq!(store.pending_timers().unwrap().len(), 2);
    }

    #[test]
    fn timer_keys_sort_as_their_fields() {
        let fields = [
            ("", -1, i64::MIN, "p", "n"),
            ("", 0, 0, "p", "n"),
            ("a", i32::MIN, 0, "p", "n"),
            ("a", -1, i64::MAX, "p", "n"),
            ("a", 0, i64::MIN, "p", "n"),
            ("a", 0, -1, "p", "n"),
            ("a", 0, 0, "", "z"),
            ("a", 0, 0, "p", ""),
            ("a", 0, 0, "p", "\0"),
            ("a", 0, 0, "p", "\0\0"),
            ("a", 0, 0, "p", "\u{1}"),
            ("a", 0, 0, "p", "n"),
            ("a", 0, 0, "p\0", "a"),
            ("a", 0, 0, "pa", ""),
            ("a", 0, 1, "a", "a"),
            ("a", i32::MAX, 0, "p", "n"),
            ("a\0", 0, 0, "p", "n"),
            ("a\0b", 0, 0, "p", "n"),
            ("ab", i32::MIN, 0, "p", "n"),
            ("é", 0, 0, "p", "n"),
        ];
        for pair in fields.windows(2) {
            assert!(pair[0] < pair[1], "fixture out of order: {pair:?}");
            let [a, b] = [pair[0], pair[1]].map(|(t, p, d, pl, n)| due_key(t, p, d, pl, n));
            assert!(a < b, "{:?} sorts after {:?}", pair[0], pair[1]);
        }
        let key = due_key("a", 3, -42, "p", "n");
        let prefix = partition_prefix("a", 3);
        assert!(key.starts_with(&prefix) && key < past(&prefix));
        assert_eq!(read_i64(&key[prefix.len()..]).unwrap(), -42);
        assert_eq!(past(&[1, 0xFF, 0xFF]), [2]);
    }

    #[test]
    fn due_timers_reads_only_the_asked_partition() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(&dir.path().join("t.redb"), 100).unwrap();
        // 20,000 timers over 20 partitions of two topics, due 0..1000 each.
        let (partitions, per) = (20, 1000);
        for p in 0..partitions {
            let (topic, partition) = (if p % 2 == 0 { "in" } else { "other" }, p / 2);
            let timers = (0..per)
                .map(|i| {
                    let timer = Timer {
                        due_ms: (i * 7919 % per) as i64,
                        payload: vec![p as u8],
                        topic: topic.into(),
                        partition,
                        context: Vec::new(),
                    };
                    (format!("{topic}-{partition}-{i}"), TimerChange::Set(timer))
                })
                .collect();
            let effect = Effect {
                plugin: format!("p{}", p % 3),
                event_id: format!("e{p}"),
                reads: Default::default(),
                writes: Default::default(),
                outputs: Vec::new(),
                timers,
            };
            assert_eq!(store.commit(&[&[vec![effect]]]).unwrap(), vec![1]);
        }
        let asked = ("in".to_string(), 3);
        let started = std::time::Instant::now();
        let (due, read) = store.scan_due(&asked, 99, usize::MAX).unwrap();
        let took = started.elapsed();
        // Exactly that partition's 100 timers due by 99, in order, and only
        // they were read.
        assert_eq!(due.len(), 100);
        assert_eq!(read, 100);
        assert!(
            due.iter()
                .all(|d| (d.timer.topic.as_str(), d.timer.partition) == ("in", 3))
        );
        assert!(
            due.windows(2)
                .all(|w| w[0].timer.due_ms <= w[1].timer.due_ms)
        );
        assert_eq!(due.last().unwrap().timer.due_ms, 99);
        assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
        // A limit stops the scan there.
        let (first, read) = store.scan_due(&asked, i64::MAX, 10).unwrap();
        assert_eq!((first.len(), read), (10, 10));
        assert_eq!(store.next_due(&asked).unwrap(), Some(0));
        assert_eq!(store.next_due(&("in".to_string(), 10)).unwrap(), None);
        let pending = store.pending_timers().unwrap();
        assert_eq!(pending.values().map(|(n, _)| n).sum::<u64>(), 20_000);
        assert!(pending.values().all(|(_, earliest)| *earliest == Some(0)));
    }

    #[test]
    fn processed_ids_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(&dir.path().join("s.redb"), 2).unwrap();
        let effect = |id: &str| Effect {
            plugin: "p".into(),
            event_id: id.into(),
            reads: Default::default(),
            writes: Default::default(),
            outputs: id.as_bytes().to_vec(),
            timers: Default::default(),
        };
        store
            .commit(&[&[vec![effect("e1")], vec![effect("e2")]]])
            .unwrap();
        store.commit(&[&[vec![effect("e3")]]]).unwrap();
        assert_eq!(store.processed("p", "e1").unwrap(), None);
        assert_eq!(store.processed("p", "e2").unwrap(), Some(b"e2".to_vec()));
        assert_eq!(store.processed("p", "e3").unwrap(), Some(b"e3".to_vec()));
    }
}
