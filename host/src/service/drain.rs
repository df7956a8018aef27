//! Step three: drain and close, all within `kafka.drain_timeout_ms`.
//!
//! Stop reading; each worker finishes the batch it started, drops what it
//! had not started, and stores the offsets that were acknowledged. Workers
//! still running at the deadline are aborted (their unacknowledged records
//! are redelivered after a restart, byte-identical from the outbox); one
//! that panicked is logged as the bug it is. Then the last transaction
//! commits, one synchronous offset commit, a producer flush, and the
//! clients close on a blocking thread, so a dead broker cannot hold the
//! exit.

use super::build::Service;
use std::time::{Duration, Instant};

impl Service {
    /// Drains the workers, commits, flushes and closes; never fails and
    /// never waits past the drain timeout (plus one second to close).
    pub(super) async fn drain(self) {
        let Service {
            config,
            source,
            sink,
            txn,
            shared,
            pool,
            partitions,
            mut workers,
            stop_workers,
            stop_txn,
            txn_task,
            background,
            stop_admin,
            admin_task,
            ..
        } = self;
        let deadline = Instant::now() + Duration::from_millis(config.kafka.drain_timeout_ms);
        tracing::info!("draining {} partition worker(s)", partitions.len());
        let _ = stop_workers.send(true);
        drop(partitions);
        let drained = tokio::time::timeout_at(deadline.into(), async {
            while let Some(ended) = workers.join_next().await {
                if let Err(e) = ended
                    && e.is_panic()
                {
                    tracing::error!("a partition worker panicked while draining: {e}");
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "drain timed out; aborting {} worker(s); their unfinished records will be redelivered",
                workers.len()
            );
            workers.abort_all();
            while workers.join_next().await.is_some() {}
        }
        let _ = stop_txn.send(true);
        if let Some(task) = txn_task {
            let _ = task.await;
        }
        if let Some(txn) = &txn
            && tokio::time::timeout_at(deadline.into(), txn.commit())
                .await
                .is_err()
        {
            tracing::warn!(
                "the last transaction did not commit in time; its records will be redelivered"
            );
        }
        drop(txn);
        for task in background {
            task.abort();
            let _ = task.await;
        }
        pool.stop();
        // The consumer and producer close when their last reference goes, which
        // must be in the blocking task below, after the final commit.
        drop(shared);
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        let closing = tokio::task::spawn_blocking(move || {
            if let Err(e) = source.commit() {
                tracing::warn!("final offset commit: {e:#}");
            }
            sink.flush(left);
            // Leaving the group and closing the clients can block while the
            // broker is gone; it runs here so that it cannot hold the exit.
            drop(source);
            drop(sink);
        });
        if tokio::time::timeout(left, closing).await.is_err() {
            tracing::warn!("the Kafka clients did not close in time; exiting anyway");
        }
        if let Some(stop) = stop_admin {
            let _ = stop.send(());
        }
        if let Some(task) = admin_task {
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
        tracing::info!("router stopped");
    }
}
