//! Why a plugin did not handle an event, and the pure retry policy that
//! decides what happens next.

use crate::config::KafkaConfig;
use crate::engine::Fault;
use crate::event::HandlerError;
use crate::state::StateError;
use std::time::Duration;

/// Why a plugin did not handle an event.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum Failure {
    /// The handler returned an error.
    #[error("{0}")]
    Handler(HandlerError),
    /// The call trapped, timed out or ran out of memory, or the host failed.
    #[error("{0}")]
    Fault(Fault),
    /// The plugin emitted a type its config does not allow.
    #[error("forbidden: emitted `{0}`, which its `emits` does not allow")]
    Forbidden(String),
    /// The plugin emitted something malformed, oversized or to a bad topic.
    #[error("invalid emit: {0}")]
    InvalidEmit(String),
    /// An emit's data does not match the plugin's schema for its type.
    #[error("schema: {0}")]
    Schema(String),
    /// The record's key is not the value of the data field the plugin's
    /// inputs are keyed by (`input_key_field`).
    #[error("key: {0}")]
    Key(String),
    /// The event already went through too many routing hops.
    #[error("loop: the event has gone through {0} routing hops; refusing to route it again")]
    Loop(u32),
    /// The state store failed (unreachable, or a bug: [`StateError`] says
    /// which).
    #[error("host: {0}")]
    State(StateError),
    /// The plugin is paused by an operator.
    #[error("paused")]
    Paused,
}

impl Failure {
    /// The error class for logs, dead-letter headers and metrics.
    pub(crate) fn class(&self) -> &'static str {
        match self {
            Failure::Handler(HandlerError::Retry(_)) => "retry",
            Failure::Handler(HandlerError::Reject(_)) => "reject",
            Failure::Fault(f) => f.class(),
            Failure::Forbidden(_) => "forbidden",
            Failure::InvalidEmit(_) => "invalid-emit",
            Failure::Schema(_) => "schema",
            Failure::Key(_) => "key",
            Failure::Loop(_) => "loop",
            Failure::State(_) => "host",
            Failure::Paused => "paused",
        }
    }
}

/// What to do after a failure: the pure retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Dead-letter the record for this plugin and move on.
    DeadLetter,
    /// Run the record again after this delay (the partition waits).
    RetryAfter(Duration),
}

/// The retry policy: `retry` from the handler backs off up to
/// `max_retries`, then dead-letters; a paused plugin, a failing store or a
/// busy host wait and retry without limit (they say nothing about the
/// event); everything else is permanent and dead-letters at once.
pub(crate) fn next_step(failure: &Failure, attempt: u32, kafka: &KafkaConfig) -> Next {
    match failure {
        Failure::Handler(HandlerError::Retry(_)) if attempt <= kafka.max_retries => {
            Next::RetryAfter(kafka.backoff(attempt))
        }
        Failure::Paused => Next::RetryAfter(Duration::from_millis(100)),
        Failure::State(_) => Next::RetryAfter(kafka.backoff(attempt)),
        Failure::Fault(f) if f.is_transient() => Next::RetryAfter(kafka.backoff(attempt)),
        _ => Next::DeadLetter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_policy() {
        let kafka = KafkaConfig {
            max_retries: 2,
            ..KafkaConfig::default()
        };
        let retry = Failure::Handler(HandlerError::Retry("later".into()));
        assert!(matches!(next_step(&retry, 2, &kafka), Next::RetryAfter(_)));
        assert_eq!(next_step(&retry, 3, &kafka), Next::DeadLetter);
        let store = Failure::State(StateError::Unreachable(crate::state::Unreachable::new(
            "connection refused",
        )));
        assert!(matches!(
            next_step(&store, 1000, &kafka),
            Next::RetryAfter(_)
        ));
        let trap = Failure::Fault(Fault::Trap("boom".into()));
        assert_eq!(next_step(&trap, 1, &kafka), Next::DeadLetter);
    }
}
