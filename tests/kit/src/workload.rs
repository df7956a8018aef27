//! The exactly-once workload the crash, kill and scale-out tests share: a
//! `counter` guest that is not idempotent by itself (every event takes the
//! next number from a counter in state) and the receipt plugin (gapless
//! receipt numbers), their input events, and reading their outputs back.

use crate::Client;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The `[[plugin]]` table of the `counter` guest on `count.*`.
pub fn counter_plugin() -> String {
    format!(
        r#"
[[plugin]]
name = "counter"
wasm = "{}"
subscribe.types = ["count.*"]
emits = ["counted"]
"#,
        crate::guest("counter").display()
    )
}

/// The `[[plugin]]` table of the receipt plugin on
/// `payment.payment.succeeded`, keyed by payment id.
pub fn receipt_plugin() -> String {
    format!(
        r#"
[[plugin]]
name = "receipt"
wasm = "{}"
subscribe.types = ["payment.payment.succeeded"]
emits = ["receipt.receipt.generated"]
key_field = "payment_id"

[plugin.config]
receipt_base_url = "https://receipts.example/"
"#,
        crate::build_wasm("plugins").join("receipt.wasm").display()
    )
}

/// Writes `dir/router.toml`: `head` (TOML tables), then `plugins`.
pub fn write_config(dir: &Path, head: &str, plugins: &[String]) -> PathBuf {
    let config = dir.join("router.toml");
    std::fs::write(&config, format!("{head}\n{}", plugins.concat())).unwrap();
    config
}

/// Writes `dir/router.toml` running `counter` on `count.*` and `receipt` on
/// `payment.payment.succeeded`, with `head` (TOML tables) before the plugins.
pub fn counter_and_receipt(dir: &Path, head: &str) -> PathBuf {
    write_config(dir, head, &[counter_plugin(), receipt_plugin()])
}

/// Input `i` of the counter, as a (key, value) line.
pub fn count_event(i: usize) -> (String, String) {
    let event = json!({"event_id": format!("c-{i:07}"), "event_type": "count.in",
                       "timestamp": "2025-11-24T10:30:00Z", "data": {"i": i}});
    (format!("k{i}"), event.to_string())
}

/// Payment `i` (catalog 000's `payment.payment.succeeded`), keyed by its
/// payment id; `series` (one hex digit) keeps ids distinct between tests.
pub fn payment_event(series: char, i: usize) -> (String, String) {
    let event = json!({
        "event_id": format!("e{series}000000-0000-4000-8000-{i:012}"),
        "event_type": "payment.payment.succeeded", "event_version": "1.0",
        "timestamp": "2025-11-24T10:35:00Z",
        "data": {"payment_id": format!("pay-{i}"), "booking_id": format!("bk-{i}"),
                 "user_id": "u-1", "amount": 10.0, "currency": "USD",
                 "provider": "stripe", "succeeded_at": "2025-11-24T10:35:00Z"}
    });
    (format!("pay-{i}"), event.to_string())
}

/// Every output on `topic`, grouped by the input it names in `data.<field>`.
pub fn outputs(client: &dyn Client, topic: &str, field: &str) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut by_input: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for r in client.consume(topic) {
        let v: Value = serde_json::from_slice(&r.value).unwrap();
        by_input
            .entry(v["data"][field].as_str().unwrap().to_string())
            .or_default()
            .push(r.value);
    }
    by_input
}

/// The value of `data.<field>` in the first copy of each output.
pub fn first_values(outputs: &BTreeMap<String, Vec<Vec<u8>>>, field: &str) -> Vec<Value> {
    outputs
        .values()
        .map(|copies| serde_json::from_slice::<Value>(&copies[0]).unwrap()["data"][field].clone())
        .collect()
}

/// The inputs whose copies are not all byte-identical.
pub fn differing(outputs: &BTreeMap<String, Vec<Vec<u8>>>) -> Vec<String> {
    outputs
        .iter()
        .filter(|(_, copies)| copies.windows(2).any(|w| w[0] != w[1]))
        .map(|(id, _)| id.clone())
        .collect()
}

/// The `[[plugin]]` table of the waitlist plugin (catalog 001), its
/// promotions mapped to `output`, keyed by room.
pub fn waitlist_plugin(output: &str) -> String {
    format!(
        r#"
[[plugin]]
name = "waitlist"
wasm = "{}"
subscribe.types = ["waitlist.joined", "booking.cancelled"]
emits = ["waitlist.promoted"]
topics = {{ "waitlist.promoted" = "{output}" }}
key_field = "resourceId"
lift = ["waitlistId", "userId", "resourceId"]
source = "booking-service"
"#,
        crate::build_wasm("plugins").join("waitlist.wasm").display()
    )
}

/// Steps per room in [`waitlist_events`]: 20 joins and 10 cancellations.
pub const WAITLIST_STEPS: usize = 30;

