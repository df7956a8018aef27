//! One bad thing stays one bad thing: rogue plugins, paused plugins, topics
//! the router cannot create or did not know at startup, and records it
//! should not touch. On the mock cluster with kcat.

use switchyard_testkit as kit;

use kit::http::{get, request};
use kit::workload;
use kit::{Broker, Client, Kcat, Rec, Router, eventually};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn rec(topic: &str, value: impl Into<Vec<u8>>) -> Rec {
    Rec {
        topic: topic.into(),
        partition: Some(0),
        key: Some("k".into()),
        headers: vec![],
        value: value.into(),
    }
}

fn event(id: &str, ty: &str, data: Value) -> String {
    json!({"event_id": id, "event_type": ty, "timestamp": "2025-11-24T10:30:00Z", "data": data})
        .to_string()
}

/// Writes a `router.toml` of the given tables (`[kafka]`, `[admin]`...) and
/// plugins, and returns its path.
fn config(dir: &Path, tables: &str, plugins: &[String]) -> PathBuf {
    let path = dir.join("router.toml");
    std::fs::write(&path, format!("{tables}\n{}", plugins.concat())).unwrap();
    path
}

/// One `[[plugin]]` table running test guest `guest`.
fn plugin(name: &str, guest: &str, types: &str, emits: &str, extra: &str) -> String {
    format!(
        "\n[[plugin]]\nname = \"{name}\"\nwasm = \"{}\"\nsubscribe.types = {types}\nemits = {emits}\n{extra}\n",
        kit::guest(guest).display()
    )
}

fn start(config: &Path, broker: &Broker, dir: &Path) -> Router {
    Router::start(config, broker, &dir.join("state"), &dir.join("cache"))
}

/// Stops with SIGTERM and returns how long it took.
fn timed_stop(router: Router) -> (Duration, String) {
    let started = Instant::now();
    let log = router.stop();
    (started.elapsed(), log)
}

