//! The broker-outage scenario, on any broker: records flow, the broker goes
//! away for 20 s (the mock cluster's broker stops answering; a Tansu process
//! is killed and started again on its durable storage), and then:
//! - the router neither exited nor dead-lettered anything;
//! - `/readyz` was false, saying why, while the broker was gone;
//! - every record, from before and after the outage, was routed;
//! - `/readyz` is true again.

use crate::http::{request, unready_during};
use crate::{Broker, Rec, Router, eventually};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

/// Runs the scenario on `broker`.
pub fn broker_outage_loses_nothing(broker: &Broker) {
    for t in ["o.in", "echo.o.in"] {
        broker.create_topic(t, 2);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = crate::echo_config(dir.path(), r#"subscribe.types = ["o.*"]"#);
    let router = Router::start(
        &config,
        broker,
        &dir.path().join("state"),
        &dir.path().join("cache"),
    );
    let url = router.admin_url();
    let client = broker.client();
    let batch = |from: usize| -> Vec<Rec> {
        (from..from + 100)
            .map(|i| Rec {
                topic: "o.in".into(),
                partition: Some((i % 2) as i32),
                key: Some(format!("k{i}")),
                headers: vec![],
                value: format!(r#"{{"event_id":"o-{i}","event_type":"o.in","data":{{"i":{i}}}}}"#)
                    .into_bytes(),
            })
            .collect()
    };
    client.produce(&batch(0));
    eventually("the first records", Duration::from_secs(60), || {
        router.or_log(router.processed("o.in") >= 1)
    });
    broker.set_down(true);
    let saw_not_ready = unready_during(&url, Duration::from_secs(20));
    broker.set_down(false);
    assert!(
        saw_not_ready,
        "/readyz stayed true while the broker was down\n{}",
        router.log()
    );
    client.produce(&batch(100));
    eventually(
        "every record after the outage",
        Duration::from_secs(180),
        || {
            let seen: BTreeSet<String> = client
                .consume("echo.o.in")
                .iter()
                .map(|r| {
                    serde_json::from_slice::<Value>(&r.value).unwrap()["data"]["data"]["i"]
                        .to_string()
                })
                .collect();
            router.or_log(seen.len() == 200)
        },
    );
    eventually("ready again", Duration::from_secs(15), || {
        router.or_log(request("GET", &format!("{url}/readyz"), None, b"").0 == 200)
    });
    let log = router.stop();
    assert!(
        client.consume("o.in.dlq").is_empty(),
        "nothing dead-lettered\n{log}"
    );
}
