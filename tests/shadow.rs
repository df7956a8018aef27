//! Shadow versions on a broker, with the booking example serving: a
//! candidate receipt plugin runs beside the live one on every payment, and
//! nothing it does is produced or committed.
//!
//! One router, one run, in steps: a shadow formatting `receipt_url`
//! differently differs on every event and names the field; the Python port
//! of the receipt plugin (identical behaviour, built differently) differs
//! on none; a shadow that traps on every event leaves the live path
//! routing everything and counts its errors as differences; and the
//! differing candidate, promoted (its fixtures must pass), serves the next
//! receipts in its format, the numbering going on without a gap.

use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use switchyard_testkit::http::request;
use switchyard_testkit::{
    Broker, Client, Kcat, Router, eventually, guest, receipt_py_variant, root,
};

const TOKEN: &str = "shadow-test-token";
const INPUT: &str = "payment.payment.succeeded";
const OUTPUT: &str = "receipt.receipt.generated";

/// The candidate's change: receipt URLs in lower case.
const LIVE_URL: &str = "f\"{base_url}{number}.pdf\"";
const LOWER_URL: &str = "f\"{base_url}{number.lower()}.pdf\"";

/// The booking example's config, with absolute paths and the receipt
/// plugin's fixtures in `fixtures` (the candidate's format: the team
/// updates them with the new version).
fn config(dir: &Path, fixtures: &Path) -> std::path::PathBuf {
    let example = root().join("examples/booking");
    let text = std::fs::read_to_string(example.join("router.toml"))
        .unwrap()
        .replace(
            "../../plugins/",
            &format!("{}/", root().join("plugins").display()),
        )
        .replace(
            "\"fixtures/receipt\"",
            &format!("{:?}", fixtures.display().to_string()),
        )
        .replace("\"fixtures/", &format!("\"{}/fixtures/", example.display()))
        .replace("\"schemas/", &format!("\"{}/schemas/", example.display()));
    let path = dir.join("router.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The receipt fixtures with their URLs in lower case.
fn lower_case_fixtures(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("receipt-fixtures");
    std::fs::create_dir_all(&out).unwrap();
    let from = root().join("examples/booking/fixtures/receipt");
    for entry in std::fs::read_dir(&from).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut fixture: Value = serde_json::from_str(&text).unwrap();
        lower_urls(&mut fixture);
        std::fs::write(out.join(path.file_name().unwrap()), fixture.to_string()).unwrap();
    }
    out
}

fn lower_urls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match x {
                    Value::String(s) if k == "receipt_url" => {
                        let (base, file) = s.rsplit_once('/').unwrap();
                        *s = format!("{base}/{}", file.to_lowercase());
                    }
                    _ => lower_urls(x),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(lower_urls),
        _ => {}
    }
}

/// Payment `i` of this file's series (`workload::payment_succeeded`).
fn payment(i: usize) -> (String, String) {
    switchyard_testkit::workload::payment_succeeded(1, i)
}

struct Run {
    router: Router,
    broker: Broker,
    fed: usize,
}

