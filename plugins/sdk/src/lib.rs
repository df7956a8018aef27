//! Write Switchyard event handler plugins as plain Rust.
//!
//! A plugin implements [`Handler`] with ordinary functions over [`Event`],
//! [`Ctx`] (state, timers and config) and [`Emit`], then exports itself with
//! [`plugin!`]. The wasm ABI only exists when compiled for `wasm32`; on the
//! host, [`testing`] runs the same handler natively, so plugin logic is
//! unit-tested with `cargo test`.
//!
//! ```
//! use switchyard_sdk::{Ctx, Emit, Event, Handler, HandlerError, json};
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<Vec<Emit>, HandlerError> {
//!         let seen: u64 = ctx.state.get("seen")?.unwrap_or(0);
//!         ctx.state.set("seen", &(seen + 1))?;
//!         Ok(vec![Emit::new("echo", &json!({ "of": event.ty, "seen": seen + 1 }))?])
//!     }
//! }
//! switchyard_sdk::plugin!(Echo);
//!
//! let mut state = switchyard_sdk::testing::MemoryState::default();
//! let event = switchyard_sdk::testing::event("ping", json!({}));
//! let emits = switchyard_sdk::testing::run::<Echo>(&mut state, json!({}), &event).unwrap();
//! assert_eq!(emits[0].data_value()["seen"], 1);
//! ```

#![deny(missing_docs)]

use serde::Serialize;
use serde::de::DeserializeOwned;
pub use serde_json::{Value, json};

pub mod testing;

// The plugin's allocator: on wasm32 unless the `allocator` feature is off.
#[cfg(any(test, all(target_arch = "wasm32", feature = "allocator")))]
mod allocator;

#[doc(hidden)]
#[cfg(target_arch = "wasm32")]
pub mod __private;

/// One event, decoded by the host from whatever envelope it arrived in.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    /// The event id.
    pub id: String,
    /// The event type, such as `booking.booking.created`.
    pub ty: String,
    /// Who produced it.
    pub source: String,
    /// When it happened, RFC 3339.
    pub time: String,
    /// The correlation id, if any.
    pub correlation_id: Option<String>,
    /// The CloudEvents subject, if any.
    pub subject: Option<String>,
    /// The payload as JSON text.
    pub data: String,
    /// The topic it was read from.
    pub topic: String,
    /// The partition it was read from.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The record key, if any.
    pub key: Option<String>,
    /// The record headers.
    pub headers: Vec<(String, String)>,
}

impl Event {
    /// The payload parsed into `T`; a payload that does not fit is rejected.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        serde_json::from_str(&self.data)
            .map_err(|e| HandlerError::Reject(format!("`{}` data does not fit: {e}", self.ty)))
    }

    /// The payload as a JSON value (`null` if it is not JSON).
    pub fn data_value(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }

    /// The first header named `key`.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// An event to emit. The host fills in its id, time, correlation and source.
#[derive(Debug, Clone, PartialEq)]
pub struct Emit {
    /// The event type; the plugin's config must allow it.
    pub ty: String,
    /// The payload as JSON text.
    pub data: String,
    /// The Kafka key; default: the route's key field.
    pub key: Option<String>,
    /// An explicit topic; default: the route's topic for the type.
    pub topic: Option<String>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
}

impl Emit {
    /// An emit of type `ty` carrying `data` serialized as JSON.
    pub fn new(ty: impl Into<String>, data: &impl Serialize) -> Result<Self, HandlerError> {
        let data = serde_json::to_string(data)
            .map_err(|e| HandlerError::Reject(format!("cannot serialize emit data: {e}")))?;
        Ok(Emit {
            ty: ty.into(),
            data,
            key: None,
            topic: None,
            headers: Vec::new(),
        })
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets an explicit topic.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// Adds a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((key.into(), value.into()));
        self
    }

    /// The payload as a JSON value.
    pub fn data_value(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

/// Why a handler could not process an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerError {
    /// Transient: the host retries with backoff, then dead-letters.
    Retry(String),
    /// Permanent: the host dead-letters the event now.
    Reject(String),
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandlerError::Retry(r) => write!(f, "retry: {r}"),
            HandlerError::Reject(r) => write!(f, "reject: {r}"),
        }
    }
}

