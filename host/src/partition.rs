//! A partition worker: takes its partition's records in batches, runs each
//! batch through the router on the worker pool, group-commits the state,
//! produces the outputs pipelined, and stores offsets in partition order as
//! the acknowledgements arrive, while the next batch already runs.
//!
//! Guarantees, per partition:
//! - records run in order, each seeing the state the ones before it wrote;
//! - state writes, processed marks and outputs are committed together
//!   before anything is produced;
//! - an offset is stored only after every output of its record (and of the
//!   records before it) is acknowledged, and only while the partition is
//!   still assigned to this worker ([`Lease`]);
//! - with exactly-once, a record's outputs and its next offset go into the
//!   open Kafka transaction together, under one [`Hold`], instead of the
//!   offset being stored after the acknowledgements ([`crate::kafka::txn`]);
//! - a record's outcome is routed, dead-lettered or waiting. A permanent
//!   produce refusal dead-letters the input with the reason; a store or
//!   broker outage waits and retries without limit; nothing here exits the
//!   process.

use crate::committer::Committer;
use crate::config::KafkaConfig;
use crate::event::{OutRecord, Record};
use crate::kafka::dlq::{self, DeadLetter};
use crate::kafka::sink::{Delivery, ProduceError, Sink};
use crate::kafka::source::{Lease, Partition, Source};
use crate::kafka::txn::{Hold, Transactions};
use crate::metrics::Metrics;
use crate::pool::{PoolError, WorkerPool};
use crate::router::{RecordOutcome, Router};
use crate::state::StateStore;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Counters for the dev summary line and the admin API.
#[derive(Debug, Default)]
pub struct Stats {
    /// Records handled (routed, skipped or dead-lettered).
    pub records: AtomicU64,
    /// Records produced from emits.
    pub emitted: AtomicU64,
    /// Plugin calls that failed (each attempt).
    pub errors: AtomicU64,
    /// Records sent to a dead-letter topic.
    pub dead_letters: AtomicU64,
    /// Records skipped: excluded topics, or undecodable on topics no plugin wants.
    pub skipped: AtomicU64,
    /// Records whose outputs were all acknowledged and whose offsets were stored.
    pub acked: AtomicU64,
    /// Batches committed to the state store.
    pub commits: AtomicU64,
    /// Microseconds partitions waited for those commits, in total.
    pub commit_micros: AtomicU64,
    /// Records run again because a commit found their reads changed (or the
    /// event already processed elsewhere).
    pub reruns: AtomicU64,
}

/// What every partition worker shares.
pub struct Shared {
    /// The per-record path.
    pub router: Arc<Router>,
    /// Where plugin calls run.
    pub pool: Arc<WorkerPool>,
    /// The state store, read by plugin calls.
    pub store: Arc<dyn StateStore>,
    /// Group commit.
    pub committer: Arc<Committer>,
    /// The producer.
    pub sink: Arc<Sink>,
    /// The consumer, for pausing, resuming and storing offsets.
    pub source: Arc<Source>,
    /// With exactly-once, the Kafka transactions outputs and offsets go
    /// into; `None` for at-least-once.
    pub txn: Option<Arc<Transactions>>,
    /// Batching, retries, limits.
    pub kafka: KafkaConfig,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// What flowed where, for the status page.
    pub flows: Arc<crate::flows::Flows>,
    /// Set while the state store fails, with why (for `/readyz`).
    pub store_failing: std::sync::Mutex<Option<String>>,
    /// Becomes true when the router shuts down.
    pub shutdown: watch::Receiver<bool>,
}

impl Shared {
    /// Sleeps for `delay`; false when shutdown came first.
    async fn sleep(&self, delay: Duration) -> bool {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = shutdown.wait_for(|stop| *stop) => false,
        }
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// The handle the consumer loop keeps for one partition's worker.
pub struct PartitionQueue {
    records: mpsc::UnboundedSender<Record>,
    queued: Arc<AtomicUsize>,
    paused: Paused,
    lease: Lease,
}

/// Whether a partition is paused in the consumer. The flag and the call to
/// the consumer change together under one lock: were they apart, a resume
/// could overtake the pause it answers, and leave the partition paused with
/// nothing queued to resume it.
type Paused = Arc<std::sync::Mutex<bool>>;

impl PartitionQueue {
    /// Starts a worker for `partition` under `lease`.
    pub fn start(
        shared: Arc<Shared>,
        partition: Partition,
        lease: Lease,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queue = PartitionQueue {
            records: tx,
            queued: Arc::default(),
            paused: Paused::default(),
            lease: lease.clone(),
        };
        let worker = Worker {
            shared,
            partition,
            lease,
            queued: queue.queued.clone(),
            paused: queue.paused.clone(),
        };
        (queue, tokio::spawn(worker.run(rx)))
    }

