//! Envelope codecs: decode every catalog's envelope style into one [`Event`],
//! and encode emits back in the style a route asks for.
//!
//! Styles seen in the catalogs:
//!
//! | style | id | type | time | payload |
//! |---|---|---|---|---|
//! | snake_case | `event_id` | `event_type` | `timestamp` | `data` |
//! | camelCase | `eventId` | `eventType` | `timestamp` | `eventData` or `data` |
//! | CloudEvents structured | `id` | `type` | `time` | `data` |
//! | CloudEvents binary | `ce_id` | `ce_type` | `ce_time` | the record value |
//!
//! Decisions where the catalogs are silent:
//!
//! - camelCase envelopes keep business fields at the top level (`bookingId`,
//!   `resourceId`, ...). Those are merged into the event's `data` (the
//!   payload's own fields win) and remembered, so emits encoded in the same
//!   style lift the same fields back to the top level.
//! - An envelope without an id (the travel catalog has none) gets a name-based
//!   UUID of its topic and bytes, so redelivery yields the same id.
//! - An envelope without a time gets the Unix epoch, never the wall clock, so
//!   processing stays deterministic.
//! - A record that is not JSON, is not an object, or names no event type is a
//!   [`DecodeError`]; the router dead-letters it and the partition moves on.

use crate::event::{Event, Header, Record};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The header that counts routing hops, to stop loops.
pub const HOP_HEADER: &str = "switchyard-hop";

/// The envelope styles the host reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnvelopeKind {
    /// `event_id`, `event_type`, `timestamp`, `correlation_id`, `data`.
    #[default]
    Snake,
    /// `eventId`, `eventType`, `timestamp`, `data`.
    Camel,
    /// `eventId`, `eventType`, `timestamp`, `eventData`.
    CamelEventData,
    /// CloudEvents 1.0, structured JSON mode.
    Cloudevents,
    /// CloudEvents 1.0, binary mode: attributes in `ce_*` headers.
    CloudeventsBinary,
}

/// The style an event arrived in, with what is needed to write one like it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvelopeStyle {
    /// The envelope kind.
    pub kind: EnvelopeKind,
    /// For camelCase: the top-level business fields the cause carried, which
    /// are lifted out of `data` again when an emit is encoded.
    pub lifted: Vec<String>,
}

impl EnvelopeStyle {
    /// A style of the given kind with nothing lifted.
    pub fn of(kind: EnvelopeKind) -> Self {
        EnvelopeStyle {
            kind,
            lifted: Vec::new(),
        }
    }
}

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

/// The namespace of every name-based UUID the host derives.
pub const ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x5b1f_1c3e_7a0d_4e62_9f3b_2d4c_8e9a_0c11);

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

/// The event type of an outgoing record, for logs (`-` when it has none).
pub fn type_of(record: &crate::event::OutRecord) -> String {
    if let Some(ty) = record.header("ce_type") {
        return ty.to_string();
    }
    #[derive(Deserialize)]
    struct Types {
        event_type: Option<String>,
        #[serde(rename = "eventType")]
        event_type_camel: Option<String>,
        #[serde(rename = "type")]
        ty: Option<String>,
    }
    serde_json::from_slice::<Types>(&record.value)
        .ok()
        .and_then(|t| t.event_type.or(t.event_type_camel).or(t.ty))
        .unwrap_or_else(|| "-".into())
}

/// Everything the host fills in around an emit's payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing<'a> {
    /// The emitted event's id.
    pub id: &'a str,
    /// The emitted event's type.
    pub ty: &'a str,
    /// The emitting plugin's source name.
    pub source: &'a str,
    /// The event time (the cause's time).
    pub time: &'a str,
    /// The correlation id (the cause's, or the cause's id).
    pub correlation_id: &'a str,
    /// The id of the event that caused this one.
    pub causation_id: &'a str,
    /// The CloudEvents subject, carried over from the cause.
    pub subject: Option<&'a str>,
    /// The payload.
    pub data: &'a Value,
}