/// The plugin's private key-value state. Writes are staged and applied only
/// when the handler returns `Ok`.
pub trait State {
    /// The raw bytes under `key`.
    fn get_raw(&self, key: &str) -> Option<Vec<u8>>;
    /// Stages raw bytes under `key`.
    fn set_raw(&mut self, key: &str, value: Vec<u8>);
    /// Stages the removal of `key`.
    fn delete(&mut self, key: &str);
}

impl dyn State + '_ {
    /// The JSON value under `key` parsed into `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, HandlerError> {
        self.get_raw(key)
            .map(|bytes| {
                serde_json::from_slice(&bytes)
                    .map_err(|e| HandlerError::Reject(format!("state `{key}` is corrupt: {e}")))
            })
            .transpose()
    }

    /// Stages `value` as JSON under `key`.
    pub fn set<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), HandlerError> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| HandlerError::Reject(format!("cannot serialize state `{key}`: {e}")))?;
        self.set_raw(key, bytes);
        Ok(())
    }

    /// Increments the counter stored under `key` and returns its new value
    /// (1 the first time). The increment commits only if the handler succeeds.
    pub fn next_in_sequence(&mut self, key: &str) -> Result<u64, HandlerError> {
        let next = self.get::<u64>(key)?.unwrap_or(0) + 1;
        self.set(key, &next)?;
        Ok(next)
    }
}

/// A deterministic id: the name-based (v5) UUID of `name` within `namespace`.
///
/// Handlers must not use randomness for ids that other services see;
/// deriving them from the input makes a redelivered event yield the same id.
pub fn derive_id(namespace: &str, name: &str) -> String {
    uuid::Uuid::new_v5(&namespace_id(namespace), name.as_bytes()).to_string()
}

/// The UUID of `namespace` (the v5 UUID of `switchyard:{namespace}` in the
/// URL namespace), remembered per namespace: a handler names the same few
/// namespaces on every event, so a call hashes once instead of twice.
/// At most [`NAMESPACES_KEPT`] are remembered; others are computed each time.
fn namespace_id(namespace: &str) -> uuid::Uuid {
    std::thread_local! {
        static KNOWN: std::cell::RefCell<Vec<(String, uuid::Uuid)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    KNOWN.with_borrow_mut(|known| {
        if let Some((_, id)) = known.iter().find(|(n, _)| n == namespace) {
            return *id;
        }
        let id = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_URL,
            format!("switchyard:{namespace}").as_bytes(),
        );
        if known.len() < NAMESPACES_KEPT {
            known.push((namespace.to_string(), id));
        }
        id
    })
}

/// How many namespaces [`derive_id`] remembers.
const NAMESPACES_KEPT: usize = 16;

/// The plugin's timers: a call back to [`Handler::on_timer`] at a time.
///
/// Like state writes, changes are staged and take effect only when the
/// handler returns `Ok`. A timer fires once, durably: it survives restarts,
/// and its `on_timer` call's state writes, emits and the timer's removal
/// commit together.
pub trait Timers {
    /// Sets the timer `name` to fire at `at`, an RFC 3339 time (a time
    /// already past fires at once); setting a name again replaces it.
    fn set_at_raw(&mut self, name: &str, at: &str, payload: Vec<u8>) -> Result<(), HandlerError>;
    /// Sets the timer `name` to fire `delay_ms` milliseconds after the time
    /// of the event being handled (so a replay sets the same due time).
    fn set_after_raw(&mut self, name: &str, delay_ms: u64, payload: Vec<u8>);
    /// Cancels the timer `name`, if set.
    fn cancel(&mut self, name: &str);
}

impl dyn Timers + '_ {
    /// Sets the timer `name` for `at` (RFC 3339), carrying `payload` as JSON.
    pub fn set_at<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        at: &str,
        payload: &T,
    ) -> Result<(), HandlerError> {
        let bytes = serde_json::to_vec(payload)
            .map_err(|e| HandlerError::Reject(format!("cannot serialize timer `{name}`: {e}")))?;
        self.set_at_raw(name, at, bytes)
    }

    /// Sets the timer `name` for `delay` after the event's time, carrying
    /// `payload` as JSON.
    pub fn set_after<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        delay: std::time::Duration,
        payload: &T,
    ) -> Result<(), HandlerError> {
        let bytes = serde_json::to_vec(payload)
            .map_err(|e| HandlerError::Reject(format!("cannot serialize timer `{name}`: {e}")))?;
        self.set_after_raw(name, delay.as_millis() as u64, bytes);
        Ok(())
    }
}

