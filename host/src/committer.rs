//! Group commit: one thread owns the state store's single writer and
//! commits the batches of every partition that is ready in one transaction.
//!
//! A partition worker hands its batch's effects to [`Committer::commit`] and
//! awaits how many of its records were applied (the rest conflicted and run
//! again). While one transaction is being written and fsync'd, the batches
//! that arrive queue up and go together in the next one, so the fsync is
//! paid once per group however many partitions are busy.

use crate::metrics::Metrics;
use crate::state::{RecordEffects, StateStore};
use std::sync::Arc;
use std::sync::mpsc;

struct Request {
    effects: Arc<Vec<RecordEffects>>,
    reply: tokio::sync::oneshot::Sender<Result<usize, String>>,
}

/// Commits batches in groups.
pub struct Committer {
    requests: mpsc::Sender<Request>,
}

/// How many batches one transaction carries at most.
const MAX_GROUP: usize = 64;

impl Committer {
    /// Starts the commit thread over `store`, timing each commit in `metrics`.
    pub fn new(store: Arc<dyn StateStore>, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("switchyard-commit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP {
                        match rx.try_recv() {
                            Ok(next) => group.push(next),
                            Err(_) => break,
                        }
                    }
                    let batches: Vec<&[RecordEffects]> =
                        group.iter().map(|r| r.effects.as_slice()).collect();
                    let started = std::time::Instant::now();
                    let committed = store.commit(&batches);
                    metrics.committed(started.elapsed());
                    match committed {
                        Ok(applied) => {
                            for (request, n) in group.into_iter().zip(applied) {
                                let _ = request.reply.send(Ok(n));
                            }
                        }
                        Err(e) => {
                            let why = format!("{e:#}");
                            for request in group {
                                let _ = request.reply.send(Err(why.clone()));
                            }
                        }
                    }
                }
            })?;
        Ok(Committer { requests: tx })
    }

    /// Commits one partition's batch with whatever else is ready; returns
    /// how many of its records were applied, or why the store failed (then
    /// nothing of it was applied).
    /// The effects are shared, not copied, so a caller that must retry after
    /// a store failure hands the same batch in again.
    pub async fn commit(&self, effects: Arc<Vec<RecordEffects>>) -> Result<usize, String> {
        if effects.iter().all(Vec::is_empty) {
            return Ok(effects.len());
        }
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.requests
            .send(Request { effects, reply })
            .map_err(|_| "the commit thread stopped".to_string())?;
        rx.await
            .map_err(|_| "the commit thread stopped".to_string())?
    }
}
