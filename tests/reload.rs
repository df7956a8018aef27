//! Hot reload under load, the admin API's token, its metrics and its status
//! page, against the router on the mock cluster.

use switchyard_testkit as kit;

use kit::http::{get, request};
use kit::{Broker, Client, Kcat, Rec, Router, eventually, wasm_variant};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const TOKEN: &str = "s3cret-token";

fn label(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))[..12].to_string()
}

struct Setup {
    dir: tempfile::TempDir,
    wasm: PathBuf,
    config: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let echo = std::fs::read(kit::guest("echo")).unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(plugins.join("fixtures")).unwrap();
    let wasm = plugins.join("echo.wasm");
    std::fs::write(&wasm, wasm_variant(&echo, 0)).unwrap();
    std::fs::copy(
        kit::root().join("tests/faults/fixtures/echo/echo.json"),
        plugins.join("fixtures/echo.json"),
    )
    .unwrap();
    let config = dir.path().join("router.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[admin]
token = "{TOKEN}"

[[plugin]]
name = "echo"
wasm = "{}"
fixtures = "{}"
subscribe.types = ["load.*", "booking.*"]
emits = ["echo.*"]
"#,
            wasm.display(),
            plugins.join("fixtures").display()
        ),
    )
    .unwrap();
    Setup { dir, wasm, config }
}

/// A fresh broker with the test's topics and a router with the admin API.
fn start() -> (Setup, Broker, Router, String) {
    let s = setup();
    let broker = Broker::mock();
    for t in ["load", "load.dlq", "echo.load.event"] {
        broker.create_topic(t, 3);
    }
    let router = Router::start(
        &s.config,
        &broker,
        &s.dir.path().join("state"),
        &s.dir.path().join("cache"),
    );
    let url = router.admin_url();
    (s, broker, router, url)
}

fn plugin(url: &str) -> Value {
    serde_json::from_str(&get(&format!("{url}/plugins/echo"))).unwrap()
}

fn load_event(i: usize) -> Rec {
    Rec {
        topic: "load".into(),
        partition: None,
        key: Some(format!("k{}", i % 7)),
        headers: vec![],
        value: json!({"event_id": format!("load-{i:04}"), "event_type": "load.event", "timestamp": "2025-11-24T10:30:00Z", "data": {"i": i}})
            .to_string()
            .into_bytes(),
    }
}