#[test]
fn rogue_plugins_are_dead_lettered_and_everything_else_keeps_flowing() {
    let broker = Broker::mock();
    for t in [
        "rogue.in",
        "rogue.in.dlq",
        "rogue.ok",
        "other.in",
        "echo.other.in",
    ] {
        broker.create_topic(t, 1);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        r#"[kafka]
drain_timeout_ms = 3000"#,
        &[
            plugin(
                "rogue",
                "rogue",
                r#"["rogue.test"]"#,
                r#"["rogue.*"]"#,
                "timeout_ms = 500",
            ),
            plugin("echo", "echo", r#"["other.*"]"#, r#"["echo.*"]"#, ""),
        ],
    );
    let router = start(&config, &broker, dir.path());
    let kcat = Kcat(broker.bootstrap());
    let modes = ["panic-big", "huge", "bad-topic", "sleep", "forge", "fine"];
    let records: Vec<Rec> = modes
        .iter()
        .enumerate()
        .map(|(i, mode)| {
            rec(
                "rogue.in",
                event(&format!("r-{i}"), "rogue.test", json!({"mode": mode})),
            )
        })
        .chain([rec("other.in", event("o-1", "other.in", json!({})))])
        .collect();
    let produced = Instant::now();
    kcat.produce(&records);
    eventually(
        "the record after the rogue ones, and the other plugin's",
        Duration::from_secs(60),
        || router.or_log(router.processed("rogue.in") >= 6 && router.processed("other.in") >= 1),
    );
    // The sleeper is cut at its 500 ms deadline, not after an hour.
    assert!(produced.elapsed() < Duration::from_secs(30));

    let dead = kcat.consume("rogue.in.dlq");
    let classes: Vec<(String, String)> = dead
        .iter()
        .map(|r| {
            (
                r.header("switchyard-dlq-offset").unwrap().to_string(),
                r.header("switchyard-dlq-error-class").unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        classes,
        [
            ("0", "trap"),
            ("1", "invalid-emit"),
            ("2", "invalid-emit"),
            ("3", "timeout")
        ]
        .map(|(o, c)| (o.to_string(), c.to_string()))
    );
    for r in &dead {
        assert_eq!(r.header("switchyard-dlq-plugin"), Some("rogue"));
        assert_eq!(r.header("switchyard-dlq-topic"), Some("rogue.in"));
        assert_eq!(r.header("switchyard-dlq-attempts"), Some("1"));
        let error = r.header("switchyard-dlq-error").unwrap();
        assert!(
            error.len() < 4096,
            "the reason is cut: {} bytes",
            error.len()
        );
    }
    assert!(
        dead[0]
            .header("switchyard-dlq-error")
            .unwrap()
            .contains("bytes cut")
    );
    assert!(
        dead[1]
            .header("switchyard-dlq-error")
            .unwrap()
            .contains("record limit")
    );
    assert!(
        dead[2]
            .header("switchyard-dlq-error")
            .unwrap()
            .contains("bad topic!")
    );

    let ok = kcat.consume("rogue.ok");
    assert_eq!(ok.len(), 2, "the forged and the fine record are routed");
    assert_eq!(
        ok[0].header("switchyard-hop"),
        Some("1"),
        "forged hop dropped"
    );
    assert_eq!(ok[0].header("ce_type"), None, "forged ce_type dropped");
    assert_eq!(
        kcat.consume("echo.other.in").len(),
        1,
        "the other plugin served"
    );

    let (took, log) = timed_stop(router);
    assert!(took < Duration::from_secs(10), "stopped in {took:?}\n{log}");
    assert!(log.contains("router stopped"));
}

#[test]
fn a_paused_plugin_holds_only_its_own_records_and_shutdown_stays_bounded() {
    let broker = Broker::mock();
    for t in ["a.in", "b.in", "echo.a.in", "counted"] {
        broker.create_topic(t, 2);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        r#"[admin]
token = "secret"

[kafka]
drain_timeout_ms = 2000"#,
        &[
            plugin("echo", "echo", r#"["a.*"]"#, r#"["echo.*"]"#, ""),
            plugin("counter", "counter", r#"["b.*"]"#, r#"["counted"]"#, ""),
        ],
    );
    let router = start(&config, &broker, dir.path());
    let url = router.admin_url();
    let (status, _) = request(
        "POST",
        &format!("{url}/plugins/counter/pause"),
        Some("secret"),
        b"",
    );
    assert_eq!(status, 200);
    let kcat = Kcat(broker.bootstrap());
    let b: Vec<Rec> = (0..3)
        .map(|i| rec("b.in", event(&format!("b-{i}"), "b.in", json!({}))))
        .collect();
    kcat.produce(&b);
    let a: Vec<Rec> = (0..5)
        .map(|i| Rec {
            partition: Some(i % 2),
            ..rec("a.in", event(&format!("a-{i}"), "a.in", json!({})))
        })
        .collect();
    kcat.produce(&a);
    eventually(
        "the other plugin's records",
        Duration::from_secs(60),
        || router.or_log(router.processed("a.in") >= 5),
    );
    assert_eq!(kcat.consume("echo.a.in").len(), 5);
    assert!(kcat.consume("counted").is_empty(), "paused records wait");
    let (took, log) = timed_stop(router);
    assert!(
        took < Duration::from_secs(10),
        "stopped in {took:?} during a pause\n{log}"
    );

    // The pause is kept in the state store, so it outlives a restart; once
    // resumed, the waiting records flow: nothing was lost.
    let again = start(&config, &broker, dir.path());
    let url = again.admin_url();
    let status = get(&format!("{url}/plugins/counter"));
    assert!(status.contains(r#""paused":true"#), "{status}");
    let (status, _) = request(
        "POST",
        &format!("{url}/plugins/counter/resume"),
        Some("secret"),
        b"",
    );
    assert_eq!(status, 200);
    eventually("the waiting records", Duration::from_secs(60), || {
        again.or_log(again.processed("b.in") >= 3)
    });
    assert_eq!(kcat.consume("counted").len(), 3);
}

#[test]
fn without_create_topics_the_router_warns_and_routes_and_late_topics_are_picked_up() {
    let broker = Broker::mock();
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        r#"[kafka]
create = ["seed.topic"]"#,
        &[plugin("echo", "echo", r#"["late.*"]"#, r#"["echo.*"]"#, "")],
    );
    // No --no-create-topics: the mock cluster has no CreateTopics.
    let router = Router::start_plain(
        &config,
        &broker,
        &dir.path().join("state"),
        &dir.path().join("cache"),
        &[],
    );
    // Ready: the consumer runs, subscribed to every topic there was (none):
    // the one that comes now is late. (With no topic it has not joined its
    // group yet, so there is no assignment to wait for.)
    let ready = format!("{}/readyz", router.admin_url());
    eventually("the router ready", Duration::from_secs(60), || {
        router.or_log(request("GET", &ready, None, b"").0 == 200)
    });
    let kcat = Kcat(broker.bootstrap());
    // A topic that did not exist at startup (the mock creates it on produce).
    let produced = Instant::now();
    kcat.produce(&[rec("late.topic", event("l-1", "late.topic", json!({})))]);
    eventually("the late topic", Duration::from_secs(30), || {
        router.or_log(router.processed("late.topic") >= 1)
    });
    let took = produced.elapsed();
    assert!(took < Duration::from_secs(10), "routed after {took:?}");
    let log = router.stop();
    assert!(log.contains("cannot create topics"), "{log}");
}

#[test]
fn records_the_router_should_not_touch_are_skipped_not_dead_lettered() {
    let broker = Broker::mock();
    for t in [
        "booking.booking.created",
        "other.stuff",
        "x.dlq",
        "audit.log",
    ] {
        broker.create_topic(t, 1);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        r#"[kafka]
exclude = ["audit.*"]"#,
        &[plugin("echo", "echo", r#"["*"]"#, r#"["echo.*"]"#, "")],
    );
    let router = start(&config, &broker, dir.path());
    let url = router.admin_url();
    // Scraped before any traffic, /metrics already has the catalog's families.
    let metrics = get(&format!("{url}/metrics"));
    for family in [
        "kafka_consumer_lag",
        "kafka_consumer_processing_duration_seconds",
        "kafka_consumer_errors_total",
        "kafka_dlq_messages_total",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {family} ")),
            "{family}\n{metrics}"
        );
    }
    if let Ok(promtool) = which("promtool") {
        let file = dir.path().join("metrics.txt");
        std::fs::write(&file, &metrics).unwrap();
        let out = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(&file).unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let kcat = Kcat(broker.bootstrap());
    kcat.produce(&[
        rec("other.stuff", "not json, and no plugin consumes this topic"),
        rec("x.dlq", event("d-1", "x", json!({}))),
        rec("audit.log", event("u-1", "audit.log", json!({}))),
    ]);
    kcat.produce(&[rec(
        "booking.booking.created",
        event("s-1", "booking.booking.created", json!({})),
    )]);
    // Read past the record it skips, and the sentinel after the others.
    eventually(
        "the skipped record and the sentinel",
        Duration::from_secs(60),
        || {
            router.or_log(
                router.processed("other.stuff") >= 1
                    && router.processed("booking.booking.created") >= 1,
            )
        },
    );
    // Excluded topics are never read; echo, subscribed to every type, was
    // called for the sentinel alone.
    assert_eq!(router.processed("x.dlq"), 0, "{}", router.log());
    assert_eq!(router.processed("audit.log"), 0, "{}", router.log());
    assert_eq!(router.invocations("echo"), 1, "{}", router.log());
    assert_eq!(router.dead_lettered("other.stuff"), 0, "{}", router.log());
    let log = router.stop();
    assert!(kcat.consume("other.stuff.dlq").is_empty(), "{log}");
    assert!(kcat.consume("echo.x").is_empty());
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::split_paths(&std::env::var_os("PATH").ok_or(())?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

#[test]
fn a_plugin_stuck_in_retries_holds_only_its_partition_and_shutdown_stays_bounded() {
    let broker = Broker::mock();
    for t in ["rogue.in", "rogue.in.dlq", "a.in", "echo.a.in"] {
        broker.create_topic(t, 1);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        r#"[kafka]
max_retries = 1000
retry_backoff_ms = 200
max_backoff_ms = 500
drain_timeout_ms = 2000"#,
        &[
            plugin("rogue", "rogue", r#"["rogue.test"]"#, r#"["rogue.*"]"#, ""),
            plugin("echo", "echo", r#"["a.*"]"#, r#"["echo.*"]"#, ""),
        ],
    );
    let router = start(&config, &broker, dir.path());
    let kcat = Kcat(broker.bootstrap());
    kcat.produce(&[rec(
        "rogue.in",
        event("r-1", "rogue.test", json!({"mode": "retry"})),
    )]);
    eventually("the retries", Duration::from_secs(60), || {
        router.or_log(router.logged("waiting"))
    });
    let a: Vec<Rec> = (0..5)
        .map(|i| rec("a.in", event(&format!("a-{i}"), "a.in", json!({}))))
        .collect();
    kcat.produce(&a);
    eventually("the other partition", Duration::from_secs(60), || {
        router.or_log(router.processed("a.in") >= 5)
    });
    assert!(
        kcat.consume("rogue.in.dlq").is_empty(),
        "still retrying, not dead-lettered"
    );
    let (took, log) = timed_stop(router);
    assert!(
        took < Duration::from_secs(10),
        "stopped in {took:?} during retries\n{log}"
    );
}

#[test]
fn a_graceful_stop_of_one_of_two_instances_hands_over_without_handling_twice() {
    const N: usize = 2400;
    let broker = Broker::mock();
    for t in ["count.in", "counted"] {
        broker.create_topic(t, 6);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        r#"[kafka]
batch_records = 50
# The mock cluster holds a rebalance for the session timeout after a leave.
client = { "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }"#,
        &[plugin(
            "counter",
            "counter",
            r#"["count.*"]"#,
            r#"["counted"]"#,
            "",
        )],
    );
    // Two machines: each its own state folder.
    let one = dir.path().join("one");
    let two = dir.path().join("two");
    let a = Router::start(&config, &broker, &one.join("state"), &one.join("cache"));
    let b = Router::start(&config, &broker, &two.join("state"), &two.join("cache"));
    for r in [&a, &b] {
        eventually("assignment", Duration::from_secs(60), || {
            r.or_log(r.logged("partitions assigned"))
        });
    }
    let kcat = Kcat(broker.bootstrap());
    let lines: Vec<(String, String)> = (0..N)
        .map(|i| {
            (
                format!("k{i}"),
                event(&format!("c-{i:05}"), "count.in", json!({"i": i})),
            )
        })
        .collect();
    kcat.produce_lines("count.in", None, &lines);
    eventually("a share of the stream", Duration::from_secs(60), || {
        a.or_log(a.processed("count.in") >= 100)
    });
    a.stop();
    // Each instance counts in its own state: a record handled by both
    // would have two outputs.
    eventually("the rest of the stream", Duration::from_secs(120), || {
        b.or_log(workload::outputs(&kcat, "counted", "event").len() >= N)
    });
    b.stop();
    let outputs = workload::outputs(&kcat, "counted", "event");
    let twice: Vec<&String> = outputs
        .iter()
        .filter(|(_, copies)| copies.len() > 1)
        .map(|(id, _)| id)
        .collect();
    assert!(
        twice.is_empty(),
        "{} records handled by both: {:?}",
        twice.len(),
        &twice[..twice.len().min(5)]
    );
    assert_eq!(outputs.len(), N, "every record handled once");
}

/// The mock cluster's broker stops answering for 20 s mid-stream.
#[test]
fn a_broker_outage_waits_and_retries_never_dead_letters_and_readyz_says_so() {
    kit::outage::broker_outage_loses_nothing(&Broker::mock());
}

#[test]
fn records_the_broker_deleted_before_they_were_read_are_reported_not_silently_skipped() {
    let broker = Broker::mock();
    broker.create_topic("r.in", 1);
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        r#"[kafka]
client = { "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }"#,
        &[plugin("echo", "echo", r#"["r.*"]"#, r#"["echo.*"]"#, "")],
    );
    let kcat = Kcat(broker.bootstrap());
    let lines = |from: usize, n: usize| -> Vec<(String, String)> {
        (from..from + n)
            .map(|i| {
                (
                    format!("k{i}"),
                    event(&format!("r-{i}"), "r.in", json!({"pad": "p".repeat(1000)})),
                )
            })
            .collect()
    };
    kcat.produce_lines("r.in", Some(0), &lines(0, 10));
    let router = start(&config, &broker, dir.path());
    eventually("the first records", Duration::from_secs(60), || {
        router.or_log(router.processed("r.in") >= 10)
    });
    router.stop();
    // While the router is away, the broker keeps only about 5 MB: the
    // oldest of these 8 MB are deleted unread.
    kcat.produce_lines("r.in", Some(0), &lines(10, 8000));
    let router = start(&config, &broker, dir.path());
    let url = router.admin_url();
    eventually("the loss report", Duration::from_secs(60), || {
        router.or_log(router.logged("before the router read them"))
    });
    let metrics = get(&format!("{url}/metrics"));
    let lost: u64 = metrics
        .lines()
        .find(|l| l.starts_with("switchyard_records_lost_total{topic=\"r.in\"}"))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or(0);
    assert!(lost > 1000, "lost {lost}\n{metrics}");
    router.stop();
}
