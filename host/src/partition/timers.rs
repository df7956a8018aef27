//! Timers on a partition's worker: between batches, the timers of its
//! partition that are due run as firings through the same batch path as
//! records (see `router/timer.rs`), so they see the state the records
//! before them wrote, and commit, produce and dead-letter like records.
//!
//! The worker asks the store for due timers after each batch, and while
//! idle, at least every [`TIMER_POLL`] (timers set by another instance, or
//! moved here with the partition, are found that way) and at the next due
//! time it knows of. Only the next due ones are read: a million pending
//! timers cost neither memory nor time on the record path.
//!
//! With exactly-once, a due timer whose firing a committed transaction
//! already holds (the partition's offset metadata lists it, see
//! `kafka/txn/fired.rs`: the process stopped between that commit and the
//! removal) is removed without firing again.

use super::{Batch, Pending, Shared, Worker};
use crate::kafka::source::Partition;
use crate::kafka::txn::fired_key;
use crate::router::{firing_id, firing_record, removal};
use crate::state::DueTimer;
use crate::state::{Effect, TimerChange};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often an idle worker looks for due timers; bounds how late a timer
/// fires at light load.
pub(crate) const TIMER_POLL: Duration = Duration::from_millis(250);

/// A timer: (plugin, name, due time).
type TimerKey = (String, String, i64);

/// The timers a worker fired, as its look at the store must see them.
pub(super) type Firing = Arc<std::sync::Mutex<FiringSet>>;

/// Timers a worker fired and has not removed yet, and those removed since
/// its last look at the store.
///
/// A removal commits while a look may be reading the store: that read can
/// still return the timer as due. So a removed timer is skipped until the
/// next look begins ([`Worker::fire_due`] clears `removed` before it reads);
/// without this, a look that read before a removal committed and checked
/// the set after it fired the timer again, a duplicate even under
/// exactly-once.
#[derive(Default)]
pub(super) struct FiringSet {
    in_flight: HashSet<TimerKey>,
    removed: HashSet<TimerKey>,
}

impl FiringSet {
    /// Whether `key` is fired and not yet seen removed by a look.
    fn holds(&self, key: &TimerKey) -> bool {
        self.in_flight.contains(key) || self.removed.contains(key)
    }

    /// A look at the store begins: what was removed before it, its read
    /// no longer returns.
    fn look_begins(&mut self) {
        self.removed.clear();
    }

    /// Marks `key` in flight unless it is held; whether it was not (so
    /// fires now).
    fn start(&mut self, key: TimerKey) -> bool {
        !self.holds(&key) && self.in_flight.insert(key)
    }

    /// `key`'s removal from the store committed.
    fn removal_committed(&mut self, key: TimerKey) {
        self.in_flight.remove(&key);
        self.removed.insert(key);
    }
}

/// How many due timers one batch of firings takes.
const FIRINGS_PER_BATCH: usize = 100;

/// When a worker last looked for due timers, and the next due time it saw.
#[derive(Debug)]
pub(super) struct TimerClock {
    looked: Instant,
    next_due_ms: Option<i64>,
}

impl Default for TimerClock {
    fn default() -> Self {
        TimerClock {
            looked: Instant::now() - TIMER_POLL,
            next_due_ms: None,
        }
    }
}

impl TimerClock {
    /// How long an idle worker may sleep before it looks again.
    pub(super) fn wait(&self) -> Duration {
        let poll = TIMER_POLL.saturating_sub(self.looked.elapsed());
        match self.next_due_ms {
            Some(due) => poll.min(Duration::from_millis(
                u64::try_from(due - now_ms()).unwrap_or(0),
            )),
            None => poll,
        }
    }

    /// Whether it is time to ask the store.
    pub(super) fn due(&self) -> bool {
        self.looked.elapsed() >= TIMER_POLL || self.next_due_ms.is_some_and(|d| d <= now_ms())
    }
}

/// The wall clock, in milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl Worker {
    /// Fires the partition's due timers, a batch at a time; false when
    /// shutdown interrupted it. A store that fails is logged and asked
    /// again at the next look.
    pub(super) async fn fire_due(
        &self,
        clock: &mut TimerClock,
        acks: &mpsc::Sender<Pending>,
    ) -> bool {
        while clock.due() && self.lease.live() && !self.shared.stopping() {
            // Removals committed from here on may be missed by this read.
            self.firing.lock().expect("firing lock").look_begins();
            let store = self.shared.store.clone();
            let partition = self.partition.clone();
            let now = now_ms();
            let looked = tokio::task::spawn_blocking(move || {
                let due = store.due_timers(&partition, now, FIRINGS_PER_BATCH)?;
                let next = store.next_due(&partition)?;
                anyhow::Ok((due, next))
            })
            .await;
            clock.looked = Instant::now();
            let due = match looked {
                Ok(Ok((due, next))) => {
                    clock.next_due_ms = next;
                    due
                }
                Ok(Err(e)) => {
                    tracing::warn!(topic = %self.partition.0, partition = self.partition.1,
                        "looking for due timers: {e:#}");
                    return true;
                }
                Err(e) => {
                    tracing::warn!("looking for due timers: {e}");
                    return true;
                }
            };
            let due = self.unfired(due);
            if due.is_empty() {
                // What is due is in flight, or may not fire yet: wait for
                // the next look rather than wake at a due time already
                // being handled.
                clock.next_due_ms = None;
                return true;
            }
            let firings = due.iter().map(firing_record).collect();
            if self.handle(Batch::new(firings), None, acks).await.is_err() {
                return false;
            }
            // Look again at once: more may be due (those in flight are
            // skipped until their removal commits).
            clock.looked = Instant::now() - TIMER_POLL;
        }
        true
    }
}