    /// Whether the worker still holds the partition.
    pub fn live(&self) -> bool {
        self.lease.live() && !self.records.is_closed()
    }

    /// Queues `record`; pauses the partition in the consumer when its queue
    /// is full. Never waits.
    pub fn push(&self, record: Record, source: &Source, limit: usize) {
        let partition = (record.topic.clone(), record.partition);
        let queued = self.queued.fetch_add(1, Ordering::AcqRel) + 1;
        if self.records.send(record).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        if queued >= limit {
            let mut paused = self.paused.lock().expect("pause lock");
            if !*paused {
                source.pause(&partition);
                *paused = true;
            }
        }
    }
}

/// A record handed to the producer, waiting for its acknowledgements.
struct Pending {
    record: Record,
    outputs: Vec<(OutRecord, Delivery)>,
    /// Outputs the producer refused at once, with why.
    refused: Vec<String>,
}

struct Worker {
    shared: Arc<Shared>,
    partition: Partition,
    lease: Lease,
    queued: Arc<AtomicUsize>,
    paused: Paused,
}

impl Worker {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Record>) {
        let shared = self.shared.clone();
        let (acks, acks_rx) = mpsc::channel::<Pending>(64);
        let acker = tokio::spawn(ack_in_order(
            shared.clone(),
            self.partition.clone(),
            self.lease.clone(),
            acks_rx,
        ));
        let kafka = &shared.kafka;
        while let Some(first) = rx.recv().await {
            if shared.stopping() || !self.lease.live() {
                // Not started: dropped, to be redelivered.
                break;
            }
            let mut bytes = first.value.as_ref().map_or(0, Vec::len);
            let mut batch = vec![first];
            let linger = Instant::now() + Duration::from_millis(kafka.linger_ms);
            while batch.len() < kafka.batch_records && bytes < kafka.batch_bytes {
                let next = match rx.try_recv() {
                    Ok(record) => Some(record),
                    Err(_) if kafka.linger_ms > 0 => {
                        tokio::time::timeout_at(linger.into(), rx.recv())
                            .await
                            .ok()
                            .flatten()
                    }
                    Err(_) => None,
                };
                let Some(record) = next else { break };
                bytes += record.value.as_ref().map_or(0, Vec::len);
                batch.push(record);
            }
            let left = self.queued.fetch_sub(batch.len(), Ordering::AcqRel) - batch.len();
            if left <= kafka.queue_records / 2 {
                let mut paused = self.paused.lock().expect("pause lock");
                if *paused {
                    shared.source.resume(&self.partition);
                    *paused = false;
                }
            }
            if !self.handle(batch, &acks).await {
                break;
            }
        }
        drop(acks);
        let _ = acker.await;
    }

    /// Takes one batch to the producer; false when shutdown interrupted it.
    async fn handle(&self, batch: Vec<Record>, acks: &mpsc::Sender<Pending>) -> bool {
        let shared = &self.shared;
        let batch: Arc<[Record]> = batch.into();
        let mut start = 0;
        let mut attempt = 1;
        let mut host_panics = 0;
        while start < batch.len() {
            if !self.lease.live() {
                return true;
            }
            let started = Instant::now();
            let run = {
                let (router, store, kafka) = (
                    shared.router.clone(),
                    shared.store.clone(),
                    shared.kafka.clone(),
                );
                let records = batch.clone();
                shared
                    .pool
                    .run(move |instances| {
                        injected_panic(&records[start..]);
                        router.run_batch(&records[start..], attempt, &store, instances, &kafka)
                    })
                    .await
            };
            let run = match run {
                Ok(run) => run,
                Err(PoolError::Stopped) => return false,
                Err(PoolError::Panicked(why)) => {
                    // A host bug. Nothing of the batch was committed: run it
                    // again from the same record after a pause; the
                    // partition waits, it never skips.
                    host_panics += 1;
                    tracing::error!(
                        "{}[{}]@{}: {why} (a bug in the host); running the batch again",
                        self.partition.0,
                        self.partition.1,
                        batch[start].offset
                    );
                    if !shared.sleep(shared.kafka.backoff(host_panics)).await {
                        return false;
                    }
                    continue;
                }
            };
            let effects = Arc::new(run.done.iter().map(RecordOutcome::effects).collect());
            let applied = match self.commit(effects).await {
                Some(n) => n,
                None => return false,
            };
            let took = started.elapsed();
            let hold = match &shared.txn {
                Some(txn) => Some(txn.hold().await),
                None => None,
            };
            if hold.is_some() && !self.lease.live() {
                // Revoked, or rewound after an abort: the records run again
                // from the committed offset (their effects are kept).
                return true;
            }
            for (i, outcome) in run.done.iter().take(applied).enumerate() {
                let record = &batch[start + i];
                self.count(record, outcome, took / run.done.len().max(1) as u32);
                let mut pending = Pending {
                    record: record.clone(),
                    outputs: Vec::new(),
                    refused: Vec::new(),
                };
                self.emit(&mut pending, outcome, attempt_of(i, attempt), hold.as_ref())
                    .await;
                if let Some(hold) = &hold {
                    hold.handled(&self.partition, &self.lease, record.offset + 1);
                }
                if acks.send(pending).await.is_err() {
                    return false;
                }
            }
            drop(hold);
            let conflicted = applied < run.done.len();
            if conflicted {
                shared
                    .stats
                    .reruns
                    .fetch_add((run.done.len() - applied) as u64, Ordering::Relaxed);
            }
            start += applied;
            if applied > 0 {
                attempt = 1;
            }
            if conflicted {
                continue;
            }
            if let Some(stop) = run.stop {
                let record = &batch[start];
                shared.stats.errors.fetch_add(1, Ordering::Relaxed);
                shared.metrics.error(&record.topic);
                tracing::warn!(plugin = %stop.plugin, attempt, delay = ?stop.delay,
                    "{}[{}]@{}: {}; waiting", record.topic, record.partition, record.offset, stop.failure);
                if !shared.sleep(stop.delay).await {
                    return false;
                }
                attempt += 1;
            }
        }
        true
    }

