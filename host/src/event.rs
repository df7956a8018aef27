//! The host's own event types: a raw Kafka record, the decoded [`Event`], a
//! plugin's [`Emit`] and its [`HandlerError`].
//!
//! These are plain Rust types. The generated WIT bindings convert to and from
//! them in [`crate::bindings`], so nothing outside that module sees binding
//! types, and nothing here knows about wasm or Kafka clients.

use serde::{Deserialize, Serialize};

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
    pub(crate) kind: EnvelopeKind,
    /// For camelCase: the top-level business fields the cause carried, which
    /// are lifted out of `data` again when an emit is encoded.
    pub(crate) lifted: Vec<String>,
}

impl EnvelopeStyle {
    /// A style of the given kind with nothing lifted.
    pub(crate) fn of(kind: EnvelopeKind) -> Self {
        EnvelopeStyle {
            kind,
            lifted: Vec::new(),
        }
    }
}

/// The most bytes of guest-provided error text (panic messages, stderr)
/// kept anywhere: logs, dead-letter headers, metrics and the admin API.
pub(crate) const MAX_ERROR_TEXT: usize = 2048;

/// `text` cut to at most `max` bytes on a character boundary, saying how
/// much was cut.
pub(crate) fn truncate_text(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes cut)", &text[..end], text.len() - end)
}

/// One record header: a name and its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The header's name.
    pub key: String,
    /// The header's value as text (bytes that are not UTF-8 are replaced).
    pub value: String,
    /// The exact bytes of a value that is not UTF-8 (`value` then holds a
    /// lossy copy), so that a dead letter or a replay carries it unchanged;
    /// `None` when `value` is exact.
    #[serde(skip)]
    pub raw: Option<Vec<u8>>,
}

impl Header {
    /// A header from a name and a value.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Header {
            key: key.into(),
            value: value.into(),
            raw: None,
        }
    }

    /// A header as read from Kafka: any bytes (a missing value reads as
    /// empty).
    pub(crate) fn from_bytes(key: impl Into<String>, bytes: Option<&[u8]>) -> Self {
        let bytes = bytes.unwrap_or_default();
        match std::str::from_utf8(bytes) {
            Ok(text) => Header::new(key, text),
            Err(_) => Header {
                key: key.into(),
                value: String::from_utf8_lossy(bytes).into_owned(),
                raw: Some(bytes.to_vec()),
            },
        }
    }

    /// The value's exact bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.raw.as_deref().unwrap_or(self.value.as_bytes())
    }
}

/// A record as read from (or written to) a Kafka partition.
///
/// The harness builds these from fixture files and the Kafka source builds
/// them from consumed messages, so both decode through the same code path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset within the partition.
    pub offset: i64,
    /// The key, if any.
    pub key: Option<Vec<u8>>,
    /// The headers, in order.
    pub headers: Vec<Header>,
    /// The payload, if any (a tombstone has none).
    pub value: Option<Vec<u8>>,
}

impl Record {
    /// The value of the first header named `key`, if present.
    pub(crate) fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.key.eq_ignore_ascii_case(key))
            .map(|h| h.value.as_str())
    }
}

/// An event decoded from any of the supported envelope styles.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event id; derived from the record's content when the envelope has none.
    pub id: String,
    /// The event type.
    pub ty: String,
    /// Who produced it.
    pub source: String,
    /// When it happened (RFC 3339 text as found in the envelope).
    pub time: String,
    /// The correlation id, when present.
    pub correlation_id: Option<String>,
    /// The CloudEvents subject, when present.
    pub subject: Option<String>,
    /// The payload as JSON text.
    pub data: String,
    /// The topic it was read from.
    pub topic: String,
    /// The partition it was read from.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The record key as text.
    pub key: Option<String>,
    /// The record's headers.
    pub headers: Vec<Header>,
    /// The envelope style it arrived in; emits reuse it unless the route says otherwise.
    pub style: EnvelopeStyle,
    /// How many routing hops produced it (the `switchyard-hop` header, 0 when absent).
    pub hops: u32,
}

