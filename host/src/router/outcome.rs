//! What the per-record path hands back: each plugin call's result, each
//! record's outcome, and a batch's run.

use super::Failure;
use crate::envelope::DecodeError;
use crate::event::OutRecord;
use crate::registry::Plugin;
use crate::state::{Effect, RecordEffects};
use std::sync::Arc;
use std::time::Duration;

/// What one plugin did with one event.
#[derive(Debug)]
pub(crate) struct PluginCall {
    /// The plugin.
    pub(crate) plugin: Arc<Plugin>,
    /// The version label it ran on.
    pub(crate) version: String,
    /// The records to produce, or why there are none.
    pub(crate) result: Result<Vec<OutRecord>, Failure>,
    /// The plugin had already processed this event id; nothing ran and
    /// `result` holds the records it produced then.
    pub(crate) duplicate: bool,
    /// What it did to state, to commit (none for duplicates and failures).
    pub(crate) effect: Option<Effect>,
    /// How long the call took.
    pub(crate) took: Duration,
}

/// What became of one record.
#[derive(Debug)]
pub(crate) enum RecordOutcome {
    /// Not for the router: an excluded topic, or a record that does not
    /// decode on a topic no plugin could want. Counted, not dead-lettered.
    Skipped(String),
    /// It does not decode, on a topic a plugin may consume: dead-letter it.
    Undecodable(DecodeError),
    /// Decoded and handed to every subscriber.
    Routed {
        /// The event's type.
        ty: String,
        /// The event's id.
        id: String,
        /// One entry per subscribed plugin, in config order.
        calls: Vec<PluginCall>,
    },
}

impl RecordOutcome {
    /// The state effects of this record, in plugin order.
    pub(crate) fn effect_refs(&self) -> impl Iterator<Item = &Effect> {
        let calls: &[PluginCall] = match self {
            RecordOutcome::Routed { calls, .. } => calls,
            _ => &[],
        };
        calls.iter().filter_map(|c| c.effect.as_ref())
    }

    /// The state effects to commit for this record.
    pub(crate) fn effects(&self) -> RecordEffects {
        self.effect_refs().cloned().collect()
    }

    /// The state effects to commit for this record, moved out: for a
    /// caller that needs the outcome afterwards only for its records.
    pub(crate) fn take_effects(&mut self) -> RecordEffects {
        match self {
            RecordOutcome::Routed { calls, .. } => {
                calls.iter_mut().filter_map(|c| c.effect.take()).collect()
            }
            _ => Vec::new(),
        }
    }
}

/// A record that stopped its batch: it must wait and run again.
#[derive(Debug)]
pub(crate) struct Stop {
    /// The plugin that failed.
    pub(crate) plugin: String,
    /// Why.
    pub(crate) failure: Failure,
    /// How long to wait.
    pub(crate) delay: Duration,
}

/// What [`Router::run_batch`] did.
#[derive(Debug)]
pub(crate) struct BatchRun {
    /// The outcomes of the records that completed, from the first, in order.
    pub(crate) done: Vec<RecordOutcome>,
    /// Why the record after them must wait, if one must.
    pub(crate) stop: Option<Stop>,
}
