//! [`MemoryStore`]: plugin state in memory, for the test harness and the
//! unit tests. A commit holds the store's lock while it checks the batches
//! and applies the plan, so it is one transaction like the durable stores'.
//! Timers are kept in a map by (plugin, name) and, for the due queries, in
//! an ordered set by (topic, partition, due time, plugin, name).

use super::check::{Committed, check};
use super::timers::TimerOp;
use super::{DueTimer, RecordEffects, StateError, StateRead, StateStore, Timer};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

/// An in-memory store, used by the test harness.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    values: HashMap<String, BTreeMap<String, Vec<u8>>>,
    seen: HashMap<String, HashMap<String, Vec<u8>>>,
    /// Every timer, by (plugin, name).
    timers: BTreeMap<(String, String), Timer>,
    /// Every timer, by (topic, partition, due time, plugin, name).
    due: BTreeSet<(String, i32, i64, String, String)>,
}

/// A timer's entry in the due set.
fn due_entry(plugin: &str, name: &str, timer: &Timer) -> (String, i32, i64, String, String) {
    (
        timer.topic.clone(),
        timer.partition,
        timer.due_ms,
        plugin.to_string(),
        name.to_string(),
    )
}

impl MemoryInner {
    /// Applies one timer's op.
    fn apply_timer(&mut self, plugin: &str, name: &str, op: &TimerOp<'_>) {
        let key = (plugin.to_string(), name.to_string());
        let old = self.timers.get(&key);
        if let Some(old) = old
            && (matches!(op, TimerOp::Set(_)) || op.removes(old.due_ms))
        {
            self.due.remove(&due_entry(plugin, name, old));
            self.timers.remove(&key);
        }
        if let TimerOp::Set(timer) = op {
            self.due.insert(due_entry(plugin, name, timer));
            self.timers.insert(key, (*timer).clone());
        }
    }
}

impl Committed for MemoryInner {
    fn value_is(&self, plugin: &str, key: &str, expected: Option<&[u8]>) -> anyhow::Result<bool> {
        let now = self.values.get(plugin).and_then(|ns| ns.get(key));
        Ok(now.map(Vec::as_slice) == expected)
    }

    fn marked(&self, plugin: &str, event_id: &str) -> anyhow::Result<bool> {
        Ok(self
            .seen
            .get(plugin)
            .is_some_and(|ids| ids.contains_key(event_id)))
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` in `plugin`'s namespace directly, as a fixture's initial state.
    pub(crate) fn seed(&self, plugin: &str, key: &str, value: Vec<u8>) {
        let mut inner = self.inner.lock().expect("state lock poisoned");
        inner
            .values
            .entry(plugin.to_string())
            .or_default()
            .insert(key.to_string(), value);
    }
}

impl StateRead for MemoryStore {
    fn get(&self, plugin: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let inner = self.inner.lock().expect("state lock poisoned");
        Ok(inner.values.get(plugin).and_then(|ns| ns.get(key)).cloned())
    }
}

impl StateStore for MemoryStore {
    fn commit(&self, batches: &[&[RecordEffects]]) -> Result<Vec<usize>, StateError> {
        let mut inner = self.inner.lock().expect("state lock poisoned");
        let plan = check(batches, &*inner)?;
        for ((plugin, key), value) in plan.writes {
            let ns = inner.values.entry(plugin.to_string()).or_default();
            match value {
                Some(v) => ns.insert(key.to_string(), v.to_vec()),
                None => ns.remove(key),
            };
        }
        for mark in plan.marks {
            inner
                .seen
                .entry(mark.plugin.to_string())
                .or_default()
                .insert(mark.event_id.to_string(), mark.outputs.to_vec());
        }
        for ((plugin, name), op) in &plan.timers {
            inner.apply_timer(plugin, name, op);
        }
        Ok(plan.applied)
    }

    fn processed(&self, plugin: &str, event_id: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let inner = self.inner.lock().expect("state lock poisoned");
        Ok(inner
            .seen
            .get(plugin)
            .and_then(|s| s.get(event_id))
            .cloned())
    }

    fn snapshot(&self, plugin: &str) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
        let inner = self.inner.lock().expect("state lock poisoned");
        Ok(inner.values.get(plugin).cloned().unwrap_or_default())
    }

    fn due_timers(
        &self,
        partition: &(String, i32),
        until_ms: i64,
        limit: usize,
    ) -> anyhow::Result<Vec<DueTimer>> {
        let inner = self.inner.lock().expect("state lock poisoned");
        let (topic, part) = partition;
        let from = (topic.clone(), *part, i64::MIN, String::new(), String::new());
        Ok(inner
            .due
            .range(from..)
            .take_while(|(t, p, due, ..)| t == topic && p == part && *due <= until_ms)
            .take(limit)
            .map(|(_, _, _, plugin, name)| DueTimer {
                plugin: plugin.clone(),
                name: name.clone(),
                timer: inner.timers[&(plugin.clone(), name.clone())].clone(),
            })
            .collect())
    }

    fn next_due(&self, partition: &(String, i32)) -> anyhow::Result<Option<i64>> {
        let inner = self.inner.lock().expect("state lock poisoned");
        let (topic, part) = partition;
        let from = (topic.clone(), *part, i64::MIN, String::new(), String::new());
        Ok(inner
            .due
            .range(from..)
            .next()
            .filter(|(t, p, ..)| t == topic && p == part)
            .map(|(_, _, due, ..)| *due))
    }

    fn pending_timers(&self) -> anyhow::Result<BTreeMap<String, (u64, Option<i64>)>> {
        let inner = self.inner.lock().expect("state lock poisoned");
        let mut pending: BTreeMap<String, (u64, Option<i64>)> = BTreeMap::new();
        for ((plugin, _), timer) in &inner.timers {
            let (count, earliest) = pending.entry(plugin.clone()).or_default();
            *count += 1;
            *earliest = Some(earliest.map_or(timer.due_ms, |e| e.min(timer.due_ms)));
        }
        Ok(pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_keeps_the_contract() {
        super::super::contract::check_store(&MemoryStore::new());
    }
}
