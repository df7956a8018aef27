//! The wasm ABI: generated bindings and the adapter from them to [`Handler`].
//! Only compiled for `wasm32`.

use crate::{Ctx, Handler, Level, State, Timers, Value};

wit_bindgen::generate!({
    path: "../../wit",
    world: "switchyard:plugin/handler",
    pub_export_macro: true,
    export_macro_name: "__export_handler",
    default_bindings_module: "switchyard_sdk::__private",
});

use switchyard::plugin::{config, log, state, timers, types};

pub use types::Emit as WitEmit;
pub use types::Event as WitEvent;
pub use types::HandlerError as WitHandlerError;
pub use types::Timer as WitTimer;
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

/// Timers backed by the host's `timers` import.
struct HostTimers;

impl Timers for HostTimers {
    fn set_at_raw(
        &mut self,
        name: &str,
        at: &str,
        payload: Vec<u8>,
    ) -> Result<(), crate::HandlerError> {
        timers::set_at(name, at, &payload).map_err(crate::HandlerError::Reject)
    }
    fn set_after_raw(&mut self, name: &str, delay_ms: u64, payload: Vec<u8>) {
        timers::set_after(name, delay_ms, &payload)
    }
    fn cancel(&mut self, name: &str) {
        timers::cancel(name)
    }
}

std::thread_local! {
    /// The config text the host gave last, parsed: a plugin's config rarely
    /// changes between calls on one instance, so it is parsed once.
    static CONFIG: std::cell::RefCell<Option<(String, std::rc::Rc<Value>)>> =
        const { std::cell::RefCell::new(None) };
}

/// `text` parsed as JSON (`null` if it is not), reusing the last parse
/// when the text is the same.
fn parsed_config(text: String) -> std::rc::Rc<Value> {
    CONFIG.with(|cached| {
        let mut cached = cached.borrow_mut();
        if let Some((last, value)) = cached.as_ref()
            && *last == text
        {
            return value.clone();
        }
        let value = std::rc::Rc::new(serde_json::from_str(&text).unwrap_or(Value::Null));
        *cached = Some((text, value.clone()));
        value
    })
}

/// Runs `f` with a context over the host's state, timers, config and log,
/// and converts its result to the contract's.
fn with_ctx(
    f: impl FnOnce(&mut Ctx<'_>) -> Result<Vec<crate::Emit>, crate::HandlerError>,
) -> Result<WitEmits, WitHandlerError> {
    let config = parsed_config(config::all());
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
    let (mut state, mut timers) = (HostState, HostTimers);
    match f(&mut Ctx::new(
        &mut state,
        &mut timers,
        &config,
        &mut host_log,
    )) {
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

/// Converts a timer, runs `H::on_timer`, and converts the result back.
pub fn dispatch_timer<H: Handler>(timer: WitTimer) -> Result<WitEmits, WitHandlerError> {
    let timer = crate::Timer {
        name: timer.name,
        payload: timer.payload,
        due: timer.due,
    };
    with_ctx(|ctx| H::on_timer(ctx, &timer))
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
    with_ctx(|ctx| H::handle(ctx, &event))
}
