//! Per-plugin key-value state, committed a batch at a time.
//!
//! Each plugin has a private namespace. While a handler runs, the engine
//! records what it read ([`Reads`]) and stages what it wrote ([`Writes`]);
//! together with the event id and the records it produced they make one
//! [`Effect`]. A partition's batch runs its records in order against a
//! [`BatchView`], so each record sees the writes of the ones before it.
//!
//! [`StateStore::commit`] then applies the batches of every partition that
//! is ready in **one transaction** (group commit). Record by record, in
//! order, it checks that every value each call read is still the one in the
//! store and that the event is not already marked processed (optimistic
//! concurrency: the processed-id check happens inside the committing
//! transaction). A record that passes has its writes applied, its event
//! marked processed and its outputs stored (an outbox, so a redelivered event
//! re-produces the same bytes). At the first record that fails, that
//! partition's batch stops: the records before it are committed, it and the
//! ones after it run again on fresh state. Two partitions running one plugin
//! therefore never lose an update, and a global counter stays gapless.
//!
//! Optimistic concurrency was chosen over serialising each plugin's calls:
//! most plugins keep state per entity (a booking, a payment), so partitions
//! rarely touch the same key and never wait for each other; a plugin with a
//! global counter pays with re-runs of the losing batches, not with a lock
//! held across the produce path.
//!
//! [`MemoryStore`] serves the test harness; [`DiskStore`] is the router's
//! durable default, one redb file per instance; [`PgStore`] is PostgreSQL,
//! shared by every instance of a consumer group (`--state-url`). All three
//! keep the same contract, checked by [`contract::check_store`].
//!
//! The durable stores also keep the plugin versions ([`VersionStore`]), so
//! an upload, a rollback or a pause outlives a restart, and every instance
//! sharing a PostgreSQL store serves the same version.

mod disk;
mod postgres;

pub use disk::DiskStore;
pub use postgres::{PgStore, Unreachable, redact};

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Staged writes of one handler call: `Some(value)` sets, `None` deletes.
pub type Writes = BTreeMap<String, Option<Vec<u8>>>;

/// Values one handler call read, by key (`None`: absent).
pub type Reads = BTreeMap<String, Option<Vec<u8>>>;

/// Reads state; what a plugin call sees.
pub trait StateRead: Send + Sync {
    /// The value of `key` in `plugin`'s namespace.
    fn get(&self, plugin: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
}

/// What one plugin call on one event does to state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    /// The plugin.
    pub plugin: String,
    /// The event it handled.
    pub event_id: String,
    /// What it read, checked at commit.
    pub reads: Reads,
    /// What it wrote.
    pub writes: Writes,
    /// The records it produced, encoded (see [`crate::event::OutRecord`]).
    pub outputs: Vec<u8>,
}

/// The effects of one record: one per plugin that ran on it.
pub type RecordEffects = Vec<Effect>;

/// A transactional store of plugin state.
pub trait StateStore: StateRead {
    /// Applies `batches` in one transaction, each batch's records in order,
    /// and returns for each batch how many of its records were applied
    /// before the first whose reads or processed mark no longer held.
    fn commit(&self, batches: &[&[RecordEffects]]) -> anyhow::Result<Vec<usize>>;
    /// The outputs recorded when `plugin` processed `event_id`, if it did.
    fn processed(&self, plugin: &str, event_id: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Every committed key and value of `plugin`'s namespace.
    fn snapshot(&self, plugin: &str) -> anyhow::Result<BTreeMap<String, Vec<u8>>>;
    /// The outputs recorded for each of `keys` (plugin, event id) that was
    /// processed; the others are absent from the answer.
    fn processed_many(
        &self,
        keys: &[(String, String)],
    ) -> anyhow::Result<HashMap<(String, String), Vec<u8>>> {
        let mut found = HashMap::new();
        for (plugin, id) in keys {
            if let Some(outputs) = self.processed(plugin, id)? {
                found.insert((plugin.clone(), id.clone()), outputs);
            }
        }
        Ok(found)
    }
    /// Whether each lookup is a network round trip, so that a batch's
    /// processed marks are better fetched at once ([`BatchView::prefetch`]).
    fn remote(&self) -> bool {
        false
    }
    /// Whether the store answers now (for `/readyz`); local stores always do.
    fn health(&self) -> anyhow::Result<()> {
        Ok(())
    }
    /// What and where the store is, for logs and the status page.
    fn describe(&self) -> String {
        "in memory".into()
    }
}

/// A plugin's live version as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveVersion {
    /// The plugin.
    pub plugin: String,
    /// The SHA-256 of its wasm, in hex.
    pub hash: String,
    /// How it went live: `file`, `upload` or `rollback`.
    pub origin: String,
    /// Whether the plugin is paused.
    pub paused: bool,
}

