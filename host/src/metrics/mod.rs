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
//!
//! # Topic labels are bounded
//!
//! The router consumes every topic in the cluster, but only the topics
//! plugins consume get a `topic` label value of their own; every other
//! topic is counted under `topic="(other)"` (`OTHER`): its lag summed
//! into `kafka_consumer_lag{topic="(other)"}`, its records into the
//! `(other)` histogram and counters, its owned partitions into one
//! `switchyard_partition_owned{topic="(other)",partition="(other)"}`
//! series whose value is how many there are. Sums over a family stay
//! exact; the number of series does not grow with the cluster.
//!
//! A topic plugins consume is one the config names literally (declared at
//! startup, [`Metrics::declare`]), one that matches a plugin's topic or
//! event type globs ([`Metrics::label_topics_of`]), or one where a record
//! was routed to a plugin, failed in one or was dead-lettered. Beyond the declared topics, at
//! most [`MAX_LEARNED_TOPICS`](topics::MAX_LEARNED_TOPICS) get a label (a warning is logged when the
//! bound is reached; a plugin subscribed to `*` would otherwise label every
//! topic). A topic keeps its label once given, so its series never move;
//! what was counted under `(other)` before it got its label stays there.

mod families;
mod record;
mod render;
mod topics;

use crate::config::PluginSpec;
use families::Families;
use prometheus::Registry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use topics::TopicLabels;

/// Every metric of one router.
pub struct Metrics {
    registry: Registry,
    group: String,
    f: Families,
    topics: TopicLabels,
    live: Mutex<HashMap<String, String>>,
    partition_lag: Mutex<BTreeMap<(String, i32), i64>>,
    /// Held while `switchyard_partition_owned` is rebuilt.
    owned_lock: Mutex<()>,
    /// The pending timers per plugin, as last sampled: count, next due.
    pending: Mutex<BTreeMap<String, (u64, Option<i64>)>>,
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
            topics: TopicLabels::default(),
            live: Mutex::default(),
            partition_lag: Mutex::default(),
            owned_lock: Mutex::default(),
            pending: Mutex::default(),
        }
    }

    /// Creates every family's series at zero for the topics and plugins the
    /// config names, so that `/metrics` shows them from the first second and
    /// alerts such as "DLQ has > 10 messages" have a series to watch.
    pub(crate) fn declare(&self, topics: &[String], plugins: &[String]) {
        for topic in topics {
            self.topics.declare(topic);
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

    /// Gives a label of its own to every topic that matches one of
    /// `plugins`' topic or event type globs, within the bound (see the
    /// module docs); without this, only the declared topics and the ones a
    /// failure or dead letter showed are labelled.
    pub(crate) fn label_topics_of(&self, plugins: &[PluginSpec]) {
        let matchers: Vec<_> = plugins
            .iter()
            .map(|p| (p.topics.clone(), p.types.clone()))
            .collect();
        self.topics.consumed_when(Box::new(move |topic| {
            matchers
                .iter()
                .any(|(topics, types)| topics.matches(topic) || types.matches(topic))
        }));
    }
}

#[cfg(test)]
mod tests;
