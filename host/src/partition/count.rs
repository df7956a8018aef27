//! Counting a handled record into the dev stats, the Prometheus metrics,
//! the flows of the status page and the plugin's own counters.

use super::Shared;
use crate::event::Record;
use crate::flows::{self, Node};
use crate::registry::Plugin;
use crate::router::RecordOutcome;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The counts of one run of a batch, added up record by record on the
/// partition's task and handed to the shared counters at once
/// ([`Tally::flush`], or when dropped): each shared lock is taken, and each
/// metric label looked up, once a run instead of several times a record
/// (BENCHMARKS.md, "The hot path", item 22). Failures, which are rare and
/// logged, and timer firings are counted at once.
pub(super) struct Tally<'a> {
    shared: &'a Shared,
    /// How long each record took: the run's time over its records.
    took: Duration,
    records: u64,
    /// Per input topic: records, and whether any was handed to a plugin.
    topics: Vec<(String, u64, bool)>,
    flows: flows::Tally,
    /// Per plugin: each call's time, and how many of the calls failed.
    plugins: Vec<(Arc<Plugin>, Vec<Duration>, u64)>,
}

impl<'a> Tally<'a> {
    /// An empty tally of a run whose records took `took` each.
    pub(super) fn new(shared: &'a Shared, took: Duration) -> Self {
        Tally {
            shared,
            took,
            records: 0,
            topics: Vec::new(),
            flows: flows::Tally::default(),
            plugins: Vec::new(),
        }
    }

    /// Counts `record`'s outcome.
    pub(super) fn add(&mut self, record: &Record, outcome: &RecordOutcome) {
        let shared = self.shared;
        self.records += 1;
        let routed = matches!(outcome, RecordOutcome::Routed { calls, .. } if !calls.is_empty());
        match self.topics.iter_mut().find(|(t, ..)| *t == record.topic) {
            Some((_, n, any)) => {
                *n += 1;
                *any |= routed;
            }
            None => self.topics.push((record.topic.clone(), 1, routed)),
        }
        if let Some((plugin, due_ms)) = crate::router::firing_due(record) {
            let late = (super::timers::now_ms() - due_ms).max(0);
            shared
                .metrics
                .timer_fired(&plugin, Duration::from_millis(late as u64));
        }
        let input = Node::Topic(&record.topic);
        if let RecordOutcome::Undecodable(_) = outcome {
            let dlq = crate::kafka::dlq::topic_of(&record.topic);
            self.flows.edge(input, Node::Topic(&dlq));
            // Handed over at once, before the dead letter is produced, so
            // that whoever sees the dead letter sees its counts too.
            return self.flush();
        }
        let RecordOutcome::Routed { calls, .. } = outcome else {
            return;
        };
        let mut failed_any = false;
        for call in calls.iter().filter(|c| !c.duplicate) {
            let name = &call.plugin.spec.name;
            let node = Node::Plugin(name);
            self.flows.edge(input, node);
            match &call.result {
                Ok(records) => {
                    for r in records {
                        self.flows.edge(node, Node::Topic(&r.topic));
                    }
                }
                Err(_) => {
                    let dlq = crate::kafka::dlq::topic_of(&record.topic);
                    self.flows.edge(node, Node::Topic(&dlq));
                }
            }
            let failed = call.result.as_ref().err().map(|f| f.class());
            let i = match self
                .plugins
                .iter()
                .position(|(p, ..)| Arc::ptr_eq(p, &call.plugin))
            {
                Some(i) => i,
                None => {
                    self.plugins.push((call.plugin.clone(), Vec::new(), 0));
                    self.plugins.len() - 1
                }
            };
            let (_, took, errors) = &mut self.plugins[i];
            took.push(call.took);
            if let Some(class) = failed {
                failed_any = true;
                *errors += 1;
                shared.metrics.plugin_error(name, class);
                shared.stats.errors.fetch_add(1, Ordering::Relaxed);
                shared.metrics.error(&record.topic);
            }
        }
        if failed_any {
            self.flush();
        }
    }

    /// Hands what it counted to the metrics, flows, plugins and stats, in
    /// that order (a plugin's own count and the records handled, which the
    /// admin API shows, last), and starts again from nothing.
    pub(super) fn flush(&mut self) {
        let shared = self.shared;
        for (topic, records, routed) in self.topics.drain(..) {
            shared.metrics.processed(&topic, routed, records, self.took);
        }
        // A failed call's record is dead-lettered: its errors are its dead
        // letters.
        for (plugin, took, errors) in &self.plugins {
            let (calls, errors) = (took.len() as u64, *errors);
            let counts = flows::Counts {
                calls,
                errors,
                dead_letters: errors,
            };
            self.flows.calls(&plugin.spec.name, counts);
        }
        shared.flows.add(&std::mem::take(&mut self.flows));
        for (plugin, took, errors) in self.plugins.drain(..) {
            shared.metrics.invocations(&plugin.spec.name, &took);
            plugin.count(took.len() as u64, errors);
        }
        if self.records > 0 {
            shared
                .stats
                .records
                .fetch_add(std::mem::take(&mut self.records), Ordering::Relaxed);
        }
    }
}

impl Drop for Tally<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Counters for the dev summary line and the admin API.
#[derive(Debug, Default)]
pub struct Stats {
    /// Records handled (routed, skipped or dead-lettered).
    pub records: AtomicU64,
    /// Records produced from emits.
    pub emitted: AtomicU64,
    /// Plugin calls that failed (each attempt).
    pub errors: AtomicU64,
    /// Records sent to a dead-letter topic.
    pub dead_letters: AtomicU64,
    /// Records skipped: excluded topics, or undecodable on topics no plugin wants.
    pub skipped: AtomicU64,
    /// Records whose outputs were all acknowledged (their offsets are stored
    /// with the next store of their partition's).
    pub acked: AtomicU64,
    /// Batches committed to the state store.
    pub commits: AtomicU64,
    /// Microseconds partitions waited for those commits, in total.
    pub commit_micros: AtomicU64,
    /// Records run again because a commit found their reads changed (or the
    /// event already processed elsewhere).
    pub reruns: AtomicU64,
}
