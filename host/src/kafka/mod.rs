//! Kafka I/O: the consumer ([`source`]), the producer and topic admin
//! ([`sink`]), exactly-once transactions ([`txn`]), dead letters ([`dlq`])
//! and the embedded dev broker ([`broker`]). These modules move [`Record`](crate::event::Record)s and
//! know nothing about wasm or plugins.

pub(crate) mod broker;
pub(crate) mod dlq;
pub(crate) mod sink;
pub(crate) mod source;
pub(crate) mod txn;

use rdkafka::ClientConfig;
use std::collections::BTreeMap;

/// A client config for `brokers` with the user's extra properties on top.
pub(crate) fn client_config(brokers: &str, extra: &BTreeMap<String, String>) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "switchyard")
        .set("topic.metadata.refresh.interval.ms", "5000");
    for (key, value) in extra {
        config.set(key, value);
    }
    config
}