impl Run {
    fn api(&self, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
        let (status, text) = request(
            method,
            &format!("{}{path}", self.router.admin_url()),
            Some(TOKEN),
            body,
        );
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn attach(&self, wasm: &Path) {
        let (status, body) = self.api(
            "PUT",
            "/plugins/receipt/shadow",
            &std::fs::read(wasm).unwrap(),
        );
        assert_eq!(status, 200, "attaching {}: {body}", wasm.display());
        assert!(body["shadow"].is_string(), "{body}");
    }

    fn report(&self) -> Value {
        let (status, body) = self.api("GET", "/plugins/receipt/shadow", b"");
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Feeds `n` more payments, 50 at a time (a batch of more than 64
    /// records would have the shadow sample it), and waits until all have
    /// their receipt and, with `shadow`, until the shadow has seen them.
    fn feed(&mut self, n: usize, shadow: bool) -> Vec<Value> {
        let mut receipts = Vec::new();
        for chunk in (0..n).step_by(50) {
            receipts = self.feed_some((n - chunk).min(50), shadow);
        }
        receipts
    }

    fn feed_some(&mut self, n: usize, shadow: bool) -> Vec<Value> {
        let seen = |r: &Value| r["compared"].as_u64().unwrap() + r["skipped"].as_u64().unwrap();
        let before = if shadow { seen(&self.report()) } else { 0 };
        let lines: Vec<_> = (self.fed..self.fed + n).map(payment).collect();
        Kcat(self.broker.bootstrap()).produce_lines(INPUT, None, &lines);
        self.fed += n;
        let total = self.fed;
        let kcat = Kcat(self.broker.bootstrap());
        let receipts = eventually("the receipts", Duration::from_secs(90), || {
            let got: Vec<Value> = kcat
                .consume(OUTPUT)
                .iter()
                .map(|r| serde_json::from_slice(&r.value).unwrap())
                .collect();
            self.router.or_log((got.len() >= total).then_some(got))
        });
        if shadow {
            eventually("the shadow's comparisons", Duration::from_secs(30), || {
                self.router
                    .or_log(seen(&self.report()) >= before + n as u64)
            });
        }
        receipts
    }
}

fn numbers(receipts: &[Value]) -> Vec<u64> {
    let mut n: Vec<u64> = receipts
        .iter()
        .map(|r| {
            r["data"]["receipt_number"].as_str().unwrap()[9..]
                .parse()
                .unwrap()
        })
        .collect();
    n.sort();
    n
}

#[test]
fn a_shadow_version_is_compared_on_live_traffic_produces_nothing_and_goes_live_when_promoted() {
    let broker = Broker::mock();
    let dir = tempfile::tempdir().unwrap();
    let fixtures = lower_case_fixtures(dir.path());
    let config = config(dir.path(), &fixtures);
    let router = Router::start_with(
        &config,
        &broker,
        &dir.path().join("state"),
        &dir.path().join("cache"),
        &["--no-create-topics"],
        &[("SWITCHYARD_ADMIN_TOKEN", TOKEN)],
    );
    let mut run = Run {
        router,
        broker,
        fed: 0,
    };
    run.feed(20, false);

    // A candidate formatting one field differently differs on every event,
    // and the diff names that field; the live receipts keep the live format.
    let lower = receipt_py_variant(LIVE_URL, LOWER_URL);
    run.attach(&lower);
    let receipts = run.feed(100, true);
    let r = run.report();
    assert_eq!(r["skipped"], 0, "{r}");
    assert_eq!(r["compared"], 100, "{r}");
    assert_eq!(r["differing"], 100, "every event differs: {r}");
    for d in r["newest"].as_array().unwrap() {
        let at: Vec<&str> = d["differences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["at"].as_str().unwrap())
            .collect();
        assert_eq!(at, ["emit 1 data.receipt_url"], "{d}");
        assert!(d["text"].as_str().unwrap().contains("receipt_url"), "{d}");
    }
    // Nothing of the shadow is produced, and it wrote no state: one
    // receipt per payment, in the live format, numbered 1..120.
    assert_eq!(receipts.len(), 120, "the shadow's emits were produced");
    assert!(
        receipts.iter().all(
            |r| r["data"]["receipt_url"].as_str().unwrap().ends_with(".pdf")
                && r["data"]["receipt_url"].as_str().unwrap().contains("RCP-")
        ),
        "a receipt in the shadow's format"
    );
    assert_eq!(numbers(&receipts), (1..=120).collect::<Vec<_>>());
    let metrics = run.router.get("/metrics");
    assert!(
        metrics.contains("switchyard_shadow_calls_total{plugin=\"receipt\",result=\"differing\""),
        "{metrics}"
    );

    // The status page shows the comparison, with the field that differs.
    let page = format!("{}/", run.router.admin_url());
    let dom = switchyard_testkit::chromium(&page, &["--dump-dom"]);
    assert!(
        dom.contains("id=\"shadow-receipt\""),
        "no shadow row on the page"
    );
    assert!(
        dom.contains("emit 1 data.receipt_url"),
        "no diff on the page"
    );
    if std::env::var_os("SWITCHYARD_SCREENSHOT").is_some() {
        let shot = root().join("docs/shadow.png");
        let _ = std::fs::remove_file(&shot);
        switchyard_testkit::chromium(
            &page,
            &[
                &format!("--screenshot={}", shot.display()),
                "--window-size=1400,1700",
            ],
        );
        assert!(shot.exists(), "no screenshot at {}", shot.display());
    }

    // The Python port of the receipt plugin: the same behaviour, built
    // differently, differs on none of hundreds of events.
    run.attach(&root().join("plugins/target/wasm32-wasip2/release/receipt-py.wasm"));
    run.feed(300, true);
    let r = run.report();
    assert_eq!(
        (r["compared"].as_u64(), r["differing"].as_u64()),
        (Some(300), Some(0)),
        "{r}"
    );

    // A shadow that traps on every event: the live path routes everything,
    // and every trap counts as a difference.
    run.attach(&guest("trap"));
    let receipts = run.feed(50, true);
    assert_eq!(receipts.len(), 470);
    let r = run.report();
    assert_eq!(r["differing"], 50, "{r}");
    assert_eq!(r["shadow_errors"], 50, "{r}");

    // Promotion: the candidate passes its fixtures and goes live; the next
    // receipts carry its format and the numbering goes on without a gap.
    run.attach(&lower);
    let (status, body) = run.api("POST", "/plugins/receipt/shadow/promote", b"");
    assert_eq!(status, 200, "promotion: {body}");
    assert!(body["shadow"].is_null(), "the shadow is dropped: {body}");
    let (status, _) = run.api("GET", "/plugins/receipt/shadow", b"");
    assert_eq!(status, 404);
    let receipts = run.feed(30, false);
    assert_eq!(
        numbers(&receipts),
        (1..=500).collect::<Vec<_>>(),
        "a gap or a repeat"
    );
    let newest: Vec<&Value> = receipts
        .iter()
        .filter(|r| {
            r["data"]["receipt_number"].as_str().unwrap()[9..]
                .parse::<u64>()
                .unwrap()
                > 470
        })
        .collect();
    assert_eq!(newest.len(), 30);
    assert!(
        newest
            .iter()
            .all(|r| r["data"]["receipt_url"].as_str().unwrap().contains("/rcp-")),
        "the promoted version's format: {newest:?}"
    );
    run.router.stop();
}