impl Worker {
    /// Of the due timers `due` (the first ones, by due time), those to fire
    /// now, marked in flight: not those already in flight and, with
    /// exactly-once, not those a committed transaction holds (they are
    /// removed instead), and no more than the transaction may list.
    fn unfired(&self, due: Vec<DueTimer>) -> Vec<DueTimer> {
        let saw_all = due.len() < FIRINGS_PER_BATCH;
        let mut firing = self.firing.lock().expect("firing lock");
        let Some(txn) = &self.shared.txn else {
            return due
                .into_iter()
                .filter(|d| firing.start((d.plugin.clone(), d.name.clone(), d.timer.due_ms)))
                .collect();
        };
        let committed = txn.fired_committed(&self.partition);
        if saw_all && !committed.is_empty() {
            // Listed firings neither due nor in flight are gone already.
            let live: HashSet<String> = due
                .iter()
                .map(|d| short_key(&d.plugin, &d.name, d.timer.due_ms))
                .chain(
                    firing
                        .in_flight
                        .iter()
                        .chain(&firing.removed)
                        .map(|(p, n, d)| short_key(p, n, *d)),
                )
                .collect();
            let gone: Vec<String> = committed.difference(&live).cloned().collect();
            txn.forget_fired(&self.partition, &gone);
        }
        let mut room = txn.fired_room(&self.partition);
        let mut fire = Vec::new();
        for d in due {
            let key = (d.plugin.clone(), d.name.clone(), d.timer.due_ms);
            if firing.holds(&key) {
                continue;
            }
            if committed.contains(&short_key(&key.0, &key.1, key.2)) {
                // Its outputs committed before the process stopped: only
                // its removal is left to do.
                firing.in_flight.insert(key);
                if let Some(removal) = removal(&firing_record(&d)) {
                    let (shared, set, partition) = (
                        self.shared.clone(),
                        self.firing.clone(),
                        self.partition.clone(),
                    );
                    tokio::spawn(async move {
                        remove_fired(&shared, &set, &partition, removal).await;
                    });
                }
            } else if room > 0 {
                room -= 1;
                firing.in_flight.insert(key);
                fire.push(d);
            }
        }
        fire
    }
}

/// A firing's key in the transaction's offset metadata.
pub(super) fn short_key(plugin: &str, name: &str, due_ms: i64) -> String {
    fired_key(&firing_id(plugin, name, due_ms))
}

/// The timers a removal effect removes.
pub(super) fn removed(removal: &Effect) -> Vec<TimerKey> {
    removal
        .timers
        .iter()
        .filter_map(|(name, change)| match change {
            TimerChange::Fired { due_ms } => Some((removal.plugin.clone(), name.clone(), *due_ms)),
            _ => None,
        })
        .collect()
}

/// Commits `removal` (see `router::removal`) once a firing's outputs are
/// safe, waiting out a failing store; gives up only on shutdown (the timer
/// then stays due and fires again after the restart: at-least-once, or,
/// with exactly-once, only its removal if its outputs had committed).
pub(super) async fn remove_fired(
    shared: &Shared,
    firing: &Firing,
    partition: &Partition,
    removal: Effect,
) {
    let keys = removed(&removal);
    let effects = Arc::new(vec![vec![removal]]);
    let mut attempt = 1;
    loop {
        match shared.committer.commit(effects.clone()).await {
            Ok(_) => {
                if let Some(txn) = &shared.txn {
                    let short: Vec<String> =
                        keys.iter().map(|(p, n, d)| short_key(p, n, *d)).collect();
                    txn.forget_fired(partition, &short);
                }
                let mut firing = firing.lock().expect("firing lock");
                for key in keys {
                    firing.removal_committed(key);
                }
                return;
            }
            Err(e) => {
                tracing::warn!(attempt, "removing a fired timer: {e}; retrying");
                if !shared.sleep(shared.kafka.backoff(attempt)).await {
                    return;
                }
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FiringSet;

    #[test]
    fn a_removal_during_a_look_does_not_fire_the_timer_again() {
        let key = || ("p".to_string(), "t".to_string(), 1_000);
        let mut set = FiringSet::default();
        assert!(set.start(key()), "due and not in flight: fires");
        assert!(!set.start(key()), "in flight: does not fire again");
        // A look begins and its read still sees the timer due; then the
        // removal commits, before the look checks the set.
        set.look_begins();
        set.removal_committed(key());
        assert!(
            !set.start(key()),
            "removed during the look: its stale read must not fire it"
        );
        // The next look's read no longer sees the removed timer; one set
        // again under the same name and due time fires.
        set.look_begins();
        assert!(set.start(key()));
    }
}