/// Replaces the file the way an editor does: write a temporary, rename over.
fn replace_file(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("wasm.swp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn twenty_reloads_under_load_route_every_event_exactly_once_on_one_version() {
    let (s, broker, router, url) = start();
    let echo = std::fs::read(kit::guest("echo")).unwrap();
    let initial = label(&wasm_variant(&echo, 0));
    assert_eq!(plugin(&url)["version"], initial.as_str());

    // Traffic flows the whole time.
    const N: usize = 240;
    let done = Arc::new(AtomicBool::new(false));
    let producer = {
        let (bootstrap, done) = (broker.bootstrap(), done.clone());
        std::thread::spawn(move || {
            let kcat = Kcat(bootstrap);
            for i in 0..N {
                kcat.produce(&[load_event(i)]);
                std::thread::sleep(Duration::from_millis(25));
            }
            done.store(true, Ordering::Relaxed);
        })
    };

    let broken: BTreeMap<usize, Vec<u8>> = BTreeMap::from([
        (5, b"this is not wasm".to_vec()),
        (11, std::fs::read(kit::guest("wrong_world")).unwrap()),
        (16, std::fs::read(kit::guest("trap")).unwrap()),
    ]);
    let mut accepted = vec![initial.clone()];
    let mut refused = BTreeSet::new();
    for step in 1..=20 {
        let bytes = broken
            .get(&step)
            .cloned()
            .unwrap_or_else(|| wasm_variant(&echo, step));
        let via_api = step % 2 == 0;
        let before = plugin(&url);
        if via_api {
            let (status, body) =
                request("PUT", &format!("{url}/plugins/echo"), Some(TOKEN), &bytes);
            let expected = if broken.contains_key(&step) { 422 } else { 200 };
            assert_eq!(status, expected, "step {step}: {body}");
        } else {
            replace_file(&s.wasm, &bytes);
            if broken.contains_key(&step) {
                eventually("the refusal", Duration::from_secs(60), || {
                    plugin(&url)["last_error"] != before["last_error"]
                });
            } else {
                eventually("the new version", Duration::from_secs(60), || {
                    plugin(&url)["version"] == label(&bytes).as_str()
                });
            }
        }
        if broken.contains_key(&step) {
            refused.insert(label(&bytes));
            assert_eq!(
                plugin(&url)["version"],
                before["version"],
                "step {step}: a broken file went live"
            );
        } else {
            accepted.push(label(&bytes));
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    let status = plugin(&url);
    assert_eq!(status["version"], accepted.last().unwrap().as_str());
    assert!(
        status["last_error"].as_str().unwrap().contains("fixture"),
        "{status}"
    );

    producer.join().unwrap();
    assert!(done.load(Ordering::Relaxed));
    eventually("every event", Duration::from_secs(120), || {
        router.or_log(router.processed("load") >= N as u64)
    });

    let kcat = Kcat(broker.bootstrap());
    let outputs = kcat.consume("echo.load.event");
    let mut by_cause: BTreeMap<String, BTreeSet<(String, Vec<u8>)>> = BTreeMap::new();
    for r in &outputs {
        let versions: Vec<&str> = r
            .headers
            .iter()
            .filter(|(k, _)| k == "switchyard-plugin-version")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(
            versions.len(),
            1,
            "every output names exactly one version: {:?}",
            r.headers
        );
        let v: Value = serde_json::from_slice(&r.value).unwrap();
        by_cause
            .entry(v["causation_id"].as_str().unwrap().to_string())
            .or_default()
            .insert((versions[0].to_string(), r.value.clone()));
    }
    assert_eq!(by_cause.len(), N, "every input is routed");
    let mut seen_versions = BTreeSet::new();
    for (cause, copies) in &by_cause {
        assert_eq!(
            copies.len(),
            1,
            "{cause} was processed by two versions or produced different bytes: {copies:?}"
        );
        seen_versions.insert(copies.iter().next().unwrap().0.clone());
    }
    assert!(
        seen_versions.iter().all(|v| accepted.contains(v)),
        "{seen_versions:?} vs {accepted:?}"
    );
    assert!(seen_versions.is_disjoint(&refused), "a broken version ran");
    assert!(
        seen_versions.len() > 1,
        "the events should span several versions: {seen_versions:?}"
    );
    assert_eq!(
        router.log().matches("reload refused").count(),
        3,
        "{}",
        router.log()
    );

    // Rollback restores the previous version.
    let (code, body) = request(
        "POST",
        &format!("{url}/plugins/echo/rollback"),
        Some(TOKEN),
        b"",
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        plugin(&url)["version"],
        accepted[accepted.len() - 2].as_str()
    );
    router.stop();
}

#[test]
fn without_the_token_every_change_is_refused_and_nothing_changes() {
    let (_s, _broker, router, url) = start();
    let echo = std::fs::read(kit::guest("echo")).unwrap();
    let before = plugin(&url);
    let upload = wasm_variant(&echo, 42);
    for (method, path, body) in [
        ("PUT", "/plugins/echo", upload.as_slice()),
        ("POST", "/plugins/echo/reload", b"".as_slice()),
        ("POST", "/plugins/echo/rollback", b""),
        ("POST", "/plugins/echo/pause", b""),
        ("POST", "/plugins/echo/resume", b""),
    ] {
        let same_length = "x".repeat(TOKEN.len());
        for token in [None, Some("wrong"), Some(same_length.as_str()), Some("")] {
            let (status, body) = request(method, &format!("{url}{path}"), token, body);
            assert_eq!(status, 401, "{method} {path} with {token:?}: {body}");
        }
    }
    // An oversized upload is answered from its headers alone, before any of
    // its body is sent: 401 without the token, 413 with it.
    assert_eq!(announce_upload(&url, None, 33 << 20), 401);
    assert_eq!(announce_upload(&url, Some(TOKEN), 33 << 20), 413);
    // Path tricks and unknown plugins change nothing, even with the token.
    for path in [
        "/plugins/..%2Fecho/pause",
        "/plugins/%2e%2e/echo/pause",
        "/plugins/echo%2Fpause",
        "/plugins/nope/pause",
        "/plugins/../plugins/echo/pause",
    ] {
        let (status, body) = request("POST", &format!("{url}{path}"), Some(TOKEN), b"");
        assert!(
            (400..500).contains(&status) && status != 401,
            "{path}: {status} {body}"
        );
    }
    let after = plugin(&url);
    assert_eq!(after["version"], before["version"]);
    assert_eq!(after["paused"], false);
    assert_eq!(after["previous"], json!([]));
    // With the token, the same upload goes live.
    let (status, body) = request("PUT", &format!("{url}/plugins/echo"), Some(TOKEN), &upload);
    assert_eq!(status, 200, "{body}");
    assert_eq!(plugin(&url)["version"], label(&upload).as_str());
    router.stop();
}

/// Sends only the head of a `PUT /plugins/echo` announcing `length` bytes,
/// and returns the status the server answers with without the body.
fn announce_upload(url: &str, token: Option<&str>, length: usize) -> u16 {
    use std::io::{Read, Write};
    let host = url.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "PUT /plugins/echo HTTP/1.1\r\nHost: {host}\r\nContent-Length: {length}\r\n{auth}\r\n"
    )
    .unwrap();
    let mut head = [0u8; 64];
    let n = stream
        .read(&mut head)
        .expect("an answer before the body was sent");
    String::from_utf8_lossy(&head[..n])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[test]
fn metrics_pass_promtool_and_the_status_page_shows_the_plugins() {
    let (s, broker, router, url) = start();
    let kcat = Kcat(broker.bootstrap());
    kcat.produce(&(0..5).map(load_event).collect::<Vec<_>>());
    kcat.produce(&[Rec {
        value: b"not json".to_vec(),
        ..load_event(99)
    }]);
    eventually("six records", Duration::from_secs(60), || {
        router.or_log(router.invocations("echo") >= 5 && router.dead_lettered("load") >= 1)
    });

    let metrics = get(&format!("{url}/metrics"));
    for name in [
        "kafka_consumer_processing_duration_seconds_bucket",
        "kafka_consumer_errors_total{consumer_group=\"e2e\",topic=\"load\"} 1",
        "kafka_dlq_messages_total{topic=\"load\"} 1",
        "switchyard_plugin_invocations_total{plugin=\"echo\"} 5",
        "switchyard_plugin_version_info{plugin=\"echo\"",
    ] {
        assert!(metrics.contains(name), "{name} missing from\n{metrics}");
    }
    let promtool =
        which("promtool").expect("promtool is not installed; run scripts/setup.sh --test");
    let file = s.dir.path().join("metrics.txt");
    std::fs::write(&file, &metrics).unwrap();
    let out = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let dom = kit::chromium(&format!("{url}/"), &["--dump-dom"]);
    let version = plugin(&url)["version"].as_str().unwrap().to_string();
    assert!(dom.contains("id=\"plugin-echo\""), "{dom}");
    assert!(dom.contains(&format!("<td>{version}</td>")), "{dom}");
    assert!(dom.contains("<td>running</td>"), "{dom}");
    assert!(dom.contains("id=\"dead-letters\">1<"), "{dom}");
    router.stop();
}
