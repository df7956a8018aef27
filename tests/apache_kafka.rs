//! The end-to-end flows on Apache Kafka, the reference broker: a
//! single-node KRaft broker from Maven Central (`scripts/setup.sh --test`),
//! started per test on free ports, driven by confluent-kafka (PyPI) as the
//! outside client, reading committed records only.

mod support;

use std::time::{Duration, Instant};
use support::e2e::run_example;
use support::kafka::{Broker, Rec, Router};

#[test]
fn booking_example_on_apache_kafka() {
    assert!(run_example(Broker::kafka, "booking") >= 6);
}

#[test]
fn resource_booking_example_on_apache_kafka() {
    assert!(run_example(Broker::kafka, "resource-booking") >= 4);
}

#[test]
fn autocheck_example_on_apache_kafka() {
    assert!(run_example(Broker::kafka, "autocheck") >= 2);
}

#[test]
fn travel_example_on_apache_kafka() {
    assert!(run_example(Broker::kafka, "travel") >= 2);
}

#[test]
fn pet_delivery_example_on_apache_kafka() {
    assert!(run_example(Broker::kafka, "pet-delivery") >= 3);
}

/// kcat, the README's client, talks to Apache Kafka too: it produces a
/// catalog event and reads the router's output back, read_committed.
#[test]
fn kcat_drives_the_router_on_apache_kafka() {
    use support::kafka::{Client, Kcat};
    let broker = Broker::kafka();
    broker.create_topic("k.in", 1);
    let dir = tempfile::tempdir().unwrap();
    let config = support::echo_config(dir.path(), r#"subscribe.types = ["k.*"]"#);
    let mut router = Router::start(
        &config,
        &broker,
        &dir.path().join("state"),
        &dir.path().join("cache"),
    );
    let kcat = Kcat(broker.bootstrap());
    kcat.produce(&[Rec {
        topic: "k.in".into(),
        partition: Some(0),
        key: Some("k".into()),
        headers: vec![],
        value: br#"{"event_id":"k-1","event_type":"k.in","data":{"n":1}}"#.to_vec(),
    }]);
    router.wait("the kcat record", Duration::from_secs(60), |r| {
        r.handled("k.in", "k.in") >= 1
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = kcat.consume("echo.k.in");
        if out.len() == 1 {
            assert_eq!(out[0].header("switchyard-plugin"), Some("echo"));
            break;
        }
        assert!(Instant::now() < deadline, "kcat read {} records", out.len());
        std::thread::sleep(Duration::from_millis(300));
    }
    router.stop();
}

/// A topic that the router's own output creates (the broker auto-creates
/// it on the first produce; the router may not create topics) reaches the
/// plugin subscribed to it within the 5 s metadata refresh, with margin.
#[test]
fn a_topic_auto_created_by_the_routers_output_is_routed_on_apache_kafka() {
    let broker = Broker::kafka();
    broker.create_topic("chain.start", 1);
    let dir = tempfile::tempdir().unwrap();
    let config = support::echo_config(
        dir.path(),
        r#"subscribe.types = ["chain.start", "echo.chain.start"]"#,
    );
    let mut router = Router::start_plain(
        &config,
        &broker,
        &dir.path().join("state"),
        &dir.path().join("cache"),
        &["--no-create-topics"],
    );
    router.wait("startup", Duration::from_secs(60), |r| {
        r.log().contains("router started")
    });
    broker.client().produce(&[Rec {
        topic: "chain.start".into(),
        partition: Some(0),
        key: Some("k".into()),
        headers: vec![],
        value: br#"{"event_id":"c-1","event_type":"chain.start","data":{}}"#.to_vec(),
    }]);
    router.wait("the first hop", Duration::from_secs(60), |r| {
        r.handled("chain.start", "chain.start") >= 1
    });
    let produced = Instant::now();
    router.wait("the auto-created topic", Duration::from_secs(60), |r| {
        r.handled("echo.chain.start", "echo.chain.start") >= 1
    });
    let took = produced.elapsed();
    assert!(
        took < Duration::from_secs(12),
        "the auto-created topic was routed {took:?} after its first record\n{}",
        router.log()
    );
    router.stop();
}

/// Apache Kafka is killed for 20 s mid-stream and started again on its
/// log: the router neither exits nor dead-letters, `/readyz` is false while
/// the broker is gone, and every record is routed afterwards.
#[test]
fn an_apache_kafka_restart_mid_stream_loses_nothing_and_dead_letters_nothing() {
    support::outage::broker_outage_loses_nothing(&Broker::kafka());
}
