//! Encoding: an emit's payload and what the host fills in around it, in the
//! envelope style a route asks for.

use super::raw::{Fields, Object};
use super::{EnvelopeKind, EnvelopeStyle};
use crate::event::{Header, OutRecord};
use serde::Deserialize;

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
#[derive(Debug, Clone)]
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
    /// The payload, JSON text the plugin wrote (checked, not taken apart),
    /// without surrounding whitespace.
    pub(crate) data: &'a str,
}

/// Encodes an outgoing event; returns the record value and any `ce_*` headers.
///
/// The envelope is written field by field around the payload's own text, so
/// the payload's fields reach the record in the order the plugin wrote them.
pub(crate) fn encode(out: &Outgoing<'_>, style: &EnvelopeStyle) -> (Vec<u8>, Vec<Header>) {
    let data = out.data;
    let mut obj = Object::with_capacity(data.len() + 384);
    match style.kind {
        EnvelopeKind::Snake => {
            obj.text("event_id", out.id)
                .text("event_type", out.ty)
                .text("event_version", "1.0")
                .text("timestamp", out.time)
                .text("correlation_id", out.correlation_id)
                .text("causation_id", out.causation_id)
                .raw("data", data);
            let mut meta = Object::with_capacity(out.source.len() + 16);
            meta.text("source", out.source);
            obj.object("metadata", meta);
        }
        EnvelopeKind::Camel | EnvelopeKind::CamelEventData => {
            obj.text("eventId", out.id).text("eventType", out.ty);
            let payload = lift(&mut obj, out.data, &style.lifted);
            let payload_key = if style.kind == EnvelopeKind::Camel {
                "data"
            } else {
                "eventData"
            };
            obj.text("timestamp", out.time).raw(payload_key, &payload);
            let mut meta = Object::with_capacity(128);
            meta.text("service", out.source)
                .text("correlationId", out.correlation_id)
                .text("causationId", out.causation_id);
            obj.object("metadata", meta);
        }
        EnvelopeKind::Cloudevents => {
            obj.text("specversion", "1.0")
                .text("id", out.id)
                .text("source", out.source)
                .text("type", out.ty)
                .text("time", out.time);
            if let Some(subject) = out.subject {
                obj.text("subject", subject);
            }
            obj.text("datacontenttype", "application/json")
                .text("correlationid", out.correlation_id)
                .text("causationid", out.causation_id)
                .raw("data", data);
        }
        EnvelopeKind::CloudeventsBinary => {
            let mut headers = Vec::with_capacity(9);
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
            return (data.as_bytes().to_vec(), headers);
        }
    }
    (obj.finish(), Vec::new())
}

/// Moves the `lifted` fields of an object payload to the envelope's top
/// level (in `lifted`'s order), and returns what is left of the payload.
fn lift(obj: &mut Object, data: &str, lifted: &[String]) -> String {
    let fields = match Fields::parse_str(data) {
        Ok(Some(fields)) if lifted.iter().any(|k| fields.has(k)) => fields,
        _ => return data.to_string(),
    };
    for key in lifted {
        if let Some(value) = fields.get(key) {
            obj.raw(key, value.get());
        }
    }
    let mut rest = Object::with_capacity(data.len());
    for (key, value) in fields.unique() {
        if !lifted.iter().any(|k| k == key) {
            rest.raw(key, value.get());
        }
    }
    rest.finish_text()
}
