//! Recording: what the router, the consumer and the reloader report.

use super::Metrics;
use std::time::Duration;

impl Metrics {
    /// The broker deleted `count` records of `topic` before they were read.
    pub fn lost(&self, topic: &str, count: u64) {
        self.f.lost.with_label_values(&[topic]).inc_by(count);
    }

    /// One record of `topic` took `took`.
    pub fn processed(&self, topic: &str, took: Duration) {
        self.f
            .processing
            .with_label_values(&[topic, &self.group])
            .observe(took.as_secs_f64());
    }

    /// A plugin call or decode failed on a record of `topic`.
    pub fn error(&self, topic: &str) {
        self.f.errors.with_label_values(&[topic, &self.group]).inc();
    }

    /// A record of `topic` was dead-lettered.
    pub fn dead_letter(&self, topic: &str) {
        self.f.dlq.with_label_values(&[topic]).inc();
    }

    /// A plugin call finished (`class`: its error class, if it failed).
    pub fn invocation(&self, plugin: &str, took: Duration, class: Option<&str>) {
        self.f.invocations.with_label_values(&[plugin]).inc();
        self.f
            .plugin_duration
            .with_label_values(&[plugin])
            .observe(took.as_secs_f64());
        if let Some(class) = class {
            self.f
                .plugin_errors
                .with_label_values(&[plugin, class])
                .inc();
        }
    }

    /// `plugin` now runs `version`.
    pub fn live_version(&self, plugin: &str, version: &str) {
        let mut live = self.live.lock().expect("metrics lock");
        if let Some(old) = live.insert(plugin.to_string(), version.to_string()) {
            let _ = self.f.version.remove_label_values(&[plugin, &old]);
        }
        self.f.version.with_label_values(&[plugin, version]).set(1);
    }

    /// This instance now owns exactly `partitions` (topic, partition).
    pub fn owned(&self, partitions: &[(String, i32)]) {
        let _rebuilding = self.owned_lock.lock().expect("metrics lock");
        self.f.owned.reset();
        for (topic, partition) in partitions {
            self.f
                .owned
                .with_label_values(&[topic.as_str(), &partition.to_string()])
                .set(1);
        }
    }

    /// One group commit took `took`.
    pub fn committed(&self, took: Duration) {
        self.f.commit.observe(took.as_secs_f64());
    }

    /// A new version of `plugin` was refused.
    pub fn reload_failed(&self, plugin: &str) {
        self.f.reload_failures.with_label_values(&[plugin]).inc();
    }

    /// Sets the consumer lag of one partition this instance owns.
    pub fn set_partition_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.partition_lag
            .lock()
            .expect("metrics lock")
            .insert((topic.to_string(), partition), lag);
    }

    /// Sets the consumer lag of `topic`.
    pub fn lag(&self, topic: &str, lag: i64) {
        self.f.lag.with_label_values(&[topic, &self.group]).set(lag);
    }
}
