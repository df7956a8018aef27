//! [`MemoryStore`]: plugin state in memory, for the test harness and the
//! unit tests. A commit holds the store's lock while it checks the batches
//! and applies the plan, so it is one transaction like the durable stores'.

use super::check::{Committed, check};
use super::{RecordEffects, StateError, StateRead, StateStore};
use std::collections::{BTreeMap, HashMap};
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_keeps_the_contract() {
        super::super::contract::check_store(&MemoryStore::new());
    }
}
