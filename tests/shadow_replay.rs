//! `switchyard replay`: a topic's history through the booking example's
//! receipt plugin and a candidate, offline, on the embedded broker. An
//! equivalent candidate (the Python port) exits 0 with nothing differing; one
//! that formats `receipt_url` differently exits 1 with every event differing
//! and a diff naming the field. The replay reads outside the live consumer
//! group and commits nothing; it starts from a snapshot of the router's
//! state, and says so in one line when a router holds that store. Over the
//! history a live shadow saw, it finds the same differences, to the text.

use switchyard_testkit as kit;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

const TOPIC: &str = "payment.payment.succeeded";
const EVENTS: usize = 300;
const PARTITIONS: i32 = 3;

/// Payment `i` of this file's series (`workload::payment_succeeded`).
fn payment(i: usize) -> (String, String) {
    switchyard_testkit::workload::payment_succeeded(2, i)
}

fn release(name: &str) -> PathBuf {
    let wasm = kit::build_wasm("plugins").join(name);
    assert!(
        wasm.is_file(),
        "{}: missing; run scripts/build-plugins.sh --test",
        wasm.display()
    );
    wasm
}

fn replay(cache: &Path, bootstrap: &str, candidate: &Path, state: &[&str]) -> (i32, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = kit::switchyard(cache)
        .args(["replay", "--config", "examples/booking/router.toml"])
        .args([
            "--brokers",
            bootstrap,
            "--topic",
            TOPIC,
            "--plugin",
            "receipt",
        ])
        .arg("--candidate")
        .arg(candidate)
        .args(state)
        .env_remove("SWITCHYARD_STATE_URL")
        .output()
        .expect("switchyard runs");
    let text = String::from_utf8_lossy(&stdout).into_owned() + &String::from_utf8_lossy(&stderr);
    (status.code().unwrap_or(-1), text)
}

/// The offsets group `group` committed on the topic's partitions.
fn committed(bootstrap: &str, group: &str) -> Vec<Offset> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(TOPIC, p);
    }
    consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .map(|e| e.offset())
        .collect()
}

#[test]
fn replay_exits_0_for_an_equivalent_candidate_and_1_naming_the_field_for_a_different_one() {
    let receipt_py = release("receipt-py.wasm");
    release("receipt.wasm");
    let variant = kit::receipt_py_variant(
        "f\"{base_url}{number}.pdf\"",
        "f\"{base_url}{number.lower()}.pdf\"",
    );
    let broker = kit::Broker::mock();
    broker.create_topic(TOPIC, PARTITIONS);
    let per = EVENTS / PARTITIONS as usize;
    for p in 0..PARTITIONS as usize {
        let events: Vec<(String, String)> = (p * per..(p + 1) * per).map(payment).collect();
        kit::Kcat(broker.bootstrap()).produce_lines(TOPIC, Some(p as i32), &events);
    }
    let cache = tempfile::tempdir().unwrap();
    let bootstrap = broker.bootstrap();

    // The Python port behaves as the Rust plugin does: nothing differs.
    let (code, text) = replay(cache.path(), &bootstrap, &receipt_py, &["--empty-state"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!(
            "{EVENTS} compared, {EVENTS} equal, 0 differing (0 errors), 0 skipped"
        )),
        "{text}"
    );

    // receipt_url in lower case: every event differs, in that field only.
    let (code, text) = replay(cache.path(), &bootstrap, &variant, &["--empty-state"]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!(
            "{EVENTS} compared, 0 equal, {EVENTS} differing (0 errors), 0 skipped"
        )),
        "{text}"
    );
    let fields: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(": live ") && l.contains(" → shadow "))
        .collect();
    assert_eq!(fields.len(), EVENTS, "{text}");
    assert!(
        fields.iter().all(|l| l
            .trim_start()
            .starts_with("emit 1 data.receipt_url: live \"https://")),
        "{text}"
    );
    assert!(text.contains("/RCP-2025-000001.pdf"), "{text}");
    assert!(text.contains("/rcp-2025-000001.pdf"), "{text}");

    // From a snapshot of the router's state (receipts 1..=1000 issued):
    // numbering continues from it, for both versions alike.
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join("state.redb");
    {
        let store = switchyard::DiskStore::open(&file, 1000).unwrap();
        let effect = switchyard::Effect {
            plugin: "receipt".into(),
            event_id: "seed".into(),
            reads: Default::default(),
            writes: [("seq:2025".to_string(), Some(b"1000".to_vec()))].into(),
            outputs: Vec::new(),
            timers: Default::default(),
        };
        switchyard::StateStore::commit(&store, &[&[vec![effect]]]).unwrap();
        let dir = state.path().to_str().unwrap();
        // A router holding the file: one line naming it and the way out.
        let (code, text) = replay(cache.path(), &bootstrap, &variant, &["--state-dir", dir]);
        assert_eq!(code, 2, "{text}");
        assert_eq!(text.trim().lines().count(), 1, "{text}");
        assert!(text.contains(&file.display().to_string()), "{text}");
        assert!(text.contains("--empty-state"), "{text}");
    }
    let dir = state.path().to_str().unwrap();
    let (code, text) = replay(
        cache.path(),
        &bootstrap,
        &variant,
        &["--state-dir", dir, "--show", "2"],
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("… and 298 more differing event(s)"), "{text}");
    assert!(
        text.contains("a snapshot of `receipt`'s 1 key(s)"),
        "{text}"
    );
    assert!(text.contains("/RCP-2025-001001.pdf"), "{text}");
    assert!(!text.contains("/RCP-2025-000001.pdf"), "{text}");

    // From an offset: only the records after it.
    let (code, text) = replay(
        cache.path(),
        &bootstrap,
        &receipt_py,
        &["--empty-state", "--from-offset", "90"],
    );
    assert_eq!(code, 0, "{text}");
    let left = EVENTS - 90 * PARTITIONS as usize;
    assert!(
        text.contains(&format!("{left} compared, {left} equal")),
        "{text}"
    );

    // From a time. The embedded broker cannot look offsets up by time (it
    // answers "none after it" for any time): refused, not read as empty.
    let (code, text) = replay(
        cache.path(),
        &bootstrap,
        &receipt_py,
        &["--empty-state", "--from-time", "2000-01-01T00:00:00Z"],
    );
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("cannot look up offsets by time"), "{text}");
    // After the last record: none (and nothing to compare is no difference).
    let (code, text) = replay(
        cache.path(),
        &bootstrap,
        &receipt_py,
        &["--empty-state", "--from-time", "2999-01-01T00:00:00Z"],
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("nothing compared"), "{text}");

    // Nothing was committed for the live consumer group (the config's), nor
    // under the replay's own group id.
    for group in ["switchyard", "switchyard-replay"] {
        for offset in committed(&bootstrap, group) {
            assert_eq!(offset, Offset::Invalid, "group {group} has an offset");
        }
    }
}

