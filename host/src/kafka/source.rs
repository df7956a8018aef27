//! The consumer: one consumer group subscribed to every topic by pattern
//! (`^.*`, so topics created later are picked up on the next metadata
//! refresh). Offsets are stored by hand with [`Source::ack`], only after a
//! record is fully handled; auto-commit then commits what was stored. On a
//! revoke, the rebalance callback waits for in-flight records of the revoked
//! partitions to finish and commits before the partitions move.

use crate::event::{Header, Record};
use crate::metrics::Metrics;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, ClientContext};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Counts records handed out but not yet acknowledged, per partition.
#[derive(Debug, Default)]
pub struct InFlight {
    counts: Mutex<HashMap<(String, i32), usize>>,
    idle: Condvar,
}

impl InFlight {
    /// A record of `topic`/`partition` was handed out.
    pub fn begin(&self, topic: &str, partition: i32) {
        *self
            .counts
            .lock()
            .expect("in-flight lock")
            .entry((topic.to_string(), partition))
            .or_default() += 1;
    }

    /// A record of `topic`/`partition` is done (acknowledged or abandoned).
    pub fn end(&self, topic: &str, partition: i32) {
        let mut counts = self.counts.lock().expect("in-flight lock");
        if let Some(n) = counts.get_mut(&(topic.to_string(), partition)) {
            *n = n.saturating_sub(1);
        }
        self.idle.notify_all();
    }

    /// Waits until none of `partitions` has a record in flight, or `timeout`.
    pub fn wait_idle(&self, partitions: &[(String, i32)], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut counts = self.counts.lock().expect("in-flight lock");
        loop {
            let busy = partitions
                .iter()
                .any(|p| counts.get(p).copied().unwrap_or(0) > 0);
            let now = Instant::now();
            if !busy {
                return true;
            }
            if now >= deadline {
                return false;
            }
            counts = self
                .idle
                .wait_timeout(counts, deadline - now)
                .expect("in-flight lock")
                .0;
        }
    }
}

/// Drains revoked partitions before a rebalance completes, and turns
/// librdkafka's statistics into the consumer lag metric.
pub struct DrainContext {
    inflight: Arc<InFlight>,
    metrics: Option<Arc<Metrics>>,
}

impl ClientContext for DrainContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let Some(metrics) = &self.metrics else { return };
        for (name, topic) in &statistics.topics {
            let lag: i64 = topic
                .partitions
                .values()
                .filter(|p| p.partition >= 0)
                .map(|p| p.consumer_lag.max(0))
                .sum();
            metrics.lag(name, lag);
        }
    }
}

impl ConsumerContext for DrainContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let partitions: Vec<(String, i32)> = list
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            if !self
                .inflight
                .wait_idle(&partitions, Duration::from_secs(30))
            {
                tracing::warn!(
                    "revoking partitions with records still in flight; they will be redelivered"
                );
            }
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!("commit on revoke: {e}");
            }
        }
    }
}

/// The router's consumer.
pub struct Source {
    consumer: StreamConsumer<DrainContext>,
    inflight: Arc<InFlight>,
}

impl Source {
    /// Joins `group` and subscribes to every topic; reports lag to `metrics`.
    pub fn new(
        mut config: ClientConfig,
        group: &str,
        metrics: Option<Arc<Metrics>>,
    ) -> anyhow::Result<Self> {
        let inflight = Arc::new(InFlight::default());
        config
            .set("group.id", group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("statistics.interval.ms", "5000");
        let consumer: StreamConsumer<DrainContext> = config.create_with_context(DrainContext {
            inflight: inflight.clone(),
            metrics,
        })?;
        consumer.subscribe(&["^.*"])?;
        Ok(Source { consumer, inflight })
    }

    /// Who counts the records in flight.
    pub fn inflight(&self) -> &Arc<InFlight> {
        &self.inflight
    }

    /// The next record, counted as in flight until [`Source::ack`] or
    /// [`InFlight::end`].
    pub async fn next(&self) -> anyhow::Result<Record> {
        let message = self.consumer.recv().await?;
        let record = Record {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            headers: message
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| {
                            Header::new(h.key, String::from_utf8_lossy(h.value.unwrap_or_default()))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            value: message.payload().map(<[u8]>::to_vec),
        };
        self.inflight.begin(&record.topic, record.partition);
        Ok(record)
    }

    /// Stores the offset after `record` for the next commit, and ends it.
    pub fn ack(&self, record: &Record) {
        if let Err(e) = self
            .consumer
            .store_offset(&record.topic, record.partition, record.offset)
        {
            tracing::warn!(topic = %record.topic, partition = record.partition, "cannot store offset (partition revoked?): {e}");
        }
        self.inflight.end(&record.topic, record.partition);
    }

    /// Commits every stored offset now.
    pub fn commit(&self) -> anyhow::Result<()> {
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => Ok(()),
            // Nothing stored since the last commit.
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::NoOffset,
            )) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
