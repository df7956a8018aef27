//! Browsing dead letters for the status page: the newest of every `*.dlq`
//! topic, and one letter with its value.

use super::PREFIX;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A dead letter as the status page lists it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Letter {
    /// The dead-letter topic.
    pub(crate) topic: String,
    /// Its partition.
    pub(crate) partition: i32,
    /// Its offset there.
    pub(crate) offset: i64,
    /// When it was written (Unix milliseconds), if the broker says.
    pub(crate) timestamp: Option<i64>,
    /// The original topic, partition and offset.
    pub(crate) original: String,
    /// The plugin that failed (empty for undecodable records).
    pub(crate) plugin: String,
    /// Its version.
    pub(crate) version: String,
    /// The error class.
    pub(crate) class: String,
    /// Why, cut to 2 KiB.
    pub(crate) error: String,
    /// The record's key, as text.
    pub(crate) key: Option<String>,
    /// The record's value, as text (only when one record is asked for).
    pub(crate) value: Option<String>,
}

impl Letter {
    fn of(message: &impl Message, with_value: bool) -> Letter {
        let header = |name: &str| -> String {
            message
                .headers()
                .iter()
                .flat_map(|hs| hs.iter())
                .find(|h| h.key == format!("{PREFIX}{name}"))
                .map(|h| String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())
                .unwrap_or_default()
        };
        Letter {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis(),
            original: format!(
                "{}[{}]@{}",
                header("topic"),
                header("partition"),
                header("offset")
            ),
            plugin: header("plugin"),
            version: header("plugin-version"),
            class: header("error-class"),
            error: header("error"),
            key: message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            value: with_value.then(|| {
                String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned()
            }),
        }
    }
}

fn browser(config: &ClientConfig) -> anyhow::Result<BaseConsumer> {
    let mut config = config.clone();
    config
        .set("group.id", "switchyard-dlq-browse")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    Ok(config.create()?)
}

/// About the newest `per_topic` dead letters of every `*.dlq` topic (the
/// newest of each partition, the topic's share spread over its partitions),
/// newest first. Reads the topics directly (no consumer group), so every
/// instance sees every letter; gives up after `timeout`.
pub(crate) fn recent(
    config: &ClientConfig,
    per_topic: i64,
    timeout: Duration,
) -> anyhow::Result<Vec<Letter>> {
    let consumer = browser(config)?;
    let metadata = consumer.fetch_metadata(None, timeout)?;
    let mut assignment = TopicPartitionList::new();
    let mut remaining: HashMap<(String, i32), i64> = HashMap::new();
    for topic in metadata
        .topics()
        .iter()
        .filter(|t| t.name().ends_with(".dlq"))
    {
        let partitions = topic.partitions().len().max(1) as i64;
        let per_partition = (per_topic + partitions - 1) / partitions;
        for p in topic.partitions() {
            let (low, high) = consumer.fetch_watermarks(topic.name(), p.id(), timeout)?;
            if high > low {
                let start = (high - per_partition).max(low);
                assignment.add_partition_offset(topic.name(), p.id(), Offset::Offset(start))?;
                remaining.insert((topic.name().to_string(), p.id()), high);
            }
        }
    }
    let mut letters = Vec::new();
    if remaining.is_empty() {
        return Ok(letters);
    }
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + timeout;
    while !remaining.is_empty() && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let at = (message.topic().to_string(), message.partition());
                if remaining
                    .get(&at)
                    .is_some_and(|high| message.offset() + 1 >= *high)
                {
                    remaining.remove(&at);
                }
                letters.push(Letter::of(&message, false));
            }
            Some(Err(e)) => tracing::debug!("browsing dead letters: {e}"),
            None => {}
        }
    }
    letters.sort_by_key(|l| std::cmp::Reverse((l.timestamp, l.offset)));
    let mut shown: HashMap<String, i64> = HashMap::new();
    letters.retain(|l| {
        let n = shown.entry(l.topic.clone()).or_default();
        *n += 1;
        *n <= per_topic
    });
    Ok(letters)
}

/// Reads the dead letter at `topic[partition]@offset`, with its value.
pub(super) fn read_one(
    config: &ClientConfig,
    topic: &str,
    partition: i32,
    offset: i64,
    timeout: Duration,
) -> anyhow::Result<rdkafka::message::OwnedMessage> {
    anyhow::ensure!(topic.ends_with(".dlq"), "{topic}: not a dead-letter topic");
    let consumer = browser(config)?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message?;
            anyhow::ensure!(
                message.offset() == offset,
                "{topic}[{partition}]@{offset}: no such record (the next is @{})",
                message.offset()
            );
            return Ok(message.detach());
        }
    }
    anyhow::bail!("{topic}[{partition}]@{offset}: no such record within {timeout:?}")
}

/// The dead letter at `topic[partition]@offset`, with its value.
pub(crate) fn letter(
    config: &ClientConfig,
    topic: &str,
    partition: i32,
    offset: i64,
    timeout: Duration,
) -> anyhow::Result<Letter> {
    Ok(Letter::of(
        &read_one(config, topic, partition, offset, timeout)?,
        true,
    ))
}
