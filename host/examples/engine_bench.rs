//! Engine benchmark: side-by-side ratios in one run, on this machine.
//!
//! ```sh
//! scripts/build-plugins.sh && cargo run --release --example engine_bench
//! ```
//!
//! It measures, for the reference `payment` plugin on a catalog-000 booking:
//! 1. a cold compile against a load from the compile cache (a restart);
//! 2. a call (fresh sandboxed instance + handle) with the pooling allocator
//!    against on-demand allocation;
//! 3. the same calls on one thread against two threads.
//!
//! Absolute times vary on a shared machine; the ratios are the result.

use serde_json::{Map, json};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard::engine::{CallInput, Engine, EngineOptions, Limits};
use switchyard::envelope;
use switchyard::event::{Event, Record};
use switchyard::state::{MemoryStore, StateRead};

fn event() -> Event {
    let value = json!({
        "event_id": "6f1c2b0e-1d7a-4c39-9a57-3f0f9d1e2a11", "event_type": "booking.booking.created",
        "timestamp": "2025-11-24T10:30:00Z", "correlation_id": "c",
        "data": {"booking_id": "b-1", "user_id": "u-1", "price_amount": 99.99, "price_currency": "USD", "metadata": {}}
    });
    envelope::decode(&Record {
        topic: "booking.booking.created".into(),
        value: Some(value.to_string().into_bytes()),
        ..Record::default()
    })
    .unwrap()
}

fn calls_per_second(engine: &Engine, wasm: &[u8], threads: usize, per_thread: usize) -> f64 {
    let version = Arc::new(engine.load("payment", wasm).unwrap());
    let store: Arc<dyn StateRead> = Arc::new(MemoryStore::new());
    let mut config = Map::new();
    config.insert("vocabulary".into(), json!("booking"));
    let config = Arc::new(config);
    let event = event();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                for _ in 0..per_thread {
                    let input = CallInput {
                        state: &store,
                        config: &config,
                        limits: Limits::default(),
                    };
                    let out = engine.call(&version, &event, input).unwrap();
                    assert!(out.result.is_ok());
                }
            });
        }
    });
    (threads * per_thread) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let wasm = std::fs::read(root.join("plugins/target/wasm32-wasip2/release/payment.wasm"))
        .expect("build the plugins first: scripts/build-plugins.sh");
    let cache = tempfile::tempdir().unwrap();
    let options = |pool_size| EngineOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        pool_size,
        ..EngineOptions::default()
    };

    let cold = {
        let engine = Engine::new(options(64)).unwrap();
        let t = Instant::now();
        engine.load("payment", &wasm).unwrap();
        t.elapsed()
    };
    let warm = {
        let engine = Engine::new(options(64)).unwrap();
        let t = Instant::now();
        engine.load("payment", &wasm).unwrap();
        assert_eq!(engine.compiles(), 0);
        t.elapsed()
    };
    let pooled = Engine::new(options(64)).unwrap();
    let on_demand = Engine::new(options(0)).unwrap();
    const N: usize = 2000;
    // Warm up both, then measure side by side, alternating, best of three.
    calls_per_second(&pooled, &wasm, 1, 200);
    calls_per_second(&on_demand, &wasm, 1, 200);
    let best = |f: &dyn Fn() -> f64| (0..3).map(|_| f()).fold(0.0, f64::max);
    let pooled_1 = best(&|| calls_per_second(&pooled, &wasm, 1, N));
    let demand_1 = best(&|| calls_per_second(&on_demand, &wasm, 1, N));
    let pooled_2 = best(&|| calls_per_second(&pooled, &wasm, 2, N / 2));

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("compile cold:            {:9.1} ms", ms(cold));
    println!(
        "load from cache:         {:9.1} ms   cold/cached = {:.0}x",
        ms(warm),
        cold.as_secs_f64() / warm.as_secs_f64()
    );
    println!("calls/s, pooling, 1 thr: {pooled_1:9.0}");
    println!(
        "calls/s, on-demand, 1:   {demand_1:9.0}   pooling/on-demand = {:.2}x",
        pooled_1 / demand_1
    );
    println!(
        "calls/s, pooling, 2 thr: {pooled_2:9.0}   2 threads/1 = {:.2}x",
        pooled_2 / pooled_1
    );
    println!("per call (pooling, 1):   {:9.1} us", 1e6 / pooled_1);
}
