//! The commit check, written once for every store.
//!
//! [`check`] walks the batches of one group commit in order, record by record,
//! against the committed state as the store reads it inside its committing
//! transaction ([`Committed`]), with the writes and processed marks of the
//! records that already passed on top. A record passes when none of its
//! events is marked processed and every value each of its calls read is still
//! the one there. At the first record that fails, its partition's batch stops
//! (the records before it pass); the next partition's batch is checked as
//! usual. The answer is a [`Plan`]: how many records of each batch pass, and
//! the writes, processed marks, outputs (the outbox) and timer changes that
//! applying them means. The store applies the plan in the same transaction
//! it read in. Timers are not checked: the plan only folds the timer changes
//! of the passing records in commit order, one [`TimerOp`] per timer.
//!
//! A store that reads one key at a time (memory, redb) implements
//! [`Committed`] over its tables; a store for which each read is a round trip
//! (PostgreSQL) reads ahead every key and event id the batches touch
//! ([`touched`]) in one query each and checks against that ([`ReadAhead`]).

use super::RecordEffects;
use super::timers::TimerOp;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Committed state, as the check reads it.
pub(crate) trait Committed {
    /// Whether the committed value of `key` in `plugin`'s namespace is
    /// `expected` (`None`: absent).
    fn value_is(&self, plugin: &str, key: &str, expected: Option<&[u8]>) -> anyhow::Result<bool>;
    /// Whether `plugin` is marked as having processed `event_id`.
    fn marked(&self, plugin: &str, event_id: &str) -> anyhow::Result<bool>;
}

/// An event a plan marks processed, with the outputs it produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Mark<'a> {
    pub(crate) plugin: &'a str,
    pub(crate) event_id: &'a str,
    pub(crate) outputs: &'a [u8],
}

/// What one commit applies, borrowed from its batches.
#[derive(Debug, Default)]
pub(crate) struct Plan<'a> {
    /// For each batch, how many of its records pass.
    pub(crate) applied: Vec<usize>,
    /// The last value each passing record wrote, by (plugin, key): `None`
    /// deletes.
    pub(crate) writes: BTreeMap<(&'a str, &'a str), Option<&'a [u8]>>,
    /// The events marked processed, in commit order.
    pub(crate) marks: Vec<Mark<'a>>,
    /// What the passing records do to timers, by (plugin, name), their
    /// changes folded in commit order.
    pub(crate) timers: BTreeMap<(&'a str, &'a str), TimerOp<'a>>,
}

impl Plan<'_> {
    /// How many events of each plugin the plan marks processed.
    pub(crate) fn marks_per_plugin(&self) -> HashMap<String, i64> {
        let mut per = HashMap::new();
        for mark in &self.marks {
            *per.entry(mark.plugin.to_string()).or_default() += 1;
        }
        per
    }
}

/// Checks `batches` against `committed` record by record, in order, and
/// returns what passes.
pub(crate) fn check<'a>(
    batches: &[&'a [RecordEffects]],
    committed: &impl Committed,
) -> anyhow::Result<Plan<'a>> {
    let mut plan = Plan {
        applied: Vec::with_capacity(batches.len()),
        ..Plan::default()
    };
    // foldhash, as in the batch's view ([`super::view`]): one commit's ids.
    let mut marked: foldhash::HashSet<(&str, &str)> = Default::default();
    for batch in batches {
        let mut n = 0;
        for record in batch.iter() {
            if !passes(record, &plan.writes, &marked, committed)? {
                break;
            }
            for e in record {
                for (key, value) in &e.writes {
                    plan.writes
                        .insert((e.plugin.as_str(), key.as_str()), value.as_deref());
                }
                for (name, change) in &e.timers {
                    let key = (e.plugin.as_str(), name.as_str());
                    let op = match plan.timers.remove(&key) {
                        Some(before) => before.then(change),
                        None => TimerOp::of(change),
                    };
                    plan.timers.insert(key, op);
                }
                marked.insert((&e.plugin, &e.event_id));
                plan.marks.push(Mark {
                    plugin: &e.plugin,
                    event_id: &e.event_id,
                    outputs: &e.outputs,
                });
            }
            n += 1;
        }
        plan.applied.push(n);
    }
    Ok(plan)
}

