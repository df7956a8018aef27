//! [`BatchView`]: what the records of one partition's batch read while it
//! runs, committed state with the batch's own earlier effects on top, and,
//! for a batch run ahead while the one before it commits
//! ([`BatchView::after`]), that batch's effects between the two.

use super::{Effect, StateRead, StateStore};
// foldhash rather than SipHash: a batch's maps are hashed a few times a
// record (about 1.6% of the router's CPU with SipHash), and hold one batch's
// keys at most, so a per-process seed is all the collision resistance they
// need.
use foldhash::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// A batch's view of the store: committed state with the writes and
/// processed marks of the batch's earlier records on top.
pub(crate) struct BatchView {
    base: Arc<dyn StateStore>,
    /// The batch run before this one, while its commit is in flight: read
    /// under this batch's own effects and over the store, until
    /// [`BatchView::settle`] drops it.
    before: Mutex<Option<Arc<BatchView>>>,
    overlay: Mutex<Overlay>,
}

#[derive(Default)]
struct Overlay {
    writes: HashMap<(String, String), Option<Vec<u8>>>,
    /// Outputs by plugin, then event id (looked up by `&str`, without
    /// building a key per record).
    processed: HashMap<String, HashMap<String, Vec<u8>>>,
    /// Looked up in the store at the start of the batch and not processed,
    /// by plugin.
    unprocessed: HashMap<String, HashSet<String>>,
}

impl BatchView {
    /// A view of `base` with nothing on top.
    pub(crate) fn new(base: Arc<dyn StateStore>) -> Self {
        BatchView {
            base,
            before: Mutex::default(),
            overlay: Mutex::default(),
        }
    }

    /// A view for the batch after `before`'s, run while `before`'s commit
    /// is in flight: it reads `before`'s writes and processed marks as
    /// though committed. Its reads are checked at its own commit like any
    /// other, so it may only be committed once `before`'s commit applied
    /// every record; then [`BatchView::settle`] drops `before`.
    pub(crate) fn after(base: Arc<dyn StateStore>, before: Arc<BatchView>) -> Self {
        BatchView {
            base,
            before: Mutex::new(Some(before)),
            overlay: Mutex::default(),
        }
    }

    /// Forgets the batch before this one: its commit applied, so the store
    /// answers for it. Keeps views from chaining.
    pub(crate) fn settle(&self) {
        self.before.lock().expect("before lock").take();
    }

    fn before(&self) -> Option<Arc<BatchView>> {
        self.before.lock().expect("before lock").clone()
    }

    /// What this batch's own records wrote to `key`, if any wrote it.
    fn staged(&self, plugin: &str, key: &str) -> Option<Option<Vec<u8>>> {
        self.overlay
            .lock()
            .expect("overlay lock")
            .writes
            .get(&(plugin.to_string(), key.to_string()))
            .cloned()
    }

    /// The outputs this batch's own records produced for `event_id`.
    fn marked(&self, plugin: &str, event_id: &str) -> Option<Vec<u8>> {
        let overlay = self.overlay.lock().expect("overlay lock");
        overlay.processed.get(plugin)?.get(event_id).cloned()
    }

    /// Puts one record's effects on top, for the records after it.
    pub(crate) fn apply<'a>(&self, effects: impl IntoIterator<Item = &'a Effect>) {
        let mut overlay = self.overlay.lock().expect("overlay lock");
        for effect in effects {
            for (key, value) in &effect.writes {
                overlay
                    .writes
                    .insert((effect.plugin.clone(), key.clone()), value.clone());
            }
            let (id, outputs) = (effect.event_id.clone(), effect.outputs.clone());
            match overlay.processed.get_mut(effect.plugin.as_str()) {
                Some(ids) => ids.insert(id, outputs),
                None => overlay
                    .processed
                    .entry(effect.plugin.clone())
                    .or_default()
                    .insert(id, outputs),
            };
        }
    }

    /// Looks up the processed marks of `keys` (plugin, event id) in one go,
    /// so that the records of the batch need no lookup of their own. A mark
    /// written after this by another instance is still caught: the commit
    /// checks every mark again.
    pub(crate) fn prefetch(&self, keys: Vec<(String, String)>) -> anyhow::Result<()> {
        let found = self.base.processed_many(&keys)?;
        let mut overlay = self.overlay.lock().expect("overlay lock");
        for key in keys {
            let outputs = found.get(&key);
            let (plugin, id) = key;
            match outputs {
                Some(outputs) => {
                    overlay
                        .processed
                        .entry(plugin)
                        .or_default()
                        .insert(id, outputs.clone());
                }
                None => {
                    overlay.unprocessed.entry(plugin).or_default().insert(id);
                }
            }
        }
        Ok(())
    }

    /// The outputs `plugin` produced for `event_id`, in this batch or before.
    pub(crate) fn processed(
        &self,
        plugin: &str,
        event_id: &str,
    ) -> anyhow::Result<Option<Vec<u8>>> {
        if let Some(outputs) = self.marked(plugin, event_id) {
            return Ok(Some(outputs));
        }
        // Before this batch's own prefetch: that looked in the store while
        // the batch before may not have been committed yet.
        if let Some(outputs) = self.before().and_then(|b| b.marked(plugin, event_id)) {
            return Ok(Some(outputs));
        }
        if self
            .overlay
            .lock()
            .expect("overlay lock")
            .unprocessed
            .get(plugin)
            .is_some_and(|ids| ids.contains(event_id))
        {
            return Ok(None);
        }
        self.base.processed(plugin, event_id)
    }
}

impl StateRead for BatchView {
    fn get(&self, plugin: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let found = self
            .staged(plugin, key)
            .or_else(|| self.before()?.staged(plugin, key));
        match found {
            Some(value) => Ok(value),
            None => self.base.get(plugin, key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{MemoryStore, StateStore};
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
            timers: Default::default(),
        }
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
    fn a_view_after_another_reads_its_effects_until_settled() {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let first = Arc::new(BatchView::new(store.clone()));
        first.apply(&[effect("e1", &[("a", Some(b"x")), ("b", Some(b"y"))])]);
        let next = BatchView::after(store.clone(), first.clone());
        // The prefetch looked in the store before e1 was committed.
        next.prefetch(vec![("p".into(), "e1".into())]).unwrap();
        next.apply(&[effect("e2", &[("b", Some(b"z"))])]);
        assert_eq!(next.get("p", "a").unwrap(), Some(b"x".to_vec()));
        assert_eq!(next.get("p", "b").unwrap(), Some(b"z".to_vec()));
        assert_eq!(next.processed("p", "e1").unwrap(), Some(b"out-e1".to_vec()));
        assert_eq!(first.get("p", "b").unwrap(), Some(b"y".to_vec()));
        next.settle();
        // Settled, it reads the store, which has not got e1 here.
        assert_eq!(next.get("p", "a").unwrap(), None);
        assert_eq!(next.processed("p", "e1").unwrap(), None);
        assert_eq!(Arc::strong_count(&first), 1);
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
