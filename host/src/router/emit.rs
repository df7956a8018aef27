//! Checking what a plugin emitted, and wrapping each emit into the record to
//! produce: the allowed types, schemas, keys, topic names and size, and the
//! envelope and headers the host fills in.

use super::Failure;
use crate::config::PluginSpec;
use crate::envelope::{self, EnvelopeStyle, Fields, HOP_HEADER, ID_NAMESPACE, Outgoing};
use crate::event::{Emit, Event, Header, OutRecord};
use serde_json::Value;
use serde_json::value::RawValue;

/// The header naming the plugin that produced a record.
pub(crate) const PLUGIN_HEADER: &str = "switchyard-plugin";
/// The header naming the plugin version (content-hash prefix) that produced a record.
pub(crate) const VERSION_HEADER: &str = "switchyard-plugin-version";
/// Emitted headers with these prefixes are the host's and are dropped from
/// emits, so a plugin cannot forge hop counts, versions or CloudEvents
/// attributes.
pub(crate) const RESERVED_HEADER_PREFIXES: [&str; 2] = ["switchyard-", "ce_"];

/// Whether a record's key, when it has one, is the value of its data's
/// `field` (a string, or a number or boolean as JSON text). A key that
/// names another entity would put this entity's events on a partition
/// where their order is not kept, so such a record is refused rather than
/// handled out of order. A record without a key passes.
pub(super) fn key_matches(event: &Event, field: &str) -> Result<(), String> {
    let Some(key) = &event.key else {
        return Ok(());
    };
    let value = Fields::parse_str(&event.data)
        .ok()
        .flatten()
        .and_then(|data| data.get(field))
        .filter(|v| !matches!(v.get().as_bytes().first(), Some(b'{' | b'[')))
        .and_then(envelope::raw_text);
    match value {
        Some(value) if &value == key => Ok(()),
        Some(value) => Err(format!(
            "the record's key {key:?} does not match its data's `{field}` {value:?}; fix the producer's key"
        )),
        None => Err(format!(
            "the record is keyed {key:?} but its data has no `{field}` to match; fix the producer or `input_key_field`"
        )),
    }
}

/// Checks one emit against the plugin's config and the broker's limits
/// (`max_record_bytes`), and wraps it in its envelope.
pub(super) fn wrap(
    spec: &PluginSpec,
    version: &str,
    cause: &Event,
    index: usize,
    emit: Emit,
    max_record_bytes: usize,
) -> Result<OutRecord, Failure> {
    if !spec.emits.matches(&emit.ty) {
        return Err(Failure::Forbidden(emit.ty));
    }
    let invalid =
        |e: serde_json::Error| Failure::InvalidEmit(format!("`{}` data is not JSON: {e}", emit.ty));
    // One reading checks the data is JSON and, when the key is a field of
    // it, finds that field.
    let (data, field_key) = match spec.key_field.as_deref().filter(|_| emit.key.is_none()) {
        Some(field) => {
            let fields = Fields::parse_str(&emit.data).map_err(invalid)?;
            let data = emit.data.trim_matches([' ', '\t', '\n', '\r']);
            (data, fields.and_then(|f| f.text(field)))
        }
        None => {
            let raw: &RawValue = serde_json::from_str(&emit.data).map_err(invalid)?;
            (raw.get(), None)
        }
    };
    if let Some(schemas) = &spec.schemas {
        let value: Value = serde_json::from_str(data).unwrap_or_default();
        schemas.check(&emit.ty, &value).map_err(Failure::Schema)?;
    }
    let key = emit.key.clone().or(field_key);
    let topic = emit
        .topic
        .clone()
        .unwrap_or_else(|| spec.topic_for(&emit.ty));
    check_topic_name(&topic).map_err(|why| {
        Failure::InvalidEmit(format!(
            "`{}` goes to topic {topic:?}, which {why}",
            emit.ty
        ))
    })?;
    let id = uuid::Uuid::new_v5(
        &ID_NAMESPACE,
        format!("{}/{}/{index}", cause.id, spec.name).as_bytes(),
    )
    .to_string();
    let mut style = match spec.envelope {
        None => cause.style.clone(),
        Some(kind) if kind == cause.style.kind => cause.style.clone(),
        Some(kind) => EnvelopeStyle::of(kind),
    };
    if let Some(lift) = &spec.lift {
        style.lifted = lift.clone();
    }
    let correlation = cause.correlation_id.as_deref().unwrap_or(&cause.id);
    let out = Outgoing {
        id: &id,
        ty: &emit.ty,
        source: &spec.source,
        time: &cause.time,
        correlation_id: correlation,
        causation_id: &cause.id,
        subject: cause.subject.as_deref(),
        data,
    };
    let (value, mut headers) = envelope::encode(&out, &style);
    headers.extend(emit.headers.into_iter().filter(|h| {
        !RESERVED_HEADER_PREFIXES.iter().any(|p| {
            h.key
                .as_bytes()
                .get(..p.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(p.as_bytes()))
        })
    }));
    headers.push(Header::new(HOP_HEADER, (cause.hops + 1).to_string()));
    headers.push(Header::new(PLUGIN_HEADER, spec.name.clone()));
    headers.push(Header::new(VERSION_HEADER, version));
    let record = OutRecord {
        topic,
        key: key.map(String::into_bytes),
        headers,
        value,
        tombstone: false,
    };
    if record.size() > max_record_bytes {
        return Err(Failure::InvalidEmit(format!(
            "`{}` is {} bytes, over the {}-byte record limit (`kafka.max_record_bytes`)",
            emit.ty,
            record.size(),
            max_record_bytes
        )));
    }
    Ok(record)
}

/// Kafka's rule for topic names: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
fn check_topic_name(topic: &str) -> Result<(), &'static str> {
    if topic.is_empty() || topic.len() > 249 {
        return Err("must be 1 to 249 characters long");
    }
    if topic == "." || topic == ".." {
        return Err("is reserved");
    }
    if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("may only contain ASCII letters, digits, `.`, `_` and `-`");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(check_topic_name("payment.payment.succeeded").is_ok());
        assert!(check_topic_name("bad topic!").is_err());
        assert!(check_topic_name("").is_err());
        assert!(check_topic_name(&"x".repeat(250)).is_err());
    }
}
