//! Running a partition's next batch while its last one commits.
//!
//! A partition's cycle is: run a batch on the plugin workers, group-commit
//! its effects, produce its outputs. Run in turn, the plugin workers idle
//! while the commit thread writes and syncs, and the other way round; with
//! few partitions busy their batches fall into step, and the two wait on
//! each other (BENCHMARKS.md, item 27). So while a batch's commit is in
//! flight, the worker takes what is queued next and runs it on a view that
//! reads the committing batch's effects as committed ([`BatchView::after`]).
//!
//! - The batch run ahead is kept only when the commit applied every record
//!   of the batch before it. Then what it read is what the store holds, and
//!   its own commit checks every read again, as any commit does.
//! - When the commit applied fewer (some records conflicted with another
//!   partition or instance, and run again), the run ahead is dropped and the
//!   batch runs again after them: records still run in partition order, each
//!   seeing the state the ones before it wrote.
//! - Nothing is run ahead of a batch that stopped at a record that must
//!   wait, or while timers are due (they fire between batches).
//! - At most one batch a plugin worker is run ahead at once, across every
//!   partition ([`WorkerPool::ahead`](crate::pool::WorkerPool::ahead)):
//!   more would not keep the workers any busier, and each holds its
//!   outcomes until the batch before it commits.
//! - Nothing of a batch run ahead is committed or produced before the batch
//!   before it is; a batch run ahead when the worker stops is dropped, and
//!   its records are delivered again, as queued records are.

use super::{PANIC_IN_POOL, Worker};
use crate::event::Record;
use crate::pool::PoolError;
use crate::router::BatchRun;
use crate::state::BatchView;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

/// A batch to handle: its records, and its run when it ran ahead.
pub(super) struct Batch {
    /// The records, in partition order.
    pub(super) records: Arc<[Record]>,
    /// Its run from the first record, if it ran ahead.
    pub(super) ran: Option<Ran>,
}

impl Batch {
    /// A batch that has not run.
    pub(super) fn new(records: Vec<Record>) -> Self {
        Batch {
            records: records.into(),
            ran: None,
        }
    }
}

/// A batch's run and the view it read through.
pub(super) struct Ran {
    /// What the run did.
    pub(super) run: BatchRun,
    /// The view it read through, which the batch after it reads through.
    pub(super) view: Arc<BatchView>,
    /// When the run started, for the per-record time.
    pub(super) started: Instant,
    /// When it ran ahead, its share of the pool's budget for that, given
    /// back when the batch's turn comes.
    pub(super) ahead: Option<OwnedSemaphorePermit>,
}

/// The worker is stopping: what it holds is dropped, to be delivered again.
#[derive(Debug)]
pub(super) struct Stopped;

impl Worker {
    /// Runs `records[start..]` on the worker pool through `view`.
    pub(super) async fn run_on_pool(
        &self,
        records: Arc<[Record]>,
        start: usize,
        attempt: u32,
        view: Arc<BatchView>,
    ) -> Result<BatchRun, PoolError> {
        let (router, kafka) = (self.shared.router.clone(), self.shared.kafka.clone());
        self.shared
            .pool
            .run(move |instances| {
                PANIC_IN_POOL.check(&records[start..]);
                router.run_batch_in(&records[start..], attempt, &view, instances, &kafka)
            })
            .await
    }

    /// Runs `records[start..]` in its turn, on a view of the store.
    pub(super) async fn run_now(
        &self,
        records: Arc<[Record]>,
        start: usize,
        attempt: u32,
    ) -> Result<Ran, PoolError> {
        let started = Instant::now();
        let view = Arc::new(BatchView::new(self.shared.store.clone()));
        let run = self
            .run_on_pool(records, start, attempt, view.clone())
            .await?;
        Ok(Ran {
            run,
            view,
            started,
            ahead: None,
        })
    }

    /// Takes what is queued into the next batch and runs it after `before`,
    /// whose commit is in flight; `None` when nothing is queued. When a host
    /// bug fails the run, the batch comes back without it, to run again.
    pub(super) async fn run_ahead(
        &self,
        rx: &mut mpsc::UnboundedReceiver<Record>,
        before: &Arc<BatchView>,
    ) -> Result<Option<Batch>, Stopped> {
        let Some(permit) = self.shared.pool.ahead() else {
            return Ok(None);
        };
        let Some(records) = self.collect_ready(rx).await else {
            return Ok(None);
        };
        let mut batch = Batch::new(records);
        let started = Instant::now();
        let view = Arc::new(BatchView::after(self.shared.store.clone(), before.clone()));
        match self
            .run_on_pool(batch.records.clone(), 0, 1, view.clone())
            .await
        {
            Ok(run) => {
                batch.ran = Some(Ran {
                    run,
                    view,
                    started,
                    ahead: Some(permit),
                })
            }
            Err(PoolError::Stopped) => return Err(Stopped),
            Err(PoolError::Panicked(why)) => self.host_panic(&batch.records[0], &why),
        }
        Ok(Some(batch))
    }

    /// Logs a panic in a batch's run starting at `record`: a host bug. The
    /// batch runs again from the same record; the partition waits, it never
    /// skips.
    pub(super) fn host_panic(&self, record: &Record, why: &str) {
        tracing::error!(
            "{}[{}]@{}: {why} (a bug in the host); running the batch again",
            self.partition.0,
            self.partition.1,
            record.offset
        );
    }
}
