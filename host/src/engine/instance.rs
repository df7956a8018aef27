//! An instance of one plugin version that serves call after call, and the
//! inputs and outputs of one call.

use super::context::CallCtx;
use super::{EPOCH_TICK, Fault, Limits, RECYCLE_AFTER, classify};
use crate::bindings::Handler;
use crate::event::{Emit, Event, HandlerError};
use crate::state::{Reads, StateRead, Writes};
use serde_json::{Map, Value};
use std::sync::Arc;

/// What one successful call (the handler returned) produced.
#[derive(Debug)]
pub struct CallOutput {
    /// What the handler returned.
    pub result: Result<Vec<Emit>, HandlerError>,
    /// The state writes it staged; apply them only if `result` is `Ok`.
    pub writes: Writes,
    /// The committed values it read, to check at commit time.
    pub reads: Reads,
}

/// The inputs of one call besides the event.
pub struct CallInput<'a> {
    /// The state the plugin reads (committed state, or a batch's view of it).
    pub state: &'a Arc<dyn StateRead>,
    /// The plugin's config object.
    pub config: &'a Arc<Map<String, Value>>,
    /// The limits for this call.
    pub limits: Limits,
}

/// An instance of one plugin version that serves call after call.
///
/// Its linear memory persists between calls; everything else a call can see
/// is reset first (see `context`). Drop it after any [`Fault`]: a trap can
/// leave the guest's memory inconsistent.
pub struct Instance {
    pub(super) store: wasmtime::Store<CallCtx>,
    pub(super) handler: Handler,
    pub(super) hash: String,
    pub(super) calls: u64,
}

impl Instance {
    /// The content hash of the version it runs.
    pub(crate) fn hash(&self) -> &str {
        &self.hash
    }

    /// Whether it has served its share of calls and should be replaced.
    pub(crate) fn worn_out(&self) -> bool {
        self.calls >= RECYCLE_AFTER
    }

    /// Runs the handler on `event`.
    pub fn call(&mut self, event: &Event, input: CallInput<'_>) -> Result<CallOutput, Fault> {
        self.calls += 1;
        self.store.data_mut().begin(
            &event.id,
            &event.time,
            input.state.clone(),
            input.config.clone(),
            input.limits,
        );
        let ticks = input
            .limits
            .timeout
            .as_nanos()
            .div_ceil(EPOCH_TICK.as_nanos())
            .max(1);
        self.store
            .set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        let wit_event = event.into();
        let outcome = self.handler.call_handle(&mut self.store, &wit_event);
        let ctx = self.store.data_mut();
        ctx.log_output();
        match outcome {
            Err(e) => Err(classify(
                &e,
                ctx.limiter.exceeded,
                ctx.slept_past_deadline,
                input.limits,
                &ctx.call_stderr(),
            )),
            Ok(_) if ctx.state_error.is_some() => {
                Err(Fault::Host(ctx.state_error.take().unwrap_or_default()))
            }
            Ok(result) => {
                let result: Result<Vec<crate::event::Emit>, _> = result
                    .map(|emits| emits.into_iter().map(Into::into).collect())
                    .map_err(Into::into);
                // The emits were copied out of the guest into the host: they
                // count against the same budget as staged state and logs.
                if let Ok(emits) = &result
                    && ctx.charge(emits.iter().map(emit_bytes).sum()).is_err()
                {
                    return Err(Fault::Memory(input.limits.memory_bytes));
                }
                Ok(CallOutput {
                    result,
                    writes: std::mem::take(&mut ctx.staged),
                    reads: std::mem::take(&mut ctx.reads),
                })
            }
        }
    }
}

/// The bytes an emit holds in the host.
fn emit_bytes(emit: &crate::event::Emit) -> usize {
    emit.ty.len()
        + emit.data.len()
        + emit.key.as_ref().map_or(0, String::len)
        + emit.topic.as_ref().map_or(0, String::len)
        + emit
            .headers
            .iter()
            .map(|h| h.key.len() + h.value.len())
            .sum::<usize>()
}
