//! The consumer: one consumer group subscribed to every topic by pattern
//! (`^.*`, so topics created later are picked up on the next metadata
//! refresh), which owns the partitions' lifecycle.
//!
//! - Offsets are stored by hand with [`Source::store`], only after a record
//!   is fully handled; auto-commit then commits what was stored, and
//!   librdkafka commits the stored offsets of revoked partitions itself.
//! - Each assigned partition has a [`Lease`]. A revoke ends the leases of the
//!   revoked partitions from inside the rebalance callback, which does
//!   nothing else and never blocks: work already started may finish, but it
//!   cannot store an offset under a stale assignment, and queued work is
//!   dropped, to be redelivered to the new owner.
//! - [`Source::pause`] and [`Source::resume`] stop and restart fetching one
//!   partition, for back-pressure: a full partition queue pauses only that
//!   partition, never the consumer. Every assigned partition is resumed, so
//!   a pause never outlives the assignment it was made under. A resume
//!   wakes the partition's fetcher at once (`wake.rs`).
//! - The client's error callback tracks whether the brokers are reachable,
//!   for `/readyz`.
//! - With exactly-once ([`Source::new`]'s `transactional`), offsets are not
//!   auto-committed: they travel in the producer's transactions
//!   ([`crate::kafka::txn`]). A revoke then waits for a transaction commit
//!   in progress ([`SourceState::commit_lock`]), so a transaction never
//!   carries the offsets of a partition this instance no longer owns; and
//!   after an aborted transaction, [`Source::rewind`] moves the partitions
//!   back to their committed offsets, dropping what was fetched before.
//! - Reads are read_committed: records of aborted transactions (the
//!   router's own, after a crash) are never routed.
//! - When the broker deleted records before they were read (retention; the
//!   embedded broker keeps about 5 MB per partition), librdkafka resets the
//!   position and logs where from; the next record shows where to. The gap
//!   is logged as an error with its size and counted in
//!   `switchyard_records_lost_total`: data is never lost silently, even when
//!   the broker is the one losing it.

mod callbacks;
mod state;
mod wake;

pub use state::{Lease, Partition, SourceState};

use crate::event::{Header, Record};
use crate::metrics::Metrics;
pub(crate) use callbacks::SourceContext;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, TopicPartitionList};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The router's consumer.
pub(crate) struct Source {
    consumer: Arc<StreamConsumer<SourceContext>>,
    state: Arc<SourceState>,
    waker: wake::Waker,
}

impl Source {
    /// Joins `group` (as the static member `instance`, if given) and
    /// subscribes to every topic; reports lag to `metrics`.
    ///
    /// Consumer settings: cooperative-sticky assignment (a rebalance moves
    /// only the partitions that change owner) for a dynamic member, and
    /// eager round-robin assignment for a static one, fetches of up to 1 MiB per
    /// partition returned as soon as any data is there, offsets stored by
    /// hand and auto-committed every second. Keys in `[kafka.client]`
    /// override them.
    ///
    /// Why a static member rebalances eagerly: a cooperative rebalance moves
    /// partitions in two rounds, the first taking them from their owner and
    /// the second, which that owner's rejoin starts, giving them out. Kafka
    /// answers a static member that rejoins a stable group (KIP-345) with
    /// its stored assignment and no rebalance. So an instance killed between
    /// the two rounds comes back to the partitions it kept, and the ones it
    /// gave up belong to nobody until the group next changes: the crash-loop
    /// test once saw 81 of 162 partitions unowned for five minutes. An eager
    /// rebalance hands out every partition in one round, so the stored
    /// assignment is always whole.
    ///
    /// With `transactional` (exactly-once), nothing is auto-committed: the
    /// offsets go into the producer's transactions.
    ///
    /// Topics matching the `exclude` globs (the config's, which always hold
    /// `*.dlq` and `__*`) are hidden from the consumer's metadata
    /// (`topic.blacklist`), so they are never fetched: not the dead
    /// letters, not Kafka's own `__consumer_offsets` and
    /// `__transaction_state`, which every transaction writes to.
    pub(crate) fn new(
        mut config: ClientConfig,
        group: &str,
        instance: Option<&str>,
        extra: &std::collections::BTreeMap<String, String>,
        metrics: Option<Arc<Metrics>>,
        transactional: bool,
        exclude: &[String],
    ) -> anyhow::Result<Self> {
        let state = Arc::new(SourceState::default());
        config
            .set("group.id", group)
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", (!transactional).to_string())
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set(
                "partition.assignment.strategy",
                if instance.is_some() {
                    "roundrobin"
                } else {
                    "cooperative-sticky"
                },
            )
            .set("fetch.wait.max.ms", "10")
            .set("max.partition.fetch.bytes", "1048576")
            .set("statistics.interval.ms", "1000")
            .set(
                "topic.blacklist",
                exclude
                    .iter()
                    .map(|g| glob_regex(g))
                    .collect::<Vec<_>>()
                    .join(","),
            );
        if let Some(instance) = instance {
            config.set("group.instance.id", instance);
        }
        for (key, value) in extra {
            config.set(key, value);
        }
        let consumer: StreamConsumer<SourceContext> =
            config.create_with_context(SourceContext {
                state: state.clone(),
                metrics,
            })?;
        consumer.subscribe(&["^.*"])?;
        let consumer = Arc::new(consumer);
        let waker = wake::Waker::start(Arc::downgrade(&consumer))?;
        Ok(Source {
            consumer,
            state,
            waker,
        })
    }

