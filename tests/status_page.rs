//! The status page a staging team keeps open: the booking example on the
//! embedded broker with one good event, one bad record and a reload, then
//! the page in headless Chromium (Debian's `chromium`): the routing map with
//! its live edges, the dead letter with its reason, replay with and without
//! the token, and the new version. It also takes the README's screenshot
//! (`docs/status-page.png` when `SWITCHYARD_SCREENSHOT=1`).

use switchyard_testkit as kit;

use kit::chromium;
use kit::http::{get, request};
use kit::{Broker, Client, Kcat, Rec, Router, eventually};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const TOKEN: &str = "page-token";

fn edge_count(map: &Value, from: &str, to: &str) -> u64 {
    map["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["from"] == from && e["to"] == to)
        .and_then(|e| e["count"].as_u64())
        .unwrap_or(0)
}

#[test]
fn the_status_page_shows_the_map_dead_letters_replay_and_reloads() {
    let broker = Broker::mock();
    for t in [
        "booking.booking.created",
        "booking.booking.cancelled",
        "payment.payment.succeeded",
        "receipt.receipt.generated",
    ] {
        broker.create_topic(t, 1);
        broker.create_topic(&format!("{t}.dlq"), 1);
    }
    let dir = tempfile::tempdir().unwrap();
    kit::build_wasm("plugins");
    let config = kit::root().join("examples/booking/router.toml");
    let router = Router::start_with(
        &config,
        &broker,
        &dir.path().join("state"),
        &dir.path().join("cache"),
        &["--no-create-topics"],
        &[("SWITCHYARD_ADMIN_TOKEN", TOKEN)],
    );
    let url = router.admin_url();
    let kcat = Kcat(broker.bootstrap());
    let good =
        std::fs::read(kit::root().join("examples/booking/events/booking-created.json")).unwrap();
    kcat.produce(&[
        Rec {
            topic: "booking.booking.created".into(),
            partition: Some(0),
            key: Some("b-1".into()),
            headers: vec![],
            value: good,
        },
        Rec {
            topic: "booking.booking.created".into(),
            partition: Some(0),
            key: Some("bad".into()),
            headers: vec![],
            value: b"not json".to_vec(),
        },
    ]);
    // A plugin's own count is the last of a record's counts, after the
    // routing map's edges.
    eventually(
        "the receipt and the dead letter",
        Duration::from_secs(90),
        || {
            router.or_log(
                router.invocations("receipt") >= 1
                    && router.dead_lettered("booking.booking.created") >= 1,
            )
        },
    );

    // A reload: another build of payment (an extra custom section).
    let wasm_path = kit::root().join("plugins/target/wasm32-wasip2/release/payment.wasm");
    let mut upload = std::fs::read(&wasm_path).unwrap();
    upload.extend_from_slice(&[0, 10, 9]);
    upload.extend_from_slice(b"page-test");
    let (status, body) = request(
        "PUT",
        &format!("{url}/plugins/payment"),
        Some(TOKEN),
        &upload,
    );
    assert_eq!(status, 200, "{body}");
    let version = serde_json::from_str::<Value>(&body).unwrap()["version"]
        .as_str()
        .unwrap()
        .to_string();

    // The JSON the page draws from.
    let map: Value = serde_json::from_str(&get(&format!("{url}/api/map"))).unwrap();
    for (from, to) in [
        ("topic:booking.booking.created", "plugin:payment"),
        ("plugin:payment", "topic:payment.payment.succeeded"),
        ("topic:payment.payment.succeeded", "plugin:receipt"),
        ("plugin:receipt", "topic:receipt.receipt.generated"),
        (
            "topic:booking.booking.created",
            "topic:booking.booking.created.dlq",
        ),
    ] {
        assert!(edge_count(&map, from, to) >= 1, "{from} -> {to}: {map}");
    }
    eventually("the dead letter listed", Duration::from_secs(30), || {
        get(&format!("{url}/api/dlq")).contains("value is not JSON")
    });
    let letters: Value = serde_json::from_str(&get(&format!("{url}/api/dlq"))).unwrap();
    let letter = &letters["letters"][0];
    assert_eq!(letter["topic"], "booking.booking.created.dlq", "{letters}");
    assert_eq!(letter["class"], "decode");
    let record: Value = serde_json::from_str(&get(&format!(
        "{url}/api/dlq/booking.booking.created.dlq/0/{}",
        letter["offset"]
    )))
    .unwrap();
    assert_eq!(record["value"], "not json", "{record}");

    // The page itself, rendered by Chromium.
    let dom = chromium(&format!("{url}/"), &["--dump-dom"]);
    for (from, to) in [
        ("topic:booking.booking.created", "plugin:payment"),
        ("plugin:payment", "topic:payment.payment.succeeded"),
        ("topic:payment.payment.succeeded", "plugin:receipt"),
        ("plugin:receipt", "topic:receipt.receipt.generated"),
    ] {
        let at = format!(r#"data-from="{from}" data-to="{to}" data-count=""#);
        let count: u64 = dom
            .split(&at)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no edge {from} -> {to} on the page:\n{dom}"));
        assert!(count >= 1, "{from} -> {to} shows {count}");
    }
    assert!(dom.contains("value is not JSON"), "the reason:\n{dom}");
    assert!(
        dom.contains(r#"data-replay="booking.booking.created.dlq/0/"#),
        "{dom}"
    );
    assert!(
        dom.contains(&format!("<td>{version}</td>")),
        "the new version:\n{dom}"
    );
    assert!(
        dom.contains(&format!("{version} · running")),
        "the map's version:\n{dom}"
    );

    // Replay: refused without the token, re-routed with it.
    let one = format!(r#"{{"partition":0,"offset":{}}}"#, letter["offset"]);
    let replay = format!("{url}/api/dlq/booking.booking.created.dlq/replay");
    let (status, _) = request("POST", &replay, None, one.as_bytes());
    assert_eq!(status, 401);
    let (status, _) = request("POST", &replay, Some("wrong"), one.as_bytes());
    assert_eq!(status, 401);
    let before = router.dead_lettered("booking.booking.created");
    assert_eq!(before, 1, "refused replays must not re-route");
    let (status, body) = request("POST", &replay, Some(TOKEN), one.as_bytes());
    assert_eq!(status, 200, "{body}");
    eventually("the replayed record", Duration::from_secs(30), || {
        router.or_log(router.dead_lettered("booking.booking.created") == 2)
    });

    if std::env::var_os("SWITCHYARD_SCREENSHOT").is_some() {
        // A few chart samples (one per 5 s) and some traffic to draw.
        for i in 0..3 {
            let mut event: Value = serde_json::from_slice(
                &std::fs::read(kit::root().join("examples/booking/events/booking-created.json"))
                    .unwrap(),
            )
            .unwrap();
            event["event_id"] = format!("e0000001-0000-4000-8000-00000000010{i}").into();
            kcat.produce(&[Rec {
                topic: "booking.booking.created".into(),
                partition: Some(0),
                key: Some(format!("b-{i}")),
                headers: vec![],
                value: event.to_string().into_bytes(),
            }]);
            std::thread::sleep(Duration::from_secs(5));
        }
        let shot = kit::root().join("docs/status-page.png");
        std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&shot);
        chromium(
            &format!("{url}/"),
            &[
                &format!("--screenshot={}", shot.display()),
                "--window-size=1400,1300",
            ],
        );
        assert!(
            Path::new(&shot).exists(),
            "no screenshot at {}",
            shot.display()
        );
    }
    router.stop();
}

/// Replays from the admin API run off the router's runtime: with the
/// broker gone, each one waits out its 10 s metadata call, and the admin
/// API (on the same runtime as the consumer and the partitions) still
/// answers at once. (Run on the runtime, three of them held both of its
/// threads on this 2-core machine.)
#[test]
fn dead_letter_replays_do_not_block_the_router() {
    let broker = Broker::mock();
    for t in ["r.in", "r.in.dlq"] {
        broker.create_topic(t, 1);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = kit::echo_config(dir.path(), r#"subscribe.topics = ["r.in"]"#);
    let router = Router::start_with(
        &config,
        &broker,
        &dir.path().join("state"),
        &dir.path().join("cache"),
        &["--no-create-topics"],
        &[("SWITCHYARD_ADMIN_TOKEN", TOKEN)],
    );
    let url = router.admin_url();
    broker.set_down(true);
    let replays: Vec<_> = (0..3)
        .map(|_| {
            let replay = format!("{url}/api/dlq/r.in.dlq/replay");
            std::thread::spawn(move || request("POST", &replay, Some(TOKEN), b""))
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let asked = std::time::Instant::now();
    let (status, _) = request("GET", &format!("{url}/healthz"), None, b"");
    let took = asked.elapsed();
    broker.set_down(false);
    for r in replays {
        let _ = r.join();
    }
    router.stop();
    assert_eq!(status, 200);
    assert!(
        took < std::time::Duration::from_secs(2),
        "/healthz took {took:?} while replays waited on the broker"
    );
}