/// One event a plugin asked to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emit {
    /// The event type.
    pub ty: String,
    /// The payload as JSON text.
    pub data: String,
    /// The key, when the plugin chose one.
    pub key: Option<String>,
    /// An explicit topic, when the plugin chose one.
    pub topic: Option<String>,
    /// Extra headers.
    pub headers: Vec<Header>,
}

/// A timer that came due, as a plugin's `on-timer` receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerCall {
    /// The name it was set under.
    pub name: String,
    /// The payload it was set with.
    pub payload: Vec<u8>,
    /// When it was due, RFC 3339 UTC (also the call's time).
    pub due: String,
}

/// A failure the handler itself reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Transient: retry later.
    #[error("retry: {0}")]
    Retry(String),
    /// Permanent: dead-letter now.
    #[error("reject: {0}")]
    Reject(String),
}

/// A record to produce: an emit wrapped in its envelope, or a dead letter.
///
/// This is the one outgoing shape: the router makes it, the state store keeps
/// it in the outbox ([`OutRecord::encode_all`]), and the sink produces it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutRecord {
    /// The destination topic.
    pub topic: String,
    /// The key.
    pub key: Option<Vec<u8>>,
    /// The headers, in order.
    pub headers: Vec<Header>,
    /// The value.
    pub value: Vec<u8>,
    /// Sent with no value at all, as the dead letter of a tombstone is
    /// (`value` is then empty). Plugin outputs never are.
    pub tombstone: bool,
}

