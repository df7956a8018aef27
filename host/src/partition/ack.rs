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
    while let Some(Pending {
        batch,
        index,
        outputs,
        mut refused,
    }) = pending.recv().await
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
                // Shut down first: the offset is not stored.
                None => return,
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
                return;
            };
            if settle(&shared, &out, delivery, true).await.is_none() {
                return;
            }
        }
        // A timer's firing (offset -1) has no offset to store: its outputs
        // are safe now, so its timer goes.
        match crate::router::removal(record) {
            Some(removal) => {
                super::timers::remove_fired(&shared, &firing, &partition, removal).await
            }
            None => shared.source.store(&lease, &partition, record.offset),
        }
        shared.stats.acked.fetch_add(1, Ordering::Relaxed);
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
