//! Decoding: one record, in whichever catalog envelope style it uses, into
//! one [`Event`].

use super::raw::{Fields, Object};
use super::{EnvelopeKind, EnvelopeStyle, HOP_HEADER, ID_NAMESPACE};
use crate::event::{Event, Record};
use serde_json::value::RawValue;

/// Why a record could not be decoded into an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The record has no value (a tombstone).
    #[error("record has no value")]
    Empty,
    /// The value is not JSON.
    #[error("value is not JSON: {0}")]
    NotJson(String),
    /// The value is JSON but not an object.
    #[error("value is JSON but not an object")]
    NotObject,
    /// No envelope style's type field is present.
    #[error(
        "no event type: expected `event_type`, `eventType`, CloudEvents `type` or a `ce_type` header"
    )]
    NoEventType,
    /// CloudEvents `data_base64` is not supported: payloads must be JSON.
    #[error("CloudEvents data_base64 is not supported; payloads must be JSON")]
    BinaryData,
    /// A CloudEvents attribute header (`ce_*`) is not UTF-8 text.
    #[error("header `{0}` is not UTF-8; CloudEvents attributes are text")]
    BinaryAttribute(String),
}

/// Decodes one record, in whichever envelope style it uses.
pub fn decode(record: &Record) -> Result<Event, DecodeError> {
    let value = record.value.as_deref().ok_or(DecodeError::Empty)?;
    if let Some(h) = record
        .headers
        .iter()
        .find(|h| h.raw.is_some() && h.key.to_ascii_lowercase().starts_with("ce_"))
    {
        return Err(DecodeError::BinaryAttribute(h.key.clone()));
    }
    let hops = record
        .header(HOP_HEADER)
        .and_then(|h| h.trim().parse().ok())
        .unwrap_or(0);
    let mut event = if let Some(ty) = record.header("ce_type") {
        decode_binary_cloudevent(record, ty, value)?
    } else {
        let obj = Fields::parse(value)
            .map_err(|e| DecodeError::NotJson(e.to_string()))?
            .ok_or(DecodeError::NotObject)?;
        if obj.has("specversion") {
            decode_structured_cloudevent(&obj)?
        } else if obj.has("event_type") {
            decode_snake(&obj)?
        } else if obj.has("eventType") {
            decode_camel(&obj)?
        } else {
            return Err(DecodeError::NoEventType);
        }
    };
    if event.id.is_empty() {
        event.id = content_id(&record.topic, value);
    }
    if event.source.is_empty() {
        event.source = record.topic.clone();
    }
    if event.time.is_empty() {
        event.time = "1970-01-01T00:00:00Z".to_string();
    }
    event.topic = record.topic.clone();
    event.partition = record.partition;
    event.offset = record.offset;
    event.key = record
        .key
        .as_ref()
        .map(|k| String::from_utf8_lossy(k).into_owned());
    event.headers = record.headers.clone();
    event.hops = hops;
    Ok(event)
}

/// A name-based UUID for an envelope that carries no id.
fn content_id(topic: &str, value: &[u8]) -> String {
    let mut name = topic.as_bytes().to_vec();
    name.push(0);
    name.extend_from_slice(value);
    uuid::Uuid::new_v5(&ID_NAMESPACE, &name).to_string()
}

/// A payload's text, verbatim; `{}` when there is none.
fn payload(raw: Option<&RawValue>) -> String {
    raw.map_or_else(|| "{}".to_string(), |raw| raw.get().to_string())
}

fn skeleton(kind: EnvelopeKind) -> Event {
    Event {
        id: String::new(),
        ty: String::new(),
        source: String::new(),
        time: String::new(),
        correlation_id: None,
        subject: None,
        data: "{}".to_string(),
        topic: String::new(),
        partition: 0,
        offset: 0,
        key: None,
        headers: Vec::new(),
        style: EnvelopeStyle::of(kind),
        hops: 0,
    }
}

fn require_type(obj: &Fields<'_>, key: &str) -> Result<String, DecodeError> {
    obj.text(key)
        .filter(|t| !t.is_empty())
        .ok_or(DecodeError::NoEventType)
}