/// Where plugin versions are kept, so that they outlive a restart and every
/// instance sharing the store serves the same one.
pub trait VersionStore: Send + Sync {
    /// The live version of every plugin that has one stored.
    fn live(&self) -> anyhow::Result<Vec<LiveVersion>>;
    /// Makes `live` the stored live version, storing `wasm` under its hash
    /// first when given.
    fn publish(&self, live: &LiveVersion, wasm: Option<&[u8]>) -> anyhow::Result<()>;
    /// The wasm stored under `hash`.
    fn wasm(&self, hash: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Whether other instances may share it (then changes are polled for).
    fn shared(&self) -> bool {
        false
    }
}

/// A batch's view of the store: committed state with the writes and
/// processed marks of the batch's earlier records on top.
pub struct BatchView {
    base: Arc<dyn StateStore>,
    overlay: Mutex<Overlay>,
}

#[derive(Default)]
struct Overlay {
    writes: HashMap<(String, String), Option<Vec<u8>>>,
    processed: HashMap<(String, String), Vec<u8>>,
    /// Looked up in the store at the start of the batch and not processed.
    unprocessed: std::collections::HashSet<(String, String)>,
}

impl BatchView {
    /// A view of `base` with nothing on top.
    pub fn new(base: Arc<dyn StateStore>) -> Self {
        BatchView {
            base,
            overlay: Mutex::default(),
        }
    }

    /// Puts one record's effects on top, for the records after it.
    pub fn apply<'a>(&self, effects: impl IntoIterator<Item = &'a Effect>) {
        let mut overlay = self.overlay.lock().expect("overlay lock");
        for effect in effects {
            for (key, value) in &effect.writes {
                overlay
                    .writes
                    .insert((effect.plugin.clone(), key.clone()), value.clone());
            }
            overlay.processed.insert(
                (effect.plugin.clone(), effect.event_id.clone()),
                effect.outputs.clone(),
            );
        }
    }

    /// Looks up the processed marks of `keys` (plugin, event id) in one go,
    /// so that the records of the batch need no lookup of their own. A mark
    /// written after this by another instance is still caught: the commit
    /// checks every mark again.
    pub fn prefetch(&self, keys: Vec<(String, String)>) -> anyhow::Result<()> {
        let found = self.base.processed_many(&keys)?;
        let mut overlay = self.overlay.lock().expect("overlay lock");
        for key in keys {
            match found.get(&key) {
                Some(outputs) => {
                    overlay.processed.insert(key, outputs.clone());
                }
                None => {
                    overlay.unprocessed.insert(key);
                }
            }
        }
        Ok(())
    }

    /// The outputs `plugin` produced for `event_id`, in this batch or before.
    pub fn processed(&self, plugin: &str, event_id: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let key = (plugin.to_string(), event_id.to_string());
        {
            let overlay = self.overlay.lock().expect("overlay lock");
            if let Some(outputs) = overlay.processed.get(&key) {
                return Ok(Some(outputs.clone()));
            }
            if overlay.unprocessed.contains(&key) {
                return Ok(None);
            }
        }
        self.base.processed(plugin, event_id)
    }
}

impl StateRead for BatchView {
    fn get(&self, plugin: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let found = self
            .overlay
            .lock()
            .expect("overlay lock")
            .writes
            .get(&(plugin.to_string(), key.to_string()))
            .cloned();
        match found {
            Some(value) => Ok(value),
            None => self.base.get(plugin, key),
        }
    }
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

/// The contract tests every store must pass; public so that the end-to-end
/// tests can run them against a real PostgreSQL server.
#[doc(hidden)]
pub mod contract {
    use super::*;

    fn effect(
        id: &str,
        reads: &[(&str, Option<&[u8]>)],
        writes: &[(&str, Option<&[u8]>)],
    ) -> Effect {
        let map = |kv: &[(&str, Option<&[u8]>)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
                .collect()
        };
        Effect {
            plugin: "p".into(),
            event_id: id.into(),
            reads: map(reads),
            writes: map(writes),
            outputs: format!("out-{id}").into_bytes(),
        }
    }