/// The waitlist workload for `rooms` rooms, in catalog 001's shapes, all on
/// one topic and keyed by room so that each room's events keep their order.
/// Per room, two joins (varied priorities and windows, join times in
/// order) come before each cancellation, which frees a slot overlapping
/// every window: each cancellation promotes exactly one entry, chosen by
/// priority, then join time, and reports everyone still waiting. An event
/// applied twice would show: a second cancellation promotes a second entry.
pub fn waitlist_events(rooms: usize) -> Vec<(String, String)> {
    let mut lines = vec![];
    for r in 0..rooms {
        let room = format!("room-{r:04}");
        for s in 0..WAITLIST_STEPS {
            let at = format!("2099-08-19T10:{:02}:{:02}Z", s / 60, s % 60);
            let event = if s % 3 == 2 {
                json!({
                    "eventId": format!("evt-b-{r}-{s}"), "eventType": "booking.cancelled",
                    "bookingId": format!("booking-{r}-{s}"), "userId": "user-900",
                    "resourceId": room, "timestamp": at,
                    "eventData": {"id": format!("booking-{r}-{s}"), "title": "Team Meeting",
                                  "status": "cancelled", "startTime": "2099-08-19T08:00:00Z",
                                  "endTime": "2099-08-19T20:00:00Z", "attendeesCount": 5},
                    "metadata": {"service": "booking-service", "version": "1.0.0"}
                })
            } else {
                let hour = 9 + s % 8;
                json!({
                    "eventId": format!("evt-w-{r}-{s}"), "eventType": "waitlist.joined",
                    "waitlistId": format!("wl-{r}-{s}"), "userId": format!("user-{r}-{s}"),
                    "resourceId": room, "timestamp": at,
                    "eventData": {"priority": (s * 37 + r * 11) % 100, "position": 1,
                                  "desiredStartTime": format!("2099-08-19T{hour:02}:00:00Z"),
                                  "desiredEndTime": format!("2099-08-19T{:02}:00:00Z", hour + 1)},
                    "metadata": {"service": "booking-service", "version": "1.0.0"}
                })
            };
            lines.push((room.clone(), event.to_string()));
        }
    }
    lines
}

/// Every `waitlist.promoted` on `topic`, grouped by the cancelled booking
/// that freed its slot.
pub fn promotions(client: &dyn Client, topic: &str) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut by_booking: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for r in client.consume(topic) {
        let v: Value = serde_json::from_slice(&r.value).unwrap();
        if v["eventType"] == "waitlist.promoted" {
            by_booking
                .entry(
                    v["eventData"]["freedBookingId"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
                .or_default()
                .push(r.value);
        }
    }
    by_booking
}

/// What a promotion says about the queue: who was promoted from where, and
/// everyone still waiting with their positions (the record without its
/// event id and time, which belong to the run that made it).
pub fn queue_after(copy: &[u8]) -> Value {
    let mut v: Value = serde_json::from_slice(copy).unwrap();
    let fields = v.as_object_mut().unwrap();
    fields.remove("eventId");
    fields.remove("timestamp");
    v
}

/// [`queue_after`] of the first copy of each promotion, by cancelled booking.
pub fn queues(promotions: &BTreeMap<String, Vec<Vec<u8>>>) -> BTreeMap<String, Value> {
    promotions
        .iter()
        .map(|(booking, copies)| (booking.clone(), queue_after(&copies[0])))
        .collect()
}

/// Payment `i` of a series, in catalog 000's `payment.payment.succeeded`
/// shape (as examples/booking/fixtures/receipt has it), with its payment id
/// (the key); `series` keeps the event ids of separate runs apart.
pub fn payment_succeeded(series: u32, i: usize) -> (String, String) {
    let payment_id = format!("7b5c03fb-9c92-49f1-{series:04x}-{i:012}");
    let event = json!({
        "event_id": format!("e1000100-{series:04x}-4000-8000-{i:012}"),
        "event_type": "payment.payment.succeeded",
        "event_version": "1.0",
        "timestamp": "2025-11-24T10:35:00Z",
        "correlation_id": format!("c0a1e2b3-0000-4000-8000-{i:012}"),
        "data": {
            "payment_id": payment_id,
            "booking_id": format!("fa8ce543-4947-405c-9a63-{i:012}"),
            "user_id": "u1a2b3c4-d5e6-4f70-8a9b-0c1d2e3f4a5b",
            "amount": 99.99,
            "currency": "USD",
            "provider": "stripe",
            "provider_payment_id": format!("pi_{i:013}"),
            "payment_method": {"type": "card", "brand": "visa", "last4": "4242"},
            "succeeded_at": "2025-11-24T10:35:00Z"
        },
        "metadata": {"source": "payment-service"}
    });
    (payment_id, event.to_string())
}
