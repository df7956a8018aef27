//! The processed marks of the redb store, indexed in memory.
//!
//! Two tables keyed by (`plugin`, sequence) are the only record of the
//! processed ids on disk: `processed_ids` (-> event id) and
//! `processed_output_chunks` (the first sequence of a chunk -> the outputs
//! of it and the entries after it, [`super::chunk`]). A commit appends to
//! one end of each and prunes the other, so its writes stay at two ends of
//! two B-trees whatever the ids. A table keyed by the ids themselves, as the second
//! layout kept (`processed_marks`), put each random version 4 id on a page
//! of its own: a group commit then rewrote most of that table's pages,
//! which made a record's commit about 2.7 times as costly as with
//! ascending ids (`bench commit-loop`, BENCHMARKS item 16). The ids have a
//! table apart from the outputs so that the index is rebuilt on open from
//! about 60 bytes an entry without reading a page of outputs: from one
//! table of both, a full window of 100,000 took 205 ms and left 148 MB in
//! redb's cache (item 17).
//!
//! [`MarkIndex`] answers "which sequences may hold this id": a keyed 64-bit
//! hash of the id -> its sequence numbers. It is rebuilt from
//! `processed_ids` on open and changed only after a commit lands, under the
//! store's writer lock: between a commit and its change here, the index may
//! still name an entry that commit pruned, or miss one it added. A lookup
//! confirms each candidate against the entry's id in the reader's own
//! snapshot, so such a moment, a collision of two ids or an id marked twice
//! (possible in a migrated file) costs at most one more read and never a
//! wrong answer; the commit check, which reads the index under the writer
//! lock, decides. An id whose hash is absent, the usual case for a new
//! event, is answered without touching the file.
//!
//! Its size is about 20 bytes an id: 2 MB a plugin at the default
//! `keep_processed` of 100,000.

use redb::ReadableTable;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

/// The processed entries as the index reads them: (`plugin`, sequence) ->
/// event id, and -> outputs, in a read or a write transaction.
pub(super) trait Outbox {
    /// The outputs at `seq` of `plugin`, if the entry is there.
    fn outputs(&self, plugin: &str, seq: u64) -> anyhow::Result<Option<Vec<u8>>>;
    /// Whether the entry at `seq` of `plugin` is `event_id`'s.
    fn holds(&self, plugin: &str, seq: u64, event_id: &str) -> anyhow::Result<bool>;
}

/// The two tables of the processed entries, `processed_ids` and
/// `processed_output_chunks`.
pub(super) struct Processed<I, O> {
    pub(super) ids: I,
    pub(super) outputs: O,
}

