//! P8: the receipt plugin in Rust, Python and JavaScript: compile, cache
//! load and per-event cost, against the Rust handler compiled natively.
//!
//! Per event, each language's reused and fresh instances run in turns with
//! the native handler, a pass of 300 events each, for [`ROUNDS`] rounds; a
//! ratio is the median of the rounds' own ratios (as in P2). Measured one
//! after the other, the JavaScript call read 107 to 213 us from run to run.

use crate::runs::{InTurns, median, native_round};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;
use switchyard::Record;
use switchyard::{CallInput, Engine, EngineOptions, Limits};
use switchyard::{MemoryStore, StateRead};
use switchyard_testkit::root;
use switchyard_testkit::wasm_variant;

/// How many rounds of reused, fresh and native passes each language runs.
const ROUNDS: usize = 7;

/// One language's row of P8.
pub struct P8 {
    /// Rust, Python or JavaScript.
    pub lang: &'static str,
    /// The component's size.
    pub size_mb: f64,
    /// Compile with a cold cache.
    pub cold_s: f64,
    /// Compile of a rebuilt component, the function cache warm.
    pub rebuilt_s: f64,
    /// Load from the compile cache.
    pub cached_ms: f64,
    /// Per event on a reused instance.
    pub reused_us: f64,
    /// Per event on a fresh instance.
    pub fresh_us: f64,
    /// Reused against native, the median of the rounds' ratios.
    pub reused_ratio: f64,
    /// Fresh against native, the median of the rounds' ratios.
    pub fresh_ratio: f64,
}

/// `payment.payment.succeeded` number `i`, in catalog 000's envelope.
fn payment_succeeded(i: usize) -> switchyard::Event {
    let value = json!({
        "event_id": format!("e8-{i}"),
        "event_type": "payment.payment.succeeded",
        "timestamp": "2025-11-24T10:35:00Z",
        "data": {
            "payment_id": format!("pay-{i}"), "booking_id": format!("bk-{i}"),
            "user_id": "u1", "amount": 99.99, "currency": "USD",
            "succeeded_at": "2025-11-24T10:35:00Z"
        }
    });
    switchyard::decode(&Record {
        topic: "payment.payment.succeeded".into(),
        value: Some(value.to_string().into_bytes()),
        ..Record::default()
    })
    .unwrap()
}

/// Measures each language whose plugin is built, and says so on stderr;
/// returns the rows and the native handler's us/event (the median of its
/// passes).
pub fn run() -> (Vec<P8>, f64) {
    let config: serde_json::Map<String, Value> =
        serde_json::from_value(json!({"receipt_base_url": "https://r/"})).unwrap();
    let config = Arc::new(config);
    let state: Arc<dyn StateRead> = Arc::new(MemoryStore::new());
    let input = || CallInput {
        state: &state,
        config: &config,
        limits: Limits::default(),
    };
    let events: Vec<_> = (0..300).map(payment_succeeded).collect();
    let per_call = |f: &mut dyn FnMut(&switchyard::Event)| {
        let started = Instant::now();
        for e in &events {
            f(e);
        }
        started.elapsed().as_secs_f64() * 1e6 / events.len() as f64
    };
    let native_config = json!({"receipt_base_url": "https://r/"});
    let mut native = native_round::<receipt::Receipt>(&events, &native_config);
    let mut native_samples = Vec::new();
    let mut rows = Vec::new();
    for (lang, file) in [
        ("Rust", "receipt.wasm"),
        ("Python", "receipt-py.wasm"),
        ("JavaScript", "receipt-js.wasm"),
    ] {
        let path = root()
            .join("plugins/target/wasm32-wasip2/release")
            .join(file);
        let Ok(wasm) = std::fs::read(&path) else {
            eprintln!(
                "P8: {} missing; scripts/build-plugins.sh --test builds it",
                path.display()
            );
            continue;
        };
        let cache = tempfile::tempdir().unwrap();
        let engine = || {
            Engine::new(EngineOptions {
                cache_dir: Some(cache.path().to_path_buf()),
                ..EngineOptions::default()
            })
            .unwrap()
        };
        let timed = |engine: &Engine, wasm: &[u8]| {
            let started = Instant::now();
            let version = engine.load("receipt", wasm).unwrap();
            (started.elapsed().as_secs_f64(), version)
        };
        let (cold_s, _) = timed(&engine(), &wasm);
        // A rebuilt component: the same code, another hash, so the component
        // cache misses and the function cache hits.
        let (rebuilt_s, _) = timed(&engine(), &wasm_variant(&wasm, 1));
        let engine = engine();
        let (cached_s, version) = timed(&engine, &wasm);
        let mut instance = engine.instantiate(&version).unwrap();
        let mut reused = |e: &switchyard::Event| {
            assert!(instance.call(e, input()).unwrap().result.is_ok());
        };
        let mut fresh = |e: &switchyard::Event| {
            assert!(engine.call(&version, e, input()).unwrap().result.is_ok());
        };
        let costs = InTurns::measure(
            ROUNDS,
            &mut || per_call(&mut reused),
            &mut || per_call(&mut fresh),
            &mut native,
        );
        let (reused_ratio, least, most) = costs.reused_ratio;
        let (reused_us, fresh_us) = (costs.reused_us, costs.fresh_us);
        eprintln!(
            "P8 {lang}: cold {cold_s:.1} s rebuilt {rebuilt_s:.1} s cached {:.0} ms reused {reused_us:.0} us fresh {fresh_us:.0} us; reused/native {reused_ratio:.0}x ({least:.0}-{most:.0}x)",
            cached_s * 1e3
        );
        rows.push(P8 {
            lang,
            size_mb: wasm.len() as f64 / 1e6,
            cold_s,
            rebuilt_s,
            cached_ms: cached_s * 1e3,
            reused_us,
            fresh_us,
            reused_ratio,
            fresh_ratio: costs.fresh_ratio,
        });
        native_samples.extend_from_slice(&costs.native);
    }
    let native = median(&native_samples);
    (rows, native)
}

/// `events` events through `file`'s reused instance (compiled or loaded from
/// the default compile cache first), with the per-event time on stderr: the
/// loop to run under `perf record` (`SWITCHYARD_PERF_MAP=1` names the
/// plugin's functions).
pub fn reused_loop(file: &str, events: usize) {
    let config: serde_json::Map<String, Value> =
        serde_json::from_value(json!({"receipt_base_url": "https://r/"})).unwrap();
    let config = Arc::new(config);
    let state: Arc<dyn StateRead> = Arc::new(MemoryStore::new());
    let wasm = std::fs::read(
        root()
            .join("plugins/target/wasm32-wasip2/release")
            .join(file),
    )
    .unwrap();
    let engine = Engine::new(EngineOptions::default()).unwrap();
    let version = engine.load("receipt", &wasm).unwrap();
    let mut instance = engine.instantiate(&version).unwrap();
    let inputs: Vec<_> = (0..events).map(payment_succeeded).collect();
    let started = Instant::now();
    for e in &inputs {
        let input = CallInput {
            state: &state,
            config: &config,
            limits: Limits::default(),
        };
        assert!(instance.call(e, input).unwrap().result.is_ok());
    }
    eprintln!(
        "{file}: {:.1} us/event over {events} events (reused instance)",
        started.elapsed().as_secs_f64() * 1e6 / events as f64
    );
}
