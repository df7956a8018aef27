//! The benchmark's baselines do the router's work: on Apache Kafka, the
//! router with the payment plugin (exactly-once), the Kafka Streams
//! application (`bench/kstreams`, built by `scripts/kstreams.sh`,
//! exactly-once) and the plain Python script (`bench/python/payment.py`,
//! confluent-kafka, at-least-once) read the same bookings (approved,
//! declined cards, amounts over the limit, unsupported currencies, bad
//! cards and amounts, records the plugin rejects) into their own output
//! topics, and decide every booking alike, record by record.

use switchyard_testkit as kit;

use kit::{Broker, Client, Kcat, Rec, Router, eventually, root};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The input topic.
const INPUT: &str = "booking.booking.created";
/// The Kafka Streams application's output topics: this prefix and the type.
const PREFIX: &str = "kstreams.";
/// The Python script's output topics: this prefix and the type.
const PY_PREFIX: &str = "python.";
/// The output event types, which are the router's topics.
const OUTPUTS: [&str; 2] = ["payment.payment.succeeded", "payment.payment.failed"];
/// Bookings the plugin decides.
const N: usize = 300;
/// The limit over which a charge is declined: its `{:.2}` rounds to
/// 4999.99 (the double is just under 4999.995), which checks that the Java
/// side formats the message as Rust does.
const MAX_AMOUNT: &str = "4999.995";
/// The card the config always declines.
const DECLINED: &str = "4000000000000002";

/// Booking `i`, a catalog-000 `booking.booking.created` (the catalog's
/// shape), varied by `i % 10` over every rule of the plugin.
fn booking(i: usize) -> Value {
    let (mut amount, mut currency, mut card) = (json!(99.99), "USD", json!(null));
    match i % 10 {
        1 => card = json!(DECLINED),
        2 => amount = json!(7500.0),
        3 => currency = "JPY",
        4 => (currency, amount) = ("eur", json!(4999.99)),
        5 => card = json!("5555555555554444"),
        6 => card = json!("12ab"),
        7 => amount = json!(-5),
        8 => (card, amount) = (json!("378282246310005"), json!(123.456)),
        9 => card = json!(6011111111111117u64), // not text: the default card
        _ => {}
    }
    let metadata = if card.is_null() {
        json!({})
    } else {
        json!({ "card_number": card })
    };
    json!({
        "event_id": format!("e0000001-0000-4000-8000-{i:012}"),
        "event_type": INPUT, "event_version": "1.0",
        "timestamp": format!("2025-11-24T10:{:02}:00Z", i % 60),
        "correlation_id": format!("c0a1e2b3-0000-4000-8000-{i:012}"),
        "data": {
            "booking_id": format!("b7f3c1d2-0000-4000-8000-{i:012}"),
            "user_id": format!("u1a2b3c4-0000-4000-8000-{:012}", i % 17),
            "product_id": "5e0c2b1a-7d3f-4e8a-9b6c-1f2e3d4c5b6a",
            "start_time": "2025-12-01T14:00:00Z", "end_time": "2025-12-01T15:00:00Z",
            "quantity": 1, "price_amount": amount, "price_currency": currency,
            "status": "PENDING", "metadata": metadata
        },
        "metadata": {"source": "booking-service"}
    })
}

/// Records the plugin rejects (the router dead-letters them) and the
/// Kafka Streams application skips: no decision from either.
fn rejected() -> Vec<(String, String)> {
    let mut text_amount = booking(N);
    text_amount["data"]["price_amount"] = json!("100");
    let mut no_user = booking(N + 1);
    no_user["data"].as_object_mut().unwrap().remove("user_id");
    vec![
        ("bad-1".into(), text_amount.to_string()),
        ("bad-2".into(), no_user.to_string()),
        ("bad-3".into(), "not json".into()),
    ]
}

/// A baseline: the Kafka Streams application or the Python script. Both
/// print `running` once they run and stop when their standard input
/// closes, on drop.
struct Baseline {
    child: Child,
}

