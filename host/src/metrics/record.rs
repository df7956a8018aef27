//! Recording: what the router, the consumer and the reloader report.

use super::Metrics;
use super::topics::OTHER;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

impl Metrics {
    /// The broker deleted `count` records of `topic` before they were read.
    pub(crate) fn lost(&self, topic: &str, count: u64) {
        let topic = self.topics.label(topic);
        self.f.lost.with_label_values(&[topic]).inc_by(count);
    }

    /// `records` records of `topic` were handled, each taking `took`;
    /// `routed`: some of them were handed to a plugin, so the topic is one
    /// plugins consume and gets its own label (within the bound) first.
    /// A batch of one partition is counted in one call: one label lookup,
    /// not one a record.
    pub(crate) fn processed(&self, topic: &str, routed: bool, records: u64, took: Duration) {
        if routed {
            self.topics.consumed(topic);
        }
        let topic = self.topics.label(topic);
        let histogram = self.f.processing.with_label_values(&[topic, &self.group]);
        let secs = took.as_secs_f64();
        for _ in 0..records {
            histogram.observe(secs);
        }
    }

    /// A plugin call or decode failed on a record of `topic` (a topic
    /// plugins consume).
    pub(crate) fn error(&self, topic: &str) {
        let topic = self.topics.consumed(topic);
        self.f.errors.with_label_values(&[topic, &self.group]).inc();
    }

    /// A record of `topic` (a topic plugins consume) was dead-lettered.
    pub(crate) fn dead_letter(&self, topic: &str) {
        let topic = self.topics.consumed(topic);
        self.f.dlq.with_label_values(&[topic]).inc();
    }

    /// `plugin` was called once for each of `took`, how long each call
    /// took (a batch's calls of one plugin, failed or not).
    pub(crate) fn invocations(&self, plugin: &str, took: &[Duration]) {
        self.f
            .invocations
            .with_label_values(&[plugin])
            .inc_by(took.len() as u64);
        let histogram = self.f.plugin_duration.with_label_values(&[plugin]);
        for took in took {
            histogram.observe(took.as_secs_f64());
        }
    }

    /// A call of `plugin` failed, of error class `class`.
    pub(crate) fn plugin_error(&self, plugin: &str, class: &str) {
        self.f
            .plugin_errors
            .with_label_values(&[plugin, class])
            .inc();
    }

    /// `plugin` now runs `version`.
    pub(crate) fn live_version(&self, plugin: &str, version: &str) {
        let mut live = self.live.lock().expect("metrics lock");
        if let Some(old) = live.insert(plugin.to_string(), version.to_string()) {
            let _ = self.f.version.remove_label_values(&[plugin, &old]);
        }
        self.f.version.with_label_values(&[plugin, version]).set(1);
    }

    /// This instance now owns exactly `partitions` (topic, partition).
    ///
    /// The partitions of topics without a label of their own are counted
    /// in one series, `{topic="(other)",partition="(other)"}`.
    pub(crate) fn owned(&self, partitions: &[(String, i32)]) {
        let _rebuilding = self.owned_lock.lock().expect("metrics lock");
        self.f.owned.reset();
        for (topic, partition) in partitions {
            match self.topics.label(topic) {
                OTHER => self.f.owned.with_label_values(&[OTHER, OTHER]).inc(),
                topic => self
                    .f
                    .owned
                    .with_label_values(&[topic, &partition.to_string()])
                    .set(1),
            }
        }
    }

    /// One group commit took `took`.
    pub(crate) fn committed(&self, took: Duration) {
        self.f.commit.observe(took.as_secs_f64());
    }

    /// A new version of `plugin` was refused.
    pub(crate) fn reload_failed(&self, plugin: &str) {
        self.f.reload_failures.with_label_values(&[plugin]).inc();
    }

    /// Takes the consumer lag from one statistics report: `(topic,
    /// partition, lag)` for every partition it lists (a negative lag: not
    /// known). Sets `kafka_consumer_lag` of each topic in the report, the
    /// topics without a label of their own summed under `(other)`, and
    /// keeps each partition's known lag for [`Metrics::partition_lags`]
    /// until the next report.
    pub(crate) fn consumer_lag<'a>(&self, report: impl IntoIterator<Item = (&'a str, i32, i64)>) {
        let mut partitions = BTreeMap::new();
        let mut labels: HashMap<&str, &str> = HashMap::new();
        let mut topics: HashMap<&str, i64> = HashMap::new();
        for (topic, partition, lag) in report {
            let label = *labels
                .entry(topic)
                .or_insert_with(|| self.topics.label(topic));
            *topics.entry(label).or_default() += lag.max(0);
            if lag >= 0 {
                partitions.insert((topic.to_string(), partition), lag);
            }
        }
        for (topic, lag) in topics {
            self.f.lag.with_label_values(&[topic, &self.group]).set(lag);
        }
        *self.partition_lag.lock().expect("metrics lock") = partitions;
    }

    /// A timer of `plugin` fired, `late` after its due time.
    pub(crate) fn timer_fired(&self, plugin: &str, late: Duration) {
        self.f.timers_fired.with_label_values(&[plugin]).inc();
        self.f
            .timer_lateness
            .with_label_values(&[plugin])
            .observe(late.as_secs_f64());
    }

    /// The pending timers per plugin, as the state store counts them: how
    /// many, and the next due time (milliseconds since the epoch). Kept for
    /// the summary, too.
    pub(crate) fn timers_pending(&self, pending: &BTreeMap<String, (u64, Option<i64>)>) {
        self.f.timers_pending.reset();
        self.f.timers_next_due.reset();
        for (plugin, (count, next)) in pending {
            self.f
                .timers_pending
                .with_label_values(&[plugin])
                .set(*count as i64);
            if let Some(next) = next {
                self.f
                    .timers_next_due
                    .with_label_values(&[plugin])
                    .set(next / 1000);
            }
        }
        *self.pending.lock().expect("pending lock") = pending.clone();
    }

    /// The pending timers per plugin, as last sampled.
    pub(crate) fn pending_timers(&self) -> BTreeMap<String, (u64, Option<i64>)> {
        self.pending.lock().expect("pending lock").clone()
    }
}
