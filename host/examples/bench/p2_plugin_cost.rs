//! P2: per-event plugin cost on a reused and a fresh instance, against the
//! same handler compiled natively.
//!
//! The three paths run in turns, a pass of 2,000 events each, for
//! [`ROUNDS`] rounds; each ratio is the median of the rounds' own ratios, so
//! that a slow stretch of this shared machine, which lasts longer than a
//! round, slows both sides of a ratio alike (a best of three of each path,
//! measured one path after the other, read 2.4-4.5x in one build).

use crate::load::{INPUT, booking};
use crate::runs::{InTurns, median, native_round};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;
use switchyard::Record;
use switchyard::{CallInput, Engine, EngineOptions, Limits};
use switchyard::{MemoryStore, StateRead};
use switchyard_testkit::root;

/// How many rounds of the three paths P2 runs.
const ROUNDS: usize = 15;

/// Microseconds per event on each path, the rounds' medians, and the
/// medians of the rounds' ratios to native.
pub struct P2 {
    /// The plugin on a reused instance.
    pub reused_us: f64,
    /// The plugin on a fresh instance per event.
    pub fresh_us: f64,
    /// The same handler compiled natively.
    pub native_us: f64,
    /// Reused against native, the median of the rounds' ratios.
    pub reused_ratio: f64,
    /// Fresh against native, the median of the rounds' ratios.
    pub fresh_ratio: f64,
}

/// Measures, and says so on stderr.
pub fn run() -> P2 {
    // `BENCH_P2_WASM=FILE` measures another build of the plugin.
    let path = std::env::var_os("BENCH_P2_WASM").map_or_else(
        || root().join("plugins/target/wasm32-wasip2/release/payment.wasm"),
        std::path::PathBuf::from,
    );
    let wasm = std::fs::read(path).expect("build the plugins first: scripts/build-plugins.sh");
    let cache = tempfile::tempdir().unwrap();
    let engine = Engine::new(EngineOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        ..EngineOptions::default()
    })
    .unwrap();
    let version = engine.load("payment", &wasm).unwrap();
    let state: Arc<dyn StateRead> = Arc::new(MemoryStore::new());
    let config: serde_json::Map<String, Value> =
        serde_json::from_value(json!({"vocabulary": "booking", "max_amount": 5000.0})).unwrap();
    let config = Arc::new(config);
    let events: Vec<_> = (0..2000)
        .map(|i| {
            switchyard::decode(&Record {
                topic: INPUT.into(),
                value: Some(booking(i).to_string().into_bytes()),
                ..Record::default()
            })
            .unwrap()
        })
        .collect();
    let input = || CallInput {
        state: &state,
        config: &config,
        limits: Limits::default(),
    };
    let per_call = |f: &mut dyn FnMut(&switchyard::Event)| {
        let started = Instant::now();
        for e in &events {
            f(e);
        }
        started.elapsed().as_secs_f64() * 1e6 / events.len() as f64
    };
    let mut instance = engine.instantiate(&version).unwrap();
    if let Some(rounds) = std::env::var("BENCH_P2_LOOP")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        // `BENCH_P2_LOOP=N bench p2`: the reused instance only, N rounds of
        // the 2,000 events, to profile with `perf`.
        for _ in 0..rounds {
            for e in &events {
                assert!(instance.call(e, input()).unwrap().result.is_ok());
            }
        }
    }
    let mut reused = |e: &switchyard::Event| {
        assert!(instance.call(e, input()).unwrap().result.is_ok());
    };
    let mut fresh = |e: &switchyard::Event| {
        assert!(engine.call(&version, e, input()).unwrap().result.is_ok());
    };
    let native_config = json!({"vocabulary": "booking", "max_amount": 5000.0});
    let mut native = native_round::<payment::Payment>(&events, &native_config);
    let costs = InTurns::measure(
        ROUNDS,
        &mut || per_call(&mut reused),
        &mut || per_call(&mut fresh),
        &mut native,
    );
    let (reused_ratio, least, most) = costs.reused_ratio;
    let p2 = P2 {
        reused_us: costs.reused_us,
        fresh_us: costs.fresh_us,
        native_us: median(&costs.native),
        reused_ratio,
        fresh_ratio: costs.fresh_ratio,
    };
    eprintln!(
        "P2: reused {:.1} us fresh {:.1} us native {:.1} us; reused/native {:.2}x ({least:.2}-{most:.2}x), fresh/native {:.1}x",
        p2.reused_us, p2.fresh_us, p2.native_us, p2.reused_ratio, p2.fresh_ratio
    );
    p2
}
