//! The router under bad input, crashes and shutdowns, on the mock cluster
//! with kcat as the outside client.

use switchyard_testkit as kit;

use kit::{Broker, Client, Kcat, Rec, Router, eventually};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn booking_created(i: usize) -> Value {
    json!({
        "event_id": format!("00000000-0000-4000-8000-{i:012}"),
        "event_type": "booking.booking.created", "event_version": "1.0",
        "timestamp": "2025-11-24T10:30:00Z", "correlation_id": format!("corr-{i}"),
        "data": {"booking_id": format!("bk-{i}"), "user_id": format!("user-{i}"), "price_amount": 10.0 + i as f64,
                 "price_currency": "USD", "metadata": {}},
        "metadata": {"source": "booking-service"}
    })
}

fn rec(topic: &str, partition: Option<i32>, value: impl Into<Vec<u8>>) -> Rec {
    Rec {
        topic: topic.into(),
        partition,
        key: Some("k".into()),
        headers: vec![],
        value: value.into(),
    }
}

fn event_id(r: &Rec) -> String {
    let v: Value = serde_json::from_slice(&r.value).unwrap();
    v["event_id"].as_str().unwrap().to_string()
}

/// Writes a router config with the test guests and returns its path.
fn fault_config(dir: &Path) -> std::path::PathBuf {
    let guests = kit::build_wasm("tests/guests");
    let g = |name: &str| guests.join(format!("{name}.wasm")).display().to_string();
    let config = format!(
        r#"
[kafka]
max_retries = 1
retry_backoff_ms = 50

[[plugin]]
name = "echo"
wasm = "{echo}"
subscribe.types = ["booking.*"]
subscribe.topics = ["orders"]
emits = ["echo.*"]

[[plugin]]
name = "trap"
wasm = "{trap}"
subscribe.types = ["booking.booking.cancelled"]

[[plugin]]
name = "spin"
wasm = "{spin}"
subscribe.topics = ["slow-orders"]
timeout_ms = 200

[[plugin]]
name = "rogue"
wasm = "{echo}"
subscribe.topics = ["rogue-orders"]
emits = ["allowed.*"]
"#,
        echo = g("echo"),
        trap = g("trap"),
        spin = g("spin")
    );
    let path = dir.join("router.toml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn bad_input_is_dead_lettered_with_its_reason_and_the_partition_moves_on() {
    let broker = Broker::mock();
    for t in [
        "orders",
        "orders.dlq",
        "slow-orders",
        "slow-orders.dlq",
        "rogue-orders",
        "rogue-orders.dlq",
    ] {
        broker.create_topic(t, 1);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = fault_config(dir.path());
    let router = Router::start(
        &config,
        &broker,
        &dir.path().join("state"),
        &dir.path().join("cache"),
    );
    let kcat = Kcat(broker.bootstrap());
    let mut cancelled = booking_created(3);
    cancelled["event_type"] = json!("booking.booking.cancelled");
    let orders = vec![
        rec("orders", Some(0), booking_created(1).to_string()),
        rec("orders", Some(0), "not json {"),
        rec(
            "orders",
            Some(0),
            json!({"event_id": "x", "data": {}}).to_string(),
        ),
        rec("orders", Some(0), cancelled.to_string()),
        rec("orders", Some(0), booking_created(2).to_string()),
        rec("slow-orders", Some(0), booking_created(4).to_string()),
        rec("slow-orders", Some(0), booking_created(5).to_string()),
        rec("rogue-orders", Some(0), booking_created(6).to_string()),
    ];
    kcat.produce(&orders);
    eventually("the last good record", Duration::from_secs(60), || {
        router.or_log(
            router.processed("orders") >= 5
                && router.processed("slow-orders") >= 2
                && router.processed("rogue-orders") >= 1,
        )
    });

    // Both good records around the bad ones were routed.
    let echoed: BTreeSet<String> = kcat
        .consume("echo.booking.booking.created")
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.value).unwrap()["data"]["data"]["booking_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // bk-6 too: echo subscribes to every booking type, whatever the topic.
    assert_eq!(
        echoed,
        BTreeSet::from(["bk-1", "bk-2", "bk-4", "bk-5", "bk-6"].map(String::from))
    );
    assert_eq!(
        kcat.consume("echo.booking.booking.cancelled").len(),
        1,
        "echo still handles what trap fails on"
    );

    let dead = kcat.consume("orders.dlq");
    let reasons: Vec<(String, String, String, String)> = dead
        .iter()
        .map(|r| {
            let h = |k: &str| {
                r.header(&format!("switchyard-dlq-{k}"))
                    .unwrap_or_default()
                    .to_string()
            };
            (h("offset"), h("error-class"), h("plugin"), h("error"))
        })
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert_eq!(
        (reasons[0].0.as_str(), reasons[0].1.as_str()),
        ("1", "decode")
    );
    assert!(reasons[0].3.contains("not JSON"), "{reasons:?}");
    assert_eq!(
        (reasons[1].0.as_str(), reasons[1].1.as_str()),
        ("2", "decode")
    );
    assert!(reasons[1].3.contains("no event type"), "{reasons:?}");
    assert_eq!(
        (
            reasons[2].0.as_str(),
            reasons[2].1.as_str(),
            reasons[2].2.as_str()
        ),
        ("3", "trap", "trap")
    );
    assert!(
        reasons[2].3.contains("boom on booking.booking.cancelled"),
        "{reasons:?}"
    );
    assert_eq!(
        dead[1].value, orders[2].value,
        "the original record is dead-lettered unchanged"
    );
    assert_eq!(dead[0].header("switchyard-dlq-topic"), Some("orders"));

    let slow: Vec<String> = kcat
        .consume("slow-orders.dlq")
        .iter()
        .map(|r| r.header("switchyard-dlq-error-class").unwrap().to_string())
        .collect();
    assert_eq!(slow, ["timeout", "timeout"]);
    let rogue = kcat.consume("rogue-orders.dlq");
    assert_eq!(rogue.len(), 1);
    assert_eq!(
        rogue[0].header("switchyard-dlq-error-class"),
        Some("forbidden")
    );
    assert!(
        rogue[0]
            .header("switchyard-dlq-error")
            .unwrap()
            .contains("echo.booking.booking.created")
    );
    assert!(
        kcat.consume("echo.booking.booking.created")
            .iter()
            .all(|r| r.header("switchyard-plugin") == Some("echo"))
    );
    router.stop();

    // Replay sends the dead letters back, unchanged and without the DLQ headers.
    let out = Command::new(kit::switchyard_bin())
        .args([
            "dlq",
            "replay",
            "orders.dlq",
            "--brokers",
            &broker.bootstrap(),
            "--idle-secs",
            "3",
        ])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("replayed 3 record(s) from orders.dlq"));
    let again = kcat.consume("orders");
    assert_eq!(again.len(), 8);
    assert_eq!(
        again[5..]
            .iter()
            .map(|r| r.value.clone())
            .collect::<Vec<_>>(),
        vec![
            orders[1].value.clone(),
            orders[2].value.clone(),
            orders[3].value.clone()
        ]
    );
    assert!(again[5..].iter().all(|r| {
        r.headers
            .iter()
            .all(|(k, _)| !k.starts_with("switchyard-dlq-"))
    }));
}

fn start_booking(broker: &Broker, state: &Path, cache: &Path) -> Router {
    let config = kit::root().join("examples/booking/router.toml");
    kit::build_wasm("plugins");
    Router::start(&config, broker, state, cache)
}

fn create_booking_topics(broker: &Broker) {
    for t in [
        "booking.booking.created",
        "payment.payment.succeeded",
        "payment.payment.failed",
        "receipt.receipt.generated",
    ] {
        broker.create_topic(t, 3);
        broker.create_topic(&format!("{t}.dlq"), 3);
    }
}

#[test]
fn a_kill_9_mid_stream_loses_nothing_and_duplicates_are_byte_identical() {
    let broker = Broker::mock();
    create_booking_topics(&broker);
    let dir = tempfile::tempdir().unwrap();
    let (state, cache) = (dir.path().join("state"), dir.path().join("cache"));
    let kcat = Kcat(broker.bootstrap());
    // Enough that the router, which routes thousands a second, is still
    // mid-stream when it is killed.
    const N: usize = 2000;
    let inputs: Vec<(String, String)> = (0..N)
        .map(|i| (format!("k{i}"), booking_created(i).to_string()))
        .collect();
    kcat.produce_lines("booking.booking.created", None, &inputs);
    let first = start_booking(&broker, &state, &cache);
    eventually("some records", Duration::from_secs(60), || {
        first.or_log(first.processed("booking.booking.created") >= 20)
    });
    let handled_before = first.processed("booking.booking.created");
    first.kill9();
    assert!(
        handled_before < N as u64,
        "killed after everything was done ({handled_before}); not mid-stream"
    );

    let second = start_booking(&broker, &state, &cache);
    eventually("every receipt", Duration::from_secs(120), || {
        let receipts: BTreeSet<String> = kcat
            .consume("receipt.receipt.generated")
            .iter()
            .map(|r| {
                serde_json::from_slice::<Value>(&r.value).unwrap()["data"]["booking_id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        second.or_log(receipts.len() == N)
    });
    second.stop();

    for topic in ["payment.payment.succeeded", "receipt.receipt.generated"] {
        let mut by_id: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        for r in kcat.consume(topic) {
            by_id.entry(event_id(&r)).or_default().push(r.value);
        }
        assert_eq!(
            by_id.len(),
            N,
            "{topic}: every input has exactly one distinct output"
        );
        for (id, copies) in by_id {
            assert!(
                copies.windows(2).all(|w| w[0] == w[1]),
                "{topic}: duplicates of {id} differ"
            );
        }
    }
    // Receipt numbers were issued once per payment: 1..=N, no gaps, no repeats.
    let numbers: BTreeSet<String> = kcat
        .consume("receipt.receipt.generated")
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.value).unwrap()["data"]["receipt_number"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        numbers,
        (1..=N).map(|n| format!("RCP-2025-{n:06}")).collect()
    );
}

#[test]
fn a_graceful_stop_commits_offsets_so_a_restart_routes_nothing_twice() {
    let broker = Broker::mock();
    create_booking_topics(&broker);
    let dir = tempfile::tempdir().unwrap();
    let (state, cache) = (dir.path().join("state"), dir.path().join("cache"));
    let kcat = Kcat(broker.bootstrap());
    kcat.produce(
        &(0..5)
            .map(|i| {
                rec(
                    "booking.booking.created",
                    None,
                    booking_created(i).to_string(),
                )
            })
            .collect::<Vec<_>>(),
    );
    let first = start_booking(&broker, &state, &cache);
    eventually("five receipts", Duration::from_secs(60), || {
        first.or_log(first.processed("payment.payment.succeeded") >= 5)
    });
    let log = first.stop();
    assert!(log.contains("router stopped"), "{log}");

    let second = start_booking(&broker, &state, &cache);
    kcat.produce(&[rec(
        "booking.booking.created",
        None,
        booking_created(99).to_string(),
    )]);
    let topics = ["booking.booking.created", "payment.payment.succeeded"];
    eventually(
        "the new record's receipt, and every partition committed to its end",
        Duration::from_secs(60),
        || {
            second.or_log(
                second.processed("payment.payment.succeeded") >= 1 && second.caught_up(&topics),
            )
        },
    );
    let handled = topics.map(|t| second.processed(t));
    let log = second.stop();
    assert_eq!(handled, [1, 1], "{log}");
    assert!(!log.contains("redelivered"), "{log}");
    assert_eq!(kcat.consume("payment.payment.succeeded").len(), 6);
}

#[test]
fn dev_mode_prints_its_bootstrap_and_routes_a_catalog_event() {
    use std::io::{BufRead, BufReader};
    kit::build_wasm("plugins");
    let cache = tempfile::tempdir().unwrap();
    let mut dev = kit::switchyard(cache.path())
        .args([
            "dev",
            "--config",
            "examples/booking/router.toml",
            "--summary-secs",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(dev.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let bootstrap = first
        .trim()
        .strip_prefix("bootstrap: ")
        .unwrap_or_else(|| panic!("first line: {first}"))
        .to_string();
    assert!(bootstrap.starts_with("127.0.0.1:"), "{bootstrap}");
    let kcat = Kcat(bootstrap);
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(
            kit::root().join("examples/booking/fixtures/payment/succeeded.json"),
        )
        .unwrap(),
    )
    .unwrap();
    kcat.produce(&[rec(
        "booking.booking.created",
        None,
        fixture["steps"][0]["value"].to_string(),
    )]);
    let receipts = eventually("the receipt", Duration::from_secs(60), || {
        let receipts = kcat.consume("receipt.receipt.generated");
        (!receipts.is_empty()).then_some(receipts)
    });
    let payments = kcat.consume("payment.payment.succeeded");
    // Its summary line, printed every second, after the record's.
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let (mut from, into) = (dev.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut from, &mut buf) {
                if n == 0 {
                    break;
                }
                into.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    eventually("a summary line", Duration::from_secs(30), || {
        let log = stderr.lock().unwrap();
        log.contains("dead letters")
            .then_some(())
            .ok_or_else(|| log.clone())
    });
    let _ = Command::new("kill")
        .args(["-INT", &dev.id().to_string()])
        .status();
    let status = dev.wait().unwrap();
    reader.join().unwrap();
    let log = stderr.lock().unwrap().clone();
    assert_eq!(receipts.len(), 1, "{log}");
    let receipt: Value = serde_json::from_slice(&receipts[0].value).unwrap();
    assert_eq!(receipt["data"]["receipt_number"], "RCP-2025-000001");
    assert_eq!(payments.len(), 1);
    assert!(log.contains("handled booking.booking.created["), "{log}");
    assert!(
        log.contains("payment@") && log.contains("-> [payment.payment.succeeded"),
        "{log}"
    );
    assert!(log.contains("dead letters"), "summary line: {log}");
    assert!(status.success(), "{log}");
}

/// A mock cluster with `topic` (and its dead-letter topic) and `output`, and
/// a router running the echo guest on `topic`.
fn echo_on(dir: &Path, topic: &str, output: &str) -> (Broker, Router) {
    let broker = Broker::mock();
    for t in [topic, &format!("{topic}.dlq"), output] {
        broker.create_topic(t, 1);
    }
    let config = kit::echo_config(dir, &format!(r#"subscribe.topics = ["{topic}"]"#));
    let router = Router::start(&config, &broker, &dir.join("state"), &dir.join("cache"));
    (broker, router)
}

/// The kinds of bad input the catalogs' producers send, on a topic a plugin
/// consumes: each is dead-lettered with its reason, a tombstone stays a
/// tombstone in the dead-letter topic, and the good event after them is
/// routed.
#[test]
fn every_kind_of_bad_input_is_dead_lettered_and_the_partition_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, router) = echo_on(dir.path(), "bad.in", "echo.bad.fixed");
    let kcat = Kcat(broker.bootstrap());
    let ce = |attrs: &[(&str, &str)]| Rec {
        headers: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..rec("bad.in", Some(0), r#"{"a":1}"#)
    };
    kcat.produce(&[
        rec("bad.in", Some(0), "not json {"),
        rec("bad.in", Some(0), r#"{"event_id":"x","data":{}}"#),
        rec("bad.in", Some(0), "[1, 2, 3]"),
        ce(&[
            ("ce_specversion", "1.0"),
            ("ce_id", "c-1"),
            ("ce_source", "s"),
        ]),
    ]);
    // A tombstone: kcat -Z sends an empty value as no value at all.
    let mut tombstone = Command::new("kcat")
        .args([
            "-P",
            "-Z",
            "-K",
            ":",
            "-b",
            &broker.bootstrap(),
            "-t",
            "bad.in",
        ])
        .args(["-p", "0"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        tombstone
            .stdin
            .take()
            .unwrap()
            .write_all(b"gone:\n")
            .unwrap();
    }
    assert!(tombstone.wait().unwrap().success());
    kcat.produce(&[rec(
        "bad.in",
        Some(0),
        r#"{"event_id":"good-1","event_type":"bad.fixed","data":{"ok":true}}"#,
    )]);
    // Four bad records, the tombstone, and the good one.
    eventually(
        "the good event after the bad ones",
        Duration::from_secs(60),
        || router.or_log(router.processed("bad.in") >= 6),
    );
    router.stop();

    let dead = kcat.consume("bad.in.dlq");
    let reasons: Vec<String> = dead
        .iter()
        .map(|r| {
            r.header("switchyard-dlq-error")
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(dead.len(), 5, "{reasons:?}");
    assert!(
        dead.iter()
            .all(|r| r.header("switchyard-dlq-error-class") == Some("decode")),
        "{reasons:?}"
    );
    for (i, expected) in [
        "not JSON",
        "no event type",
        "not an object",
        "ce_type",
        "value",
    ]
    .iter()
    .enumerate()
    {
        assert!(reasons[i].contains(expected), "{i}: {reasons:?}");
        assert!(!reasons[i].is_empty(), "{i}: {reasons:?}");
    }
    // The tombstone's dead letter has no value at all, not an empty one.
    let raw = Command::new("kcat")
        .args(["-C", "-b", &broker.bootstrap(), "-t", "bad.in.dlq"])
        .args(["-o", "4", "-c", "1", "-e", "-J", "-q"])
        .output()
        .unwrap();
    let letter: Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(letter["payload"], Value::Null, "{letter}");
    assert_eq!(letter["key"], "gone");
    assert_eq!(
        kcat.consume("echo.bad.fixed").len(),
        1,
        "the good event was routed"
    );
}

/// An input record as large as the broker takes, and not an event: its dead
/// letter (the record plus the dead-letter headers) would be over the
/// limit, so its value is cut to fit and `switchyard-dlq-truncated` gives
/// the original length; the partition moves on.
#[test]
fn an_oversized_bad_record_is_dead_lettered_cut_to_fit() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, router) = echo_on(dir.path(), "big.in", "echo.big.ok");
    let kcat = Kcat(broker.bootstrap());
    let big = "x".repeat(999_700);
    kcat.produce(&[
        rec("big.in", Some(0), big.clone()),
        rec(
            "big.in",
            Some(0),
            r#"{"event_id":"ok-1","event_type":"big.ok","data":{}}"#,
        ),
    ]);
    eventually(
        "the event after the big one",
        Duration::from_secs(60),
        || router.or_log(router.processed("big.in") >= 2),
    );
    router.stop();
    let dead = kcat.consume("big.in.dlq");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].header("switchyard-dlq-error-class"), Some("decode"));
    assert_eq!(
        dead[0].header("switchyard-dlq-truncated"),
        Some("999700"),
        "the original length"
    );
    assert!(
        dead[0].value.len() < big.len()
            && big.starts_with(std::str::from_utf8(&dead[0].value).unwrap())
    );
    assert_eq!(kcat.consume("echo.big.ok").len(), 1);
}

/// A panic in the host while a batch runs on a plugin worker (injected
/// through the test-only `SWITCHYARD_TEST_PANIC_ON`) skips nothing: the
/// worker thread survives, the batch runs again, and every record comes
/// out, the ones after it too. (Read as a shutdown, it used to end the
/// partition's worker; the next one started under the same lease and
/// stored offsets past the batch that never ran.)
#[test]
fn a_host_panic_mid_batch_runs_the_batch_again_and_skips_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::mock();
    for t in ["p.in", "p.in.dlq", "echo.p.in"] {
        broker.create_topic(t, 1);
    }
    let config = kit::echo_config(dir.path(), r#"subscribe.topics = ["p.in"]"#);
    let router = Router::start_with(
        &config,
        &broker,
        &dir.path().join("state"),
        &dir.path().join("cache"),
        &["--no-create-topics"],
        &[("SWITCHYARD_TEST_PANIC_ON", "panic-me")],
    );
    let kcat = Kcat(broker.bootstrap());
    let line = |i: usize| {
        let mark = if i == 5 { "panic-me" } else { "fine" };
        (
            format!("k{i}"),
            format!(
                r#"{{"event_id":"p-{i}","event_type":"p.in","data":{{"i":{i},"m":"{mark}"}}}}"#
            ),
        )
    };
    kcat.produce_lines("p.in", Some(0), &(0..20).map(line).collect::<Vec<_>>());
    eventually("the injected panic", Duration::from_secs(60), || {
        router.or_log(router.logged("injected by SWITCHYARD_TEST_PANIC_ON"))
    });
    kcat.produce_lines("p.in", Some(0), &(20..25).map(line).collect::<Vec<_>>());
    eventually("every record", Duration::from_secs(60), || {
        router.or_log(router.processed("p.in") >= 25)
    });
    let log = router.stop();
    let out: BTreeSet<String> = kcat
        .consume("echo.p.in")
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.value).unwrap()["data"]["data"]["i"].to_string()
        })
        .collect();
    assert_eq!(out.len(), 25, "{out:?}\n{log}");
    assert!(log.contains("running the batch again"), "{log}");
}

/// A panic in a partition task itself (not in a plugin job, which the pool
/// catches) stops the router with a one-line error naming the partition,
/// rather than letting a new worker store offsets past records the dead one
/// never acknowledged; a restart then routes every record.
#[test]
fn a_partition_task_that_panics_stops_the_router_and_a_restart_skips_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::mock();
    for t in ["w.in", "w.in.dlq", "echo.w.in"] {
        broker.create_topic(t, 1);
    }
    // A long time limit: the first call after the restart, on a cold
    // instance of a debug build, once took over the default second while
    // the suite loaded both cores, and was dead-lettered as a timeout.
    let config = kit::echo_config(
        dir.path(),
        "subscribe.topics = [\"w.in\"]\ntimeout_ms = 30000",
    );
    let start = |env: &[(&str, &str)]| {
        Router::start_with(
            &config,
            &broker,
            &dir.path().join("state"),
            &dir.path().join("cache"),
            &["--no-create-topics"],
            env,
        )
    };
    let router = start(&[("SWITCHYARD_TEST_PANIC_IN_WORKER", "crash-me")]);
    let kcat = Kcat(broker.bootstrap());
    let line = |i: usize| {
        let mark = if i == 5 { "crash-me" } else { "fine" };
        (
            format!("k{i}"),
            format!(
                r#"{{"event_id":"w-{i}","event_type":"w.in","data":{{"i":{i},"m":"{mark}"}}}}"#
            ),
        )
    };
    // One at a time, so that the panicking batch starts after some have
    // been acknowledged.
    for i in 0..5 {
        kcat.produce_lines("w.in", Some(0), &[line(i)]);
    }
    eventually("the first five records", Duration::from_secs(60), || {
        router.or_log(router.processed("w.in") >= 5)
    });
    kcat.produce_lines("w.in", Some(0), &(5..12).map(line).collect::<Vec<_>>());
    let (status, log) =
        router.exit_within("the router to stop on the panic", Duration::from_secs(60));
    assert!(!status.success(), "{log}");
    assert!(log.contains("the worker of w.in[0] failed"), "{log}");

    let router = start(&[]);
    eventually(
        "every record after the restart",
        Duration::from_secs(60),
        || router.or_log(kcat.consume("echo.w.in").len() >= 12),
    );
    let log = router.stop();
    let out: BTreeSet<String> = kcat
        .consume("echo.w.in")
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.value).unwrap()["data"]["data"]["i"].to_string()
        })
        .collect();
    assert_eq!(out.len(), 12, "{out:?}\n{log}");
}