/// Whether every effect of `record` holds on the committed state with the
/// plan so far on top.
fn passes(
    record: &RecordEffects,
    writes: &BTreeMap<(&str, &str), Option<&[u8]>>,
    marked: &foldhash::HashSet<(&str, &str)>,
    committed: &impl Committed,
) -> anyhow::Result<bool> {
    for e in record {
        let (plugin, id) = (e.plugin.as_str(), e.event_id.as_str());
        if marked.contains(&(plugin, id)) || committed.marked(plugin, id)? {
            return Ok(false);
        }
        for (key, seen) in &e.reads {
            let holds = match writes.get(&(plugin, key.as_str())) {
                Some(now) => *now == seen.as_deref(),
                None => committed.value_is(plugin, key, seen.as_deref())?,
            };
            if !holds {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// What the batches of a commit touch, for a store that reads it ahead.
#[derive(Debug, Default)]
pub(crate) struct Touched<'a> {
    /// Every (plugin, key) any call read, once each.
    pub(crate) keys: BTreeSet<(&'a str, &'a str)>,
    /// Every (plugin, event id) of the batches, once each.
    pub(crate) events: BTreeSet<(&'a str, &'a str)>,
}

/// The keys and event ids the check of `batches` may look up.
pub(crate) fn touched<'a>(batches: &[&'a [RecordEffects]]) -> Touched<'a> {
    let mut touched = Touched::default();
    for e in batches.iter().copied().flatten().flatten() {
        touched.events.insert((&e.plugin, &e.event_id));
        for key in e.reads.keys() {
            touched.keys.insert((&e.plugin, key));
        }
    }
    touched
}

/// Committed state read ahead: the present values and the marks among what
/// [`touched`] listed. Anything not recorded here is absent (a key) or not
/// marked (an event), so it must hold every one of them that exists.
#[derive(Debug, Default)]
pub(crate) struct ReadAhead {
    values: foldhash::HashMap<String, foldhash::HashMap<String, Vec<u8>>>,
    marked: foldhash::HashMap<String, foldhash::HashSet<String>>,
}

impl ReadAhead {
    /// Records that `key` of `plugin` holds `value`.
    pub(crate) fn value(&mut self, plugin: String, key: String, value: Vec<u8>) {
        self.values.entry(plugin).or_default().insert(key, value);
    }

    /// Records that `plugin` processed `event_id`.
    pub(crate) fn mark(&mut self, plugin: String, event_id: String) {
        self.marked.entry(plugin).or_default().insert(event_id);
    }
}

impl Committed for ReadAhead {
    fn value_is(&self, plugin: &str, key: &str, expected: Option<&[u8]>) -> anyhow::Result<bool> {
        let now = self.values.get(plugin).and_then(|ns| ns.get(key));
        Ok(now.map(Vec::as_slice) == expected)
    }

    fn marked(&self, plugin: &str, event_id: &str) -> anyhow::Result<bool> {
        Ok(self
            .marked
            .get(plugin)
            .is_some_and(|ids| ids.contains(event_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::Effect;
    use super::*;

    fn effect(plugin: &str, id: &str, reads: &[(&str, Option<&[u8]>)], writes: &[&str]) -> Effect {
        Effect {
            plugin: plugin.into(),
            event_id: id.into(),
            reads: reads
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
                .collect(),
            writes: writes
                .iter()
                .map(|k| (k.to_string(), Some(id.as_bytes().to_vec())))
                .collect(),
            outputs: id.as_bytes().to_vec(),
            timers: Default::default(),
        }
    }

    #[test]
    fn the_first_failing_record_stops_its_batch_only() {
        let mut committed = ReadAhead::default();
        committed.value("p".into(), "a".into(), b"1".to_vec());
        committed.mark("q".into(), "done".into());
        // One record, two plugins: q's event is marked, so the whole record
        // fails, and the record after it does not run.
        let first = [
            vec![effect("p", "e1", &[("a", Some(b"1"))], &["a"])],
            vec![
                effect("p", "e2", &[], &["b"]),
                effect("q", "done", &[], &["c"]),
            ],
            vec![effect("p", "e3", &[], &["d"])],
        ];
        // Reads what e1 wrote in the other batch; then repeats e1.
        let second = [
            vec![effect("p", "e4", &[("a", Some(b"e1"))], &[])],
            vec![effect("p", "e1", &[], &[])],
        ];
        let batches: [&[RecordEffects]; 2] = [&first, &second];
        let plan = check(&batches, &committed).unwrap();
        assert_eq!(plan.applied, vec![1, 1]);
        assert_eq!(
            plan.writes,
            BTreeMap::from([(("p", "a"), Some(&b"e1"[..]))])
        );
        let ids: Vec<_> = plan.marks.iter().map(|m| m.event_id).collect();
        assert_eq!(ids, ["e1", "e4"]);
        assert_eq!(plan.marks_per_plugin(), HashMap::from([("p".into(), 2)]));
        let touched = touched(&batches);
        assert_eq!(touched.keys, BTreeSet::from([("p", "a")]));
        assert_eq!(touched.events.len(), 5);
    }
}