impl OutRecord {
    /// About how many bytes it takes in a produce request.
    pub(crate) fn size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|h| h.key.len() + h.bytes().len() + 8)
            .sum();
        self.topic.len() + self.key.as_ref().map_or(0, Vec::len) + headers + self.value.len() + 64
    }

    /// The value of the first header named `key`, if present.
    pub(crate) fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.key.eq_ignore_ascii_case(key))
            .map(|h| h.value.as_str())
    }

    /// Encodes records for the outbox: length-prefixed fields, so that the
    /// same bytes come back byte for byte.
    ///
    /// The layout: the record count (`u32`, little-endian), then for each
    /// record its topic, a key flag (0 or 1) and the key, the header count,
    /// each header's name and value, and the value; every byte string is
    /// prefixed by its length (`u32`). A header's value is stored as its
    /// exact bytes ([`Header::bytes`]), so a value that is not UTF-8 comes
    /// back unchanged. Earlier versions stored the value's text in the same
    /// layout; that text is valid UTF-8, so their outboxes decode to the
    /// same records as before. (An earlier version refuses an outbox holding
    /// a value that is not UTF-8 rather than alter it.)
    pub(crate) fn encode_all(records: &[OutRecord]) -> Vec<u8> {
        fn put(out: &mut Vec<u8>, bytes: &[u8]) {
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(bytes);
        }
        let mut out = Vec::with_capacity(records.iter().map(OutRecord::size).sum());
        out.extend_from_slice(&(records.len() as u32).to_le_bytes());
        for r in records {
            put(&mut out, r.topic.as_bytes());
            match &r.key {
                Some(key) => {
                    out.push(1);
                    put(&mut out, key);
                }
                None => out.push(0),
            }
            out.extend_from_slice(&(r.headers.len() as u32).to_le_bytes());
            for h in &r.headers {
                put(&mut out, h.key.as_bytes());
                put(&mut out, h.bytes());
            }
            put(&mut out, &r.value);
        }
        out
    }

    /// Decodes what [`OutRecord::encode_all`] made (in this version or an
    /// earlier one). A header value that is not UTF-8 comes back as
    /// [`Header::from_bytes`] reads it from Kafka: its exact bytes in
    /// [`Header::raw`], a lossy copy in [`Header::value`].
    pub(crate) fn decode_all(bytes: &[u8]) -> Result<Vec<OutRecord>, String> {
        struct Reader<'a>(&'a [u8]);
        impl Reader<'_> {
            fn take(&mut self, n: usize) -> Result<&[u8], String> {
                if self.0.len() < n {
                    return Err("stored outputs are truncated".into());
                }
                let (head, rest) = self.0.split_at(n);
                self.0 = rest;
                Ok(head)
            }
            fn u32(&mut self) -> Result<usize, String> {
                let b = self.take(4)?;
                Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            }
            fn bytes(&mut self) -> Result<Vec<u8>, String> {
                let n = self.u32()?;
                Ok(self.take(n)?.to_vec())
            }
            fn text(&mut self) -> Result<String, String> {
                String::from_utf8(self.bytes()?).map_err(|e| e.to_string())
            }
        }
        let mut r = Reader(bytes);
        let count = r.u32()?;
        let mut records = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            let topic = r.text()?;
            let key = match r.take(1)?[0] {
                0 => None,
                _ => Some(r.bytes()?),
            };
            let n = r.u32()?;
            let mut headers = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                let key = r.text()?;
                headers.push(Header::from_bytes(key, Some(&r.bytes()?)));
            }
            let value = r.bytes()?;
            records.push(OutRecord {
                topic,
                key,
                headers,
                value,
                tombstone: false,
            });
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_encoding_round_trips() {
        let records = vec![
            OutRecord {
                topic: "a.b".into(),
                key: Some(b"k".to_vec()),
                headers: vec![Header::new("h", "v"), Header::new("x", "")],
                value: b"{\"x\":1}".to_vec(),
                tombstone: false,
            },
            OutRecord::default(),
        ];
        let bytes = OutRecord::encode_all(&records);
        assert_eq!(OutRecord::decode_all(&bytes).unwrap(), records);
        assert!(OutRecord::decode_all(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn binary_header_values_keep_their_bytes() {
        let h = Header::from_bytes("trace", Some(&[0xff, 0x00, b'a']));
        assert_eq!(h.bytes(), &[0xff, 0x00, b'a']);
        assert_eq!(h.value, "\u{fffd}\u{0}a");
        let t = Header::from_bytes("t", Some(b"text"));
        assert_eq!((t.value.as_str(), t.raw.as_deref()), ("text", None));
        assert_eq!(Header::from_bytes("n", None).bytes(), b"");
        // The outbox keeps them too: a redelivered event re-produces the
        // same bytes, not the lossy text.
        let record = OutRecord {
            topic: "a".into(),
            headers: vec![h.clone(), t, Header::from_bytes("e", Some(&[0xc3]))],
            ..OutRecord::default()
        };
        let back =
            OutRecord::decode_all(&OutRecord::encode_all(std::slice::from_ref(&record))).unwrap();
        assert_eq!(back, vec![record]);
        assert_eq!(back[0].headers[0].bytes(), &[0xff, 0x00, b'a']);
        assert_eq!(back[0].headers[2].bytes(), &[0xc3]);
    }

    #[test]
    fn outboxes_of_earlier_versions_still_decode() {
        // One record as the outbox stored it before header values were
        // stored as bytes: topic "t", key "k", header ("h", "v"), value "{}".
        let put = |out: &mut Vec<u8>, field: &[u8]| {
            out.extend_from_slice(&(field.len() as u32).to_le_bytes());
            out.extend_from_slice(field);
        };
        let mut old = 1u32.to_le_bytes().to_vec();
        put(&mut old, b"t");
        old.push(1);
        put(&mut old, b"k");
        old.extend_from_slice(&1u32.to_le_bytes());
        put(&mut old, b"h");
        put(&mut old, b"v");
        put(&mut old, b"{}");
        assert_eq!(
            OutRecord::decode_all(&old).unwrap(),
            vec![OutRecord {
                topic: "t".into(),
                key: Some(b"k".to_vec()),
                headers: vec![Header::new("h", "v")],
                value: b"{}".to_vec(),
                tombstone: false,
            }]
        );
    }
}
