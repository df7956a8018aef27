//! An instance of one plugin version that serves call after call, and the
//! inputs and outputs of one call.

use super::context::CallCtx;
use super::{EPOCH_TICK, Fault, Limits, RECYCLE_AFTER, classify};
use crate::bindings::{v1, v2};
use crate::event::{Emit, Event, HandlerError, TimerCall};
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
    /// The timer changes it staged; apply them only if `result` is `Ok`.
    pub timers: StagedTimers,
}

/// A call's staged timer changes by name: `Some((due_ms, payload))` sets
/// (or replaces) the timer, `None` cancels it. The last change to a name
/// wins.
pub type StagedTimers = std::collections::BTreeMap<String, Option<(i64, Vec<u8>)>>;

/// An instance's exports, in the contract version its component targets.
pub(super) enum Bound {
    /// `switchyard:plugin@0.1.0`: `handle` only; it never sets timers.
    V1(v1::Handler),
    /// `switchyard:plugin@0.2.0`: `handle` and `on-timer`.
    V2(v2::Handler),
}

/// What a call runs.
enum Entry<'a> {
    Handle(&'a Event),
    Timer(&'a TimerCall),
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
    pub(super) handler: Bound,
    pub(super) hash: String,
    pub(super) calls: u64,
    /// The last event passed to a 0.2.0 `handle`, its buffers reused.
    pub(super) event_buf: Option<v2::switchyard::plugin::types::Event>,
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
        self.run(Entry::Handle(event), &event.id, &event.time, input)
    }

    /// Runs `on-timer` for a timer that came due; `id` is the firing's
    /// event id, and the call's time is the due time. A 0.1.0 plugin has no
    /// `on-timer` (and sets no timers): it returns no emits.
    pub fn call_timer(
        &mut self,
        timer: &TimerCall,
        id: &str,
        input: CallInput<'_>,
    ) -> Result<CallOutput, Fault> {
        self.run(Entry::Timer(timer), id, &timer.due, input)
    }

    fn run(
        &mut self,
        entry: Entry<'_>,
        id: &str,
        time: &str,
        input: CallInput<'_>,
    ) -> Result<CallOutput, Fault> {
        self.calls += 1;
        self.store.data_mut().begin(
            id,
            time,
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
        let outcome: wasmtime::Result<Result<Vec<Emit>, HandlerError>> =
            match (&self.handler, entry) {
                (Bound::V2(h), Entry::Handle(event)) => {
                    let buf = match &mut self.event_buf {
                        Some(buf) => {
                            crate::bindings::refill(buf, event);
                            buf
                        }
                        none => none.insert(event.into()),
                    };
                    h.call_handle(&mut self.store, buf)
                        .map(|r| r.map_err(Into::into).map(emits))
                }
                (Bound::V2(h), Entry::Timer(timer)) => h
                    .call_on_timer(&mut self.store, &timer.into())
                    .map(|r| r.map_err(Into::into).map(emits)),
                (Bound::V1(h), Entry::Handle(event)) => h
                    .call_handle(&mut self.store, &event.into())
                    .map(|r| r.map_err(Into::into).map(emits)),
                (Bound::V1(_), Entry::Timer(_)) => Ok(Ok(Vec::new())),
            };
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
                    timers: std::mem::take(&mut ctx.timers),
                })
            }
        }
    }
}

/// The host's emits from either version's.
fn emits<E: Into<Emit>>(emits: Vec<E>) -> Vec<Emit> {
    emits.into_iter().map(Into::into).collect()
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