/// Encodes an outgoing event; returns the record value and any `ce_*` headers.
pub fn encode(out: &Outgoing<'_>, style: &EnvelopeStyle) -> (Vec<u8>, Vec<Header>) {
    let mut obj = Map::new();
    let mut headers = Vec::new();
    let put = |obj: &mut Map<String, Value>, k: &str, v: &str| {
        obj.insert(k.to_string(), Value::String(v.to_string()));
    };
    match style.kind {
        EnvelopeKind::Snake => {
            put(&mut obj, "event_id", out.id);
            put(&mut obj, "event_type", out.ty);
            put(&mut obj, "event_version", "1.0");
            put(&mut obj, "timestamp", out.time);
            put(&mut obj, "correlation_id", out.correlation_id);
            put(&mut obj, "causation_id", out.causation_id);
            obj.insert("data".into(), out.data.clone());
            let mut meta = Map::new();
            put(&mut meta, "source", out.source);
            obj.insert("metadata".into(), Value::Object(meta));
        }
        EnvelopeKind::Camel | EnvelopeKind::CamelEventData => {
            put(&mut obj, "eventId", out.id);
            put(&mut obj, "eventType", out.ty);
            let mut payload = out.data.clone();
            if let Value::Object(fields) = &mut payload {
                for key in &style.lifted {
                    if let Some(v) = fields.remove(key) {
                        obj.insert(key.clone(), v);
                    }
                }
            }
            put(&mut obj, "timestamp", out.time);
            let payload_key = if style.kind == EnvelopeKind::Camel {
                "data"
            } else {
                "eventData"
            };
            obj.insert(payload_key.into(), payload);
            let mut meta = Map::new();
            put(&mut meta, "service", out.source);
            put(&mut meta, "correlationId", out.correlation_id);
            put(&mut meta, "causationId", out.causation_id);
            obj.insert("metadata".into(), Value::Object(meta));
        }
        EnvelopeKind::Cloudevents => {
            put(&mut obj, "specversion", "1.0");
            put(&mut obj, "id", out.id);
            put(&mut obj, "source", out.source);
            put(&mut obj, "type", out.ty);
            put(&mut obj, "time", out.time);
            if let Some(subject) = out.subject {
                put(&mut obj, "subject", subject);
            }
            put(&mut obj, "datacontenttype", "application/json");
            put(&mut obj, "correlationid", out.correlation_id);
            put(&mut obj, "causationid", out.causation_id);
            obj.insert("data".into(), out.data.clone());
        }
        EnvelopeKind::CloudeventsBinary => {
            let mut h = |k: &str, v: &str| headers.push(Header::new(k, v));
            h("ce_specversion", "1.0");
            h("ce_id", out.id);
            h("ce_source", out.source);
            h("ce_type", out.ty);
            h("ce_time", out.time);
            if let Some(subject) = out.subject {
                h("ce_subject", subject);
            }
            h("ce_correlationid", out.correlation_id);
            h("ce_causationid", out.causation_id);
            h("content-type", "application/json");
            return (out.data.to_string().into_bytes(), headers);
        }
    }
    (Value::Object(obj).to_string().into_bytes(), headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(value: Value) -> Record {
        Record {
            topic: "t".into(),
            value: Some(value.to_string().into_bytes()),
            ..Record::default()
        }
    }

    #[test]
    fn snake_case_envelope() {
        let e = decode(&record(json!({
            "event_id": "e1", "event_type": "booking.booking.created",
            "timestamp": "2025-11-24T10:30:00Z", "correlation_id": "c1",
            "data": {"booking_id": "b1"}, "metadata": {"source": "booking-service"}
        })))
        .unwrap();
        assert_eq!(
            (e.id.as_str(), e.ty.as_str(), e.source.as_str()),
            ("e1", "booking.booking.created", "booking-service")
        );
        assert_eq!(e.correlation_id.as_deref(), Some("c1"));
        assert_eq!(e.data, r#"{"booking_id":"b1"}"#);
        assert_eq!(e.style.kind, EnvelopeKind::Snake);
    }

    #[test]
    fn camel_case_lifts_top_level_fields_and_encodes_them_back() {
        let e = decode(&record(json!({
            "eventId": "e2", "eventType": "waitlist.joined", "waitlistId": "w1",
            "userId": "u1", "timestamp": "2025-08-19T10:00:00Z",
            "eventData": {"priority": 100},
            "metadata": {"service": "booking-service", "correlationId": "req-456"}
        })))
        .unwrap();
        assert_eq!(e.style.kind, EnvelopeKind::CamelEventData);
        assert_eq!(e.style.lifted, vec!["waitlistId", "userId"]);
        assert_eq!(e.correlation_id.as_deref(), Some("req-456"));
        let data: Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(
            data,
            json!({"priority": 100, "waitlistId": "w1", "userId": "u1"})
        );
        let out = Outgoing {
            id: "x",
            ty: "waitlist.promoted",
            source: "s",
            time: &e.time,
            correlation_id: "req-456",
            causation_id: "e2",
            subject: None,
            data: &data,
        };
        let (bytes, _) = encode(&out, &e.style);
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["waitlistId"], "w1");
        assert_eq!(v["eventData"], json!({"priority": 100}));
    }

    #[test]
    fn cloudevents_structured_and_binary() {
        let e = decode(&record(json!({
            "specversion": "1.0", "id": "e3", "source": "service-booking",
            "type": "booking.cancelled", "time": "2025-01-01T00:00:00Z",
            "data": {"booking_id": "b"}
        })))
        .unwrap();
        assert_eq!(e.style.kind, EnvelopeKind::Cloudevents);
        assert_eq!(e.source, "service-booking");

        let mut r = record(json!({"booking_id": "b"}));
        r.headers = vec![
            Header::new("ce_type", "booking.cancelled"),
            Header::new("ce_id", "e4"),
            Header::new(HOP_HEADER, "2"),
        ];
        let e = decode(&r).unwrap();
        assert_eq!(
            (e.id.as_str(), e.style.kind, e.hops),
            ("e4", EnvelopeKind::CloudeventsBinary, 2)
        );
    }

    #[test]
    fn bad_records_are_typed_errors() {
        let mut r = record(json!({}));
        r.value = Some(b"not json".to_vec());
        assert!(matches!(decode(&r), Err(DecodeError::NotJson(_))));
        assert_eq!(decode(&record(json!([1]))), Err(DecodeError::NotObject));
        assert_eq!(
            decode(&record(json!({"data": {}}))),
            Err(DecodeError::NoEventType)
        );
        r.value = None;
        assert_eq!(decode(&r), Err(DecodeError::Empty));
    }
    #[test]
    fn a_cloudevents_attribute_that_is_not_text_is_refused() {
        let mut r = record(json!({"a": 1}));
        r.headers = vec![
            Header::new("ce_type", "t"),
            Header::from_bytes("ce_id", Some(&[0xff, 0xfe])),
        ];
        assert_eq!(
            decode(&r).unwrap_err(),
            DecodeError::BinaryAttribute("ce_id".into())
        );
        // Any other header may carry bytes; the event decodes.
        r.headers[1] = Header::from_bytes("trace", Some(&[0xff]));
        assert_eq!(decode(&r).unwrap().ty, "t");
    }

    #[test]
    fn missing_id_is_derived_from_content() {
        let v = json!({"eventType": "booking.created", "bookingId": "B1"});
        let a = decode(&record(v.clone())).unwrap();
        let b = decode(&record(v)).unwrap();
        assert_eq!(a.id, b.id);
        assert_eq!(a.id.len(), 36);
        assert_eq!(a.time, "1970-01-01T00:00:00Z");
    }
}
