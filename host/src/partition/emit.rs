//! Handing a record's outputs and dead letters to the producer, pipelined:
//! nothing here waits for an acknowledgement ([`super::ack`] does).

use super::{Shared, Worker};
use crate::event::{OutRecord, Record};
use crate::kafka::dlq::DeadLetter;
use crate::kafka::sink::{Delivery, ProduceError};
use crate::kafka::txn::Hold;
use crate::router::{PluginCall, RecordOutcome};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A record handed to the producer, waiting for its acknowledgements.
pub(super) struct Pending {
    /// The batch the record came in (shared, not copied per record).
    pub(super) batch: Arc<[Record]>,
    /// The record's place in it.
    pub(super) index: usize,
    /// Its outputs and dead letters, each with its delivery.
    pub(super) outputs: Vec<(OutRecord, Delivery)>,
    /// Outputs the producer refused at once, with why.
    pub(super) refused: Vec<String>,
}

impl Pending {
    /// The record `index` of `batch`, nothing produced yet.
    pub(super) fn new(batch: Arc<[Record]>, index: usize) -> Self {
        Pending {
            batch,
            index,
            outputs: Vec::new(),
            refused: Vec::new(),
        }
    }
}

impl Worker {
    /// Hands a record's outputs and dead letters to the producer, and logs
    /// the tail line. The outcome's records move into `pending`, which
    /// keeps them until they are acknowledged (to produce again).
    pub(super) async fn emit(
        &self,
        pending: &mut Pending,
        outcome: RecordOutcome,
        attempts: u32,
        hold: Option<&Hold<'_>>,
    ) {
        let shared = &self.shared;
        let batch = pending.batch.clone();
        let record = &batch[pending.index];
        // Formatted only where a line is written.
        let at = || format!("{}[{}]@{}", record.topic, record.partition, record.offset);
        let tail = tracing::enabled!(target: "switchyard::tail", tracing::Level::INFO);
        let mut out = Vec::new();
        match outcome {
            RecordOutcome::Skipped(why) => {
                shared.stats.skipped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(target: "switchyard::tail", "skipped {}: {why}", at());
            }
            RecordOutcome::Undecodable(e) => {
                shared.metrics.error(&record.topic);
                let letter = DeadLetter {
                    plugin: None,
                    version: None,
                    attempts: 1,
                    class: "decode",
                    message: &e.to_string(),
                };
                out.extend(dead_letter(shared, record, &letter, hold).await);
                tracing::info!(target: "switchyard::tail", "handled {} type=- dead-lettered (decode: {e})", at());
            }
            RecordOutcome::Routed { ty, id, calls } => {
                let mut summary = Vec::new();
                // With exactly-once, an output the broker refused at
                // delivery aborted the transaction; on this run the input
                // is dead-lettered instead of its outputs produced again.
                let refusal = match (&shared.txn, hold) {
                    (Some(txn), Some(_)) => txn.take_refusal(&self.partition, record.offset),
                    _ => None,
                };
                for call in calls {
                    let PluginCall {
                        plugin,
                        version,
                        result,
                        duplicate,
                        ..
                    } = call;
                    let name = &plugin.spec.name;
                    match result {
                        Ok(_) if refusal.is_some() => {}
                        Ok(records) => {
                            shared
                                .stats
                                .emitted
                                .fetch_add(records.len() as u64, Ordering::Relaxed);
                            if tail {
                                let to: Vec<String> = records
                                    .iter()
                                    .map(|r| {
                                        format!("{} ({})", crate::envelope::type_of(r), r.topic)
                                    })
                                    .collect();
                                let dup = if duplicate { " (redelivered)" } else { "" };
                                summary
                                    .push(format!("{name}@{version}{dup} -> [{}]", to.join(", ")));
                            }
                            for r in records {
                                match self.enqueue(&r, hold).await {
                                    Ok(Some(d)) => out.push((r, d)),
                                    Ok(None) => {}
                                    Err(why) => pending.refused.push(why),
                                }
                            }
                        }
                        Err(failure) => {
                            let message = failure.to_string();
                            let letter = DeadLetter {
                                plugin: Some(name),
                                version: Some(&version),
                                attempts,
                                class: failure.class(),
                                message: &message,
                            };
                            out.extend(dead_letter(shared, record, &letter, hold).await);
                            tracing::warn!(plugin = %name, "{}: {}; dead-lettered after {attempts} attempt(s)",
                                at(), crate::event::truncate_text(&message, 512));
                            summary.push(format!("{name} dead-lettered ({})", failure.class()));
                        }
                    }
                }
                pending.refused.extend(refusal);
                if hold.is_some() && !pending.refused.is_empty() {
                    // Inside the transaction, with the outputs that went.
                    let message = std::mem::take(&mut pending.refused).join("; ");
                    tracing::warn!("{}: {message}; dead-lettered", at());
                    let letter = DeadLetter::refused(&message);
                    out.extend(dead_letter(shared, record, &letter, hold).await);
                    summary.push("dead-lettered (produce)".into());
                }
                if tail && summary.is_empty() {
                    tracing::info!(target: "switchyard::tail", "handled {} type={ty} no subscriber", at());
                } else if tail {
                    tracing::info!(target: "switchyard::tail", "handled {} type={ty} id={id} {}", at(), summary.join("; "));
                }
            }
        }
        pending.outputs.extend(out);
    }

