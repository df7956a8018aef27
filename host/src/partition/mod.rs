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
//!
//! This module runs batches (the rerun and retry loop); [`queue`] takes
//! them from the partition's queue; [`ahead`] runs the next batch while the
//! last one commits; [`count`] counts outcomes into the stats, metrics and
//! flows; [`emit`] hands outputs and dead letters to the producer; [`ack`]
//! awaits them in partition order and stores offsets.

mod ack;
mod ahead;
mod count;
mod emit;
mod ports;
mod queue;
mod timers;

pub use count::Stats;
pub use ports::{Offsets, Outputs};
pub use queue::PartitionQueue;
use queue::{Backlog, Paused};
use timers::TimerClock;

use crate::committer::Committer;
use crate::config::KafkaConfig;
use crate::event::Record;
use crate::kafka::source::{Lease, Partition};
use crate::kafka::txn::{Hold, Transactions};
use crate::metrics::Metrics;
use crate::pool::{PoolError, WorkerPool};
use crate::router::{RecordOutcome, Router};
use crate::state::StateStore;
use ack::ack_in_order;
use ahead::{Batch, Ran, Stopped};
use count::Tally;
use emit::Pending;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

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
    /// Where outputs and dead letters go: the producer.
    pub sink: Arc<dyn Outputs>,
    /// The consumer, for pausing, resuming and storing offsets.
    pub source: Arc<dyn Offsets>,
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

struct Worker {
    shared: Arc<Shared>,
    /// Timers this worker fired whose outputs are not yet safe, so not yet
    /// removed: it does not fire them again. It ends with the worker (after
    /// an aborted transaction, the next worker fires them again).
    firing: timers::Firing,
    partition: Partition,
    lease: Lease,
    queued: Arc<Backlog>,
    paused: Paused,
}

