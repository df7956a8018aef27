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
//! | `switchyard-dlq-error-class` | `decode`, `retry`, `reject`, `trap`, `timeout`, `memory`, `forbidden`, `invalid-emit`, `loop`, `produce` |
//! | `switchyard-dlq-error` | the message, cut to 2 KiB |
//! | `switchyard-dlq-truncated` | present only when the value had to be cut to fit the record limit: the original length |
//!
//! A dead letter always fits under the record limit (`kafka.max_record_bytes`):
//! the error text is cut first, and if the original record was itself close to
//! the limit, its value is cut too and `switchyard-dlq-truncated` says so. A
//! replay of such a letter sends the cut value.

use super::sink::Sink;
use crate::config::KafkaConfig;
use crate::engine::{MAX_ERROR_TEXT, truncate_text};
use crate::event::{Header, OutRecord, Record};
use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::Duration;

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

impl DeadLetter<'_> {
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
    let sink = Sink::new(config, false, &KafkaConfig::default())?;
    let mut count = 0;
    while !remaining.is_empty() {
        let message = tokio::time::timeout(idle, consumer.recv())
            .await
            .map_err(|_| {
                anyhow::anyhow!("{dlq_topic}: no record within {idle:?}; {count} replayed so far")
            })??;
        let mut original = None;
        let mut headers = Vec::new();
        for h in message.headers().iter().flat_map(|hs| hs.iter()) {
            let value = String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned();
            if h.key == format!("{PREFIX}topic") {
                original = Some(value);
            } else if !h.key.starts_with(PREFIX) {
                headers.push(Header::new(h.key, value));
            }
        }
        if let Some(topic) = original {
            sink.send_all(&[OutRecord {
                topic,
                key: message.key().map(<[u8]>::to_vec),
                headers,
                value: message.payload().unwrap_or_default().to_vec(),
            }])
            .await?;
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
