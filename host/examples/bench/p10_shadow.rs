//! P10: the live path's throughput with a shadow version attached, against
//! none, in P1's setup on Apache Kafka (3 partitions, at-least-once, the
//! payment plugin, 40,000 bookings): the shadow is the payment plugin
//! itself under another hash (a custom section added), so it runs the same
//! code and every comparison is equal. Two brokers, the same records; the
//! two runs alternate, twice, and the best of each is kept.

use crate::load::{INPUT, kafka_available, produce_inputs, start_broker};
use crate::runs::router_run_with;
use switchyard_testkit::{root, wasm_variant};

/// Records/s without and with the shadow; `None` without Apache Kafka.
pub fn run(runtime: &tokio::runtime::Runtime) -> Option<(f64, f64)> {
    if !kafka_available() {
        eprintln!("P10: no Apache Kafka (scripts/setup.sh --test fetches it); skipped");
        return None;
    }
    let n = 40_000;
    let dir = tempfile::tempdir().unwrap();
    let wasm = std::fs::read(root().join("plugins/target/wasm32-wasip2/release/payment.wasm"))
        .expect("build the plugins first: scripts/build-plugins.sh");
    let shadow = dir.path().join("payment-shadow.wasm");
    std::fs::write(&shadow, wasm_variant(&wasm, 1)).unwrap();
    let (mut plain, mut shadowed) = (0f64, 0f64);
    for round in 0..2 {
        for with_shadow in [false, true] {
            let rate = runtime.block_on(async {
                let topics = [INPUT, "payment.payment.succeeded"];
                let broker = tokio::task::block_in_place(|| start_broker(true, 3, &topics));
                produce_inputs(&broker.bootstrap(), n).await;
                let run_dir = dir.path().join(format!("run-{round}-{with_shadow}"));
                std::fs::create_dir_all(&run_dir).unwrap();
                let shadows = if with_shadow {
                    vec![("payment".to_string(), shadow.clone())]
                } else {
                    Vec::new()
                };
                let r = router_run_with(
                    &broker.bootstrap(),
                    n as u64,
                    &run_dir,
                    true,
                    false,
                    shadows,
                )
                .await;
                n as f64 / r.steady.as_secs_f64()
            });
            eprintln!("P10 round {round} shadow {with_shadow}: {rate:.0} rec/s");
            if with_shadow {
                shadowed = shadowed.max(rate);
            } else {
                plain = plain.max(rate);
            }
        }
    }
    Some((plain, shadowed))
}
