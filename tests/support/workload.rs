//! The exactly-once workload the crash, kill and scale-out tests share: a
//! `counter` guest that is not idempotent by itself (every event takes the
//! next number from a counter in state) and the receipt plugin (gapless
//! receipt numbers), their input events, and reading their outputs back.
#![allow(dead_code)]

use super::kafka::Client;
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
        super::guest("counter").display()
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
        super::build_wasm("plugins").join("receipt.wasm").display()
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
