//! The shadow call beside a live one: the candidate runs on the same event
//! and state, and how the two differ is recorded (see [`crate::shadow`]).

use super::{Call, Failure, Ran, Router};
use crate::event::{Event, TimerCall};
use crate::pool::Instances;
use crate::state::{BatchView, StateRead};
use std::sync::Arc;

impl Router {
    /// Runs `shadow` on the event the live call (`live`, which returned
    /// `result`) just ran on, with the same state, and records how the two
    /// differ; see [`crate::shadow`].
    #[allow(clippy::too_many_arguments)]
    pub(super) fn shadow(
        &self,
        shadow: &crate::shadow::Shadow,
        live: &Call<'_>,
        event: &Event,
        timer: Option<&TimerCall>,
        view: &Arc<BatchView>,
        instances: &mut Instances,
        result: &Result<Ran, Failure>,
        sample: bool,
    ) {
        use crate::shadow::compare::{Observed, compare, render};
        if matches!(result, Err(Failure::State(_))) || !shadow.first_time(&event.id) {
            // The live call did not get to run, or this is a rerun.
            return;
        }
        if !sample {
            shadow.skip();
            return;
        }
        let slot = format!("{}#shadow", live.spec.name);
        let candidate = Call {
            version: &shadow.version,
            slot: &slot,
            ..*live
        };
        let state: Arc<dyn StateRead> = match result {
            Ok(ran) => Arc::new(crate::shadow::Pinned {
                plugin: live.spec.name.clone(),
                reads: ran.reads.clone(),
                under: view.clone(),
            }),
            Err(_) => view.clone(),
        };
        let theirs = self.invoke(&candidate, event, timer, state, instances);
        if let (Ok(a), Ok(b)) = (result, &theirs)
            && a.records == b.records
            && a.writes == b.writes
            && a.timers == b.timers
        {
            // The same bytes: equal, without reading them as JSON.
            shadow.record(None, false);
            return;
        }
        let observe = |r: &Result<Ran, Failure>| match r {
            Ok(ran) => Observed::of(&ran.records, &ran.writes, &ran.timers),
            Err(failure) => Observed::failed(failure.to_string()),
        };
        let differences = compare(&observe(result), &observe(&theirs));
        let diff = (!differences.is_empty()).then(|| crate::shadow::ShadowDiff {
            event_id: event.id.clone(),
            event_type: event.ty.clone(),
            at: format!("{}[{}]@{}", event.topic, event.partition, event.offset),
            live: live.label.to_string(),
            text: render(&differences),
            differences,
        });
        shadow.record(diff, theirs.is_err());
    }
}
