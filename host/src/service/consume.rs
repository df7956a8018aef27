//! Step two: the consumer loop. It only reads records and hands each to its
//! partition's queue; it never waits on a partition.
//!
//! Every second it also starts a worker for each owned partition that has
//! none, so that a partition's timers fire with no record arriving.
//!
//! It ends on `shutdown`, or with an error the process must exit on: the
//! brokers refused the credentials, or a partition worker panicked. A
//! worker that ended any other way ended with its lease (a revoke, a
//! rewind) and is replaced by the next record of its partition; one that
//! panicked may hold records it never acknowledged, and a replacement
//! under the same lease would store offsets past them, so the router stops
//! instead, and the next start resumes from the last committed offsets.

use super::build::Service;
use crate::kafka::txn;
use std::future::Future;

impl Service {
    /// Runs the consumer loop until `shutdown` resolves, or a fatal error.
    pub(super) async fn consume(
        &mut self,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        let mut adopt = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = adopt.tick() => self.adopt_assigned(),
                why = self.source.state().authentication_failed() => {
                    anyhow::bail!(
                        "{}: the Kafka brokers at {} refused the credentials ({why}); fix \
                         `sasl.username` and `sasl.password` (and `sasl.mechanism`, \
                         `security.protocol`) under `[kafka.client]`",
                        self.config.path.display(),
                        self.brokers
                    );
                }
                Some(ended) = self.workers.join_next_with_id() => {
                    match ended {
                        Ok((id, ())) => {
                            self.worker_of.remove(&id);
                        }
                        Err(e) => {
                            let partition = self.worker_of.remove(&e.id());
                            let (topic, part) = partition.unwrap_or_default();
                            anyhow::bail!(
                                "the worker of {topic}[{part}] failed: {e}; stopping, so that no \
                                 offset passes its unacknowledged records (this is a bug in \
                                 switchyard: please report it with the log)"
                            );
                        }
                    }
                }
                Some(rewound) = txn::next_rewind(&mut self.rewinds) => self.rewind(rewound).await,
                next = self.source.next() => {
                    let record = match next {
                        Ok(record) => record,
                        Err(e) => {
                            tracing::warn!("consumer: {e}");
                            continue;
                        }
                    };
                    let key = (record.topic.clone(), record.partition);
                    if self.source.state().rewinding(&key) {
                        // Fetched before the rewind: it comes again from the
                        // committed offset.
                        continue;
                    }
                    self.dispatch(key, record);
                }
            }
        }
    }

    /// Seeks `rewound` back to their committed offsets after an aborted
    /// transaction; their workers already ended with their leases.
    async fn rewind(&mut self, rewound: Vec<crate::kafka::source::Partition>) {
        for p in &rewound {
            self.partitions.remove(p);
        }
        let source = self.source.clone();
        let parts = rewound.clone();
        let result = tokio::task::spawn_blocking(move || source.rewind(&parts))
            .await
            .map_err(anyhow::Error::from)
            .and_then(|rewound| rewound);
        match (result, &self.txn) {
            (Ok(()), _) => tracing::info!(
                "{} partition(s) rewound to their committed offsets",
                rewound.len()
            ),
            (Err(e), Some(txn)) => {
                tracing::warn!("rewinding after an aborted transaction: {e:#}; retrying");
                txn.rewind_later(rewound);
            }
            (Err(e), None) => tracing::error!("rewinding: {e:#}"),
        }
    }
}
