//! The same end-to-end flows against Tansu, an independent Kafka-compatible
//! broker, driven by confluent-kafka (PyPI) as the outside client: Debian's
//! kcat links librdkafka 2.0, whose handshake Tansu 0.6 rejects.
//! `scripts/setup.sh` installs both.

mod support;

use support::e2e::run_example;
use support::kafka::Broker;

#[test]
fn booking_example_on_tansu() {
    assert!(run_example(Broker::tansu, "booking") >= 6);
}

#[test]
fn resource_booking_example_on_tansu() {
    assert!(run_example(Broker::tansu, "resource-booking") >= 4);
}

#[test]
fn autocheck_example_on_tansu() {
    assert!(run_example(Broker::tansu, "autocheck") >= 2);
}

#[test]
fn travel_example_on_tansu() {
    assert!(run_example(Broker::tansu, "travel") >= 2);
}

#[test]
fn pet_delivery_example_on_tansu() {
    assert!(run_example(Broker::tansu, "pet-delivery") >= 3);
}

/// A topic created on Tansu after the router started is routed within 10 s.
#[test]
fn a_topic_created_after_startup_is_routed_on_tansu() {
    use std::time::{Duration, Instant};
    use support::kafka::{Rec, Router};
    let broker = Broker::tansu();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("router.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[plugin]]
name = "echo"
wasm = "{}"
subscribe.types = ["late.*"]
emits = ["echo.*"]
topics = {{ "echo.late.topic" = "echo.late" }}
"#,
            support::guest("echo").display()
        ),
    )
    .unwrap();
    broker.create_topic("echo.late", 1);
    let mut router = Router::start(
        &config,
        &broker,
        &dir.path().join("state"),
        &dir.path().join("cache"),
    );
    router.wait("startup", Duration::from_secs(60), |r| {
        r.log().contains("router started")
    });
    std::thread::sleep(Duration::from_secs(3));
    broker.create_topic("late.topic", 1);
    let created = Instant::now();
    broker.client().produce(&[Rec {
        topic: "late.topic".into(),
        partition: Some(0),
        key: Some("k".into()),
        headers: vec![],
        value: br#"{"event_id":"l-1","event_type":"late.topic","data":{}}"#.to_vec(),
    }]);
    router.wait("the late topic", Duration::from_secs(30), |r| {
        r.handled("late.topic", "late.topic") >= 1
    });
    let took = created.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "routed {took:?} after the topic was created"
    );
    router.stop();
}

/// Tansu with durable storage is stopped for 20 s mid-stream and started
/// again: the router neither exits nor dead-letters, `/readyz` is false
/// while the broker is gone, and every record is routed afterwards.
#[test]
fn a_tansu_restart_mid_stream_loses_nothing_and_dead_letters_nothing() {
    use serde_json::Value;
    use std::collections::BTreeSet;
    use std::time::{Duration, Instant};
    use support::http::{get, request};
    use support::kafka::{Rec, Router};
    let broker = Broker::tansu_durable();
    for t in ["o.in", "echo.o.in"] {
        broker.create_topic(t, 2);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("router.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[plugin]]
name = "echo"
wasm = "{}"
subscribe.types = ["o.*"]
emits = ["echo.*"]
"#,
            support::guest("echo").display()
        ),
    )
    .unwrap();
    let mut router = Router::start(
        &config,
        &broker,
        &dir.path().join("state"),
        &dir.path().join("cache"),
    );
    let url = router.admin_url();
    let client = broker.client();
    let batch = |from: usize| -> Vec<Rec> {
        (from..from + 100)
            .map(|i| Rec {
                topic: "o.in".into(),
                partition: None,
                key: Some(format!("k{i}")),
                headers: vec![],
                value: format!(r#"{{"event_id":"o-{i}","event_type":"o.in","data":{{"i":{i}}}}}"#)
                    .into_bytes(),
            })
            .collect()
    };
    client.produce(&batch(0));
    router.wait("the first records", Duration::from_secs(60), |r| {
        r.handled("o.in", "o.in") >= 1
    });
    broker.set_down(true);
    let down = Instant::now();
    let mut saw_not_ready = false;
    while down.elapsed() < Duration::from_secs(20) {
        let probe =
            std::panic::catch_unwind(|| request("GET", &format!("{url}/readyz"), None, b""));
        if let Ok((503, body)) = probe
            && body.contains("unreachable")
        {
            saw_not_ready = true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    broker.set_down(false);
    assert!(
        saw_not_ready,
        "/readyz stayed true while Tansu was down\n{}",
        router.log()
    );
    client.produce(&batch(100));
    router.wait(
        "every record after the restart",
        Duration::from_secs(180),
        |_| {
            let seen: BTreeSet<String> = client
                .consume("echo.o.in")
                .iter()
                .map(|r| {
                    serde_json::from_slice::<Value>(&r.value).unwrap()["data"]["data"]["i"]
                        .to_string()
                })
                .collect();
            seen.len() == 200
        },
    );
    let back = Instant::now();
    while request("GET", &format!("{url}/readyz"), None, b"").0 != 200 {
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "not ready again: {}\n{}",
            get(&format!("{url}/api/summary")),
            router.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = router.stop();
    assert!(
        client.consume("o.in.dlq").is_empty(),
        "nothing dead-lettered\n{log}"
    );
}
