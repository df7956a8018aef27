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

use super::{Pending, Shared, Worker};
use crate::router::firing_record;
use crate::state::{Effect, TimerChange};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often an idle worker looks for due timers; bounds how late a timer
/// fires at light load.
pub(crate) const TIMER_POLL: Duration = Duration::from_millis(250);

/// Timers a worker fired and has not removed yet: (plugin, name, due time).
pub(super) type Firing = Arc<std::sync::Mutex<std::collections::HashSet<(String, String, i64)>>>;

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
    fn due(&self) -> bool {
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
            let due: Vec<_> = {
                let mut firing = self.firing.lock().expect("firing lock");
                due.into_iter()
                    .filter(|d| firing.insert((d.plugin.clone(), d.name.clone(), d.timer.due_ms)))
                    .collect()
            };
            if due.is_empty() {
                // What is due is in flight: wait for the next look rather
                // than wake at a due time already being handled.
                clock.next_due_ms = None;
                return true;
            }
            let firings = due.iter().map(firing_record).collect();
            if !self.handle(firings, acks).await {
                return false;
            }
            // Look again at once: more may be due (those in flight are
            // skipped until their removal commits).
            clock.looked = Instant::now() - TIMER_POLL;
        }
        true
    }
}

/// Commits `removal` (see `router::removal`) once a firing's outputs are
/// safe, waiting out a failing store; gives up only on shutdown (the timer
/// then stays due and fires again, a duplicate, after the restart).
pub(super) async fn remove_fired(shared: &Shared, firing: &Firing, removal: Effect) {
    let keys: Vec<(String, String, i64)> = removal
        .timers
        .iter()
        .filter_map(|(name, change)| match change {
            TimerChange::Fired { due_ms } => Some((removal.plugin.clone(), name.clone(), *due_ms)),
            _ => None,
        })
        .collect();
    let effects = Arc::new(vec![vec![removal]]);
    let mut attempt = 1;
    loop {
        match shared.committer.commit(effects.clone()).await {
            Ok(_) => {
                let mut firing = firing.lock().expect("firing lock");
                for key in &keys {
                    firing.remove(key);
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
