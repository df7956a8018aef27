//! P2: per-event plugin cost on a reused and a fresh instance, against the
//! same handler compiled natively.

use crate::load::{INPUT, booking};
use crate::runs::native_us;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;
use switchyard::Record;
use switchyard::{CallInput, Engine, EngineOptions, Limits};
use switchyard::{MemoryStore, StateRead};
use switchyard_testkit::root;

/// Microseconds per event on each path.
pub struct P2 {
    /// The plugin on a reused instance.
    pub reused_us: f64,
    /// The plugin on a fresh instance per event.
    pub fresh_us: f64,
    /// The same handler compiled natively.
    pub native_us: f64,
}

/// Measures, and says so on stderr.
pub fn run() -> P2 {
    let wasm = std::fs::read(root().join("plugins/target/wasm32-wasip2/release/payment.wasm"))
        .expect("build the plugins first: scripts/build-plugins.sh");
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
    let best = |f: &mut dyn FnMut() -> f64| (0..3).map(|_| f()).fold(f64::MAX, f64::min);
    // Warm up, then best of three each, alternating.
    per_call(&mut reused);
    per_call(&mut fresh);
    let reused_us = best(&mut || per_call(&mut reused));
    let fresh_us = best(&mut || per_call(&mut fresh));
    let native_us = native_us::<payment::Payment>(&events, &native_config);
    eprintln!("P2: reused {reused_us:.1} us fresh {fresh_us:.1} us native {native_us:.1} us");
    P2 {
        reused_us,
        fresh_us,
        native_us,
    }
}
