//! Running handlers natively, for unit tests.

use crate::{Ctx, Emit, Event, Handler, HandlerError, State, Value};
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
    let mut staged = state.clone();
    let mut log = |_: crate::Level, _: &str| {};
    let result = H::handle(&mut Ctx::new(&mut staged, &config, &mut log), event);
    if result.is_ok() {
        *state = staged;
    }
    result
}
