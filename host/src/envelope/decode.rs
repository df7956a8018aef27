//! Decoding: one record, in whichever catalog envelope style it uses, into
//! one [`Event`].

use super::{EnvelopeKind, EnvelopeStyle, HOP_HEADER, ID_NAMESPACE};
use crate::event::{Event, Record};
use serde_json::{Map, Value};

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
        let json: Value =
            serde_json::from_slice(value).map_err(|e| DecodeError::NotJson(e.to_string()))?;
        let Value::Object(obj) = json else {
            return Err(DecodeError::NotObject);
        };
        if obj.contains_key("specversion") {
            decode_structured_cloudevent(obj)?
        } else if obj.contains_key("event_type") {
            decode_snake(obj)?
        } else if obj.contains_key("eventType") {
            decode_camel(obj)?
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

fn text(obj: &Map<String, Value>, key: &str) -> Option<String> {
    match obj.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
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

fn require_type(obj: &Map<String, Value>, key: &str) -> Result<String, DecodeError> {
    text(obj, key)
        .filter(|t| !t.is_empty())
        .ok_or(DecodeError::NoEventType)
}

fn decode_snake(obj: Map<String, Value>) -> Result<Event, DecodeError> {
    let mut event = skeleton(EnvelopeKind::Snake);
    event.ty = require_type(&obj, "event_type")?;
    event.id = text(&obj, "event_id").unwrap_or_default();
    event.time = text(&obj, "timestamp").unwrap_or_default();
    event.correlation_id = text(&obj, "correlation_id");
    event.source = obj
        .get("metadata")
        .and_then(Value::as_object)
        .and_then(|m| text(m, "source"))
        .unwrap_or_default();
    event.data = obj
        .get("data")
        .cloned()
        .unwrap_or(Value::Object(Map::new()))
        .to_string();
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

fn decode_camel(obj: Map<String, Value>) -> Result<Event, DecodeError> {
    let payload_key = if obj.contains_key("eventData") {
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
    event.ty = require_type(&obj, "eventType")?;
    event.id = text(&obj, "eventId").unwrap_or_default();
    event.time = text(&obj, "timestamp").unwrap_or_default();
    let metadata = obj.get("metadata").and_then(Value::as_object);
    event.correlation_id =
        text(&obj, "correlationId").or_else(|| metadata.and_then(|m| text(m, "correlationId")));
    event.source = text(&obj, "source")
        .or_else(|| metadata.and_then(|m| text(m, "service").or_else(|| text(m, "source"))))
        .unwrap_or_default();
    let mut data = obj
        .get(payload_key)
        .cloned()
        .unwrap_or(Value::Object(Map::new()));
    if let Value::Object(payload) = &mut data {
        for (key, value) in &obj {
            if CAMEL_ENVELOPE_KEYS.contains(&key.as_str()) {
                continue;
            }
            event.style.lifted.push(key.clone());
            payload.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    event.data = data.to_string();
    Ok(event)
}

fn decode_structured_cloudevent(obj: Map<String, Value>) -> Result<Event, DecodeError> {
    if obj.contains_key("data_base64") {
        return Err(DecodeError::BinaryData);
    }
    let mut event = skeleton(EnvelopeKind::Cloudevents);
    event.ty = require_type(&obj, "type")?;
    event.id = text(&obj, "id").unwrap_or_default();
    event.source = text(&obj, "source").unwrap_or_default();
    event.time = text(&obj, "time").unwrap_or_default();
    event.subject = text(&obj, "subject");
    event.correlation_id = text(&obj, "correlationid").or_else(|| text(&obj, "correlation_id"));
    event.data = obj
        .get("data")
        .cloned()
        .unwrap_or(Value::Object(Map::new()))
        .to_string();
    Ok(event)
}

fn decode_binary_cloudevent(record: &Record, ty: &str, value: &[u8]) -> Result<Event, DecodeError> {
    if ty.is_empty() {
        return Err(DecodeError::NoEventType);
    }
    let data: Value =
        serde_json::from_slice(value).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let header = |k: &str| record.header(k).map(str::to_string);
    let mut event = skeleton(EnvelopeKind::CloudeventsBinary);
    event.ty = ty.to_string();
    event.id = header("ce_id").unwrap_or_default();
    event.source = header("ce_source").unwrap_or_default();
    event.time = header("ce_time").unwrap_or_default();
    event.subject = header("ce_subject");
    event.correlation_id = header("ce_correlationid");
    event.data = data.to_string();
    Ok(event)
}
