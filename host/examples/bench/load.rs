//! What the measures feed the router and read back: the catalog-000
//! bookings, the payment plugin's config, a broker with the input topics,
//! and the count of records on an output topic.

use rdkafka::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use switchyard::RouterConfig;
use switchyard_testkit::{Broker, Router, root};

/// The input topic and event type.
pub const INPUT: &str = "booking.booking.created";

/// Booking `i`: a catalog-000 `booking.booking.created` of about 1 KB.
/// Its event id is a random version 4 UUID, as producers make them (fixed
/// by `i`, so every run sends the same): the state store's processed marks
/// are keyed by it, and ascending ids, as the benchmark sent before
/// 2026-12-01 20:40 UTC, made the store's commit about three times cheaper
/// per record than users' ids do (`bench commit-loop`, BENCHMARKS.md item
/// 16).
pub fn booking(i: usize) -> Value {
    json!({
        "event_id": uuid_v4(i as u64),
        "event_type": INPUT, "event_version": "1.0",
        "timestamp": "2025-11-24T10:30:00Z",
        "correlation_id": format!("0b8e2f55-8a63-4f0e-b0a2-{i:012}"),
        "data": {
            "booking_id": format!("b7f3c1d2-0000-4000-8000-{i:012}"),
            "user_id": format!("u1a2b3c4-0000-4000-8000-{i:012}"),
            "resource_id": "r-0001", "start_time": "2025-12-01T10:00:00Z",
            "end_time": "2025-12-01T11:00:00Z", "price_amount": 99.99, "price_currency": "USD",
            "metadata": {"notes": "x".repeat(420), "channel": "web", "locale": "en-US"}
        },
        "metadata": {"source": "booking-service", "trace_id": format!("{i:032x}")}
    })
}

/// A version 4 UUID whose random bits are a hash of `seed`.
pub fn uuid_v4(seed: u64) -> String {
    // splitmix64: distinct seeds give well-spread, distinct outputs.
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let (a, b) = (
        mix(seed.wrapping_add(0x9e37_79b9_7f4a_7c15)),
        mix(seed ^ 0xd1b5_4a32_d192_ed03),
    );
    let (a, b) = (
        (a & !0xf000) | 0x4000,
        (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000,
    );
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// Client settings for `bootstrap`.
pub fn client(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

/// Produces `n` bookings to [`INPUT`] and waits for their acks; returns
/// the mean value size in bytes.
pub async fn produce_inputs(bootstrap: &str, n: usize) -> usize {
    let producer: FutureProducer = client(bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let mut bytes = 0;
    let mut pending = Vec::with_capacity(n);
    for i in 0..n {
        let value = booking(i).to_string();
        bytes += value.len();
        let key = format!("k{i}");
        loop {
            match producer.send_result(FutureRecord::to(INPUT).key(&key).payload(&value)) {
                Ok(d) => {
                    pending.push(d);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
    for d in pending {
        d.await.expect("delivered").expect("acked");
    }
    bytes / n
}

/// Produces booking `100_000 + i` to [`INPUT`].
pub async fn produce_one(bootstrap: &str, i: usize) {
    let producer: FutureProducer = client(bootstrap).create().unwrap();
    send_input(&producer, &booking(100_000 + i).to_string()).await;
}

/// Sends `value` to [`INPUT`] (key `k`) and waits for its ack.
pub async fn send_input(producer: &FutureProducer, value: &str) {
    producer
        .send(
            FutureRecord::to(INPUT).key("k").payload(value),
            Duration::from_secs(5),
        )
        .await
        .expect("produced");
}

/// Writes `dir/router.toml` running the payment plugin, with
/// `extra_kafka` in its `[kafka]` table, and loads it.
///
/// The router consumes every topic, so by default it would read its own
/// outputs back (and skip them, as nothing subscribes to them here), and
/// each output would count as a record handled. The baselines read the
/// input alone, so the router excludes its output topics here: every path
/// reads the same records, and "records/s" counts inputs
/// (BENCHMARKS.md, item 27). `BENCH_READ_OUTPUTS=1` leaves them in, as
/// before; `BENCH_KAFKA` may then set `exclude` itself.
pub fn payment_config(dir: &Path, extra_kafka: &str) -> RouterConfig {
    let wasm = root().join("plugins/target/wasm32-wasip2/release/payment.wasm");
    let path = dir.join("router.toml");
    let exclude = if std::env::var_os("BENCH_READ_OUTPUTS").is_some() {
        ""
    } else {
        r#"exclude = ["payment.payment.succeeded", "payment.payment.failed"]"#
    };
    std::fs::write(
        &path,
        format!(
            r#"
[kafka]
{exclude}
{extra_kafka}

[[plugin]]
name = "payment"
wasm = "{}"
subscribe.types = ["booking.booking.created"]
emits = ["payment.payment.succeeded", "payment.payment.failed"]
key_field = "payment_id"

[plugin.config]
vocabulary = "booking"
max_amount = 5000.0
"#,
            wasm.display()
        ),
    )
    .unwrap();
    RouterConfig::load(&path).expect("config")
}

/// A broker for one measurement with `topics` of `partitions` each: the
/// embedded mock cluster, or (`kafka`) Apache Kafka on free ports, as the
/// tests start them.
pub fn start_broker(kafka: bool, partitions: i32, topics: &[&str]) -> Broker {
    let broker = if kafka {
        Broker::kafka()
    } else {
        Broker::mock()
    };
    for t in topics {
        broker.create_topic(t, partitions);
    }
    broker
}

/// Whether Apache Kafka's jars are where `scripts/setup.sh --test` puts them.
pub fn kafka_available() -> bool {
    switchyard_testkit::apache::jars()
        .join(".complete")
        .exists()
}

/// How many records `topic` holds, by its watermarks.
pub fn output_count(bootstrap: &str, topic: &str) -> usize {
    let consumer: rdkafka::consumer::BaseConsumer = client(bootstrap).create().unwrap();
    let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(2)) else {
        return 0;
    };
    metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions())
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(2))
                .map(|(lo, hi)| (hi - lo) as usize)
                .unwrap_or(0)
        })
        .sum()
}

/// `switchyard run` on `config` against `broker` (which has the topics),
/// as the tests start it, logging only warnings and its startup lines.
pub fn switchyard_run(config: &Path, broker: &Broker, state: &Path, cache: &Path) -> Router {
    Router::start_with(
        config,
        broker,
        state,
        cache,
        &["--no-create-topics"],
        &[("RUST_LOG", "warn,switchyard::service=info")],
    )
}
