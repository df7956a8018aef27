//! Prometheus metrics, in the text exposition format at `/metrics`.
//!
//! The catalog's names where it has them:
//! - `kafka_consumer_lag{topic,consumer_group}` (from librdkafka statistics);
//! - `kafka_consumer_processing_duration_seconds{topic,consumer_group}`;
//! - `kafka_consumer_errors_total{topic,consumer_group}`;
//! - `kafka_dlq_messages_total{topic}`.
//!
//! And per plugin: `switchyard_plugin_invocations_total{plugin}`,
//! `switchyard_plugin_errors_total{plugin,class}` (retry, reject, trap,
//! timeout, memory, ...), `switchyard_plugin_duration_seconds{plugin}`,
//! `switchyard_plugin_version_info{plugin,version}` (1 for the live version),
//! `switchyard_plugin_reload_failures_total{plugin}`.
//!
//! And per instance: `switchyard_partition_owned{topic,partition}` (1 for
//! each partition this instance owns in its group),
//! `switchyard_state_commit_seconds` (one group commit to the state store),
//! `switchyard_records_lost_total{topic}`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Every metric of one router.
pub struct Metrics {
    registry: Registry,
    group: String,
    lag: IntGaugeVec,
    processing: HistogramVec,
    errors: IntCounterVec,
    dlq: IntCounterVec,
    invocations: IntCounterVec,
    plugin_errors: IntCounterVec,
    plugin_duration: HistogramVec,
    version: IntGaugeVec,
    reload_failures: IntCounterVec,
    lost: IntCounterVec,
    owned: IntGaugeVec,
    commit: Histogram,
    live: Mutex<HashMap<String, String>>,
    partition_lag: Mutex<std::collections::BTreeMap<(String, i32), i64>>,
}

/// The families `/metrics` always declares, even before their first series.
const DECLARED: [(&str, &str, &str); 4] = [
    (
        "kafka_consumer_lag",
        "gauge",
        "Records behind the end of the partition, summed per topic.",
    ),
    (
        "kafka_consumer_processing_duration_seconds",
        "histogram",
        "Time to handle one record: decode, plugins, produce, dead-letter.",
    ),
    (
        "kafka_consumer_errors_total",
        "counter",
        "Plugin calls or decodes that failed, per input topic.",
    ),
    (
        "kafka_dlq_messages_total",
        "counter",
        "Records sent to a dead-letter topic, per original topic.",
    ),
];

const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

impl Metrics {
    /// Metrics for a router in consumer group `group`.
    pub fn new(group: &str) -> Self {
        let registry = Registry::new();
        let lag = IntGaugeVec::new(
            Opts::new(
                "kafka_consumer_lag",
                "Records behind the end of the partition, summed per topic.",
            ),
            &["topic", "consumer_group"],
        )
        .expect("valid metric");
        let processing = HistogramVec::new(
            HistogramOpts::new(
                "kafka_consumer_processing_duration_seconds",
                "Time to handle one record: decode, plugins, produce, dead-letter.",
            )
            .buckets(BUCKETS.to_vec()),
            &["topic", "consumer_group"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "kafka_consumer_errors_total",
                "Plugin calls or decodes that failed, per input topic.",
            ),
            &["topic", "consumer_group"],
        )
        .expect("valid metric");
        let dlq = IntCounterVec::new(
            Opts::new(
                "kafka_dlq_messages_total",
                "Records sent to a dead-letter topic, per original topic.",
            ),
            &["topic"],
        )
        .expect("valid metric");
        let invocations = IntCounterVec::new(
            Opts::new("switchyard_plugin_invocations_total", "Plugin calls."),
            &["plugin"],
        )
        .expect("valid metric");
        let plugin_errors = IntCounterVec::new(
            Opts::new(
                "switchyard_plugin_errors_total",
                "Failed plugin calls by error class.",
            ),
            &["plugin", "class"],
        )
        .expect("valid metric");
        let plugin_duration = HistogramVec::new(
            HistogramOpts::new(
                "switchyard_plugin_duration_seconds",
                "Time in one plugin call, commit included.",
            )
            .buckets(BUCKETS.to_vec()),
            &["plugin"],
        )
        .expect("valid metric");
        let version = IntGaugeVec::new(
            Opts::new(
                "switchyard_plugin_version_info",
                "1 for the version each plugin runs.",
            ),
            &["plugin", "version"],
        )
        .expect("valid metric");
        let reload_failures = IntCounterVec::new(
            Opts::new(
                "switchyard_plugin_reload_failures_total",
                "New versions refused (broken, wrong world, failing fixtures).",
            ),
            &["plugin"],
        )
        .expect("valid metric");
        let lost = IntCounterVec::new(
            Opts::new(
                "switchyard_records_lost_total",
                "Records the broker deleted (retention) before the router read them.",
            ),
            &["topic"],
        )
        .expect("valid metric");
        let owned = IntGaugeVec::new(
            Opts::new(
                "switchyard_partition_owned",
                "1 for each partition this instance owns in its consumer group.",
            ),
            &["topic", "partition"],
        )
        .expect("valid metric");
        let commit = Histogram::with_opts(
            HistogramOpts::new(
                "switchyard_state_commit_seconds",
                "One group commit to the state store: every ready partition's batch.",
            )
            .buckets(BUCKETS.to_vec()),
        )
        .expect("valid metric");
        registry
            .register(Box::new(commit.clone()))
            .expect("unique metric");
        for m in [
            &errors,
            &dlq,
            &invocations,
            &plugin_errors,
            &reload_failures,
            &lost,
        ] {
            registry
                .register(Box::new(m.clone()))
                .expect("unique metric");
        }
        for m in [&processing, &plugin_duration] {
            registry
                .register(Box::new(m.clone()))
                .expect("unique metric");
        }
        for m in [&lag, &version, &owned] {
            registry
                .register(Box::new(m.clone()))
                .expect("unique metric");
        }
        Metrics {
            registry,
            group: group.to_string(),
            lag,
            processing,
            errors,
            dlq,
            invocations,
            plugin_errors,
            plugin_duration,
            version,
            reload_failures,
            lost,
            owned,
            commit,
            live: Mutex::new(HashMap::new()),
            partition_lag: Mutex::default(),
        }
    }

