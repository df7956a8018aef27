//! The wasm ABI: generated bindings and the adapter from them to [`Handler`].
//! Only compiled for `wasm32`.

use crate::{Ctx, Handler, Level, State, Value};

wit_bindgen::generate!({
    path: "../../wit",
    world: "switchyard:plugin/handler",
    pub_export_macro: true,
    export_macro_name: "__export_handler",
    default_bindings_module: "switchyard_sdk::__private",
});

use switchyard::plugin::{config, log, state, types};

pub use types::Emit as WitEmit;
pub use types::Event as WitEvent;
pub use types::HandlerError as WitHandlerError;
/// The list of emits `handle` returns.
pub type WitEmits = Vec<WitEmit>;

/// State backed by the host's `state` import.
struct HostState;

impl State for HostState {
    fn get_raw(&self, key: &str) -> Option<Vec<u8>> {
        state::get(key)
    }
    fn set_raw(&mut self, key: &str, value: Vec<u8>) {
        state::set(key, &value)
    }
    fn delete(&mut self, key: &str) {
        state::delete(key)
    }
}

/// Converts the call, runs `H`, and converts the result back.
pub fn dispatch<H: Handler>(event: WitEvent) -> Result<WitEmits, WitHandlerError> {
    let event = crate::Event {
        id: event.id,
        ty: event.type_,
        source: event.source,
        time: event.time,
        correlation_id: event.correlation_id,
        subject: event.subject,
        data: event.data,
        topic: event.topic,
        partition: event.partition,
        offset: event.offset,
        key: event.key,
        headers: event
            .headers
            .into_iter()
            .map(|h| (h.key, h.value))
            .collect(),
    };
    let config: Value = serde_json::from_str(&config::all()).unwrap_or(Value::Null);
    let mut host_log = |level: Level, message: &str| {
        let level = match level {
            Level::Trace => log::Level::Trace,
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        log::log(level, message)
    };
    let mut state = HostState;
    match H::handle(&mut Ctx::new(&mut state, &config, &mut host_log), &event) {
        Ok(emits) => Ok(emits
            .into_iter()
            .map(|e| WitEmit {
                type_: e.ty,
                data: e.data,
                key: e.key,
                topic: e.topic,
                headers: e
                    .headers
                    .into_iter()
                    .map(|(key, value)| types::Header { key, value })
                    .collect(),
            })
            .collect()),
        Err(crate::HandlerError::Retry(r)) => Err(WitHandlerError::Retry(r)),
        Err(crate::HandlerError::Reject(r)) => Err(WitHandlerError::Reject(r)),
    }
}
