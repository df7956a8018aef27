//! What a record is to the router before anything runs: excluded, a timer's
//! firing, or a decoded event. [`Router::run_batch`] prepares a whole batch
//! first, so that its processed marks are looked up at once.

use super::{Router, timer};
use crate::envelope::{self, DecodeError};
use crate::event::{Event, Record};

/// A record as the router sees it before running anything.
pub(super) enum Prepared {
    /// On an excluded topic.
    Excluded,
    /// A timer's firing, or why it does not parse.
    Firing(Result<timer::Firing, String>),
    /// An event, or why the record does not decode.
    Event(Result<Event, DecodeError>),
}

impl Router {
    /// What `record` is to the router, before anything runs.
    pub(super) fn prepare(&self, record: &Record) -> Prepared {
        if self.exclude.matches(&record.topic) {
            return Prepared::Excluded;
        }
        if let Some(firing) = timer::firing_of(record) {
            return Prepared::Firing(firing);
        }
        Prepared::Event(envelope::decode(record))
    }
}
