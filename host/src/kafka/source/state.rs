//! What the consumer's callbacks and the router share: partition leases,
//! whether the brokers are down, reset and rewound partitions, the commit
//! lock, and refused credentials.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A topic and partition.
pub type Partition = (String, i32);

/// The right to store offsets for one partition, ended by its revocation.
#[derive(Debug, Clone)]
pub struct Lease(pub(super) Arc<AtomicBool>);

impl Lease {
    /// A live lease on a partition that no consumer assigned: for running a
    /// partition worker in-process, with no broker (tests).
    pub fn detached() -> Self {
        Lease(Arc::new(AtomicBool::new(true)))
    }

    /// Whether the partition is still assigned under this lease.
    pub fn live(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Shared between the consumer's callbacks and the router.
#[derive(Default)]
pub struct SourceState {
    pub(super) leases: Mutex<HashMap<Partition, Lease>>,
    /// The partitions assigned to this instance, kept by the rebalance
    /// callbacks. Not the leases' keys: a lease is taken at a partition's
    /// first record and ended early by an aborted transaction.
    pub(super) assigned: Mutex<BTreeSet<Partition>>,
    pub(super) broker_down: AtomicBool,
    /// Partitions whose position was reset after an out-of-range fetch, with
    /// the offset the consumer wanted.
    pub(super) resets: Mutex<HashMap<Partition, i64>>,
    /// Held while a transaction commits; a revoke takes it before it ends
    /// the revoked partitions' leases.
    pub(super) commit_lock: Mutex<()>,
    /// Set when the brokers refused the client's credentials, with why.
    pub(super) auth_failed: Mutex<Option<String>>,
    pub(super) auth_notify: tokio::sync::Notify,
    /// Partitions being moved back to their committed offsets: their
    /// records are dropped until [`Source::rewind`](super::Source::rewind) has sought them.
    pub(super) rewinding: Mutex<HashSet<Partition>>,
    pub(super) any_rewinding: AtomicBool,
}

impl SourceState {
    /// Resolves with librdkafka's words once the brokers refuse this
    /// client's credentials (SASL): a config error, not an outage.
    pub(crate) async fn authentication_failed(&self) -> String {
        loop {
            let notified = self.auth_notify.notified();
            if let Some(why) = self.auth_failed.lock().expect("auth lock").clone() {
                return why;
            }
            notified.await;
        }
    }

    /// Taken while a transaction's offsets are sent and committed: no
    /// lease ends meanwhile.
    pub(crate) fn commit_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.commit_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends every lease (their workers stop and drop what they queued) and
    /// marks the partitions for [`Source::rewind`](super::Source::rewind); returns them.
    pub(crate) fn end_all_leases(&self) -> Vec<Partition> {
        let mut leases = self.leases.lock().expect("lease lock");
        let mut rewinding = self.rewinding.lock().expect("rewind lock");
        let ended: Vec<Partition> = leases.keys().cloned().collect();
        for (partition, lease) in leases.drain() {
            lease.0.store(false, Ordering::Release);
            rewinding.insert(partition);
        }
        self.any_rewinding.store(true, Ordering::Release);
        ended
    }

    /// Whether `partition`'s records are to be dropped until it is rewound.
    pub(crate) fn rewinding(&self, partition: &Partition) -> bool {
        self.any_rewinding.load(Ordering::Acquire)
            && self
                .rewinding
                .lock()
                .expect("rewind lock")
                .contains(partition)
    }

    /// The partitions this instance owns in its consumer group, sorted by
    /// topic, then partition.
    pub(crate) fn owned(&self) -> Vec<Partition> {
        self.assigned
            .lock()
            .expect("assignment lock")
            .iter()
            .cloned()
            .collect()
    }

    /// Whether the client last reported every broker down.
    pub(crate) fn broker_down(&self) -> bool {
        self.broker_down.load(Ordering::Relaxed)
    }
}