    /// The contract every store keeps; run against each implementation.
    pub fn check_store(store: &dyn StateStore) {
        let setup = vec![effect("e0", &[], &[("gone", Some(b"1"))])];
        assert_eq!(store.commit(&[&[setup]]).unwrap(), vec![1]);
        assert_eq!(store.processed("p", "e1").unwrap(), None);
        let e1 = vec![effect(
            "e1",
            &[("a", None)],
            &[("a", Some(b"x")), ("gone", None)],
        )];
        // e2 read what e1 wrote earlier in the same batch.
        let e2 = vec![effect("e2", &[("a", Some(b"x"))], &[("a", Some(b"y"))])];
        assert_eq!(store.commit(&[&[e1, e2]]).unwrap(), vec![2]);
        assert_eq!(store.get("p", "a").unwrap(), Some(b"y".to_vec()));
        assert_eq!(store.get("p", "gone").unwrap(), None);
        assert_eq!(store.get("other", "a").unwrap(), None);
        assert_eq!(
            store.processed("p", "e1").unwrap(),
            Some(b"out-e1".to_vec())
        );
        // Two partitions in one group commit: the first wins; the second read
        // `a` before it changed, so it stops there and changes nothing.
        let winner = vec![effect("e3", &[("a", Some(b"y"))], &[("a", Some(b"z"))])];
        let stale = vec![effect("e4", &[("a", Some(b"y"))], &[("a", Some(b"lost"))])];
        let after = vec![effect("e5", &[], &[("b", Some(b"1"))])];
        assert_eq!(
            store.commit(&[&[winner], &[stale, after]]).unwrap(),
            vec![1, 0]
        );
        assert_eq!(store.get("p", "a").unwrap(), Some(b"z".to_vec()));
        assert_eq!(store.get("p", "b").unwrap(), None);
        assert_eq!(store.processed("p", "e4").unwrap(), None);
        // An event already processed is not applied again.
        let again = vec![effect("e3", &[], &[("a", Some(b"twice"))])];
        assert_eq!(store.commit(&[&[again]]).unwrap(), vec![0]);
        assert_eq!(store.get("p", "a").unwrap(), Some(b"z".to_vec()));
        assert_eq!(
            store.snapshot("p").unwrap(),
            BTreeMap::from([("a".to_string(), b"z".to_vec())])
        );
    }

    /// Stored versions: publish, read back, change.
    pub fn check_versions(store: &dyn VersionStore) {
        assert_eq!(store.live().unwrap(), vec![]);
        let v1 = LiveVersion {
            plugin: "p".into(),
            hash: "h1".into(),
            origin: "file".into(),
            paused: false,
        };
        store.publish(&v1, Some(b"one")).unwrap();
        let v2 = LiveVersion {
            hash: "h2".into(),
            origin: "upload".into(),
            ..v1.clone()
        };
        store.publish(&v2, Some(b"two")).unwrap();
        let paused = LiveVersion {
            paused: true,
            ..v2.clone()
        };
        store.publish(&paused, None).unwrap();
        assert_eq!(store.live().unwrap(), vec![paused]);
        assert_eq!(store.wasm("h1").unwrap(), Some(b"one".to_vec()));
        assert_eq!(store.wasm("h2").unwrap(), Some(b"two".to_vec()));
        assert_eq!(store.wasm("h3").unwrap(), None);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::contract::check_store;
    use super::*;

    fn effect(id: &str, writes: &[(&str, Option<&[u8]>)]) -> Effect {
        Effect {
            plugin: "p".into(),
            event_id: id.into(),
            reads: Default::default(),
            writes: writes
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
                .collect(),
            outputs: format!("out-{id}").into_bytes(),
        }
    }

    #[test]
    fn memory_store_keeps_the_contract() {
        check_store(&MemoryStore::new());
    }

    #[test]
    fn a_prefetch_answers_for_the_whole_batch() {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        store.commit(&[&[vec![effect("e1", &[])]]]).unwrap();
        let view = BatchView::new(store.clone());
        view.prefetch(vec![("p".into(), "e1".into()), ("p".into(), "e2".into())])
            .unwrap();
        // Marked after the prefetch: the view does not look again (the
        // commit's own check catches it).
        store.commit(&[&[vec![effect("e2", &[])]]]).unwrap();
        assert_eq!(view.processed("p", "e1").unwrap(), Some(b"out-e1".to_vec()));
        assert_eq!(view.processed("p", "e2").unwrap(), None);
        assert_eq!(view.processed("p", "e3").unwrap(), None);
    }

    #[test]
    fn a_batch_view_shows_earlier_records() {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let view = BatchView::new(store.clone());
        view.apply(&[effect("e1", &[("a", Some(b"x"))])]);
        assert_eq!(view.get("p", "a").unwrap(), Some(b"x".to_vec()));
        assert_eq!(store.get("p", "a").unwrap(), None);
        assert_eq!(view.processed("p", "e1").unwrap(), Some(b"out-e1".to_vec()));
    }
}