    /// What the callbacks share.
    pub(crate) fn state(&self) -> &Arc<SourceState> {
        &self.state
    }

    /// The lease of `partition`, taken when its first record arrives after
    /// an assignment.
    pub(crate) fn lease(&self, partition: &Partition) -> Lease {
        self.state
            .leases
            .lock()
            .expect("lease lock")
            .entry(partition.clone())
            .or_insert_with(|| Lease(Arc::new(AtomicBool::new(true))))
            .clone()
    }

    /// The next record.
    pub(crate) async fn next(&self) -> Result<Record, KafkaError> {
        let message = self.consumer.recv().await?;
        // A record arrived: a broker is reachable again.
        if self.state.broker_down.load(Ordering::Relaxed) {
            self.state.broker_down.store(false, Ordering::Relaxed);
        }
        self.check_lost(message.topic(), message.partition(), message.offset());
        Ok(record_of(&message))
    }

    /// Reports records skipped by a reset of `partition`'s position.
    fn check_lost(&self, topic: &str, partition: i32, offset: i64) {
        let mut resets = self.state.resets.lock().expect("reset lock");
        if resets.is_empty() {
            return;
        }
        let Some(at) = resets.remove(&(topic.to_string(), partition)) else {
            return;
        };
        if offset > at {
            let lost = (offset - at) as u64;
            tracing::error!(
                topic,
                partition,
                lost,
                "the broker deleted {lost} record(s) (offsets {at}..{offset}) before the router \
                 read them (retention); they were never routed"
            );
            if let Some(metrics) = &self.consumer.context().metrics {
                metrics.lost(topic, lost);
            }
        }
    }

