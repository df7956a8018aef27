//! Running handlers natively, for unit tests.

use crate::{Ctx, Emit, Event, Handler, HandlerError, State, Timer, Timers, Value};
use std::collections::BTreeMap;

/// State kept in memory; writes of a failed call are discarded by [`run`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryState(pub BTreeMap<String, Vec<u8>>);

impl MemoryState {
    /// The JSON value under `key`.
    pub fn json(&self, key: &str) -> Option<Value> {
        self.0.get(key).and_then(|v| serde_json::from_slice(v).ok())
    }
}

impl State for MemoryState {
    fn get_raw(&self, key: &str) -> Option<Vec<u8>> {
        self.0.get(key).cloned()
    }
    fn set_raw(&mut self, key: &str, value: Vec<u8>) {
        self.0.insert(key.to_string(), value);
    }
    fn delete(&mut self, key: &str) {
        self.0.remove(key);
    }
}

/// Timers kept in memory, by name: `(due, payload)`, where `due` is the
/// RFC 3339 time given to `set_at`, or `+<ms>` for `set_after`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryTimers(pub BTreeMap<String, (String, Vec<u8>)>);

impl MemoryTimers {
    /// The payload of timer `name` parsed as JSON.
    pub fn json(&self, name: &str) -> Option<Value> {
        self.0
            .get(name)
            .and_then(|(_, p)| serde_json::from_slice(p).ok())
    }
}

impl Timers for MemoryTimers {
    fn set_at_raw(&mut self, name: &str, at: &str, payload: Vec<u8>) -> Result<(), HandlerError> {
        self.0.insert(name.to_string(), (at.to_string(), payload));
        Ok(())
    }
    fn set_after_raw(&mut self, name: &str, delay_ms: u64, payload: Vec<u8>) {
        self.0
            .insert(name.to_string(), (format!("+{delay_ms}"), payload));
    }
    fn cancel(&mut self, name: &str) {
        self.0.remove(name);
    }
}

/// An event of type `ty` with payload `data` and fixed test metadata.
pub fn event(ty: &str, data: Value) -> Event {
    Event {
        id: format!("test-{ty}"),
        ty: ty.to_string(),
        source: "test".into(),
        time: "2025-11-24T10:30:00Z".into(),
        data: data.to_string(),
        topic: ty.to_string(),
        ..Event::default()
    }
}

/// Runs `H` on `event`, applying its state writes only when it succeeds, as the host does.
pub fn run<H: Handler>(
    state: &mut MemoryState,
    config: Value,
    event: &Event,
) -> Result<Vec<Emit>, HandlerError> {
    run_with_timers::<H>(state, &mut MemoryTimers::default(), config, event)
}

/// Runs `H` on `event` with `timers`, applying its state writes and timer
/// changes only when it succeeds.
pub fn run_with_timers<H: Handler>(
    state: &mut MemoryState,
    timers: &mut MemoryTimers,
    config: Value,
    event: &Event,
) -> Result<Vec<Emit>, HandlerError> {
    call(state, timers, config, |ctx| H::handle(ctx, event))
}

/// Fires `timer` on `H::on_timer`, as the host does when it comes due: the
/// timer is removed, and the call's state writes and timer changes apply
/// only when it succeeds.
pub fn fire<H: Handler>(
    state: &mut MemoryState,
    timers: &mut MemoryTimers,
    config: Value,
    timer: &Timer,
) -> Result<Vec<Emit>, HandlerError> {
    let mut left = timers.clone();
    left.0.remove(&timer.name);
    let result = call(state, &mut left, config, |ctx| H::on_timer(ctx, timer));
    if result.is_ok() {
        *timers = left;
    }
    result
}

fn call(
    state: &mut MemoryState,
    timers: &mut MemoryTimers,
    config: Value,
    f: impl FnOnce(&mut Ctx<'_>) -> Result<Vec<Emit>, HandlerError>,
) -> Result<Vec<Emit>, HandlerError> {
    let (mut staged, mut staged_timers) = (state.clone(), timers.clone());
    let mut log = |_: crate::Level, _: &str| {};
    let result = f(&mut Ctx::new(
        &mut staged,
        &mut staged_timers,
        &config,
        &mut log,
    ));
    if result.is_ok() {
        *state = staged;
        *timers = staged_timers;
    }
    result
}
