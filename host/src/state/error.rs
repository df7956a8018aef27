//! The state layer's error at its seams ([`StateStore::commit`] and the
//! group committer), so that a caller can tell a store to wait for from a
//! bug.
//!
//! [`StateStore::commit`]: super::StateStore::commit

use super::Unreachable;
use std::sync::Arc;

/// Why a commit failed; nothing of it was applied.
///
/// It is cheap to clone (the committer hands one failure to every partition
/// of the group).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StateError {
    /// The store did not answer (down, restarting, unreachable): a
    /// transient failure to wait out.
    #[error(transparent)]
    Unreachable(#[from] Unreachable),
    /// The commit lost to other instances' commits on the same rows
    /// `attempts` times in a row (serialization failures): a transient
    /// failure under heavy contention; try again later.
    #[error("state commit conflicted {attempts} times in a row: {last}")]
    Conflict {
        /// How many times the commit was run.
        attempts: u32,
        /// The last conflict, as the store reported it.
        last: String,
    },
    /// The commit thread is gone (the host is stopping, or it panicked).
    #[error("the commit thread stopped")]
    Stopped,
    /// Anything else: a disk error, a statement the store refused, a bug.
    #[error("{0:#}")]
    Other(Arc<anyhow::Error>),
}

impl StateError {
    /// Whether the same commit may succeed later without any change to the
    /// host: the store was unreachable or the commit kept conflicting.
    pub(crate) fn transient(&self) -> bool {
        matches!(
            self,
            StateError::Unreachable(_) | StateError::Conflict { .. }
        )
    }
}

impl From<anyhow::Error> for StateError {
    /// A [`StateError`] or an [`Unreachable`] anywhere in `e`'s chain gives
    /// that kind; anything else is [`StateError::Other`].
    fn from(e: anyhow::Error) -> Self {
        for cause in e.chain() {
            if let Some(known) = cause.downcast_ref::<StateError>() {
                return known.clone();
            }
            if let Some(unreachable) = cause.downcast_ref::<Unreachable>() {
                return StateError::Unreachable(unreachable.clone());
            }
        }
        StateError::Other(Arc::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn a_failure_keeps_its_kind_through_context() {
        let down = anyhow::Error::new(Unreachable::new("connection refused")).context("commit");
        let down = StateError::from(down);
        assert!(matches!(down, StateError::Unreachable(_)), "{down:?}");
        assert!(down.transient());
        assert_eq!(
            down.to_string(),
            "cannot reach PostgreSQL: connection refused"
        );

        let storm = StateError::Conflict {
            attempts: 3,
            last: "could not serialize".into(),
        };
        let again = StateError::from(anyhow::Error::new(storm).context("state commit"));
        assert!(matches!(again, StateError::Conflict { attempts: 3, .. }));

        let bug: anyhow::Result<()> = Err(anyhow::anyhow!("no such table")).context("state commit");
        let bug = StateError::from(bug.unwrap_err());
        assert!(!bug.transient());
        assert_eq!(bug.to_string(), "state commit: no such table");
    }
}
