//! Envelope codecs: decode every catalog's envelope style into one
//! [`Event`](crate::event::Event), and encode emits back in the style a route asks for.
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

mod decode;
mod encode;
mod raw;

pub use crate::event::{EnvelopeKind, EnvelopeStyle};
pub use decode::{DecodeError, decode};
pub(crate) use encode::{Outgoing, encode, type_of};
pub(crate) use raw::{Fields, text as raw_text};

/// The header that counts routing hops, to stop loops.
pub(crate) const HOP_HEADER: &str = "switchyard-hop";

/// The namespace of every name-based UUID the host derives.
pub(crate) const ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x5b1f_1c3e_7a0d_4e62_9f3b_2d4c_8e9a_0c11);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Header, Record};
    use serde_json::Value;
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
            data: &data.to_string(),
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
