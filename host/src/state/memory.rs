//! [`MemoryStore`]: plugin state in memory, for the test harness and the
//! unit tests; the reference the durable stores are checked against.

use super::{RecordEffects, StateRead, StateStore};
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

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` in `plugin`'s namespace directly, as a fixture's initial state.
    pub fn seed(&self, plugin: &str, key: &str, value: Vec<u8>) {
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
    fn commit(&self, batches: &[&[RecordEffects]]) -> anyhow::Result<Vec<usize>> {
        let mut inner = self.inner.lock().expect("state lock poisoned");
        let inner = &mut *inner;
        let mut applied = Vec::with_capacity(batches.len());
        for batch in batches {
            let mut n = 0;
            for record in batch.iter() {
                let holds = record.iter().all(|e| {
                    let ns = inner.values.get(&e.plugin);
                    let seen = inner.seen.get(&e.plugin);
                    e.reads
                        .iter()
                        .all(|(k, v)| ns.and_then(|ns| ns.get(k)) == v.as_ref())
                        && seen.is_none_or(|s| !s.contains_key(&e.event_id))
                });
                if !holds {
                    break;
                }
                for e in record {
                    let ns = inner.values.entry(e.plugin.clone()).or_default();
                    for (key, value) in &e.writes {
                        match value {
                            Some(v) => ns.insert(key.clone(), v.clone()),
                            None => ns.remove(key),
                        };
                    }
                    inner
                        .seen
                        .entry(e.plugin.clone())
                        .or_default()
                        .insert(e.event_id.clone(), e.outputs.clone());
                }
                n += 1;
            }
            applied.push(n);
        }
        Ok(applied)
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
