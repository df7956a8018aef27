//! Durable timers: what a plugin call sets, replaces, cancels or fires, and
//! how a commit folds those changes into one change per timer.
//!
//! A timer is keyed by (plugin, name): one per name per plugin. A call's
//! changes travel in its [`Effect`](super::Effect) ([`TimerChanges`]) and
//! are applied like its writes, in the committing transaction, exactly when
//! its record passes the commit check. The check does not read timers (they
//! cause no conflicts); it only folds the changes of the passing records in
//! commit order into one [`TimerOp`] per timer, which the store applies.
//!
//! Each timer belongs to an input partition (that of the event that last set
//! it), and the stores answer "what is due on this partition" with a range
//! scan over an index by (topic, partition, due time), so that the number of
//! pending timers costs neither memory nor time on the record path.

use std::collections::BTreeMap;

/// A timer as set: when it is due and what it carries, and where it belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    /// When it is due, in milliseconds since the Unix epoch.
    pub due_ms: i64,
    /// What the plugin asked it to carry.
    pub payload: Vec<u8>,
    /// The topic of the input partition of the event that set it: it fires
    /// on whichever instance owns that partition.
    pub topic: String,
    /// The partition, in [`Timer::topic`], of the event that set it.
    pub partition: i32,
    /// Opaque bytes the router keeps with it (the setting event's envelope
    /// style and correlation id), returned as stored.
    pub context: Vec<u8>,
}

/// What one call does to one of its plugin's timers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerChange {
    /// Set (or replace) the timer.
    Set(Timer),
    /// Remove it, if set.
    Cancel,
    /// It fired: remove it only if it is still due at `due_ms` (a timer set
    /// again with another due time in the meantime stays).
    Fired {
        /// The due time it fired for.
        due_ms: i64,
    },
}

/// A call's timer changes, by timer name (the last change to a name wins).
pub type TimerChanges = BTreeMap<String, TimerChange>;

/// A timer that is due, as the store hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTimer {
    /// The plugin that set it.
    pub plugin: String,
    /// Its name, unique within the plugin.
    pub name: String,
    /// The timer as set.
    pub timer: Timer,
}

/// What a commit does to one timer: the changes of its passing records to
/// that timer, folded in commit order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TimerOp<'a> {
    /// Set (or replace) it.
    Set(&'a Timer),
    /// Remove it, if set.
    Cancel,
    /// Remove it if its committed due time is one of these (each a firing
    /// with no set of the timer in the commit before it).
    Fired(Vec<i64>),
}

impl<'a> TimerOp<'a> {
    /// The op of a single change.
    pub(crate) fn of(change: &'a TimerChange) -> Self {
        match change {
            TimerChange::Set(timer) => TimerOp::Set(timer),
            TimerChange::Cancel => TimerOp::Cancel,
            TimerChange::Fired { due_ms } => TimerOp::Fired(vec![*due_ms]),
        }
    }

    /// This op followed by `change`, as one op.
    pub(crate) fn then(self, change: &'a TimerChange) -> Self {
        match (self, change) {
            (_, TimerChange::Set(_) | TimerChange::Cancel) => TimerOp::of(change),
            // Firing a timer set earlier in the commit: decided here.
            (TimerOp::Set(timer), TimerChange::Fired { due_ms }) => {
                if timer.due_ms == *due_ms {
                    TimerOp::Cancel
                } else {
                    TimerOp::Set(timer)
                }
            }
            (TimerOp::Cancel, TimerChange::Fired { .. }) => TimerOp::Cancel,
            (TimerOp::Fired(mut dues), TimerChange::Fired { due_ms }) => {
                dues.push(*due_ms);
                TimerOp::Fired(dues)
            }
        }
    }

    /// Whether the op removes a committed timer due at `due_ms` (a set
    /// replaces it instead).
    pub(crate) fn removes(&self, due_ms: i64) -> bool {
        match self {
            TimerOp::Set(_) => false,
            TimerOp::Cancel => true,
            TimerOp::Fired(dues) => dues.contains(&due_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(due_ms: i64) -> TimerChange {
        TimerChange::Set(Timer {
            due_ms,
            payload: Vec::new(),
            topic: "t".into(),
            partition: 0,
            context: Vec::new(),
        })
    }

    #[test]
    fn changes_fold_in_order() {
        let (s5, s7) = (set(5), set(7));
        let (fired5, fired6) = (
            TimerChange::Fired { due_ms: 5 },
            TimerChange::Fired { due_ms: 6 },
        );
        let TimerChange::Set(t7) = &s7 else {
            unreachable!()
        };
        // A firing of what the commit set: removed only if it matches.
        assert_eq!(TimerOp::of(&s5).then(&fired5), TimerOp::Cancel);
        assert_eq!(TimerOp::of(&s7).then(&fired5), TimerOp::Set(t7));
        // The last set or cancel wins.
        assert_eq!(TimerOp::of(&fired5).then(&s7), TimerOp::Set(t7));
        assert_eq!(TimerOp::of(&s5).then(&TimerChange::Cancel), TimerOp::Cancel);
        assert_eq!(
            TimerOp::of(&TimerChange::Cancel).then(&fired5),
            TimerOp::Cancel
        );
        // Two firings without a set between: either due time removes it.
        let both = TimerOp::of(&fired5).then(&fired6);
        assert!(both.removes(5) && both.removes(6) && !both.removes(7));
        assert!(!TimerOp::Set(t7).removes(7));
    }
}
