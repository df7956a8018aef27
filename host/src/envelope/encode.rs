//! Encoding: an emit's payload and what the host fills in around it, in the
//! envelope style a route asks for.

use super::{EnvelopeKind, EnvelopeStyle};
use crate::event::{Header, OutRecord};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The event type of an outgoing record, for logs (`-` when it has none).
pub(crate) fn type_of(record: &OutRecord) -> String {
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
pub(crate) struct Outgoing<'a> {
    /// The emitted event's id.
    pub(crate) id: &'a str,
    /// The emitted event's type.
    pub(crate) ty: &'a str,
    /// The emitting plugin's source name.
    pub(crate) source: &'a str,
    /// The event time (the cause's time).
    pub(crate) time: &'a str,
    /// The correlation id (the cause's, or the cause's id).
    pub(crate) correlation_id: &'a str,
    /// The id of the event that caused this one.
    pub(crate) causation_id: &'a str,
    /// The CloudEvents subject, carried over from the cause.
    pub(crate) subject: Option<&'a str>,
    /// The payload.
    pub(crate) data: &'a Value,
}

/// Encodes an outgoing event; returns the record value and any `ce_*` headers.
pub(crate) fn encode(out: &Outgoing<'_>, style: &EnvelopeStyle) -> (Vec<u8>, Vec<Header>) {
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
