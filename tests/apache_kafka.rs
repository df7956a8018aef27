//! The end-to-end flows on Apache Kafka, the reference broker: a
//! single-node KRaft broker from Maven Central (`scripts/setup.sh --test`),
//! started per test on free ports, driven by confluent-kafka (PyPI) as the
//! outside client, reading committed records only.

use switchyard_testkit as kit;

use kit::e2e::run_example;
use kit::{Broker, Rec, Router, eventually};
use std::time::Duration;

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
    use kit::{Client, Kcat};
    let broker = Broker::kafka();
    broker.create_topic("k.in", 1);
    let dir = tempfile::tempdir().unwrap();
    let config = kit::echo_config(dir.path(), r#"subscribe.types = ["k.*"]"#);
    let router = Router::start(
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
    eventually("the kcat record", Duration::from_secs(60), || {
        router.or_log(router.processed("k.in") >= 1)
    });
    let out = eventually("its output, read by kcat", Duration::from_secs(30), || {
        let out = kcat.consume("echo.k.in");
        match out.len() {
            1 => Ok(out),
            n => Err(format!("kcat read {n} records")),
        }
    });
    assert_eq!(out[0].header("switchyard-plugin"), Some("echo"));
    router.stop();
}

/// A topic that the router's own output creates (the broker auto-creates
/// it on the first produce; the router may not create topics) reaches the
/// plugin subscribed to it within the 5 s metadata refresh, with margin.
#[test]
fn a_topic_auto_created_by_the_routers_output_is_routed_on_apache_kafka() {
    let took = kit::e2e::auto_created_topic_routed_after(&Broker::kafka(), "");
    println!("routed {took:?} after its first record");
    assert!(
        took < Duration::from_secs(12),
        "routed {took:?} after its first record"
    );
}

/// Apache Kafka is killed for 20 s mid-stream and started again on its
/// log: the router neither exits nor dead-letters, `/readyz` is false while
/// the broker is gone, and every record is routed afterwards.
#[test]
fn an_apache_kafka_restart_mid_stream_loses_nothing_and_dead_letters_nothing() {
    kit::outage::broker_outage_loses_nothing(&Broker::kafka());
}

/// A router for the secured broker with `config`, started.
fn secured_router(broker: &Broker, config: &std::path::Path, dir: &std::path::Path) -> Router {
    let router = Router::start(config, broker, &dir.join("state"), &dir.join("cache"));
    eventually("startup", Duration::from_secs(60), || {
        router.or_log(router.logged("router started"))
    });
    router
}

/// The router's Kafka client settings for the secured broker's `router`
/// principal, with `password`.
fn secured_config(dir: &std::path::Path, password: &str) -> std::path::PathBuf {
    secured_config_for(dir, password, "sec")
}

/// [`secured_config`] for the echo plugin on `prefix.*`.
fn secured_config_for(dir: &std::path::Path, password: &str, prefix: &str) -> std::path::PathBuf {
    let config = dir.join("router.toml");
    std::fs::write(
        &config,
        format!(
            r#"[kafka.client]
"security.protocol" = "SASL_PLAINTEXT"
"sasl.mechanism" = "PLAIN"
"sasl.username" = "router"
"sasl.password" = "{password}"

[[plugin]]
name = "echo"
wasm = "{}"
subscribe.types = ["{prefix}.*"]
emits = ["echo.*"]
topics = {{ "echo.{prefix}.in" = "echo.{prefix}.in" }}
"#,
            kit::guest("echo").display()
        ),
    )
    .unwrap();
    config
}

/// A broker with SASL/PLAIN and ACLs, where the router's principal may read
/// and write every topic but create none: the router warns about the topics
/// it cannot create and routes. A wrong password stops it with one line
/// naming the settings to fix.
#[test]
fn the_router_routes_on_a_sasl_broker_without_create_rights_and_names_a_wrong_password() {
    let broker = Broker::kafka_secured();
    for t in ["sec.in", "echo.sec.in", "sec.in.dlq", "echo.sec.in.dlq"] {
        broker.create_topic(t, 1);
    }
    broker.py().grant("User:router");
    let dir = tempfile::tempdir().unwrap();
    let config = secured_config(dir.path(), "router-secret");
    let router = secured_router(&broker, &config, dir.path());
    assert!(
        router.log().contains("cannot create topics"),
        "no warning about the topics it may not create\n{}",
        router.log()
    );
    let client = broker.client();
    client.produce(&[Rec {
        topic: "sec.in".into(),
        partition: Some(0),
        key: Some("k".into()),
        headers: vec![],
        value: br#"{"event_id":"s-1","event_type":"sec.in","data":{}}"#.to_vec(),
    }]);
    eventually(
        "the record on the secured broker",
        Duration::from_secs(60),
        || router.or_log(router.processed("sec.in") >= 1),
    );
    eventually("its output", Duration::from_secs(30), || {
        router.or_log(!client.consume("echo.sec.in").is_empty())
    });
    router.stop();

    std::fs::create_dir_all(dir.path().join("wrong")).unwrap();
    let wrong = secured_config(&dir.path().join("wrong"), "not-the-password");
    let (status, stderr) = Router::start_plain(
        &wrong,
        &broker,
        &dir.path().join("state-wrong"),
        &dir.path().join("cache"),
        &[],
    )
    .exit_within(
        "the router to stop on a wrong password",
        Duration::from_secs(60),
    );
    assert!(!status.success(), "{stderr}");
    let error: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("sasl.password"))
        .collect();
    assert_eq!(error.len(), 1, "one line names the setting:\n{stderr}");
    assert!(error[0].contains("router.toml"), "{stderr}");
}

