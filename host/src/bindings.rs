//! The generated bindings for `switchyard:plugin/handler`, in both contract
//! versions the host serves, and conversions between them and the host's
//! own types in [`crate::event`].
//!
//! - [`v2`]: `switchyard:plugin@0.2.0`, the current contract (`wit/`), with
//!   timers.
//! - [`v1`]: `switchyard:plugin@0.1.0` (`host/wit-0.1.0/`), kept so that
//!   plugins built against it load and run unchanged. Its interfaces are
//!   0.2.0's without timers, so its host side delegates to 0.2.0's.
//!
//! This is the only module that calls `bindgen!`. Its types stay private to
//! the crate: the engine converts at the boundary, so generated types never
//! spread through the codebase.

use crate::event;

/// `switchyard:plugin@0.2.0`.
pub(crate) mod v2 {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "switchyard:plugin/handler@0.2.0",
        // Host calls may trap: a plugin over its host budget (see
        // `engine::context`) is stopped with a `memory` fault.
        imports: { default: trappable },
    });
}

/// `switchyard:plugin@0.1.0`.
pub(crate) mod v1 {
    wasmtime::component::bindgen!({
        path: "wit-0.1.0",
        world: "switchyard:plugin/handler@0.1.0",
        imports: { default: trappable },
    });
}

use v1::switchyard::plugin::types as wit1;
use v2::switchyard::plugin::types as wit;

/// One conversion per direction, for the types both versions share (they
/// are the same records, generated twice).
macro_rules! shared_types {
    ($wit:ident) => {
        impl From<&event::Header> for $wit::Header {
            fn from(h: &event::Header) -> Self {
                $wit::Header {
                    key: h.key.clone(),
                    value: h.value.clone(),
                }
            }
        }

        impl From<$wit::Header> for event::Header {
            fn from(h: $wit::Header) -> Self {
                event::Header::new(h.key, h.value)
            }
        }

        impl From<&event::Event> for $wit::Event {
            fn from(e: &event::Event) -> Self {
                $wit::Event {
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

        impl From<$wit::Emit> for event::Emit {
            fn from(e: $wit::Emit) -> Self {
                event::Emit {
                    ty: e.type_,
                    data: e.data,
                    key: e.key,
                    topic: e.topic,
                    headers: e.headers.into_iter().map(Into::into).collect(),
                }
            }
        }

        impl From<$wit::HandlerError> for event::HandlerError {
            fn from(e: $wit::HandlerError) -> Self {
                match e {
                    $wit::HandlerError::Retry(reason) => event::HandlerError::Retry(reason),
                    $wit::HandlerError::Reject(reason) => event::HandlerError::Reject(reason),
                }
            }
        }
    };
}

shared_types!(wit);
shared_types!(wit1);

/// The current contract's event for `e`, written into `buf`: a reused
/// instance keeps one, so a call copies the event's text into buffers that
/// already have room rather than allocating a dozen strings. A buffer
/// grown past 64 KiB by one large event is let go when a smaller one
/// follows, so an instance does not keep the largest event's room.
pub(crate) fn refill(buf: &mut wit::Event, e: &event::Event) {
    const KEEP: usize = 64 << 10;
    fn text(buf: &mut String, s: &str) {
        if buf.capacity() > KEEP && s.len() <= KEEP {
            *buf = String::new();
        }
        buf.clear();
        buf.push_str(s);
    }
    fn optional(buf: &mut Option<String>, s: Option<&str>) {
        match (buf.as_mut(), s) {
            (Some(b), Some(s)) => text(b, s),
            (_, s) => *buf = s.map(str::to_string),
        }
    }
    text(&mut buf.id, &e.id);
    text(&mut buf.type_, &e.ty);
    text(&mut buf.source, &e.source);
    text(&mut buf.time, &e.time);
    optional(&mut buf.correlation_id, e.correlation_id.as_deref());
    optional(&mut buf.subject, e.subject.as_deref());
    text(&mut buf.data, &e.data);
    text(&mut buf.topic, &e.topic);
    buf.partition = e.partition;
    buf.offset = e.offset;
    optional(&mut buf.key, e.key.as_deref());
    buf.headers.truncate(e.headers.len());
    for (i, h) in e.headers.iter().enumerate() {
        match buf.headers.get_mut(i) {
            Some(b) => {
                text(&mut b.key, &h.key);
                text(&mut b.value, &h.value);
            }
            None => buf.headers.push(h.into()),
        }
    }
}

impl From<&event::TimerCall> for wit::Timer {
    fn from(t: &event::TimerCall) -> Self {
        wit::Timer {
            name: t.name.clone(),
            payload: t.payload.clone(),
            due: t.due.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &str) -> event::Event {
        let value = format!(r#"{{"event_type": "t", "event_id": "e", "data": {data}}}"#);
        crate::envelope::decode(&event::Record {
            topic: "t".into(),
            value: Some(value.into_bytes()),
            ..event::Record::default()
        })
        .unwrap()
    }

    #[test]
    fn a_refilled_event_is_the_event_and_lets_large_room_go() {
        let small = event(r#"{"a": 1}"#);
        let large = event(&format!(r#"{{"a": "{}"}}"#, "x".repeat(1 << 20)));
        let mut buf: wit::Event = (&small).into();
        refill(&mut buf, &large);
        assert_eq!(buf.data, large.data);
        refill(&mut buf, &small);
        let fresh: wit::Event = (&small).into();
        assert_eq!(
            (buf.id.as_str(), buf.type_.as_str(), buf.data.as_str()),
            (fresh.id.as_str(), fresh.type_.as_str(), fresh.data.as_str())
        );
        assert!(buf.data.capacity() < 1 << 16, "{}", buf.data.capacity());
    }
}