impl Worker {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Record>) {
        let shared = self.shared.clone();
        if let Some(txn) = &shared.txn
            && !txn
                .load_fired(&self.partition, &self.lease, &shared.shutdown)
                .await
        {
            return;
        }
        // A batch's worth of records may wait for their acknowledgements
        // while the next batch runs: with fewer, a partition runs its next
        // batch only after most of the last one is acknowledged (a produce
        // round trip each time), which bounded one partition's rate.
        let in_flight = shared.kafka.batch_records.max(64);
        let (acks, acks_rx) = mpsc::channel::<Pending>(in_flight);
        let acker = tokio::spawn(ack_in_order(
            shared.clone(),
            self.partition.clone(),
            self.lease.clone(),
            self.firing.clone(),
            acks_rx,
        ));
        let mut timers = TimerClock::default();
        let mut ahead: Option<Batch> = None;
        loop {
            let first = if ahead.is_some() {
                None
            } else {
                tokio::select! {
                    first = rx.recv() => match first {
                        Some(first) => Some(first),
                        None => break,
                    },
                    _ = tokio::time::sleep(timers.wait()) => None,
                }
            };
            if shared.stopping() || !self.lease.live() {
                // Not started: dropped, to be redelivered.
                break;
            }
            let batch = match (ahead.take(), first) {
                (Some(batch), _) => Some(batch),
                (None, Some(first)) => Some(Batch::new(self.collect(first, &mut rx).await)),
                (None, None) => None,
            };
            if let Some(batch) = batch {
                // Nothing runs ahead while timers are due: they fire
                // between batches.
                let next = (!timers.due()).then_some(&mut rx);
                match self.handle(batch, next, &acks).await {
                    Ok(next) => ahead = next,
                    Err(Stopped) => break,
                }
            }
            if ahead.is_none() && !self.fire_due(&mut timers, &acks).await {
                break;
            }
        }
        drop(acks);
        let _ = acker.await;
    }

    /// Takes one batch to the producer. With `next`, the next batch runs
    /// while this one commits (`ahead.rs`) and comes back, to be handled
    /// next. `Err` when shutdown interrupted it.
    async fn handle(
        &self,
        batch: Batch,
        mut next: Option<&mut mpsc::UnboundedReceiver<Record>>,
        acks: &mpsc::Sender<Pending>,
    ) -> Result<Option<Batch>, Stopped> {
        let shared = &self.shared;
        let Batch {
            records: batch,
            mut ran,
        } = batch;
        PANIC_IN_WORKER.check(&batch);
        let mut ahead: Option<Batch> = None;
        let mut start = 0;
        let mut attempt = 1;
        let mut host_panics = 0;
        let mut conflicts: u32 = 0;
        while start < batch.len() {
            if !self.lease.live() {
                return Ok(None);
            }
            let Ran {
                mut run,
                view,
                started,
                ahead: permit,
            } = match ran.take() {
                Some(ran) => ran,
                None => {
                    match self.run_now(batch.clone(), start, attempt).await {
                        Ok(ran) => ran,
                        Err(PoolError::Stopped) => return Err(Stopped),
                        Err(PoolError::Panicked(why)) => {
                            // Nothing of the batch was committed: run it
                            // again after a pause.
                            host_panics += 1;
                            self.host_panic(&batch[start], &why);
                            if !shared.sleep(shared.kafka.backoff(host_panics)).await {
                                return Err(Stopped);
                            }
                            continue;
                        }
                    }
                }
            };
            // A batch run ahead is the current one now: its permit goes back.
            drop(permit);
            // The effects move to the commit; the outcomes keep their records.
            let effects = Arc::new(
                run.done
                    .iter_mut()
                    .map(RecordOutcome::take_effects)
                    .collect(),
            );
            let done = run.done.len();
            let whole = run.stop.is_none() && start + done == batch.len();
            let applied = match next.as_deref_mut().filter(|_| whole && ahead.is_none()) {
                Some(rx) => {
                    let (applied, next) =
                        tokio::join!(self.commit(effects), self.run_ahead(rx, &view));
                    ahead = next?;
                    if let Some(Batch {
                        ran: ran @ Some(_), ..
                    }) = &mut ahead
                    {
                        match ran {
                            Some(r) if applied == Some(done) => r.view.settle(),
                            _ => *ran = None,
                        }
                    }
                    applied
                }
                None => self.commit(effects).await,
            };
            let Some(applied) = applied else {
                return Err(Stopped);
            };
            drop(view);
            let took = started.elapsed();
            let mut tally = Tally::new(shared, took / done.max(1) as u32);
            for (i, outcome) in run.done.into_iter().take(applied).enumerate() {
                let record = &batch[start + i];
                // One hold per record, not per batch: a commit waits for
                // the holds, and a batch's worth of produce calls (and a
                // full acknowledgement queue) would keep it waiting for
                // tens of milliseconds (BENCHMARKS.md, hot path item 12).
                let hold = match &shared.txn {
                    Some(txn) => Some(txn.hold().await),
                    None => None,
                };
                if hold.is_some() && !self.lease.live() {
                    // Revoked, or rewound after an abort: the records run
                    // again from the committed offset (their effects are
                    // kept).
                    return Ok(None);
                }
                tally.add(record, &outcome);
                if i + 1 == applied {
                    // Counted before the last record can be acknowledged,
                    // so that whoever sees its offset sees its counts.
                    tally.flush();
                }
                let mut pending = Pending::new(batch.clone(), start + i);
                self.emit(&mut pending, outcome, attempt_of(i, attempt), hold.as_ref())
                    .await;
                if let Some(hold) = &hold {
                    self.join(hold, record);
                }
                // Queued for its acknowledgement once the hold is released,
                // so that a full queue there never keeps a commit waiting.
                drop(hold);
                if acks.send(pending).await.is_err() {
                    return Err(Stopped);
                }
            }
            let conflicted = applied < done;
            if conflicted {
                shared
                    .stats
                    .reruns
                    .fetch_add((done - applied) as u64, Ordering::Relaxed);
            }
            start += applied;
            if applied > 0 {
                attempt = 1;
            }
            if conflicted {
                // Another partition or instance wrote what this batch read.
                // Run again at once after progress; after a rerun that
                // applied nothing, back off (1, 2, 4 … 64 ms) so that two
                // partitions racing for one key do not spin.
                conflicts = if applied > 0 { 0 } else { conflicts + 1 };
                if conflicts > 0 {
                    let pause = Duration::from_millis(1 << conflicts.min(6));
                    if !shared.sleep(pause).await {
                        return Err(Stopped);
                    }
                }
                continue;
            }
            if let Some(stop) = run.stop {
                let record = &batch[start];
                shared.stats.errors.fetch_add(1, Ordering::Relaxed);
                shared.metrics.error(&record.topic);
                tracing::warn!(plugin = %stop.plugin, attempt, delay = ?stop.delay,
                    "{}[{}]@{}: {}; waiting", record.topic, record.partition, record.offset, stop.failure);
                if !shared.sleep(stop.delay).await {
                    return Err(Stopped);
                }
                attempt += 1;
            }
        }
        Ok(ahead)
    }

    /// Puts `record`'s progress into the open transaction: its next offset,
    /// or, for a timer firing, the firing (its timer is removed once the
    /// transaction that carries its outputs has committed).
    fn join(&self, hold: &Hold<'_>, record: &Record) {
        let Some(removal) = crate::router::removal(record) else {
            hold.handled(&self.partition, &self.lease, record.offset + 1);
            return;
        };
        for (plugin, name, due) in timers::removed(&removal) {
            hold.fired(&self.partition, timers::short_key(&plugin, &name, due));
        }
        let (shared, firing, partition) = (
            self.shared.clone(),
            self.firing.clone(),
            self.partition.clone(),
        );
        hold.after_commit(Box::new(move || {
            tokio::spawn(async move {
                timers::remove_fired(&shared, &firing, &partition, removal).await;
            });
        }));
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
                    // Every kind waits and retries (nothing here may lose a
                    // record); the log says which to expect to pass.
                    if why.transient() {
                        tracing::warn!(attempt, "state store: {why}; waiting");
                    } else {
                        tracing::error!(attempt, "state store: {why}; retrying");
                    }
                    *shared.store_failing.lock().expect("store lock") = Some(why.to_string());
                    if !shared.sleep(shared.kafka.backoff(attempt)).await {
                        return None;
                    }
                    attempt += 1;
                }
            }
        }
    }
}

