//! P4: `switchyard run` start → ready and → first record routed, with a
//! cold and a warm compile cache.

use crate::load::{INPUT, output_count, payment_config, produce_one, start_broker, switchyard_run};
use std::time::{Duration, Instant};
use switchyard_testkit::http::try_request;

/// Milliseconds from the process spawn, with each cache.
pub struct P4 {
    /// → `/readyz` 200, cold.
    pub cold_ready: f64,
    /// → `/readyz` 200, warm.
    pub warm_ready: f64,
    /// → first output, cold.
    pub cold_first: f64,
    /// → first output, warm.
    pub warm_first: f64,
}

/// Measures, and says so on stderr.
pub async fn run() -> P4 {
    let broker = start_broker(false, 3, &[INPUT, "payment.payment.succeeded"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("router.toml");
    // As `switchyard dev` does: the mock cluster holds a rebalance after a
    // member leaves for the session timeout (45 s by default).
    payment_config(
        dir.path(),
        r#"client = { "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }"#,
    );
    let cache = dir.path().join("cache");
    let start = |i: usize| -> (f64, f64) {
        let started = Instant::now();
        let router = switchyard_run(&config, &broker, &dir.path().join(format!("s{i}")), &cache);
        let mut ready = None;
        let first;
        loop {
            let readyz = router.admin_url_now().map(|url| format!("{url}/readyz"));
            if ready.is_none()
                && readyz
                    .is_some_and(|u| try_request("GET", &u, None, b"").is_ok_and(|r| r.0 == 200))
            {
                ready = Some(started.elapsed());
            }
            if output_count(&broker.bootstrap(), "payment.payment.succeeded") > i {
                first = started.elapsed();
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "router did not route"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        router.stop();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        (ms(ready.unwrap_or(first)), ms(first))
    };
    let mut results = Vec::new();
    for i in 0..2 {
        // One new record per start: each start routes exactly one.
        produce_one(&broker.bootstrap(), i).await;
        results.push(start(i));
    }
    let r = P4 {
        cold_ready: results[0].0,
        cold_first: results[0].1,
        warm_ready: results[1].0,
        warm_first: results[1].1,
    };
    eprintln!(
        "P4: cold ready {:.0} first {:.0}; warm ready {:.0} first {:.0}",
        r.cold_ready, r.cold_first, r.warm_ready, r.warm_first
    );
    r
}
