//! The same end-to-end flows against Tansu, an independent Kafka-compatible
//! broker, driven by confluent-kafka (PyPI) as the outside client: Debian's
//! kcat links librdkafka 2.0, whose handshake Tansu 0.6 rejects.
//! `scripts/setup.sh --tansu` installs Tansu.
//!
//! Apache Kafka is the reference broker (`apache_kafka.rs`); these runs are
//! kept as a second, independent implementation of the protocol, behind
//! `scripts/tansu.sh` (`cargo test --test tansu_e2e -- --ignored`), out of
//! the default suite, whose time they would double.

use switchyard_testkit as kit;

use kit::Broker;
use kit::e2e::run_example;

#[test]
#[ignore = "Tansu runs behind scripts/tansu.sh"]
fn booking_example_on_tansu() {
    assert!(run_example(Broker::tansu, "booking") >= 6);
}

#[test]
#[ignore = "Tansu runs behind scripts/tansu.sh"]
fn resource_booking_example_on_tansu() {
    assert!(run_example(Broker::tansu, "resource-booking") >= 4);
}

#[test]
#[ignore = "Tansu runs behind scripts/tansu.sh"]
fn autocheck_example_on_tansu() {
    assert!(run_example(Broker::tansu, "autocheck") >= 2);
}

#[test]
#[ignore = "Tansu runs behind scripts/tansu.sh"]
fn travel_example_on_tansu() {
    assert!(run_example(Broker::tansu, "travel") >= 2);
}

#[test]
#[ignore = "Tansu runs behind scripts/tansu.sh"]
fn pet_delivery_example_on_tansu() {
    assert!(run_example(Broker::tansu, "pet-delivery") >= 3);
}

/// A topic created on Tansu after the router started is routed within 10 s.
#[test]
#[ignore = "Tansu runs behind scripts/tansu.sh"]
fn a_topic_created_after_startup_is_routed_on_tansu() {
    use kit::{Rec, Router, eventually};
    use std::time::{Duration, Instant};
    let broker = Broker::tansu();
    let dir = tempfile::tempdir().unwrap();
    let config = kit::echo_config(
        dir.path(),
        r#"subscribe.types = ["late.*"]
topics = { "echo.late.topic" = "echo.late" }"#,
    );
    broker.create_topic("echo.late", 1);
    broker.create_topic("early.topic", 1);
    let router = Router::start(
        &config,
        &broker,
        &dir.path().join("state"),
        &dir.path().join("cache"),
    );
    let record = |topic: &str, id: &str| Rec {
        topic: topic.into(),
        partition: Some(0),
        key: Some("k".into()),
        headers: vec![],
        value: format!(r#"{{"event_id":"{id}","event_type":"{topic}","data":{{}}}}"#).into_bytes(),
    };
    // The consumer runs, and has read the topics there were: the late one
    // comes after.
    broker.client().produce(&[record("early.topic", "e-1")]);
    eventually(
        "a record on a topic there was",
        Duration::from_secs(60),
        || router.or_log(router.processed("early.topic") >= 1),
    );
    broker.create_topic("late.topic", 1);
    let created = Instant::now();
    broker.client().produce(&[record("late.topic", "l-1")]);
    eventually("the late topic", Duration::from_secs(30), || {
        router.or_log(router.processed("late.topic") >= 1)
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
#[ignore = "Tansu runs behind scripts/tansu.sh"]
fn a_tansu_restart_mid_stream_loses_nothing_and_dead_letters_nothing() {
    kit::outage::broker_outage_loses_nothing(&Broker::tansu_durable());
}