    /// Hands one record to the producer, waiting out transient refusals;
    /// says why when the producer refused it at once for good. Inside a
    /// transaction it never waits: it dooms the transaction (which aborts,
    /// and the record runs again) and returns `None`.
    async fn enqueue(
        &self,
        record: &OutRecord,
        hold: Option<&Hold<'_>>,
    ) -> Result<Option<Delivery>, String> {
        loop {
            match self.shared.sink.enqueue(record).await {
                Ok(delivery) => return Ok(Some(delivery)),
                Err(ProduceError::Transient(e)) if let Some(hold) = hold => {
                    hold.doom(format!("output to {}: {e}", record.topic));
                    return Ok(None);
                }
                Err(ProduceError::Transient(e)) => {
                    tracing::warn!("produce to {}: {e}; retrying", record.topic);
                    if !self.shared.sleep(Duration::from_millis(200)).await {
                        return Err(format!("output to {}: {e}", record.topic));
                    }
                }
                Err(ProduceError::Permanent(e)) => {
                    return Err(format!("output to {}: {e}", record.topic));
                }
            }
        }
    }
}

/// Makes, counts and enqueues the dead letter for `record`; inside a
/// transaction (`hold`), a refusal dooms it instead of waiting.
pub(super) async fn dead_letter(
    shared: &Shared,
    record: &Record,
    letter: &DeadLetter<'_>,
    hold: Option<&Hold<'_>>,
) -> Option<(OutRecord, Delivery)> {
    let out = letter.wrap(record, shared.kafka.max_record_bytes);
    let failed = shared
        .sink
        .ensure_topics(std::slice::from_ref(&out.topic), &shared.kafka)
        .await;
    if !failed.is_empty() {
        tracing::debug!("cannot create {}", failed.join(", "));
    }
    shared.stats.dead_letters.fetch_add(1, Ordering::Relaxed);
    shared.metrics.dead_letter(&record.topic);
    loop {
        match shared.sink.enqueue(&out).await {
            Ok(delivery) => return Some((out, delivery)),
            Err(e) if hold.is_some() => {
                hold.expect("hold")
                    .doom(format!("dead letter to {}: {e}", out.topic));
                return None;
            }
            Err(e) => {
                tracing::error!("dead letter to {}: {e}; retrying", out.topic);
                if !shared.sleep(Duration::from_secs(1)).await {
                    return None;
                }
            }
        }
    }
}
