//! Counting a handled record into the dev stats, the Prometheus metrics,
//! the flows of the status page and the plugin's own counters.

use super::Worker;
use crate::event::Record;
use crate::flows::Node;
use crate::router::RecordOutcome;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

impl Worker {
    /// Counts `record`'s outcome everywhere it is shown.
    pub(super) fn count(&self, record: &Record, outcome: &RecordOutcome, took: Duration) {
        let shared = &self.shared;
        shared.stats.records.fetch_add(1, Ordering::Relaxed);
        if matches!(outcome, RecordOutcome::Routed { calls, .. } if !calls.is_empty()) {
            shared.metrics.routed(&record.topic);
        }
        if let Some((plugin, due_ms)) = crate::router::firing_due(record) {
            let late = (super::timers::now_ms() - due_ms).max(0);
            shared
                .metrics
                .timer_fired(&plugin, Duration::from_millis(late as u64));
        }
        shared.metrics.processed(&record.topic, took);
        let input = Node::Topic(&record.topic);
        if let RecordOutcome::Undecodable(_) = outcome {
            let dlq = crate::kafka::dlq::topic_of(&record.topic);
            shared.flows.edge(input, Node::Topic(&dlq));
        }
        if let RecordOutcome::Routed { calls, .. } = outcome {
            for call in calls.iter().filter(|c| !c.duplicate) {
                let name = &call.plugin.spec.name;
                let node = Node::Plugin(name);
                shared.flows.edge(input, node);
                match &call.result {
                    Ok(records) => {
                        for r in records {
                            shared.flows.edge(node, Node::Topic(&r.topic));
                        }
                    }
                    Err(_) => {
                        let dlq = crate::kafka::dlq::topic_of(&record.topic);
                        shared.flows.edge(node, Node::Topic(&dlq));
                    }
                }
                shared
                    .flows
                    .call(name, call.result.is_err(), call.result.is_err());
                let failed = call.result.as_ref().err().map(|f| f.class());
                shared
                    .metrics
                    .invocation(&call.plugin.spec.name, call.took, failed);
                call.plugin.count(failed.is_some());
                if failed.is_some() {
                    shared.stats.errors.fetch_add(1, Ordering::Relaxed);
                    shared.metrics.error(&record.topic);
                }
            }
        }
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
    /// Records whose outputs were all acknowledged and whose offsets were stored.
    pub acked: AtomicU64,
    /// Batches committed to the state store.
    pub commits: AtomicU64,
    /// Microseconds partitions waited for those commits, in total.
    pub commit_micros: AtomicU64,
    /// Records run again because a commit found their reads changed (or the
    /// event already processed elsewhere).
    pub reruns: AtomicU64,
}
