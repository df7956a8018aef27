//! P5: peak RSS of `switchyard run` with 4 plugins and 12 partitions.

use crate::load::{INPUT, output_count, produce_inputs, start_broker, switchyard_run};
use std::time::Duration;
use switchyard_testkit::{eventually, root};

/// The peak RSS in MB, said on stderr too.
pub async fn run() -> f64 {
    let broker = start_broker(
        false,
        12,
        &[
            INPUT,
            "payment.payment.succeeded",
            "receipt.receipt.generated",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let plugins = root().join("plugins/target/wasm32-wasip2/release");
    let config = dir.path().join("router.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[plugin]]
name = "payment"
wasm = "{p}/payment.wasm"
subscribe.types = ["booking.booking.created"]
emits = ["payment.*"]
key_field = "payment_id"
[plugin.config]
vocabulary = "booking"

[[plugin]]
name = "receipt"
wasm = "{p}/receipt.wasm"
subscribe.types = ["payment.payment.succeeded"]
emits = ["receipt.receipt.generated"]
[plugin.config]
receipt_base_url = "https://receipts.example/"

[[plugin]]
name = "waitlist"
wasm = "{p}/waitlist.wasm"
subscribe.types = ["booking.cancelled"]
emits = ["waitlist.*"]

[[plugin]]
name = "certificate"
wasm = "{p}/certificate.wasm"
subscribe.types = ["inspection.completed"]
emits = ["certificate.*"]
"#,
            p = plugins.display()
        ),
    )
    .unwrap();
    let n = 12000;
    produce_inputs(&broker.bootstrap(), n).await;
    let router = switchyard_run(
        &config,
        &broker,
        &dir.path().join("state"),
        &dir.path().join("cache"),
    );
    eventually("the P5 load", Duration::from_secs(300), || {
        router.or_log(output_count(&broker.bootstrap(), "receipt.receipt.generated") >= n)
    });
    let status = std::fs::read_to_string(format!("/proc/{}/status", router.pid())).unwrap();
    router.stop();
    let mb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0);
    eprintln!("P5: {mb:.0} MB");
    mb
}