/// With exactly-once, an output the broker refuses at delivery (larger
/// than its topic's `max.message.bytes`) aborts the transaction once; the
/// record's run again dead-letters the input with class `produce`, inside
/// the next transaction, and the partition moves on: the record after it
/// comes out exactly once.
#[test]
fn with_exactly_once_an_output_the_broker_refuses_is_dead_lettered_and_the_partition_moves_on() {
    let broker = Broker::kafka();
    broker.create_topic("big.in", 1);
    broker.create_topic("big.in.dlq", 1);
    broker.create_topic_with("echo.big.in", 1, &[("max.message.bytes", "2000")]);
    let dir = tempfile::tempdir().unwrap();
    let config = kit::echo_config(dir.path(), r#"subscribe.types = ["big.*"]"#);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("[kafka]\nguarantee = \"exactly-once\"\n\n{text}"),
    )
    .unwrap();
    let router = Router::start(
        &config,
        &broker,
        &dir.path().join("state"),
        &dir.path().join("cache"),
    );
    let client = broker.client();
    let record = |id: &str, pad: &str| Rec {
        topic: "big.in".into(),
        partition: Some(0),
        key: Some("k".into()),
        headers: vec![],
        value: format!(r#"{{"event_id":"{id}","event_type":"big.in","data":{{"pad":"{pad}"}}}}"#)
            .into_bytes(),
    };
    // One at a time: outputs produced together share a request, which the
    // broker refuses whole.
    let until = |what: &str, topic: &str| {
        eventually(what, Duration::from_secs(90), || {
            let got = client.consume(topic);
            router.or_log((!got.is_empty()).then_some(got))
        })
    };
    client.produce(&[record("b-1", &"x".repeat(4000))]);
    let letters = until("dead letter", "big.in.dlq");
    client.produce(&[record("b-2", "small")]);
    let outputs = until("output", "echo.big.in");
    let log = router.stop();
    let outputs_after = client.consume("echo.big.in");
    assert_eq!(letters.len(), 1, "{log}");
    assert_eq!(
        letters[0].header("switchyard-dlq-error-class"),
        Some("produce"),
        "{log}"
    );
    assert_eq!(outputs_after.len(), 1, "the small record once\n{log}");
    assert!(
        String::from_utf8_lossy(&outputs_after[0].value).contains("small"),
        "{log}"
    );
    assert_eq!(outputs, outputs_after);
}

/// A dead letter the broker will not take (the router may not write to
/// the dead-letter topic, for now) is never dropped: the router retries it,
/// says so, keeps the input's offset, and produces it once it may.
#[test]
fn a_dead_letter_the_broker_refuses_waits_and_is_produced_once_it_may() {
    let broker = Broker::kafka_secured();
    for t in ["bad.in", "echo.bad.in", "bad.in.dlq", "echo.bad.in.dlq"] {
        broker.create_topic(t, 1);
    }
    let py = broker.py();
    py.grant("User:router");
    py.deny_write("User:router", "bad.in.dlq", true);
    let dir = tempfile::tempdir().unwrap();
    let config = secured_config_for(dir.path(), "router-secret", "bad");
    let router = secured_router(&broker, &config, dir.path());
    let client = broker.client();
    // A good event first: an undecodable record is dead-lettered on a
    // topic the router has routed (elsewhere it is skipped).
    let rec = |value: &[u8]| Rec {
        topic: "bad.in".into(),
        partition: Some(0),
        key: Some("k".into()),
        headers: vec![],
        value: value.to_vec(),
    };
    client.produce(&[rec(
        br#"{"event_id":"g-1","event_type":"bad.in","data":{}}"#,
    )]);
    eventually("the good event", Duration::from_secs(60), || {
        router.or_log(router.processed("bad.in") >= 1)
    });
    client.produce(&[rec(b"not json")]);
    // Refused, and refused again when it retried: the router had every
    // chance to drop it or to get it through.
    eventually(
        "the dead letter refused twice",
        Duration::from_secs(60),
        || {
            router.or_log(
                router
                    .log()
                    .lines()
                    .any(|l| l.contains("dead letter to bad.in.dlq") && l.contains("attempt=2")),
            )
        },
    );
    assert!(client.consume("bad.in.dlq").is_empty());
    py.deny_write("User:router", "bad.in.dlq", false);
    eventually(
        "the dead letter, once it may be written",
        Duration::from_secs(60),
        || router.or_log(!client.consume("bad.in.dlq").is_empty()),
    );
    let log = router.stop();
    let letters = client.consume("bad.in.dlq");
    assert_eq!(letters.len(), 1, "{log}");
    assert_eq!(
        letters[0].header("switchyard-dlq-error-class"),
        Some("decode"),
        "{log}"
    );
}