/// A test-only fault: with its variable set, the first batch holding a
/// record whose value contains the variable's text panics, once per
/// process, as a bug in the host would.
struct PanicHook {
    var: &'static str,
    needle: std::sync::OnceLock<Option<String>>,
    fired: std::sync::atomic::AtomicBool,
}

impl PanicHook {
    const fn new(var: &'static str) -> Self {
        PanicHook {
            var,
            needle: std::sync::OnceLock::new(),
            fired: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Panics if `records` hold the needle and the hook has not fired yet.
    fn check(&self, records: &[Record]) {
        let Some(needle) = self
            .needle
            .get_or_init(|| std::env::var(self.var).ok())
            .as_deref()
        else {
            return;
        };
        let hit = records.iter().any(|r| {
            r.value
                .as_deref()
                .is_some_and(|v| String::from_utf8_lossy(v).contains(needle))
        });
        if hit && !self.fired.swap(true, Ordering::SeqCst) {
            panic!("injected by {}", self.var);
        }
    }
}

/// A panic in a plugin worker's job (the pool catches it; the batch runs
/// again).
static PANIC_IN_POOL: PanicHook = PanicHook::new("SWITCHYARD_TEST_PANIC_ON");
/// A panic in the partition task itself (the router stops loudly).
static PANIC_IN_WORKER: PanicHook = PanicHook::new("SWITCHYARD_TEST_PANIC_IN_WORKER");

fn attempt_of(index: usize, first: u32) -> u32 {
    if index == 0 { first } else { 1 }
}