    fn list(partition: &Partition) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        list.add_partition(&partition.0, partition.1);
        list
    }

    /// Stops fetching `partition`.
    pub(crate) fn pause(&self, partition: &Partition) {
        if let Err(e) = self.consumer.pause(&Self::list(partition)) {
            tracing::debug!(topic = %partition.0, partition = partition.1, "pause: {e}");
        }
    }

    /// Fetches `partition` again.
    pub(crate) fn resume(&self, partition: &Partition) {
        match self.consumer.resume(&Self::list(partition)) {
            Ok(()) => self.waker.wake(partition),
            Err(e) => tracing::debug!(topic = %partition.0, partition = partition.1, "resume: {e}"),
        }
    }

    /// Stores the offset after `offset` of `partition` for the next commit,
    /// if `lease` is still live.
    pub(crate) fn store(&self, lease: &Lease, partition: &Partition, offset: i64) {
        if !lease.live() {
            return;
        }
        if let Err(e) = self
            .consumer
            .store_offset(&partition.0, partition.1, offset)
        {
            tracing::debug!(topic = %partition.0, partition = partition.1, "cannot store offset (revoked?): {e}");
        }
    }

    /// The consumer's group metadata, for a transaction's offsets
    /// (KIP-447: the broker refuses them from a member fenced by a newer
    /// generation).
    pub(crate) fn group_metadata(&self) -> Option<rdkafka::consumer::ConsumerGroupMetadata> {
        self.consumer.group_metadata()
    }

    /// What the group committed for `partition`: the next offset (`None`
    /// if nothing is committed) and the offset's metadata. Blocking.
    pub(crate) fn committed(
        &self,
        partition: &Partition,
        timeout: std::time::Duration,
    ) -> anyhow::Result<(Option<i64>, String)> {
        let mut list = TopicPartitionList::new();
        list.add_partition(&partition.0, partition.1);
        let got = self.consumer.committed_offsets(list, timeout)?;
        let entry = got
            .find_partition(&partition.0, partition.1)
            .ok_or_else(|| anyhow::anyhow!("the broker did not answer for the partition"))?;
        entry.error()?;
        let offset = match entry.offset() {
            rdkafka::Offset::Offset(o) => Some(o),
            _ => None,
        };
        Ok((offset, entry.metadata().to_string()))
    }

    /// Moves `partitions` back to their committed offsets (the beginning
    /// where none is committed) and resumes them, waking their fetchers as
    /// [`Source::resume`] does; records fetched before
    /// are dropped by librdkafka (and by the consumer loop until this
    /// returns, see [`SourceState::rewinding`]). Blocking: run it off the
    /// runtime. A partition no longer assigned is skipped.
    pub(crate) fn rewind(&self, partitions: &[Partition]) -> anyhow::Result<()> {
        let assigned = self.consumer.assignment()?;
        let mut list = TopicPartitionList::new();
        for (topic, partition) in partitions {
            if assigned.find_partition(topic, *partition).is_some() {
                list.add_partition(topic, *partition);
            }
        }
        if list.count() > 0 {
            let committed = self
                .consumer
                .committed_offsets(list.clone(), std::time::Duration::from_secs(10))?;
            let mut seek = TopicPartitionList::new();
            for e in committed.elements() {
                let offset = match e.offset() {
                    rdkafka::Offset::Offset(n) => rdkafka::Offset::Offset(n),
                    _ => rdkafka::Offset::Beginning,
                };
                seek.add_partition_offset(e.topic(), e.partition(), offset)?;
            }
            for e in self
                .consumer
                .seek_partitions(seek, std::time::Duration::from_secs(10))?
                .elements()
            {
                if let Err(err) = e.error() {
                    anyhow::bail!("seeking {}[{}]: {err}", e.topic(), e.partition());
                }
            }
            match self.consumer.resume(&list) {
                Ok(()) => {
                    for e in list.elements() {
                        self.waker.wake(&(e.topic().to_string(), e.partition()));
                    }
                }
                Err(e) => tracing::debug!("resuming rewound partitions: {e}"),
            }
        }
        let mut rewinding = self.state.rewinding.lock().expect("rewind lock");
        for p in partitions {
            rewinding.remove(p);
        }
        if rewinding.is_empty() {
            self.state.any_rewinding.store(false, Ordering::Release);
        }
        Ok(())
    }

    /// Commits every stored offset now.
    pub(crate) fn commit(&self) -> anyhow::Result<()> {
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => Ok(()),
            // Nothing stored since the last commit.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// A topic glob (`*`, `?`, `[...]`) as an anchored POSIX regular
/// expression, for librdkafka's pattern lists.
fn glob_regex(glob: &str) -> String {
    let mut re = String::from("^");
    let mut class = false;
    for c in glob.chars() {
        match c {
            '[' if !class => {
                class = true;
                re.push('[');
            }
            ']' if class => {
                class = false;
                re.push(']');
            }
            _ if class => re.push(c),
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            '.' | '+' | '(' | ')' | '{' | '}' | '^' | '$' | '|' | '\\' => {
                re.push('\\');
                re.push(c);
            }
            _ => re.push(c),
        }
    }
    re.push('$');
    re
}

/// The router's copy of a consumed message.
pub(crate) fn record_of(message: &impl Message) -> Record {
    Record {
        topic: message.topic().to_string(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        headers: message
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| Header::from_bytes(h.key, h.value))
                    .collect()
            })
            .unwrap_or_default(),
        value: message.payload().map(<[u8]>::to_vec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_globs_become_anchored_patterns() {
        assert_eq!(glob_regex("*.dlq"), "^.*\\.dlq$");
        assert_eq!(glob_regex("__*"), "^__.*$");
        assert_eq!(glob_regex("audit.[ab]?"), "^audit\\.[ab].$");
    }
}