    /// Creates every family's series at zero for the topics and plugins the
    /// config names, so that `/metrics` shows them from the first second and
    /// alerts such as "DLQ has > 10 messages" have a series to watch.
    pub fn declare(&self, topics: &[String], plugins: &[String]) {
        for topic in topics {
            let labels = [topic.as_str(), self.group.as_str()];
            self.lag.with_label_values(&labels);
            self.processing.with_label_values(&labels);
            self.errors.with_label_values(&labels);
            self.dlq.with_label_values(&[topic.as_str()]);
            self.lost.with_label_values(&[topic.as_str()]);
        }
        for plugin in plugins {
            self.invocations.with_label_values(&[plugin.as_str()]);
            self.plugin_duration.with_label_values(&[plugin.as_str()]);
            self.reload_failures.with_label_values(&[plugin.as_str()]);
        }
    }

    /// The broker deleted `count` records of `topic` before they were read.
    pub fn lost(&self, topic: &str, count: u64) {
        self.lost.with_label_values(&[topic]).inc_by(count);
    }

    /// One record of `topic` took `took`.
    pub fn processed(&self, topic: &str, took: Duration) {
        self.processing
            .with_label_values(&[topic, &self.group])
            .observe(took.as_secs_f64());
    }

    /// A plugin call or decode failed on a record of `topic`.
    pub fn error(&self, topic: &str) {
        self.errors.with_label_values(&[topic, &self.group]).inc();
    }

    /// A record of `topic` was dead-lettered.
    pub fn dead_letter(&self, topic: &str) {
        self.dlq.with_label_values(&[topic]).inc();
    }

    /// A plugin call finished (`class`: its error class, if it failed).
    pub fn invocation(&self, plugin: &str, took: Duration, class: Option<&str>) {
        self.invocations.with_label_values(&[plugin]).inc();
        self.plugin_duration
            .with_label_values(&[plugin])
            .observe(took.as_secs_f64());
        if let Some(class) = class {
            self.plugin_errors.with_label_values(&[plugin, class]).inc();
        }
    }

    /// `plugin` now runs `version`.
    pub fn live_version(&self, plugin: &str, version: &str) {
        let mut live = self.live.lock().expect("metrics lock");
        if let Some(old) = live.insert(plugin.to_string(), version.to_string()) {
            let _ = self.version.remove_label_values(&[plugin, &old]);
        }
        self.version.with_label_values(&[plugin, version]).set(1);
    }

    /// This instance now owns (`true`) or no longer owns `topic[partition]`.
    pub fn owned(&self, topic: &str, partition: i32, owned: bool) {
        let labels = [topic, &partition.to_string()];
        if owned {
            self.owned.with_label_values(&labels).set(1);
        } else {
            let _ = self.owned.remove_label_values(&labels);
        }
    }