/// A timer that came due, as [`Handler::on_timer`] receives it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Timer {
    /// The name it was set under.
    pub name: String,
    /// The payload it was set with.
    pub payload: Vec<u8>,
    /// When it was due, RFC 3339 UTC; also the call's time.
    pub due: String,
}

impl Timer {
    /// The payload parsed from JSON into `T`; one that does not fit is rejected.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        serde_json::from_slice(&self.payload).map_err(|e| {
            HandlerError::Reject(format!("timer `{}` payload does not fit: {e}", self.name))
        })
    }
}

/// What a handler may use besides the event: its state, its timers, its
/// config and a log.
pub struct Ctx<'a> {
    /// The plugin's state.
    pub state: &'a mut dyn State,
    /// The plugin's timers.
    pub timers: &'a mut dyn Timers,
    config: &'a Value,
    log: &'a mut dyn FnMut(Level, &str),
}

/// Log severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Very detailed.
    Trace,
    /// For developers.
    Debug,
    /// Normal operation.
    Info,
    /// Unexpected but handled.
    Warn,
    /// A failure.
    Error,
}

impl<'a> Ctx<'a> {
    /// A context over `state`, `timers`, `config` and a log sink.
    pub fn new(
        state: &'a mut dyn State,
        timers: &'a mut dyn Timers,
        config: &'a Value,
        log: &'a mut dyn FnMut(Level, &str),
    ) -> Self {
        Ctx {
            state,
            timers,
            config,
            log,
        }
    }

    /// The plugin's config parsed into `T`; a config that does not fit is rejected.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        <T as serde::Deserialize>::deserialize(self.config)
            .map_err(|e| HandlerError::Reject(format!("plugin config does not fit: {e}")))
    }

    /// Writes a log line through the host.
    pub fn log(&mut self, level: Level, message: &str) {
        (self.log)(level, message)
    }
}

/// An event handler.
pub trait Handler {
    /// Handles one event; returns the events to emit.
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<Vec<Emit>, HandlerError>;

    /// Handles a timer this plugin set, when it comes due; returns the
    /// events to emit. By default a plugin sets no timers, and this emits
    /// nothing.
    fn on_timer(ctx: &mut Ctx<'_>, timer: &Timer) -> Result<Vec<Emit>, HandlerError> {
        let _ = (ctx, timer);
        Ok(Vec::new())
    }
}

/// Exports a [`Handler`] as the plugin's `handle` and `on-timer` functions (only when
/// compiled for wasm; natively it expands to nothing).
#[macro_export]
macro_rules! plugin {
    ($handler:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct SwitchyardExport;
            impl $crate::__private::Guest for SwitchyardExport {
                fn handle(
                    event: $crate::__private::WitEvent,
                ) -> ::core::result::Result<
                    $crate::__private::WitEmits,
                    $crate::__private::WitHandlerError,
                > {
                    $crate::__private::dispatch::<$handler>(event)
                }
                fn on_timer(
                    timer: $crate::__private::WitTimer,
                ) -> ::core::result::Result<
                    $crate::__private::WitEmits,
                    $crate::__private::WitHandlerError,
                > {
                    $crate::__private::dispatch_timer::<$handler>(timer)
                }
            }
    $crate::__private::__export_handler!(SwitchyardExport with_types_in $crate::__private);
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `derive_id` computed before namespaces were remembered.
    fn uncached(namespace: &str, name: &str) -> String {
        let ns = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_URL,
            format!("switchyard:{namespace}").as_bytes(),
        );
        uuid::Uuid::new_v5(&ns, name.as_bytes()).to_string()
    }

    #[test]
    fn derived_ids_do_not_change_with_the_namespace_cache() {
        // Pinned: Python's uuid5(uuid5(NAMESPACE_URL, "switchyard:payment"),
        // "b-1"), as the Python and JavaScript SDKs derive it.
        for _ in 0..2 {
            assert_eq!(
                derive_id("payment", "b-1"),
                "e0a76e0c-4ed4-5144-b4ce-0d8eaa9d10a0"
            );
        }
        // More namespaces than are remembered, each asked twice, in turns.
        for round in 0..2 {
            for n in 0..(NAMESPACES_KEPT + 4) {
                let namespace = format!("ns{n}");
                let name = format!("name{round}");
                assert_eq!(derive_id(&namespace, &name), uncached(&namespace, &name));
            }
        }
        assert_ne!(derive_id("payment", "b-1"), derive_id("refund", "b-1"));
    }
}
