//! Reading a topic's history for `switchyard replay`: where each
//! partition starts, and the records up to the high watermarks taken at
//! the start, with a consumer that joins no group and commits nothing.

use crate::event::Record;
use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The consumer's `group.id`.
pub(super) const GROUP: &str = "switchyard-replay";

/// How long the replay waits for a record before it gives up.
pub(super) const IDLE: Duration = Duration::from_secs(30);

/// How long a metadata, watermark or offset lookup may take.
pub(super) const LOOKUP: Duration = Duration::from_secs(10);

/// Where a partition's replay starts.
#[derive(Debug, Clone, Copy)]
pub(super) enum Start {
    Beginning,
    Offset(i64),
    Time(i64),
}

impl std::fmt::Display for Start {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Start::Beginning => write!(f, "from the beginning"),
            Start::Offset(n) => write!(f, "from offset {n}"),
            Start::Time(ms) => match chrono::DateTime::from_timestamp_millis(*ms) {
                Some(t) => write!(f, "from {}", t.to_rfc3339()),
                None => write!(f, "from {ms} ms"),
            },
        }
    }
}

/// The timestamp of the record before `high` in `topic[p]`, if one comes
/// within a few seconds (the last offset may be a transaction marker).
pub(super) fn last_time(
    consumer: &BaseConsumer,
    topic: &str,
    p: i32,
    high: i64,
) -> anyhow::Result<Option<i64>> {
    let mut last = TopicPartitionList::new();
    last.add_partition_offset(topic, p, Offset::Offset(high - 1))?;
    consumer.assign(&last)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) if m.partition() == p => return Ok(m.timestamp().to_millis()),
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(None),
            _ => {}
        }
    }
    Ok(None)
}

/// A topic's records from the start position up to its high watermarks at
/// the start, read by a consumer outside any group.
pub(super) struct History {
    consumer: BaseConsumer,
    topic: String,
    /// Per partition, the offset to stop at (its high watermark at start).
    pub(super) ends: BTreeMap<i32, i64>,
    /// The partitions not read to their end yet.
    open: BTreeSet<i32>,
    /// How many offsets the range spans.
    pub(super) total: i64,
    /// A record read ahead, of another partition than the batch's.
    ahead: Option<Record>,
}

impl History {
    /// Looks up `topic`'s partitions, their watermarks and start offsets,
    /// and assigns them to a consumer of its own.
    pub(super) fn open(
        client: &ClientConfig,
        group: &str,
        topic: &str,
        start: Start,
    ) -> anyhow::Result<Self> {
        let mut config = client.clone();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest");
        let consumer: BaseConsumer = config.create().context("creating the consumer")?;
        let metadata = consumer
            .fetch_metadata(Some(topic), LOOKUP)
            .with_context(|| format!("{topic}: reading the topic's metadata"))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        anyhow::ensure!(!partitions.is_empty(), "{topic}: no such topic");
        let mut bounds = BTreeMap::new();
        for p in &partitions {
            let (low, high) = consumer
                .fetch_watermarks(topic, *p, LOOKUP)
                .with_context(|| format!("{topic}[{p}]: reading its watermarks"))?;
            bounds.insert(*p, (low, high));
        }
        let by_time = match start {
            Start::Time(ms) => {
                let mut wanted = TopicPartitionList::new();
                for p in &partitions {
                    wanted.add_partition_offset(topic, *p, Offset::Offset(ms))?;
                }
                Some(
                    consumer
                        .offsets_for_times(wanted, LOOKUP)
                        .with_context(|| format!("{topic}: looking up offsets by time"))?,
                )
            }
            _ => None,
        };
        let (mut ends, mut open, mut total) = (BTreeMap::new(), BTreeSet::new(), 0);
        let mut assignment = TopicPartitionList::new();
        for (p, (low, high)) in bounds {
            let from = match start {
                Start::Beginning => low,
                Start::Offset(n) => n,
                Start::Time(ms) => match by_time
                    .as_ref()
                    .and_then(|t| t.find_partition(topic, p))
                    .map(|e| e.offset())
                {
                    Some(Offset::Offset(n)) if n >= 0 => n,
                    // No record at or after the time, the broker says; the
                    // embedded broker says so whatever the time.
                    _ => {
                        if high > low && last_time(&consumer, topic, p, high)? >= Some(ms) {
                            anyhow::bail!(
                                "{topic}[{p}]: the broker cannot look up offsets by time (the \
                                 embedded broker of `switchyard dev` cannot); use --from-offset"
                            );
                        }
                        high
                    }
                },
            }
            .clamp(low, high);
            ends.insert(p, high);
            if from < high {
                open.insert(p);
                total += high - from;
                assignment.add_partition_offset(topic, p, Offset::Offset(from))?;
            }
        }
        consumer.assign(&assignment)?;
        Ok(History {
            consumer,
            topic: topic.to_string(),
            ends,
            open,
            total,
            ahead: None,
        })
    }

    /// The next records of one partition, in offset order, at most `max`;
    /// `None` once every partition is read to its end.
    pub(super) fn next_batch(&mut self, max: usize) -> anyhow::Result<Option<Vec<Record>>> {
        let mut batch: Vec<Record> = self.ahead.take().into_iter().collect();
        let mut waited_since = Instant::now();
        loop {
            if batch.len() >= max || (self.open.is_empty() && self.ahead.is_none()) {
                break;
            }
            let Some(polled) = self.consumer.poll(Duration::from_millis(100)) else {
                if !batch.is_empty() {
                    break;
                }
                if waited_since.elapsed() > IDLE {
                    anyhow::bail!(
                        "{}: no record within {IDLE:?}; partitions {:?} were not read to their end",
                        self.topic,
                        self.open
                    );
                }
                continue;
            };
            let message = match polled {
                Ok(message) => message,
                Err(KafkaError::PartitionEOF(p)) => {
                    self.eof(p)?;
                    continue;
                }
                Err(e) => {
                    tracing::warn!("{}: {e}", self.topic);
                    continue;
                }
            };
            waited_since = Instant::now();
            let p = message.partition();
            let end = self.ends.get(&p).copied().unwrap_or(0);
            if !self.open.contains(&p) || message.offset() >= end {
                continue;
            }
            let last = message.offset() + 1 >= end;
            let record = crate::kafka::source::record_of(&message);
            drop(message);
            if last {
                self.close(p)?;
            }
            if batch.first().is_some_and(|b| b.partition != p) {
                self.ahead = Some(record);
                break;
            }
            batch.push(record);
        }
        Ok((!batch.is_empty()).then_some(batch))
    }

    /// The consumer reached the end of partition `p`: closes it if that end
    /// is at or past the high watermark taken at start (the last offsets may
    /// be transaction markers, which are never delivered).
    pub(super) fn eof(&mut self, p: i32) -> anyhow::Result<()> {
        let end = self.ends.get(&p).copied().unwrap_or(0);
        let position = self.consumer.position()?;
        let at = position.find_partition(&self.topic, p).map(|e| e.offset());
        if let Some(Offset::Offset(n)) = at
            && n >= end
        {
            self.close(p)?;
        }
        Ok(())
    }

    /// Stops reading partition `p`.
    pub(super) fn close(&mut self, p: i32) -> anyhow::Result<()> {
        if self.open.remove(&p) {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&self.topic, p);
            self.consumer.pause(&tpl)?;
        }
        Ok(())
    }
}