#[test]
fn replay_finds_the_differences_the_live_shadow_found() {
    const N: usize = 100;
    const TOKEN: &str = "replay-test-token";
    let variant = kit::receipt_py_variant(
        "f\"{base_url}{number}.pdf\"",
        "f\"{base_url}{number.lower()}.pdf\"",
    );
    release("receipt.wasm");
    let broker = kit::Broker::mock();
    // One partition: the router and the replay take the records in the
    // same order, so even the receipt numbers in the diffs agree.
    broker.create_topic(TOPIC, 1);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let router = kit::Router::start_with(
        &kit::root().join("examples/booking/router.toml"),
        &broker,
        &dir.path().join("state"),
        &cache,
        &["--no-create-topics"],
        &[("SWITCHYARD_ADMIN_TOKEN", TOKEN)],
    );
    let api = |method: &str, body: &[u8]| {
        let url = format!("{}/plugins/receipt/shadow", router.admin_url());
        let (status, text) = kit::http::request(method, &url, Some(TOKEN), body);
        assert_eq!(status, 200, "{method} {url}: {text}");
        serde_json::from_str::<Value>(&text).unwrap()
    };
    api("PUT", &std::fs::read(&variant).unwrap());
    // 50 at a time: a live batch of more than 64 records would be sampled.
    for chunk in 0..N / 50 {
        let lines: Vec<_> = (chunk * 50..(chunk + 1) * 50).map(payment).collect();
        kit::Kcat(broker.bootstrap()).produce_lines(TOPIC, Some(0), &lines);
        kit::eventually(
            "the live shadow's comparisons",
            Duration::from_secs(90),
            || {
                let r = api("GET", b"");
                router.or_log(r["compared"].as_u64() >= Some((chunk as u64 + 1) * 50))
            },
        );
    }
    let live = api("GET", b"");
    assert_eq!(live["differing"], N, "{live}");

    let (code, text) = replay(&cache, &broker.bootstrap(), &variant, &["--empty-state"]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!(
            "{N} compared, 0 equal, {N} differing (0 errors), 0 skipped"
        )),
        "{text}"
    );
    let newest = live["newest"].as_array().unwrap();
    assert!(!newest.is_empty(), "{live}");
    for d in newest {
        let mut block = format!(
            "{} {} at {}:\n",
            d["event_type"].as_str().unwrap(),
            d["event_id"].as_str().unwrap(),
            d["at"].as_str().unwrap()
        );
        for line in d["text"].as_str().unwrap().lines() {
            block.push_str(&format!("  {line}\n"));
        }
        assert!(
            text.contains(&block),
            "the live shadow's\n{block}\nnot in\n{text}"
        );
    }
}
