//! The generated bindings for `switchyard:plugin/handler`, and conversions
//! between them and the host's own types in [`crate::event`].
//!
//! This is the only module that calls `bindgen!`. Its types stay private to
//! the crate: the engine converts at the boundary, so generated types never
//! spread through the codebase.

use crate::event;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "switchyard:plugin/handler",
    // Host calls may trap: a plugin over its host budget (see
    // `engine::context`) is stopped with a `memory` fault.
    imports: { default: trappable },
});

use self::switchyard::plugin::types as wit;

impl From<&event::Header> for wit::Header {
    fn from(h: &event::Header) -> Self {
        wit::Header {
            key: h.key.clone(),
            value: h.value.clone(),
        }
    }
}

impl From<wit::Header> for event::Header {
    fn from(h: wit::Header) -> Self {
        event::Header::new(h.key, h.value)
    }
}

impl From<&event::Event> for wit::Event {
    fn from(e: &event::Event) -> Self {
        wit::Event {
            id: e.id.clone(),
            type_: e.ty.clone(),
            source: e.source.clone(),
            time: e.time.clone(),
            correlation_id: e.correlation_id.clone(),
            subject: e.subject.clone(),
            data: e.data.clone(),
            topic: e.topic.clone(),
            partition: e.partition,
            offset: e.offset,
            key: e.key.clone(),
            headers: e.headers.iter().map(Into::into).collect(),
        }
    }
}

impl From<wit::Emit> for event::Emit {
    fn from(e: wit::Emit) -> Self {
        event::Emit {
            ty: e.type_,
            data: e.data,
            key: e.key,
            topic: e.topic,
            headers: e.headers.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<wit::HandlerError> for event::HandlerError {
    fn from(e: wit::HandlerError) -> Self {
        match e {
            wit::HandlerError::Retry(reason) => event::HandlerError::Retry(reason),
            wit::HandlerError::Reject(reason) => event::HandlerError::Reject(reason),
        }
    }
}
