//! Group commit: one thread owns the state store's single writer and
//! commits the batches of every partition that is ready in one transaction.
//!
//! A partition worker hands its batch's effects to [`Committer::commit`] and
//! awaits how many of its records were applied (the rest conflicted and run
//! again), or a [`StateError`] that says whether the store is unreachable,
//! the commit kept conflicting, or something else failed; a failed group
//! commit hands the same error to every partition in it. While one transaction is being written and fsync'd, the batches
//! that arrive queue up and go together in the next one, so the fsync is
//! paid once per group however many partitions are busy.

use crate::metrics::Metrics;
use crate::state::{RecordEffects, StateError, StateStore};
use std::sync::Arc;
use std::sync::mpsc;

struct Request {
    effects: Arc<Vec<RecordEffects>>,
    reply: tokio::sync::oneshot::Sender<Result<usize, StateError>>,
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
                            for request in group {
                                let _ = request.reply.send(Err(e.clone()));
                            }
                        }
                    }
                }
            })?;
        Ok(Committer { requests: tx })
    }

    /// Commits one partition's batch with whatever else is ready; returns
    /// how many of its records were applied, or why the commit failed (then
    /// nothing of it was applied): [`StateError::transient`] tells a store to
    /// wait for (unreachable, conflicting) from one that will not get better
    /// by itself; [`StateError::Stopped`] means the commit thread is gone.
    /// The effects are shared, not copied, so a caller that must retry after
    /// a store failure hands the same batch in again.
    pub(crate) async fn commit(
        &self,
        effects: Arc<Vec<RecordEffects>>,
    ) -> Result<usize, StateError> {
        if effects.iter().all(Vec::is_empty) {
            return Ok(effects.len());
        }
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.requests
            .send(Request { effects, reply })
            .map_err(|_| StateError::Stopped)?;
        rx.await.map_err(|_| StateError::Stopped)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{DueTimer, Effect, MemoryStore, StateRead, Unreachable};
    use std::collections::BTreeMap;

    /// A store that cannot be reached.
    struct Down;

    impl StateRead for Down {
        fn get(&self, _: &str, _: &str) -> anyhow::Result<Option<Vec<u8>>> {
            Ok(None)
        }
    }

    impl StateStore for Down {
        fn commit(&self, _: &[&[RecordEffects]]) -> Result<Vec<usize>, StateError> {
            Err(anyhow::Error::new(Unreachable::new("connection refused")).into())
        }
        fn processed(&self, _: &str, _: &str) -> anyhow::Result<Option<Vec<u8>>> {
            Ok(None)
        }
        fn snapshot(&self, _: &str) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
            Ok(BTreeMap::new())
        }
        fn due_timers(&self, _: &(String, i32), _: i64, _: usize) -> anyhow::Result<Vec<DueTimer>> {
            Ok(Vec::new())
        }
        fn next_due(&self, _: &(String, i32)) -> anyhow::Result<Option<i64>> {
            Ok(None)
        }
        fn pending_timers(&self) -> anyhow::Result<BTreeMap<String, (u64, Option<i64>)>> {
            Ok(BTreeMap::new())
        }
    }

    fn batch(id: &str) -> Arc<Vec<RecordEffects>> {
        Arc::new(vec![vec![Effect {
            plugin: "p".into(),
            event_id: id.into(),
            reads: Default::default(),
            writes: [("k".to_string(), Some(id.as_bytes().to_vec()))].into(),
            outputs: Vec::new(),
            timers: Default::default(),
        }]])
    }

    #[tokio::test]
    async fn a_commit_says_how_many_applied_or_why_not() {
        let metrics = Arc::new(Metrics::new("g"));
        let store = Arc::new(MemoryStore::new());
        let committer = Committer::new(store.clone(), metrics.clone()).unwrap();
        assert_eq!(committer.commit(batch("e1")).await.unwrap(), 1);
        // Already processed: applied nothing, and that is no error.
        assert_eq!(committer.commit(batch("e1")).await.unwrap(), 0);
        assert_eq!(store.get("p", "k").unwrap(), Some(b"e1".to_vec()));

        let down = Committer::new(Arc::new(Down), metrics).unwrap();
        let e = down.commit(batch("e2")).await.unwrap_err();
        assert!(matches!(e, StateError::Unreachable(_)), "{e:?}");
        assert!(e.transient());
    }
}