impl Baseline {
    /// The Kafka Streams application, built by `scripts/kstreams.sh`, on
    /// `bootstrap` with `args`.
    fn streams(bootstrap: &str, args: &[&str]) -> Self {
        let build = Command::new(root().join("scripts/kstreams.sh"))
            .output()
            .expect("scripts/kstreams.sh runs");
        assert!(
            build.status.success(),
            "scripts/kstreams.sh failed (scripts/setup.sh --test installs Maven):\n{}",
            String::from_utf8_lossy(&build.stderr)
        );
        let classpath = String::from_utf8(build.stdout).unwrap().trim().to_string();
        let mut java = Command::new("java");
        java.args(["-cp", &classpath, "dev.switchyard.kstreams.PaymentStreams"]);
        Self::start(java, bootstrap, args, "Kafka Streams")
    }

    /// The Python script on `bootstrap` with `args`.
    fn python(bootstrap: &str, args: &[&str]) -> Self {
        let mut python = Command::new("python3");
        python.arg(root().join("bench/python/payment.py"));
        Self::start(python, bootstrap, args, "the Python script")
    }

    /// Starts `command`; returns once it is running.
    fn start(mut command: Command, bootstrap: &str, args: &[&str], name: &str) -> Self {
        let mut child = command
            .args(["--bootstrap-servers", bootstrap])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} runs (scripts/setup.sh --test installs it): {e}"));
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let running = rx
            .iter()
            .find(|l| l == "running" || l.starts_with("stopped"));
        assert_eq!(running.as_deref(), Some("running"), "{name} did not start");
        Baseline { child }
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Every record on `topics`, by booking id.
fn by_booking(kcat: &Kcat, topics: &[String]) -> BTreeMap<String, Rec> {
    let mut out = BTreeMap::new();
    for topic in topics {
        for r in kcat.consume(topic) {
            let v: Value = serde_json::from_slice(&r.value).unwrap();
            let booking = v["data"]["booking_id"].as_str().unwrap().to_string();
            assert!(out.insert(booking, r).is_none(), "a booking decided twice");
        }
    }
    out
}

#[test]
fn the_baselines_decide_every_booking_as_the_router_does() {
    let broker = Broker::kafka();
    let bootstrap = broker.bootstrap();
    broker.create_topic(INPUT, 3);
    for t in OUTPUTS {
        broker.create_topic(t, 3);
        broker.create_topic(&format!("{PREFIX}{t}"), 3);
        broker.create_topic(&format!("{PY_PREFIX}{t}"), 3);
    }
    let kcat = Kcat(bootstrap.clone());
    let mut lines: Vec<(String, String)> = (0..N)
        .map(|i| {
            let b = booking(i);
            (
                b["data"]["booking_id"].as_str().unwrap().to_string(),
                b.to_string(),
            )
        })
        .collect();
    lines.extend(rejected());
    kcat.produce_lines(INPUT, None, &lines);

    // The router: the payment plugin as the benchmark configures it, with
    // the decline cards too; the baselines' topics are not its input.
    let dir = tempfile::tempdir().unwrap();
    let config = kit::workload::write_config(
        dir.path(),
        "[kafka]\nguarantee = \"exactly-once\"\nexclude = [\"kstreams*\", \"python*\"]",
        &[format!(
            r#"
[[plugin]]
name = "payment"
wasm = "{}"
subscribe.types = ["{INPUT}"]
emits = ["payment.payment.succeeded", "payment.payment.failed"]
key_field = "payment_id"

[plugin.config]
vocabulary = "booking"
max_amount = {MAX_AMOUNT}
decline_cards = ["{DECLINED}"]
"#,
            kit::build_wasm("plugins").join("payment.wasm").display()
        )],
    );
    let router = Router::start(
        &config,
        &broker,
        &dir.path().join("state"),
        &dir.path().join("cache"),
    );
    let state = dir.path().join("kstreams");
    let streams = Baseline::streams(
        &bootstrap,
        &[
            "--guarantee",
            "exactly_once_v2",
            "--output-prefix",
            PREFIX,
            "--max-amount",
            MAX_AMOUNT,
            "--decline-cards",
            DECLINED,
            "--state-dir",
            state.to_str().unwrap(),
        ],
    );

    let script = Baseline::python(
        &bootstrap,
        &[
            "--output-prefix",
            PY_PREFIX,
            "--max-amount",
            MAX_AMOUNT,
            "--decline-cards",
            DECLINED,
        ],
    );

    let topics =
        |prefix: &str| -> Vec<String> { OUTPUTS.iter().map(|t| format!("{prefix}{t}")).collect() };
    let (ours, streams_s, script_s) = eventually(
        "all three to decide every booking",
        Duration::from_secs(60),
        || {
            let ours = by_booking(&kcat, &topics(""));
            let streams_s = by_booking(&kcat, &topics(PREFIX));
            let script_s = by_booking(&kcat, &topics(PY_PREFIX));
            if ours.len() >= N && streams_s.len() >= N && script_s.len() >= N {
                Ok((ours, streams_s, script_s))
            } else {
                Err(format!(
                    "router {}, Kafka Streams {} and the Python script {} of {N}",
                    ours.len(),
                    streams_s.len(),
                    script_s.len()
                ))
            }
        },
    );
    drop(streams);
    drop(script);
    eventually(
        "the rejected records dead-lettered",
        Duration::from_secs(30),
        || router.or_log(router.dead_lettered(INPUT) >= 3),
    );
    router.stop();

    decided_alike(&ours, &streams_s, PREFIX);
    decided_alike(&ours, &script_s, PY_PREFIX);
    let mut codes = BTreeSet::new();
    for r in ours.values() {
        let a: Value = serde_json::from_slice(&r.value).unwrap();
        codes.insert(
            a["data"]["error_code"]
                .as_str()
                .unwrap_or("approved")
                .to_string(),
        );
    }
    let expected: BTreeSet<String> = [
        "approved",
        "amount_too_large",
        "card_declined",
        "currency_not_supported",
        "invalid_amount",
        "invalid_card_number",
    ]
    .map(String::from)
    .into();
    assert_eq!(codes, expected, "every rule was exercised");
    let too_large = ours.values().find_map(|r| {
        let v: Value = serde_json::from_slice(&r.value).unwrap();
        (v["data"]["error_code"] == "amount_too_large").then(|| v["data"]["error_message"].clone())
    });
    assert_eq!(
        too_large,
        Some(json!("Amount exceeds the limit of 4999.99 USD"))
    );
}

/// Asserts that a baseline whose topics carry `prefix` decided every
/// booking as the router did. Everything is compared: the ids are derived
/// the same way on every side (the emitted event id from the input's id and
/// the plugin name, `payment_id` from the booking id) and the times are the
/// input's, so nothing differs necessarily. The values are compared as
/// parsed JSON (field order and the spelling of numbers differ); of the
/// headers only `switchyard-plugin-version` differs (the wasm's hash,
/// `kstreams`, `python`).
fn decided_alike(ours: &BTreeMap<String, Rec>, theirs: &BTreeMap<String, Rec>, prefix: &str) {
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "{prefix}: the same bookings decided"
    );
    for (booking, r) in ours {
        let k = &theirs[booking];
        let (a, b): (Value, Value) = (
            serde_json::from_slice(&r.value).unwrap(),
            serde_json::from_slice(&k.value).unwrap(),
        );
        assert_eq!(a, b, "{prefix}: booking {booking}");
        assert_eq!(
            (&r.key, format!("{prefix}{}", r.topic)),
            (&k.key, k.topic.clone()),
            "{prefix}: booking {booking}: key or topic"
        );
        for h in ["switchyard-hop", "switchyard-plugin"] {
            assert_eq!(
                r.header(h),
                k.header(h),
                "{prefix}: booking {booking}: header {h}"
            );
        }
    }
}
