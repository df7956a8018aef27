//! Awaiting each record's acknowledgements in partition order, and storing
//! its offset once every output and dead letter of it (and of the records
//! before it) is in Kafka.

use super::Shared;
use super::emit::{Pending, dead_letter};
use crate::event::OutRecord;
use crate::kafka::dlq::{self, DeadLetter};
use crate::kafka::sink::{Delivery, ProduceError};
use crate::kafka::source::{Lease, Partition};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;

/// Awaits each record's acknowledgements in partition order and stores its
/// offset. A permanent refusal dead-letters the input; a transient failure
/// produces the record again, without limit.
pub(super) async fn ack_in_order(
    shared: Arc<Shared>,
    partition: Partition,
    lease: Lease,
    firing: super::timers::Firing,
    mut pending: mpsc::Receiver<Pending>,
) {
    let mut unstored = Unstored::default();
    while let Some(Pending {
        batch,
        index,
        outputs,
        mut refused,
    }) = unstored
        .next(&shared, &lease, &partition, &mut pending)
        .await
    {
        let record = &batch[index];
        if let Some(txn) = &shared.txn {
            // The transaction commits the offset; a failed delivery makes
            // its commit fail, and the records run again. A refusal for good
            // is remembered, so that the run again dead-letters the input.
            for (out, delivery) in outputs {
                match delivery.wait().await {
                    Ok(()) => {}
                    Err(ProduceError::Permanent(e))
                        if !dlq::is_topic_of(&out.topic, &record.topic) =>
                    {
                        txn.remember_refusal(
                            &partition,
                            record.offset,
                            format!("output to {}: {e}", out.topic),
                        );
                    }
                    Err(e) => tracing::debug!("produce to {} in a transaction: {e}", out.topic),
                }
            }
            shared.stats.acked.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        for (out, delivery) in outputs {
            let letter = dlq::is_topic_of(&out.topic, &record.topic);
            match settle(&shared, &out, delivery, letter).await {
                Some(Ok(())) => {}
                Some(Err(e)) => refused.push(format!("output to {}: {e}", out.topic)),
                // Shut down first: this record's offset is not stored.
                None => return unstored.store(&shared, &lease, &partition),
            }
        }
        if !refused.is_empty() {
            let message = refused.join("; ");
            let letter = DeadLetter::refused(&message);
            tracing::warn!(
                "{}[{}]@{}: {message}; dead-lettered",
                record.topic,
                record.partition,
                record.offset
            );
            let Some((out, delivery)) = dead_letter(&shared, record, &letter, None).await else {
                return unstored.store(&shared, &lease, &partition);
            };
            if settle(&shared, &out, delivery, true).await.is_none() {
                return unstored.store(&shared, &lease, &partition);
            }
        }
        // A timer's firing (offset -1) has no offset to store: its outputs
        // are safe now, so its timer goes.
        match crate::router::removal(record) {
            Some(removal) => {
                super::timers::remove_fired(&shared, &firing, &partition, removal).await
            }
            None => unstored.acked(record.offset),
        }
        shared.stats.acked.fetch_add(1, Ordering::Relaxed);
    }
    unstored.store(&shared, &lease, &partition);
}

/// How many acknowledged records' offsets may wait to be stored while more
/// acknowledgements are queued.
const STORE_EVERY: u32 = 64;

/// The newest offset acknowledged and not yet stored. It is stored when the
/// queue of records to acknowledge has nothing ready, after
/// [`STORE_EVERY`] records, and before the task ends: a run of records
/// acknowledged together costs one store (a call into librdkafka, which
/// takes its locks), not one a record. Storing later never loses a record:
/// at worst a restart reads a few more again, whose outputs the state
/// store's processed marks answer.
#[derive(Default)]
struct Unstored {
    newest: Option<i64>,
    waiting: u32,
}

impl Unstored {
    /// The next record to acknowledge; stores the waiting offset first if
    /// none is ready yet, or if enough records wait.
    async fn next(
        &mut self,
        shared: &Shared,
        lease: &Lease,
        partition: &Partition,
        pending: &mut mpsc::Receiver<Pending>,
    ) -> Option<Pending> {
        if self.waiting >= STORE_EVERY || pending.is_empty() {
            self.store(shared, lease, partition);
        }
        pending.recv().await
    }

    /// `offset` is acknowledged: every output of its record, and of those
    /// before it, is in Kafka.
    fn acked(&mut self, offset: i64) {
        self.newest = Some(offset);
        self.waiting += 1;
    }

    /// Stores the waiting offset, if any.
    fn store(&mut self, shared: &Shared, lease: &Lease, partition: &Partition) {
        if let Some(offset) = self.newest.take() {
            shared.source.store(lease, partition, offset);
        }
        self.waiting = 0;
    }
}

/// Awaits one output's delivery, producing it again while it fails for
/// now. A refusal for good is returned, except for a dead letter
/// (`must`): there is nowhere else for it to go, so it waits and is
/// produced again, without limit and loudly, until the broker takes it
/// (its input's offset is not stored meanwhile). `None` on shutdown.
async fn settle(
    shared: &Shared,
    out: &OutRecord,
    delivery: Delivery,
    must: bool,
) -> Option<Result<(), String>> {
    let mut result = delivery.wait().await;
    let mut attempt = 1;
    loop {
        match result {
            Ok(()) => return Some(Ok(())),
            Err(ProduceError::Permanent(e)) if !must => return Some(Err(e)),
            Err(e) if must => {
                tracing::error!(
                    attempt,
                    "dead letter to {}: {e}; waiting and retrying",
                    out.topic
                );
            }
            Err(e) => tracing::warn!(attempt, "produce to {}: {e}; retrying", out.topic),
        }
        if !shared.sleep(shared.kafka.backoff(attempt)).await {
            return None;
        }
        attempt += 1;
        result = match shared.sink.enqueue(out).await {
            Ok(d) => d.wait().await,
            Err(e) => Err(e),
        };
    }
}
