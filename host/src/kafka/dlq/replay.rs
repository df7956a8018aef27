//! Replay: dead letters sent back to their original topics, without the
//! dead-letter headers.

use super::PREFIX;
use super::browse::read_one;
use crate::config::KafkaConfig;
use crate::event::{Header, OutRecord};
use crate::kafka::sink::Sink;
use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::Duration;

/// Sends every record of `dlq_topic` back to its original topic, without
/// the dead-letter headers. Progress is committed under the consumer group
/// `switchyard-dlq-replay`, so a second replay sends only newer dead letters.
/// It reads each partition up to its end as of the start, waiting at most
/// `idle` for any one record. Returns how many records were replayed.
pub(crate) async fn replay(
    config: &ClientConfig,
    dlq_topic: &str,
    idle: Duration,
) -> anyhow::Result<usize> {
    let mut consumer_config = config.clone();
    consumer_config
        .set("group.id", "switchyard-dlq-replay")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    let consumer: StreamConsumer = consumer_config.create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(dlq_topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    anyhow::ensure!(!partitions.is_empty(), "{dlq_topic}: no such topic");
    let mut wanted = TopicPartitionList::new();
    for p in &partitions {
        wanted.add_partition(dlq_topic, *p);
    }
    let committed = consumer.committed_offsets(wanted, timeout)?;
    let mut assignment = TopicPartitionList::new();
    let mut remaining = HashMap::new();
    for p in &partitions {
        let (low, high) = consumer.fetch_watermarks(dlq_topic, *p, timeout)?;
        let start = match committed.find_partition(dlq_topic, *p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) if o >= low => o,
            _ => low,
        };
        assignment.add_partition_offset(dlq_topic, *p, Offset::Offset(start))?;
        if high > start {
            remaining.insert(*p, high);
        }
    }
    consumer.assign(&assignment)?;
    let sink = Sink::new(config, false, &KafkaConfig::default(), None)?;
    let mut count = 0;
    while !remaining.is_empty() {
        let message = tokio::time::timeout(idle, consumer.recv())
            .await
            .map_err(|_| {
                anyhow::anyhow!("{dlq_topic}: no record within {idle:?}; {count} replayed so far")
            })??;
        if let Some(record) = restore(&message) {
            sink.send_all(&[record]).await?;
            count += 1;
        } else {
            tracing::warn!(
                offset = message.offset(),
                "skipping a record without {PREFIX}topic"
            );
        }
        consumer.commit_message(&message, CommitMode::Sync)?;
        if remaining
            .get(&message.partition())
            .is_some_and(|high| message.offset() + 1 >= *high)
        {
            remaining.remove(&message.partition());
        }
    }
    Ok(count)
}

/// The record a dead letter came from: its original topic, key, value and
/// headers, without the dead-letter headers; `None` without
/// `switchyard-dlq-topic`. Every replay goes through this.
fn restore(message: &impl Message) -> Option<OutRecord> {
    let mut original = None;
    let mut headers = Vec::new();
    for h in message.headers().iter().flat_map(|hs| hs.iter()) {
        if h.key == format!("{PREFIX}topic") {
            original = Some(String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned());
        } else if !h.key.starts_with(PREFIX) {
            headers.push(Header::from_bytes(h.key, h.value));
        }
    }
    Some(OutRecord {
        topic: original?,
        key: message.key().map(<[u8]>::to_vec),
        headers,
        value: message.payload().unwrap_or_default().to_vec(),
        tombstone: message.payload().is_none(),
    })
}

/// Sends the one dead letter at `topic[partition]@offset` back to its
/// original topic, as [`replay`] does for a whole topic.
pub(crate) async fn replay_one(
    config: &ClientConfig,
    topic: &str,
    partition: i32,
    offset: i64,
) -> anyhow::Result<()> {
    let (c, t) = (config.clone(), topic.to_string());
    let message = tokio::task::spawn_blocking(move || {
        read_one(&c, &t, partition, offset, Duration::from_secs(10))
    })
    .await??;
    let record = restore(&message)
        .ok_or_else(|| anyhow::anyhow!("{topic}[{partition}]@{offset}: no {PREFIX}topic header"))?;
    let sink = Sink::new(config, false, &KafkaConfig::default(), None)?;
    sink.send_all(&[record]).await?;
    sink.flush(Duration::from_secs(5));
    Ok(())
}
