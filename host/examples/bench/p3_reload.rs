//! P3: hot reload, file renamed into place → new version live, with the
//! compile cache warm and cold.

use crate::runs::percentile;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard::Metrics;
use switchyard::Reloader;
use switchyard::RouterConfig;
use switchyard_testkit::root;
use switchyard_testkit::wasm_variant;

/// p50 and p99 milliseconds with each cache.
pub struct P3 {
    /// A version compiled before.
    pub warm: (f64, f64),
    /// New bytes: a compile.
    pub cold: (f64, f64),
}

/// Measures, and says so on stderr.
pub fn run() -> P3 {
    let dir = tempfile::tempdir().unwrap();
    let wasm =
        std::fs::read(root().join("plugins/target/wasm32-wasip2/release/payment.wasm")).unwrap();
    let file = dir.path().join("payment.wasm");
    std::fs::write(&file, &wasm).unwrap();
    let config_path = dir.path().join("router.toml");
    std::fs::write(
        &config_path,
        r#"
[[plugin]]
name = "payment"
wasm = "payment.wasm"
subscribe.types = ["booking.booking.created"]
emits = ["payment.*"]
[plugin.config]
vocabulary = "booking"
"#,
    )
    .unwrap();
    let config = RouterConfig::load(&config_path).unwrap();
    let (engine, registry) = switchyard_testkit::load_plugins(&config, &dir.path().join("cache"));
    let reloader = Arc::new(Reloader::new(
        engine,
        registry.clone(),
        config,
        Arc::new(Metrics::new("bench")),
    ));
    let _watcher = reloader.watch(false).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let plugin = registry.get("payment").unwrap().clone();
    let swap = |bytes: &[u8]| -> f64 {
        let before = plugin.current().hash.clone();
        let tmp = dir.path().join("payment.wasm.tmp");
        std::fs::write(&tmp, bytes).unwrap();
        let started = Instant::now();
        std::fs::rename(&tmp, &file).unwrap();
        while plugin.current().hash == before {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "reload never happened"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        started.elapsed().as_secs_f64() * 1e3
    };
    let mut cold: Vec<f64> = (1..=12).map(|i| swap(&wasm_variant(&wasm, i))).collect();
    // Every variant is now in the compile cache: swapping back is warm.
    let mut warm: Vec<f64> = (0..40)
        .map(|i| swap(&wasm_variant(&wasm, 1 + i % 12)))
        .collect();
    let r = P3 {
        warm: (percentile(&mut warm, 0.5), percentile(&mut warm, 0.99)),
        cold: (percentile(&mut cold, 0.5), percentile(&mut cold, 0.99)),
    };
    eprintln!("P3: warm {:?} cold {:?}", r.warm, r.cold);
    r
}