impl<I, O> Outbox for Processed<I, O>
where
    I: ReadableTable<(&'static str, u64), &'static str>,
    O: ReadableTable<(&'static str, u64), &'static [u8]>,
{
    fn outputs(&self, plugin: &str, seq: u64) -> anyhow::Result<Option<Vec<u8>>> {
        // The chunk holding `seq` is the one that starts at it or nearest
        // before it.
        let Some((key, chunk)) = self
            .outputs
            .range((plugin, 0)..=(plugin, seq))?
            .next_back()
            .transpose()?
        else {
            return Ok(None);
        };
        Ok(super::chunk::entry(chunk.value(), seq - key.value().1).map(<[u8]>::to_vec))
    }

    fn holds(&self, plugin: &str, seq: u64, event_id: &str) -> anyhow::Result<bool> {
        Ok(self
            .ids
            .get((plugin, seq))?
            .is_some_and(|e| e.value() == event_id))
    }
}

/// The processed ids of every plugin, by keyed hash.
pub(super) struct MarkIndex {
    /// Random keys, so that nobody who picks event ids can make them
    /// collide on purpose.
    keys: RandomState,
    plugins: HashMap<String, PluginMarks>,
}

/// One plugin's processed ids.
#[derive(Default)]
struct PluginMarks {
    /// Hash -> the sequence of one id with that hash.
    first: HashMap<u64, u64, BuildHasherDefault<Prehashed>>,
    /// Hash -> the sequences of any further ids with it (rare).
    more: HashMap<u64, Vec<u64>, BuildHasherDefault<Prehashed>>,
}

/// A hasher for keys that are already hashes.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl MarkIndex {
    /// An empty index.
    pub(super) fn new() -> Self {
        MarkIndex {
            keys: RandomState::new(),
            plugins: HashMap::new(),
        }
    }

    /// The index of every entry in `ids` (the whole of `processed_ids`).
    pub(super) fn load(
        ids: &impl ReadableTable<(&'static str, u64), &'static str>,
    ) -> anyhow::Result<Self> {
        let mut index = MarkIndex::new();
        for entry in ids.iter()? {
            let (key, id) = entry?;
            let (plugin, seq) = key.value();
            let hash = index.hash(id.value());
            index.insert(plugin, hash, seq);
        }
        Ok(index)
    }

    /// The key `event_id` is indexed by.
    pub(super) fn hash(&self, event_id: &str) -> u64 {
        self.keys.hash_one(event_id)
    }

    /// Records that `plugin`'s entry at `seq` holds an id of `hash`.
    pub(super) fn insert(&mut self, plugin: &str, hash: u64, seq: u64) {
        let marks = match self.plugins.get_mut(plugin) {
            Some(marks) => marks,
            None => self.plugins.entry(plugin.to_string()).or_default(),
        };
        match marks.first.entry(hash) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(seq);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                marks.more.entry(hash).or_default().push(seq);
            }
        }
    }

    /// Forgets `plugin`'s entry at `seq`, of an id of `hash`.
    pub(super) fn remove(&mut self, plugin: &str, hash: u64, seq: u64) {
        let Some(marks) = self.plugins.get_mut(plugin) else {
            return;
        };
        let others = marks.more.get_mut(&hash);
        if marks.first.get(&hash) == Some(&seq) {
            match others {
                Some(others) => {
                    marks.first.insert(hash, others.remove(0));
                    if others.is_empty() {
                        marks.more.remove(&hash);
                    }
                }
                None => {
                    marks.first.remove(&hash);
                }
            }
        } else if let Some(others) = others {
            others.retain(|s| *s != seq);
            if others.is_empty() {
                marks.more.remove(&hash);
            }
        }
    }

    /// The sequences that may hold `plugin`'s `event_id`, to confirm with
    /// [`newest`]: none, without allocating, for an id never marked.
    pub(super) fn candidates(&self, plugin: &str, event_id: &str) -> Vec<u64> {
        self.candidates_hashed(plugin, self.hash(event_id))
    }

    /// [`MarkIndex::candidates`], given the id's hash.
    fn candidates_hashed(&self, plugin: &str, hash: u64) -> Vec<u64> {
        let Some(marks) = self.plugins.get(plugin) else {
            return Vec::new();
        };
        let Some(first) = marks.first.get(&hash) else {
            return Vec::new();
        };
        let others = marks.more.get(&hash).map(Vec::as_slice).unwrap_or(&[]);
        std::iter::once(*first)
            .chain(others.iter().copied())
            .collect()
    }

    /// The sequence of `plugin`'s newest entry for `event_id`, read in
    /// `outbox`.
    pub(super) fn find(
        &self,
        outbox: &impl Outbox,
        plugin: &str,
        event_id: &str,
    ) -> anyhow::Result<Option<u64>> {
        newest(outbox, plugin, event_id, &self.candidates(plugin, event_id))
    }

    /// How many entries the index holds, over every plugin.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.plugins
            .values()
            .map(|m| m.first.len() + m.more.values().map(Vec::len).sum::<usize>())
            .sum()
    }
}

/// The newest of `candidates` whose entry in `outbox` is `plugin`'s
/// `event_id`.
pub(super) fn newest(
    outbox: &impl Outbox,
    plugin: &str,
    event_id: &str,
    candidates: &[u64],
) -> anyhow::Result<Option<u64>> {
    let mut found = None;
    for seq in candidates {
        if found < Some(*seq) && outbox.holds(plugin, *seq, event_id)? {
            found = Some(*seq);
        }
    }
    Ok(found)
}

