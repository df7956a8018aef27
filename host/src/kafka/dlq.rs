//! Dead letters: the original record, unchanged, on `<topic>.dlq`, with
//! headers saying where it came from and why it failed; and replay.
//!
//! | header | value |
//! |---|---|
//! | `switchyard-dlq-topic` | the original topic |
//! | `switchyard-dlq-partition` | the original partition |
//! | `switchyard-dlq-offset` | the original offset |
//! | `switchyard-dlq-plugin` | the plugin that failed (empty for undecodable records) |
//! | `switchyard-dlq-plugin-version` | its version (content-hash prefix) |
//! | `switchyard-dlq-attempts` | how many times it was tried |
//! | `switchyard-dlq-error-class` | `decode`, `retry`, `reject`, `trap`, `timeout`, `memory`, `forbidden`, `invalid-emit`, `schema`, `key`, `loop`, `produce` |
//! | `switchyard-dlq-error` | the message, cut to 2 KiB |
//! | `switchyard-dlq-truncated` | present only when the value had to be cut to fit the record limit: the original length |
//!
//! A dead letter always fits under the record limit (`kafka.max_record_bytes`):
//! the error text is cut first, and if the original record was itself close to
//! the limit, its value is cut too and `switchyard-dlq-truncated` says so. A
//! replay of such a letter sends the cut value.

use super::sink::Sink;
use crate::config::KafkaConfig;
use crate::event::{Header, OutRecord, Record};
use crate::event::{MAX_ERROR_TEXT, truncate_text};
use rdkafka::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The prefix of every dead-letter header.
pub const PREFIX: &str = "switchyard-dlq-";

/// Why a record is dead-lettered.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    /// The plugin that failed, if one ran.
    pub plugin: Option<&'a str>,
    /// Its version label.
    pub version: Option<&'a str>,
    /// Attempts made.
    pub attempts: u32,
    /// The error class.
    pub class: &'a str,
    /// The error message.
    pub message: &'a str,
}

/// The dead-letter topic of `topic`.
pub fn topic_of(topic: &str) -> String {
    format!("{topic}.dlq")
}

impl<'a> DeadLetter<'a> {
    /// The letter for an input whose outputs the broker refused for good
    /// (class `produce`), saying why.
    pub fn refused(message: &'a str) -> Self {
        DeadLetter {
            plugin: None,
            version: None,
            attempts: 1,
            class: "produce",
            message,
        }
    }

    /// The dead-letter record for `record`, at most `max_bytes` long.
    pub fn wrap(&self, record: &Record, max_bytes: usize) -> OutRecord {
        let mut headers = record.headers.clone();
        let mut put =
            |name: &str, value: String| headers.push(Header::new(format!("{PREFIX}{name}"), value));
        put("topic", record.topic.clone());
        put("partition", record.partition.to_string());
        put("offset", record.offset.to_string());
        put("plugin", self.plugin.unwrap_or_default().to_string());
        put(
            "plugin-version",
            self.version.unwrap_or_default().to_string(),
        );
        put("attempts", self.attempts.to_string());
        put("error-class", self.class.to_string());
        put("error", truncate_text(self.message, MAX_ERROR_TEXT));
        let mut letter = OutRecord {
            topic: topic_of(&record.topic),
            key: record.key.clone(),
            headers,
            value: record.value.clone().unwrap_or_default(),
            tombstone: record.value.is_none(),
        };
        let size = letter.size();
        if size > max_bytes {
            let original = letter.value.len();
            letter
                .value
                .truncate(original.saturating_sub(size - max_bytes + 64));
            letter.headers.push(Header::new(
                format!("{PREFIX}truncated"),
                original.to_string(),
            ));
        }
        letter
    }
}

/// Sends every record of `dlq_topic` back to its original topic, without
/// the dead-letter headers. Progress is committed under the consumer group
/// `switchyard-dlq-replay`, so a second replay sends only newer dead letters.
/// It reads each partition up to its end as of the start, waiting at most
/// `idle` for any one record. Returns how many records were replayed.
pub async fn replay(
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

/// A dead letter as the status page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Letter {
    /// The dead-letter topic.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// When it was written (Unix milliseconds), if the broker says.
    pub timestamp: Option<i64>,
    /// The original topic, partition and offset.
    pub original: String,
    /// The plugin that failed (empty for undecodable records).
    pub plugin: String,
    /// Its version.
    pub version: String,
    /// The error class.
    pub class: String,
    /// Why, cut to 2 KiB.
    pub error: String,
    /// The record's key, as text.
    pub key: Option<String>,
    /// The record's value, as text (only when one record is asked for).
    pub value: Option<String>,
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
pub fn recent(
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
fn read_one(
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
pub fn letter(
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

/// Sends the one dead letter at `topic[partition]@offset` back to its
/// original topic, as [`replay`] does for a whole topic.
pub async fn replay_one(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_keeps_binary_headers_and_tombstones_exactly() {
        let record = Record {
            topic: "t".into(),
            key: Some(b"k".to_vec()),
            headers: vec![Header::from_bytes("trace", Some(&[0xff, 0xfe, 0]))],
            value: None,
            ..Record::default()
        };
        let letter = DeadLetter {
            plugin: None,
            version: None,
            attempts: 1,
            class: "decode",
            message: "no value",
        }
        .wrap(&record, 1_000_000);
        assert_eq!(letter.topic, "t.dlq");
        assert!(letter.tombstone, "a tombstone stays a tombstone");
        assert_eq!(letter.headers[0].bytes(), &[0xff, 0xfe, 0]);
        assert_eq!(letter.header("switchyard-dlq-error-class"), Some("decode"));
    }
}
