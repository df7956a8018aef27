//! The host's own event types: a raw Kafka record, the decoded [`Event`], a
//! plugin's [`Emit`] and its [`HandlerError`].
//!
//! These are plain Rust types. The generated WIT bindings convert to and from
//! them in [`crate::bindings`], so nothing outside that module sees binding
//! types, and nothing here knows about wasm or Kafka clients.

use crate::envelope::EnvelopeStyle;
use serde::{Deserialize, Serialize};

/// One record header: a name and its raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The header's name.
    pub key: String,
    /// The header's value as text (bytes that are not UTF-8 are replaced).
    pub value: String,
}

impl Header {
    /// A header from a name and a value.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Header {
            key: key.into(),
            value: value.into(),
        }
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
    pub fn header(&self, key: &str) -> Option<&str> {
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
