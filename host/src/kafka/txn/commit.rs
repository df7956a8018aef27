//! The blocking end of a commit: the offsets sent with the group metadata,
//! and the transaction committed, each call repeated while its error is
//! retriable.

use super::fired;
use crate::kafka::source::{Lease, Partition, Source};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::Duration;

/// How one attempt at a transaction call failed.
pub(super) enum Failure {
    /// Abort, rewind, run again.
    Abort(String),
    /// Replace the producer, rewind, run again.
    Fatal(String),
}

/// Sends the offsets (`sent`: the records' offsets and the listed firings,
/// with their metadata) with the group metadata and commits, under the
/// commit lock so that no revoke ends a lease meanwhile.
pub(super) fn commit_blocking(
    source: &Source,
    producer: &FutureProducer,
    offsets: HashMap<Partition, (Lease, i64)>,
    sent: fired::Sent,
    doomed: Option<String>,
    timeout: Duration,
) -> Result<(), Failure> {
    let _no_revoke = source.state().commit_lock();
    if let Some(why) = doomed {
        return Err(Failure::Abort(why));
    }
    if let Some(((topic, partition), _)) = offsets.iter().find(|(_, (lease, _))| !lease.live()) {
        return Err(Failure::Abort(format!("{topic}[{partition}] was revoked")));
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), (offset, metadata)) in &sent {
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .map_err(|e| Failure::Fatal(e.to_string()))?;
        if !metadata.is_empty()
            && let Some(mut entry) = list.find_partition(topic, *partition)
        {
            entry.set_metadata(metadata);
        }
    }
    if !sent.is_empty() {
        let metadata = source
            .group_metadata()
            .ok_or_else(|| Failure::Abort("the consumer has no group metadata".into()))?;
        retrying("send offsets", || {
            producer.send_offsets_to_transaction(&list, &metadata, timeout)
        })?;
    }
    delivered(producer, timeout);
    retrying("commit", || producer.commit_transaction(timeout))
}

/// Waits until the broker has acknowledged every record handed to
/// `producer` (their delivery reports served by its polling thread), or
/// `timeout` has passed, checking every half millisecond. Call it before
/// `commit_transaction`; the benchmark's transactional passthrough does too.
///
/// `commit_transaction` must flush first, and rust-rdkafka's flush then
/// polls in steps of 100 ms that do not end when the last report arrives:
/// every commit with a record in flight took 100 ms more, during which no
/// worker can add to the transaction (BENCHMARKS.md, "The hot path", item
/// 12). Once this returns, that flush finds nothing in flight and returns
/// at once; if the time ran out, it waits as before.
pub fn delivered(producer: &FutureProducer, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    // A flush that does not wait: the brokers' threads send what lingers now.
    let _ = producer.flush(Duration::ZERO);
    while producer.in_flight_count() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// Runs a transaction call, repeating it while its error is retriable.
pub(super) fn retrying(
    what: &str,
    mut call: impl FnMut() -> Result<(), KafkaError>,
) -> Result<(), Failure> {
    let mut attempt = 0u32;
    loop {
        match call() {
            Ok(()) => return Ok(()),
            Err(KafkaError::Transaction(e)) if e.is_retriable() => {
                attempt += 1;
                tracing::warn!(attempt, "transaction {what}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(100 * u64::from(attempt.min(10))));
            }
            Err(KafkaError::Transaction(e)) if e.txn_requires_abort() => {
                return Err(Failure::Abort(format!("{what}: {e}")));
            }
            Err(e) => return Err(Failure::Fatal(format!("{what}: {e}"))),
        }
    }
}