    /// The partitions this instance owns, as `topic[partition]`, sorted.
    pub fn partitions(&self) -> Vec<String> {
        let mut out: Vec<(String, i32)> = self
            .registry
            .gather()
            .iter()
            .filter(|f| f.name() == "switchyard_partition_owned")
            .flat_map(|f| f.get_metric())
            .map(|m| {
                let label = |n: &str| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == n)
                        .map(|l| l.value().to_string())
                        .unwrap_or_default()
                };
                (label("topic"), label("partition").parse().unwrap_or(0))
            })
            .collect();
        out.sort();
        out.into_iter().map(|(t, p)| format!("{t}[{p}]")).collect()
    }

    /// One group commit took `took`.
    pub fn committed(&self, took: Duration) {
        self.commit.observe(took.as_secs_f64());
    }

    /// Group commits so far and their mean time in seconds.
    pub fn commits(&self) -> (u64, f64) {
        let n = self.commit.get_sample_count();
        let mean = if n == 0 {
            0.0
        } else {
            self.commit.get_sample_sum() / n as f64
        };
        (n, mean)
    }

    /// A new version of `plugin` was refused.
    pub fn reload_failed(&self, plugin: &str) {
        self.reload_failures.with_label_values(&[plugin]).inc();
    }

    /// Sets the consumer lag of one partition this instance owns.
    pub fn set_partition_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.partition_lag
            .lock()
            .expect("metrics lock")
            .insert((topic.to_string(), partition), lag);
    }

    /// The consumer lag of every partition this instance owns, by topic and
    /// partition.
    pub fn partition_lags(&self) -> Vec<(String, i32, i64)> {
        let owned: std::collections::HashSet<String> = self.partitions().into_iter().collect();
        self.partition_lag
            .lock()
            .expect("metrics lock")
            .iter()
            .filter(|((t, p), _)| owned.contains(&format!("{t}[{p}]")))
            .map(|((t, p), lag)| (t.clone(), *p, *lag))
            .collect()
    }

    /// Sets the consumer lag of `topic`.
    pub fn lag(&self, topic: &str, lag: i64) {
        self.lag.with_label_values(&[topic, &self.group]).set(lag);
    }

    /// Totals for the status page: records dead-lettered and errors, summed.
    pub fn totals(&self) -> (u64, u64, i64) {
        let sum = |families: Vec<prometheus::proto::MetricFamily>, name: &str| -> f64 {
            families
                .iter()
                .filter(|f| f.name() == name)
                .flat_map(|f| f.get_metric())
                .map(|m| m.get_counter().get_value() + m.get_gauge().get_value())
                .sum()
        };
        let families = self.registry.gather();
        (
            sum(families.clone(), "kafka_dlq_messages_total") as u64,
            sum(families.clone(), "kafka_consumer_errors_total") as u64,
            sum(families, "kafka_consumer_lag") as i64,
        )
    }

    /// The text exposition of every metric.
    ///
    /// A family with no series yet (no topic named in the config has been
    /// seen) is still declared, with its `HELP` and `TYPE` lines.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("text encoding never fails");
        let mut text = String::from_utf8(out).expect("text format is UTF-8");
        for (name, kind, help) in DECLARED {
            if !text.contains(&format!("# TYPE {name} ")) {
                text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_catalog_names_with_labels() {
        let m = Metrics::new("g");
        m.processed("orders", Duration::from_millis(3));
        m.error("orders");
        m.dead_letter("orders");
        m.invocation("echo", Duration::from_millis(1), Some("trap"));
        m.live_version("echo", "aaa");
        m.live_version("echo", "bbb");
        m.lag("orders", 7);
        m.owned("orders", 2, true);
        m.owned("orders", 0, true);
        m.owned("orders", 2, false);
        m.committed(Duration::from_millis(4));
        let text = m.render();
        assert_eq!(m.partitions(), vec!["orders[0]".to_string()]);
        assert!(
            text.contains(r#"switchyard_partition_owned{partition="0",topic="orders"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("switchyard_state_commit_seconds_count 1"),
            "{text}"
        );
        assert_eq!(m.commits(), (1, 0.004));
        assert!(
            text.contains(r#"kafka_consumer_errors_total{consumer_group="g",topic="orders"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"kafka_dlq_messages_total{topic="orders"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"kafka_consumer_processing_duration_seconds_count{consumer_group="g",topic="orders"} 1"#), "{text}");
        assert!(
            text.contains(r#"switchyard_plugin_errors_total{class="trap",plugin="echo"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"switchyard_plugin_version_info{plugin="echo",version="bbb"} 1"#),
            "{text}"
        );
        assert!(!text.contains(r#"version="aaa""#), "{text}");
        assert!(
            text.contains(r#"kafka_consumer_lag{consumer_group="g",topic="orders"} 7"#),
            "{text}"
        );
        assert_eq!(m.totals(), (1, 1, 7));
    }
}