fn decode_snake(obj: &Fields<'_>) -> Result<Event, DecodeError> {
    let mut event = skeleton(EnvelopeKind::Snake);
    event.ty = require_type(obj, "event_type")?;
    event.id = obj.text("event_id").unwrap_or_default();
    event.time = obj.text("timestamp").unwrap_or_default();
    event.correlation_id = obj.text("correlation_id");
    event.source = obj
        .get("metadata")
        .and_then(Fields::of)
        .and_then(|m| m.text("source"))
        .unwrap_or_default();
    event.data = payload(obj.get("data"));
    Ok(event)
}

/// Keys of a camelCase envelope that are not business fields.
const CAMEL_ENVELOPE_KEYS: &[&str] = &[
    "eventId",
    "eventType",
    "timestamp",
    "version",
    "metadata",
    "data",
    "eventData",
    "correlationId",
    "causationId",
    "source",
];

fn decode_camel(obj: &Fields<'_>) -> Result<Event, DecodeError> {
    let payload_key = if obj.has("eventData") {
        "eventData"
    } else {
        "data"
    };
    let kind = if payload_key == "eventData" {
        EnvelopeKind::CamelEventData
    } else {
        EnvelopeKind::Camel
    };
    let mut event = skeleton(kind);
    event.ty = require_type(obj, "eventType")?;
    event.id = obj.text("eventId").unwrap_or_default();
    event.time = obj.text("timestamp").unwrap_or_default();
    let metadata = obj.get("metadata").and_then(Fields::of);
    event.correlation_id = obj
        .text("correlationId")
        .or_else(|| metadata.as_ref().and_then(|m| m.text("correlationId")));
    event.source = obj
        .text("source")
        .or_else(|| {
            let m = metadata.as_ref()?;
            m.text("service").or_else(|| m.text("source"))
        })
        .unwrap_or_default();
    let raw = obj.get(payload_key);
    let fields = match raw {
        None => Some(Fields::default()),
        Some(raw) => Fields::of(raw),
    };
    let lifted: Vec<(&str, &RawValue)> = obj
        .unique()
        .filter(|(key, _)| !CAMEL_ENVELOPE_KEYS.contains(key))
        .collect();
    event.data = match fields {
        // Business fields at the top level join the payload (its own
        // fields win), and are remembered to be lifted back out.
        Some(fields) if !lifted.is_empty() => {
            let mut data = Object::with_capacity(raw.map_or(2, |r| r.get().len()) + 64);
            for (key, value) in fields.unique() {
                data.raw(key, value.get());
            }
            for (key, value) in lifted {
                event.style.lifted.push(key.to_string());
                if !fields.has(key) {
                    data.raw(key, value.get());
                }
            }
            data.finish_text()
        }
        _ => payload(raw),
    };
    Ok(event)
}

fn decode_structured_cloudevent(obj: &Fields<'_>) -> Result<Event, DecodeError> {
    if obj.has("data_base64") {
        return Err(DecodeError::BinaryData);
    }
    let mut event = skeleton(EnvelopeKind::Cloudevents);
    event.ty = require_type(obj, "type")?;
    event.id = obj.text("id").unwrap_or_default();
    event.source = obj.text("source").unwrap_or_default();
    event.time = obj.text("time").unwrap_or_default();
    event.subject = obj.text("subject");
    event.correlation_id = obj
        .text("correlationid")
        .or_else(|| obj.text("correlation_id"));
    event.data = payload(obj.get("data"));
    Ok(event)
}

fn decode_binary_cloudevent(record: &Record, ty: &str, value: &[u8]) -> Result<Event, DecodeError> {
    if ty.is_empty() {
        return Err(DecodeError::NoEventType);
    }
    let data: &RawValue =
        serde_json::from_slice(value).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let header = |k: &str| record.header(k).map(str::to_string);
    let mut event = skeleton(EnvelopeKind::CloudeventsBinary);
    event.ty = ty.to_string();
    event.id = header("ce_id").unwrap_or_default();
    event.source = header("ce_source").unwrap_or_default();
    event.time = header("ce_time").unwrap_or_default();
    event.subject = header("ce_subject");
    event.correlation_id = header("ce_correlationid");
    event.data = payload(Some(data));
    Ok(event)
}
