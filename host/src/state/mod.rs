//! Per-plugin key-value state.
//!
//! Each plugin has a private namespace. While a handler runs, the engine
//! records what it read ([`Reads`]) and stages what it wrote ([`Writes`]).
//! When it succeeds, [`StateStore::commit`] applies the writes in one
//! transaction, but only if every value read is still the committed one
//! (optimistic concurrency: two partitions running the same plugin never
//! lose an update; the loser runs again on fresh state). The same
//! transaction records the event id as processed together with the records
//! it produced, so a redelivered event is not applied twice and its outputs
//! can be produced again byte for byte (an outbox).
//!
//! [`MemoryStore`] serves the test harness; [`DiskStore`] is the router's
//! durable default.

mod disk;

pub use disk::DiskStore;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Staged writes of one handler call: `Some(value)` sets, `None` deletes.
pub type Writes = BTreeMap<String, Option<Vec<u8>>>;

/// Committed values one handler call read, by key (`None`: absent).
pub type Reads = BTreeMap<String, Option<Vec<u8>>>;

/// How a commit went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Applied.
    Done,
    /// A value the call read has changed since; nothing was applied.
    Conflict,
}

/// A transactional store of plugin state.
pub trait StateStore: Send + Sync {
    /// Reads the committed value of `key` in `plugin`'s namespace.
    fn get(&self, plugin: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Atomically: checks `reads` still hold, applies `writes`, and records
    /// `event_id` as processed with its `outputs`.
    fn commit(
        &self,
        plugin: &str,
        event_id: &str,
        reads: &Reads,
        writes: &Writes,
        outputs: &[u8],
    ) -> anyhow::Result<Commit>;
    /// The outputs recorded when `plugin` processed `event_id`, if it did.
    fn processed(&self, plugin: &str, event_id: &str) -> anyhow::Result<Option<Vec<u8>>>;
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

impl StateStore for MemoryStore {
    fn get(&self, plugin: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let inner = self.inner.lock().expect("state lock poisoned");
        Ok(inner.values.get(plugin).and_then(|ns| ns.get(key)).cloned())
    }

    fn commit(
        &self,
        plugin: &str,
        event_id: &str,
        reads: &Reads,
        writes: &Writes,
        outputs: &[u8],
    ) -> anyhow::Result<Commit> {
        let mut inner = self.inner.lock().expect("state lock poisoned");
        let ns = inner.values.entry(plugin.to_string()).or_default();
        if reads.iter().any(|(k, v)| ns.get(k) != v.as_ref()) {
            return Ok(Commit::Conflict);
        }
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
            .insert(event_id.to_string(), outputs.to_vec());
        Ok(Commit::Done)
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
pub(crate) mod tests {
    use super::*;

    /// The contract every store keeps; run against each implementation.
    pub(crate) fn check_store(store: &dyn StateStore) {
        let setup = Writes::from([("gone".to_string(), Some(b"1".to_vec()))]);
        assert_eq!(
            store.commit("p", "e0", &Reads::new(), &setup, b"").unwrap(),
            Commit::Done
        );
        assert_eq!(store.processed("p", "e1").unwrap(), None);
        let reads = Reads::from([("a".to_string(), None)]);
        let writes = Writes::from([
            ("a".to_string(), Some(b"x".to_vec())),
            ("gone".to_string(), None),
        ]);
        assert_eq!(
            store.commit("p", "e1", &reads, &writes, b"out").unwrap(),
            Commit::Done
        );
        assert_eq!(store.get("p", "a").unwrap(), Some(b"x".to_vec()));
        assert_eq!(store.get("p", "gone").unwrap(), None);
        assert_eq!(store.get("other", "a").unwrap(), None);
        assert_eq!(store.processed("p", "e1").unwrap(), Some(b"out".to_vec()));
        // A call that read `a` before e1 committed conflicts and changes nothing.
        let stale = Writes::from([("a".to_string(), Some(b"lost".to_vec()))]);
        assert_eq!(
            store.commit("p", "e2", &reads, &stale, b"").unwrap(),
            Commit::Conflict
        );
        assert_eq!(store.get("p", "a").unwrap(), Some(b"x".to_vec()));
        assert_eq!(store.processed("p", "e2").unwrap(), None);
        assert_eq!(
            store.snapshot("p").unwrap(),
            BTreeMap::from([("a".to_string(), b"x".to_vec())])
        );
    }

    #[test]
    fn memory_store_keeps_the_contract() {
        check_store(&MemoryStore::new());
    }
}
