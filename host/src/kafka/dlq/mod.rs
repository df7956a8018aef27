//! Dead letters: the original record, unchanged, on `<topic>.dlq`, with
//! headers saying where it came from and why it failed; and replay.
//!
//! | header | value |
//! |---|---|
//! | `switchyard-dlq-topic` | the original topic |
//! | `switchyard-dlq-partition` | the original partition |
//! | `switchyard-dlq-offset` | the original offset |
//! | `switchyard-dlq-plugin` | the plugin that failed (empty for undecodable records) |
//! | `switchyard-dlq-plugin-version` | its version (content-hash prefix) |
//! | `switchyard-dlq-attempts` | how many times it was tried |
//! | `switchyard-dlq-error-class` | `decode`, `retry`, `reject`, `trap`, `timeout`, `memory`, `forbidden`, `invalid-emit`, `schema`, `key`, `loop`, `produce` |
//! | `switchyard-dlq-error` | the message, cut to 2 KiB |
//! | `switchyard-dlq-truncated` | present only when the value had to be cut to fit the record limit: the original length |
//!
//! A dead letter always fits under the record limit (`kafka.max_record_bytes`):
//! the error text is cut first, and if the original record was itself close to
//! the limit, its value is cut too and `switchyard-dlq-truncated` says so. A
//! replay of such a letter sends the cut value.

use crate::event::{Header, OutRecord, Record};
use crate::event::{MAX_ERROR_TEXT, truncate_text};

mod browse;
mod replay;

pub(crate) use browse::{letter, recent};
pub(crate) use replay::{replay, replay_one};

/// The prefix of every dead-letter header.
pub(crate) const PREFIX: &str = "switchyard-dlq-";

/// Why a record is dead-lettered.
#[derive(Debug, Clone)]
pub(crate) struct DeadLetter<'a> {
    /// The plugin that failed, if one ran.
    pub(crate) plugin: Option<&'a str>,
    /// Its version label.
    pub(crate) version: Option<&'a str>,
    /// Attempts made.
    pub(crate) attempts: u32,
    /// The error class.
    pub(crate) class: &'a str,
    /// The error message.
    pub(crate) message: &'a str,
}

/// The dead-letter topic of `topic`.
pub(crate) fn topic_of(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// Whether `out` is the dead-letter topic of `topic` ([`topic_of`]),
/// without writing its name: asked for every output.
pub(crate) fn is_topic_of(out: &str, topic: &str) -> bool {
    out.strip_suffix(".dlq") == Some(topic)
}

impl<'a> DeadLetter<'a> {
    /// The letter for an input whose outputs the broker refused for good
    /// (class `produce`), saying why.
    pub(crate) fn refused(message: &'a str) -> Self {
        DeadLetter {
            plugin: None,
            version: None,
            attempts: 1,
            class: "produce",
            message,
        }
    }

    /// The dead-letter record for `record`, at most `max_bytes` long.
    pub(crate) fn wrap(&self, record: &Record, max_bytes: usize) -> OutRecord {
        let mut headers = record.headers.clone();
        let mut put =
            |name: &str, value: String| headers.push(Header::new(format!("{PREFIX}{name}"), value));
        put("topic", record.topic.clone());
        put("partition", record.partition.to_string());
        put("offset", record.offset.to_string());
        put("plugin", self.plugin.unwrap_or_default().to_string());
        put(
            "plugin-version",
            self.version.unwrap_or_default().to_string(),
        );
        put("attempts", self.attempts.to_string());
        put("error-class", self.class.to_string());
        put("error", truncate_text(self.message, MAX_ERROR_TEXT));
        let mut letter = OutRecord {
            topic: topic_of(&record.topic),
            key: record.key.clone(),
            headers,
            value: record.value.clone().unwrap_or_default(),
            tombstone: record.value.is_none(),
        };
        let size = letter.size();
        if size > max_bytes {
            let original = letter.value.len();
            letter
                .value
                .truncate(original.saturating_sub(size - max_bytes + 64));
            letter.headers.push(Header::new(
                format!("{PREFIX}truncated"),
                original.to_string(),
            ));
        }
        letter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_topic_is_recognised_without_writing_it() {
        assert!(is_topic_of(&topic_of("payments"), "payments"));
        assert!(!is_topic_of("payments", "payments"));
        assert!(!is_topic_of("payments.dlq.dlq", "payments"));
        assert!(!is_topic_of("other.dlq", "payments"));
    }

    #[test]
    fn a_dead_letter_keeps_binary_headers_and_tombstones_exactly() {
        let record = Record {
            topic: "t".into(),
            key: Some(b"k".to_vec()),
            headers: vec![Header::from_bytes("trace", Some(&[0xff, 0xfe, 0]))],
            value: None,
            ..Record::default()
        };
        let letter = DeadLetter {
            plugin: None,
            version: None,
            attempts: 1,
            class: "decode",
            message: "no value",
        }
        .wrap(&record, 1_000_000);
        assert_eq!(letter.topic, "t.dlq");
        assert!(letter.tombstone, "a tombstone stays a tombstone");
        assert_eq!(letter.headers[0].bytes(), &[0xff, 0xfe, 0]);
        assert_eq!(letter.header("switchyard-dlq-error-class"), Some("decode"));
    }
}