/// The outputs `plugin` produced for `event_id`, if one of `candidates`
/// holds it in `outbox`.
pub(super) fn outputs(
    outbox: &impl Outbox,
    plugin: &str,
    event_id: &str,
    candidates: &[u64],
) -> anyhow::Result<Option<Vec<u8>>> {
    let Some(seq) = newest(outbox, plugin, event_id, candidates)? else {
        return Ok(None);
    };
    outbox.outputs(plugin, seq)
}

/// A change a commit makes to the index once it lands.
pub(super) struct Change<'a> {
    pub(super) plugin: &'a str,
    pub(super) hash: u64,
    pub(super) seq: u64,
    /// Added (or else pruned).
    pub(super) added: bool,
}

impl MarkIndex {
    /// Applies a landed commit's `changes`, in order.
    pub(super) fn apply(&mut self, changes: &[Change<'_>]) {
        for c in changes {
            if c.added {
                self.insert(c.plugin, c.hash, c.seq);
            } else {
                self.remove(c.plugin, c.hash, c.seq);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// An outbox in memory: (plugin, seq) -> id.
    struct Entries(BTreeMap<(String, u64), String>);

    impl Outbox for Entries {
        fn outputs(&self, plugin: &str, seq: u64) -> anyhow::Result<Option<Vec<u8>>> {
            Ok(self
                .0
                .get(&(plugin.to_string(), seq))
                .map(|id| format!("out-{id}").into_bytes()))
        }

        fn holds(&self, plugin: &str, seq: u64, event_id: &str) -> anyhow::Result<bool> {
            Ok(self.0.get(&(plugin.to_string(), seq)).map(String::as_str) == Some(event_id))
        }
    }

    #[test]
    fn colliding_ids_are_told_apart_by_the_outbox() {
        let mut index = MarkIndex::new();
        let mut outbox = Entries(BTreeMap::new());
        // Three ids forced onto one hash, and one id marked twice.
        for (seq, id) in [(0, "a"), (1, "b"), (2, "c"), (3, "a")] {
            outbox.0.insert(("p".into(), seq), id.into());
            index.insert("p", 7, seq);
        }
        let find = |index: &MarkIndex, id: &str| {
            newest(&outbox, "p", id, &index.candidates_hashed("p", 7)).unwrap()
        };
        assert_eq!(find(&index, "a"), Some(3));
        assert_eq!(find(&index, "b"), Some(1));
        assert_eq!(find(&index, "c"), Some(2));
        // Pruning the oldest keeps the rest findable.
        index.remove("p", 7, 0);
        assert_eq!(find(&index, "a"), Some(3));
        assert_eq!(find(&index, "b"), Some(1));
        index.remove("p", 7, 2);
        index.remove("p", 7, 1);
        assert_eq!(find(&index, "a"), Some(3));
        assert_eq!(index.len(), 1);
        index.remove("p", 7, 3);
        assert_eq!(index.len(), 0);
        assert!(index.plugins["p"].more.is_empty());
    }

    #[test]
    fn an_id_not_marked_is_answered_without_the_outbox() {
        struct Refuses;
        impl Outbox for Refuses {
            fn outputs(&self, _: &str, _: u64) -> anyhow::Result<Option<Vec<u8>>> {
                anyhow::bail!("read")
            }
            fn holds(&self, _: &str, _: u64, _: &str) -> anyhow::Result<bool> {
                anyhow::bail!("read")
            }
        }
        let mut index = MarkIndex::new();
        let hash = index.hash("a");
        index.insert("p", hash, 0);
        assert_eq!(index.find(&Refuses, "p", "b").unwrap(), None);
        assert_eq!(index.find(&Refuses, "q", "a").unwrap(), None);
        assert!(index.find(&Refuses, "p", "a").is_err());
    }
}
