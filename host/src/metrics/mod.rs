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

mod families;
mod record;
mod render;

use families::Families;
use prometheus::Registry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Every metric of one router.
pub struct Metrics {
    registry: Registry,
    group: String,
    f: Families,
    live: Mutex<HashMap<String, String>>,
    partition_lag: Mutex<BTreeMap<(String, i32), i64>>,
    /// Held while `switchyard_partition_owned` is rebuilt.
    owned_lock: Mutex<()>,
}

impl Metrics {
    /// Metrics for a router in consumer group `group`.
    pub fn new(group: &str) -> Self {
        let registry = Registry::new();
        let f = Families::register(&registry);
        Metrics {
            registry,
            group: group.to_string(),
            f,
            live: Mutex::default(),
            partition_lag: Mutex::default(),
            owned_lock: Mutex::default(),
        }
    }

    /// Creates every family's series at zero for the topics and plugins the
    /// config names, so that `/metrics` shows them from the first second and
    /// alerts such as "DLQ has > 10 messages" have a series to watch.
    pub fn declare(&self, topics: &[String], plugins: &[String]) {
        for topic in topics {
            let labels = [topic.as_str(), self.group.as_str()];
            self.f.lag.with_label_values(&labels);
            self.f.processing.with_label_values(&labels);
            self.f.errors.with_label_values(&labels);
            self.f.dlq.with_label_values(&[topic.as_str()]);
            self.f.lost.with_label_values(&[topic.as_str()]);
        }
        for plugin in plugins {
            self.f.invocations.with_label_values(&[plugin.as_str()]);
            self.f.plugin_duration.with_label_values(&[plugin.as_str()]);
            self.f.reload_failures.with_label_values(&[plugin.as_str()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        m.owned(&[("orders".into(), 2), ("orders".into(), 0)]);
        m.owned(&[("orders".into(), 0)]);
        m.set_partition_lag("orders", 0, 5);
        m.set_partition_lag("orders", 1, 6);
        m.committed(Duration::from_millis(4));
        let text = m.render();
        assert_eq!(
            m.partition_lags(&[("orders".into(), 0), ("orders".into(), 2)]),
            vec![("orders".to_string(), 0, 5)]
        );
        assert!(
            text.contains(r#"switchyard_partition_owned{partition="0",topic="orders"} 1"#),
            "{text}"
        );
        assert!(!text.contains(r#"partition="2""#), "{text}");
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