    /// Group-commits a batch's effects, waiting out store failures; `None`
    /// on shutdown.
    async fn commit(&self, effects: Arc<Vec<crate::state::RecordEffects>>) -> Option<usize> {
        let shared = &self.shared;
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            match shared.committer.commit(effects.clone()).await {
                Ok(n) => {
                    let stats = &shared.stats;
                    stats.commits.fetch_add(1, Ordering::Relaxed);
                    stats
                        .commit_micros
                        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    if attempt > 1 {
                        shared.store_failing.lock().expect("store lock").take();
                    }
                    return Some(n);
                }
                Err(why) => {
                    tracing::error!(attempt, "state store: {why}; waiting");
                    *shared.store_failing.lock().expect("store lock") = Some(why);
                    if !shared.sleep(shared.kafka.backoff(attempt)).await {
                        return None;
                    }
                    attempt += 1;
                }
            }
        }
    }

    fn count(&self, record: &Record, outcome: &RecordOutcome, took: Duration) {
        let shared = &self.shared;
        shared.stats.records.fetch_add(1, Ordering::Relaxed);
        shared.metrics.processed(&record.topic, took);
        let topic = |t: &str| format!("topic:{t}");
        if let RecordOutcome::Undecodable(_) = outcome {
            let dlq = crate::kafka::dlq::topic_of(&record.topic);
            shared.flows.edge(topic(&record.topic), topic(&dlq));
        }
        if let RecordOutcome::Routed { calls, .. } = outcome {
            for call in calls.iter().filter(|c| !c.duplicate) {
                let name = &call.plugin.spec.name;
                let node = format!("plugin:{name}");
                shared.flows.edge(topic(&record.topic), node.clone());
                match &call.result {
                    Ok(records) => {
                        for r in records {
                            shared.flows.edge(node.clone(), topic(&r.topic));
                        }
                    }
                    Err(_) => {
                        let dlq = crate::kafka::dlq::topic_of(&record.topic);
                        shared.flows.edge(node.clone(), topic(&dlq));
                    }
                }
                shared
                    .flows
                    .call(name, call.result.is_err(), call.result.is_err());
                let failed = call.result.as_ref().err().map(|f| f.class());
                shared
                    .metrics
                    .invocation(&call.plugin.spec.name, call.took, failed);
                call.plugin.count(failed.is_some());
                if failed.is_some() {
                    shared.stats.errors.fetch_add(1, Ordering::Relaxed);
                    shared.metrics.error(&record.topic);
                }
            }
        }
    }

    /// Hands a record's outputs and dead letters to the producer, and logs
    /// the tail line.
    async fn emit(
        &self,
        pending: &mut Pending,
        outcome: &RecordOutcome,
        attempts: u32,
        hold: Option<&Hold<'_>>,
    ) {
        let shared = &self.shared;
        let record = &pending.record;
        let at = format!("{}[{}]@{}", record.topic, record.partition, record.offset);
        let tail = tracing::enabled!(target: "switchyard::tail", tracing::Level::INFO);
        let mut out = Vec::new();
        match outcome {
            RecordOutcome::Skipped(why) => {
                shared.stats.skipped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(target: "switchyard::tail", "skipped {at}: {why}");
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
                tracing::info!(target: "switchyard::tail", "handled {at} type=- dead-lettered (decode: {e})");
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
                    let name = &call.plugin.spec.name;
                    match &call.result {
                        Ok(_) if refusal.is_some() => {}
                        Ok(records) => {
                            for r in records {
                                match self.enqueue(r, hold).await {
                                    Ok(Some(d)) => out.push((r.clone(), d)),
                                    Ok(None) => {}
                                    Err(why) => pending.refused.push(why),
                                }
                            }
                            shared
                                .stats
                                .emitted
                                .fetch_add(records.len() as u64, Ordering::Relaxed);
                            let to: Vec<String> = records
                                .iter()
                                .filter(|_| tail)
                                .map(|r| format!("{} ({})", crate::envelope::type_of(r), r.topic))
                                .collect();
                            let dup = if call.duplicate { " (redelivered)" } else { "" };
                            summary.push(format!(
                                "{name}@{}{dup} -> [{}]",
                                call.version,
                                to.join(", ")
                            ));
                        }
                        Err(failure) => {
                            let message = failure.to_string();
                            let letter = DeadLetter {
                                plugin: Some(name),
                                version: Some(&call.version),
                                attempts,
                                class: failure.class(),
                                message: &message,
                            };
                            out.extend(dead_letter(shared, record, &letter, hold).await);
                            tracing::warn!(plugin = %name, "{at}: {}; dead-lettered after {attempts} attempt(s)",
                                crate::engine::truncate_text(&message, 512));
                            summary.push(format!("{name} dead-lettered ({})", failure.class()));
                        }
                    }
                }
                pending.refused.extend(refusal);
                if hold.is_some() && !pending.refused.is_empty() {
                    // Inside the transaction, with the outputs that went.
                    let message = std::mem::take(&mut pending.refused).join("; ");
                    tracing::warn!("{at}: {message}; dead-lettered");
                    let letter = DeadLetter::refused(&message);
                    out.extend(dead_letter(shared, record, &letter, hold).await);
                    summary.push("dead-lettered (produce)".into());
                }
                if summary.is_empty() {
                    tracing::info!(target: "switchyard::tail", "handled {at} type={ty} no subscriber");
                } else {
                    tracing::info!(target: "switchyard::tail", "handled {at} type={ty} id={id} {}", summary.join("; "));
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

/// A test-only fault: with `SWITCHYARD_TEST_PANIC_ON` set, the first batch
/// holding a record whose value contains that text panics on its plugin
/// worker, once per process, as a bug in the host would.
fn injected_panic(records: &[Record]) {
    static NEEDLE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    static FIRED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let Some(needle) = NEEDLE
        .get_or_init(|| std::env::var("SWITCHYARD_TEST_PANIC_ON").ok())
        .as_deref()
    else {
        return;
    };
    let hit = records.iter().any(|r| {
        r.value
            .as_deref()
            .is_some_and(|v| String::from_utf8_lossy(v).contains(needle))
    });
    if hit && !FIRED.swap(true, Ordering::SeqCst) {
        panic!("injected by SWITCHYARD_TEST_PANIC_ON");
    }
}

fn attempt_of(index: usize, first: u32) -> u32 {
    if index == 0 { first } else { 1 }
}

/// Makes, counts and enqueues the dead letter for `record`; inside a
/// transaction (`hold`), a refusal dooms it instead of waiting.
async fn dead_letter(
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

/// Awaits each record's acknowledgements in partition order and stores its
/// offset. A permanent refusal dead-letters the input; a transient failure
/// produces the record again, without limit.
async fn ack_in_order(
    shared: Arc<Shared>,
    partition: Partition,
    lease: Lease,
    mut pending: mpsc::Receiver<Pending>,
) {
    while let Some(Pending {
        record,
        outputs,
        mut refused,
    }) = pending.recv().await
    {
        if let Some(txn) = &shared.txn {
            // The transaction commits the offset; a failed delivery makes
            // its commit fail, and the records run again. A refusal for good
            // is remembered, so that the run again dead-letters the input.
            for (out, delivery) in outputs {
                match delivery.wait().await {
                    Ok(()) => {}
                    Err(ProduceError::Permanent(e))
                        if out.topic != dlq::topic_of(&record.topic) =>
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
            let letter = out.topic == dlq::topic_of(&record.topic);
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
            let Some((out, delivery)) = dead_letter(&shared, &record, &letter, None).await else {
                return;
            };
            if settle(&shared, &out, delivery, true).await.is_none() {
                return;
            }
        }
        shared.source.store(&lease, &partition, record.offset);
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
