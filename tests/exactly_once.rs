//! Exactly-once effects under load and crashes, on the mock cluster with
//! kcat: a global counter stays gapless on 6 partitions, and a plugin that
//! is not idempotent by itself applies every event once across a `kill -9`
//! in the middle of a batch.

use switchyard_testkit as kit;

use kit::{Broker, Client, Kcat, Router, eventually};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

fn value(r: &kit::Rec) -> Value {
    serde_json::from_slice(&r.value).unwrap()
}

fn start(config: &Path, broker: &Broker, dir: &Path) -> Router {
    Router::start(config, broker, &dir.join("state"), &dir.join("cache"))
}

#[test]
fn receipt_numbers_stay_gapless_on_six_partitions_under_load() {
    const N: usize = 1200;
    let broker = Broker::mock();
    for t in ["payment.payment.succeeded", "receipt.receipt.generated"] {
        broker.create_topic(t, 6);
        broker.create_topic(&format!("{t}.dlq"), 6);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = kit::workload::write_config(
        dir.path(),
        "[kafka]\nbatch_records = 64",
        &[kit::workload::receipt_plugin()],
    );
    let kcat = Kcat(broker.bootstrap());
    let router = start(&config, &broker, dir.path());
    // Six partitions, all busy at once: produce each partition's share in
    // its own kcat run, in parallel.
    let producers: Vec<_> = (0..6)
        .map(|p| {
            let bootstrap = broker.bootstrap();
            std::thread::spawn(move || {
                let lines: Vec<(String, String)> = (0..N / 6)
                    .map(|j| kit::workload::payment_event('1', p * (N / 6) + j))
                    .collect();
                Kcat(bootstrap).produce_lines("payment.payment.succeeded", Some(p as i32), &lines);
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    eventually("every receipt", Duration::from_secs(180), || {
        router.or_log(router.processed("payment.payment.succeeded") >= N as u64)
    });
    router.stop();
    let dead = kcat.consume("payment.payment.succeeded.dlq");
    assert!(
        dead.is_empty(),
        "{} dead letters, the first: {:?}",
        dead.len(),
        dead.first().map(|r| r.header("switchyard-dlq-error"))
    );
    let receipts = kcat.consume("receipt.receipt.generated");
    let mut numbers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &receipts {
        let v = value(r);
        numbers
            .entry(v["data"]["payment_id"].as_str().unwrap().to_string())
            .or_default()
            .insert(v["data"]["receipt_number"].as_str().unwrap().to_string());
    }
    assert_eq!(numbers.len(), N, "one receipt per payment");
    assert!(
        numbers.values().all(|n| n.len() == 1),
        "a payment got two numbers"
    );
    let issued: BTreeSet<String> = numbers.into_values().flatten().collect();
    let expected: BTreeSet<String> = (1..=N).map(|n| format!("RCP-2025-{n:06}")).collect();
    assert_eq!(
        issued, expected,
        "receipt numbers are 1..N with no gap or repeat"
    );
}

#[test]
fn a_kill_9_mid_batch_applies_every_event_exactly_once() {
    const N: usize = 3000;
    let broker = Broker::mock();
    for t in ["count.in", "counted"] {
        broker.create_topic(t, 3);
        broker.create_topic(&format!("{t}.dlq"), 3);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = kit::workload::write_config(
        dir.path(),
        "[kafka]\nbatch_records = 200",
        &[kit::workload::counter_plugin()],
    );
    let kcat = Kcat(broker.bootstrap());
    let lines: Vec<(String, String)> = (0..N).map(kit::workload::count_event).collect();
    kcat.produce_lines("count.in", None, &lines);

    let first = start(&config, &broker, dir.path());
    eventually("some batches", Duration::from_secs(60), || {
        first.or_log(first.processed("count.in") >= 300)
    });
    let handled_before = first.processed("count.in");
    first.kill9();
    assert!(
        handled_before < N as u64,
        "killed after everything was done; not mid-stream"
    );

    let second = start(&config, &broker, dir.path());
    eventually("every count", Duration::from_secs(180), || {
        let seen: BTreeSet<String> = kcat
            .consume("counted")
            .iter()
            .map(|r| value(r)["data"]["event"].as_str().unwrap().to_string())
            .collect();
        second.or_log(seen.len() == N)
    });
    second.stop();

    let mut by_event: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for r in kcat.consume("counted") {
        by_event
            .entry(value(&r)["data"]["event"].as_str().unwrap().to_string())
            .or_default()
            .push(r.value);
    }
    assert_eq!(by_event.len(), N, "every input has an output");
    let mut numbers = BTreeSet::new();
    for (id, copies) in &by_event {
        assert!(
            copies.windows(2).all(|w| w[0] == w[1]),
            "duplicates of {id} differ: the event was applied twice"
        );
        let n = serde_json::from_slice::<Value>(&copies[0]).unwrap()["data"]["n"]
            .as_u64()
            .unwrap();
        numbers.insert(n);
    }
    assert_eq!(
        numbers,
        (1..=N as u64).collect::<BTreeSet<_>>(),
        "the counter applied every event exactly once: 1..N, no gap, no repeat"
    );
}
