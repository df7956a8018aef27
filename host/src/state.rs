//! Per-plugin key-value state.
//!
//! Each plugin has a private namespace. A handler's writes are staged in a
//! [`Writes`] set while it runs and handed to [`StateStore::commit`] only when
//! it succeeds, together with the id of the event that produced them, so a
//! store can apply both atomically and recognise a redelivered event.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

/// Staged writes of one handler call: `Some(value)` sets, `None` deletes.
pub type Writes = BTreeMap<String, Option<Vec<u8>>>;

/// A transactional store of plugin state.
pub trait StateStore: Send + Sync {
    /// Reads the committed value of `key` in `plugin`'s namespace.
    fn get(&self, plugin: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Applies `writes` and records `event_id` as processed, atomically.
    fn commit(&self, plugin: &str, event_id: &str, writes: &Writes) -> anyhow::Result<()>;
    /// Whether `plugin` already committed the event `event_id`.
    fn processed(&self, plugin: &str, event_id: &str) -> anyhow::Result<bool>;
    /// Every committed key and value of `plugin`'s namespace.
    fn snapshot(&self, plugin: &str) -> anyhow::Result<BTreeMap<String, Vec<u8>>>;
}

/// An in-memory store, used by the test harness.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    values: HashMap<String, BTreeMap<String, Vec<u8>>>,
    seen: HashMap<String, HashSet<String>>,
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

impl StateStore for MemoryStore {
    fn get(&self, plugin: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let inner = self.inner.lock().expect("state lock poisoned");
        Ok(inner.values.get(plugin).and_then(|ns| ns.get(key)).cloned())
    }

    fn commit(&self, plugin: &str, event_id: &str, writes: &Writes) -> anyhow::Result<()> {
        let mut inner = self.inner.lock().expect("state lock poisoned");
        let ns = inner.values.entry(plugin.to_string()).or_default();
        for (key, value) in writes {
            match value {
                Some(v) => ns.insert(key.clone(), v.clone()),
                None => ns.remove(key),
            };
        }
        inner
            .seen
            .entry(plugin.to_string())
            .or_default()
            .insert(event_id.to_string());
        Ok(())
    }

    fn processed(&self, plugin: &str, event_id: &str) -> anyhow::Result<bool> {
        let inner = self.inner.lock().expect("state lock poisoned");
        Ok(inner.seen.get(plugin).is_some_and(|s| s.contains(event_id)))
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
    fn commit_applies_sets_and_deletes_and_remembers_the_event() {
        let store = MemoryStore::new();
        store.seed("p", "gone", b"1".to_vec());
        let writes = Writes::from([
            ("a".to_string(), Some(b"x".to_vec())),
            ("gone".to_string(), None),
        ]);
        assert!(!store.processed("p", "e1").unwrap());
        store.commit("p", "e1", &writes).unwrap();
        assert_eq!(store.get("p", "a").unwrap(), Some(b"x".to_vec()));
        assert_eq!(store.get("p", "gone").unwrap(), None);
        assert_eq!(store.get("other", "a").unwrap(), None);
        assert!(store.processed("p", "e1").unwrap());
    }
}
