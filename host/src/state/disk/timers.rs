//! The redb store's timer tables: their order-preserving key encoding,
//! applying a plan's timer ops in the committing transaction, and the
//! range scan of one partition's due timers.

use super::DiskStore;
use crate::state::timers::TimerOp;
use crate::state::{DueTimer, Timer};
use anyhow::Context;
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use std::collections::BTreeMap;

/// A stored timer: (due time, topic, partition, payload, context).
pub(super) type TimerRow = (i64, &'static str, i32, &'static [u8], &'static [u8]);
/// (plugin, name) -> the timer.
pub(super) const TIMERS: TableDefinition<(&str, &str), TimerRow> = TableDefinition::new("timers");
/// [`due_key`] -> (plugin, name).
pub(super) const TIMERS_DUE: TableDefinition<&[u8], (&str, &str)> =
    TableDefinition::new("timers_due");
/// [`pending_key`] -> nothing.
pub(super) const TIMERS_PENDING: TableDefinition<&[u8], ()> =
    TableDefinition::new("timers_pending");
/// plugin -> how many timers it has.
pub(super) const TIMER_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("timer_counts");

/// Appends `s` so that the bytes of encoded keys sort as their fields do:
/// each 0 byte becomes `0 0xFF`, and `0 1` ends the string (so a string
/// sorts before every longer string it starts, and the fields after it
/// cannot change that).
pub(super) fn push_str(key: &mut Vec<u8>, s: &str) {
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
pub(super) fn push_i32(key: &mut Vec<u8>, v: i32) {
    key.extend_from_slice(&((v as u32) ^ (1 << 31)).to_be_bytes());
}

/// Appends `v` like [`push_i32`].
pub(super) fn push_i64(key: &mut Vec<u8>, v: i64) {
    key.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
}

/// The due time encoded at the start of `bytes` (by [`push_i64`]).
pub(super) fn read_i64(bytes: &[u8]) -> anyhow::Result<i64> {
    let raw: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .context("a timer index key too short for its due time")?;
    Ok((u64::from_be_bytes(raw) ^ (1 << 63)) as i64)
}

/// The start of every `timers_due` key of `partition` of `topic`.
pub(super) fn partition_prefix(topic: &str, partition: i32) -> Vec<u8> {
    let mut key = Vec::with_capacity(topic.len() + 6);
    push_str(&mut key, topic);
    push_i32(&mut key, partition);
    key
}

/// The `timers_due` key of a timer: (topic, partition, due time, plugin,
/// name), ordered as that tuple.
pub(super) fn due_key(
    topic: &str,
    partition: i32,
    due_ms: i64,
    plugin: &str,
    name: &str,
) -> Vec<u8> {
    let mut key = partition_prefix(topic, partition);
    push_i64(&mut key, due_ms);
    push_str(&mut key, plugin);
    push_str(&mut key, name);
    key
}

/// The start of every `timers_pending` key of `plugin`.
pub(super) fn plugin_prefix(plugin: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(plugin.len() + 2);
    push_str(&mut key, plugin);
    key
}

/// The `timers_pending` key of a timer: (plugin, due time, name).
pub(super) fn pending_key(plugin: &str, due_ms: i64, name: &str) -> Vec<u8> {
    let mut key = plugin_prefix(plugin);
    push_i64(&mut key, due_ms);
    push_str(&mut key, name);
    key
}

/// The smallest key after every key that starts with `prefix`.
pub(super) fn past(prefix: &[u8]) -> Vec<u8> {
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
pub(super) fn apply_timers(
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

impl DiskStore {
    /// The timers of `partition` due at or before `until_ms` (at most
    /// `limit`), and how many index entries the scan read: a range of the
    /// `timers_due` index that holds exactly that partition's timers due by
    /// then, so it reads no other partition's.
    pub(super) fn scan_due(
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
