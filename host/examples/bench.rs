//! The benchmark behind BENCHMARKS.md: every figure a ratio against a
//! baseline measured side by side in the same run. Run it with
//! `scripts/bench.sh`, which builds what it needs and rewrites BENCHMARKS.md.
//!
//! - P1: records/s through the real router (`service::run`, the code
//!   `switchyard run` runs) with the payment plugin, against a Rust rdkafka
//!   consume→produce passthrough with the same guarantees (idempotent,
//!   `acks=all`, offsets stored only after acks), and a raw consume as the
//!   ceiling; on the embedded broker with 1, 3 and 12 partitions, and on
//!   Apache Kafka (a single-node KRaft broker, as the tests start it) with
//!   3 and 12 partitions, at-least-once and exactly-once (against a
//!   transactional passthrough committing every 100 ms, as the router and
//!   Kafka Streams do).
//! - P2: per-event plugin cost on a reused and on a fresh instance, against
//!   the same handler compiled natively into this program.
//! - P3: hot reload: file written → new version live, compile cache warm
//!   and cold.
//! - P4: `switchyard run` start → ready and → first record routed, with a
//!   cold and a warm compile cache.
//! - P5: peak RSS of `switchyard run` with 4 plugins and 12 partitions.
//! - P6: records/s with 1, 2 and 3 router instances in one consumer group
//!   sharing a PostgreSQL state store, against 1 instance on redb; with the
//!   mean commit wait, re-runs after conflicts and aborted transactions.
//! - P7: latency of one hop at light load, against the passthrough.
//! - P8: the receipt plugin in Rust, Python and JavaScript: compile (cold,
//!   and a rebuilt component with the function cache warm), cache load,
//!   and per-event cost on a reused and a fresh instance, against the Rust
//!   handler compiled natively.
//!
//! `target/release/examples/bench p1,p2` runs some of them. For sweeps,
//! `BENCH_KAFKA='batch_records = 100'` adds `[kafka]` keys to the router's
//! config in P1 and P7, and `BENCH_MOCK_ONLY=1` skips Apache Kafka in P1.

use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use switchyard::config::RouterConfig;
use switchyard::engine::{CallInput, Engine, EngineOptions, Limits};
use switchyard::envelope;
use switchyard::event::Record;
use switchyard::kafka::broker::EmbeddedBroker;
use switchyard::metrics::Metrics;
use switchyard::partition::Stats;
use switchyard::registry::PluginRegistry;
use switchyard::reload::Reloader;
use switchyard::service::{self, RunOptions};
use switchyard::state::{MemoryStore, StateRead};

const INPUT: &str = "booking.booking.created";

use switchyard_testkit::{apache, postgres};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn booking(i: usize) -> Value {
    json!({
        "event_id": format!("6f1c2b0e-1d7a-4c39-9a57-{i:012}"),
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

fn client(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

async fn produce_inputs(bootstrap: &str, n: usize) -> usize {
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

fn payment_config(dir: &Path, extra_kafka: &str) -> RouterConfig {
    let wasm = root().join("plugins/target/wasm32-wasip2/release/payment.wasm");
    let path = dir.join("router.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[kafka]
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

/// Times of one run: start → last record acknowledged, and first record →
/// last acknowledged (the steady state, without the group join).
#[derive(Clone, Copy)]
struct Run {
    total: Duration,
    steady: Duration,
}

/// Runs the router until it has acknowledged `n` records, then shuts it
/// down (drain, commit, flush).
async fn router_run(
    bootstrap: &str,
    n: u64,
    dir: &Path,
    create_topics: bool,
    exactly_once: bool,
) -> Run {
    // BENCH_KAFKA adds `[kafka]` keys, for sweeping the batch settings.
    let mut extra = std::env::var("BENCH_KAFKA").unwrap_or_default();
    if exactly_once {
        extra.push_str("\nguarantee = \"exactly-once\"\n");
    }
    let config = payment_config(dir, &extra);
    let stats = Arc::new(Stats::default());
    let options = RunOptions {
        brokers: bootstrap.to_string(),
        group: "router".into(),
        instance_id: None,
        state_dir: dir.join("state"),
        state_url: None,
        cache_dir: Some(dir.join("cache")),
        summary_every: None,
        create_topics,
        admin: None,
        watch: false,
        rebuild: false,
        workers: None,
        stats: Some(stats.clone()),
    };
    let started = Instant::now();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let done = {
        let stats = stats.clone();
        async move {
            let mut first = None;
            while stats.acked.load(Ordering::Relaxed) < n {
                if first.is_none() && stats.records.load(Ordering::Relaxed) > 0 {
                    first = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let end = Instant::now();
            let _ = tx.send(Run {
                total: end - started,
                steady: end - first.unwrap_or(started),
            });
        }
    };
    service::run(config, options, done).await.expect("router");
    rx.await.expect("a finished run")
}

/// The passthroughs' consumer of the input: offsets stored by hand and
/// auto-committed, or (`transactional`) read_committed with nothing
/// committed but through the producer's transactions.
fn input_consumer(bootstrap: &str, group: &str, transactional: bool) -> StreamConsumer {
    let mut config = client(bootstrap);
    config
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10");
    if transactional {
        config
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed");
    } else {
        config
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false");
    }
    let consumer: StreamConsumer = config.create().expect("consumer");
    consumer.subscribe(&[INPUT]).unwrap();
    consumer
}

/// A Rust consume→produce passthrough with the router's guarantees.
async fn passthrough(bootstrap: &str, n: usize, group: &str, out: &str) -> Run {
    let started = Instant::now();
    let consumer = input_consumer(bootstrap, group, false);
    let producer: FutureProducer = client(bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("batch.num.messages", "10000")
        .create()
        .expect("producer");
    let consumer = Arc::new(consumer);
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let acker = {
        let consumer = consumer.clone();
        tokio::spawn(async move {
            let mut acked = 0;
            while let Some((partition, offset, delivery)) = rx.recv().await {
                let delivery: rdkafka::producer::DeliveryFuture = delivery;
                delivery.await.expect("delivered").expect("acked");
                consumer.store_offset(INPUT, partition, offset).unwrap();
                acked += 1;
                if acked == n {
                    break;
                }
            }
        })
    };
    let mut first = None;
    for _ in 0..n {
        let m = consumer.recv().await.expect("record");
        first.get_or_insert_with(Instant::now);
        let delivery = loop {
            let record = FutureRecord::to(out)
                .payload(m.payload().unwrap_or_default())
                .key(m.key().unwrap_or_default());
            match producer.send_result(record) {
                Ok(d) => break d,
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        };
        tx.send((m.partition(), m.offset(), delivery))
            .await
            .unwrap();
    }
    acker.await.unwrap();
    let end = Instant::now();
    consumer.commit_consumer_state(CommitMode::Sync).ok();
    Run {
        total: end - started,
        steady: end - first.unwrap_or(started),
    }
}

/// The passthrough with exactly-once: a transactional producer, the input
/// offsets sent with the consumer's group metadata, one transaction every
/// 100 ms (Kafka Streams' commit interval under exactly-once).
async fn passthrough_txn(bootstrap: &str, n: usize, group: &str, out: &str) -> Run {
    use rdkafka::producer::Producer;
    let started = Instant::now();
    let consumer = input_consumer(bootstrap, group, true);
    let producer: FutureProducer = client(bootstrap)
        .set("transactional.id", format!("{group}-txn"))
        .set("transaction.timeout.ms", "10000")
        .set("linger.ms", "2")
        .set("batch.num.messages", "10000")
        .create()
        .expect("producer");
    let timeout = Duration::from_secs(10);
    tokio::task::block_in_place(|| {
        producer.init_transactions(timeout).expect("init");
        producer.begin_transaction().expect("begin");
    });
    let commit = |offsets: &std::collections::HashMap<i32, i64>| {
        let mut list = rdkafka::TopicPartitionList::new();
        for (p, o) in offsets {
            list.add_partition_offset(INPUT, *p, rdkafka::Offset::Offset(*o))
                .unwrap();
        }
        let metadata = consumer.group_metadata().expect("group metadata");
        tokio::task::block_in_place(|| {
            producer
                .send_offsets_to_transaction(&list, &metadata, timeout)
                .expect("offsets");
            producer.commit_transaction(timeout).expect("commit");
            producer.begin_transaction().expect("begin");
        });
    };
    let mut offsets = std::collections::HashMap::new();
    let mut last = Instant::now();
    let mut first = None;
    for _ in 0..n {
        let m = consumer.recv().await.expect("record");
        first.get_or_insert_with(Instant::now);
        loop {
            let record = FutureRecord::to(out)
                .payload(m.payload().unwrap_or_default())
                .key(m.key().unwrap_or_default());
            match producer.send_result(record) {
                Ok(_) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
        offsets.insert(m.partition(), m.offset() + 1);
        if last.elapsed() >= Duration::from_millis(100) {
            commit(&offsets);
            offsets.clear();
            last = Instant::now();
        }
    }
    commit(&offsets);
    let end = Instant::now();
    Run {
        total: end - started,
        steady: end - first.unwrap_or(started),
    }
}

async fn raw_consume(bootstrap: &str, n: usize) -> Run {
    let started = Instant::now();
    let mut first = None;
    let consumer: StreamConsumer = client(bootstrap)
        .set("group.id", "raw")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("consumer");
    consumer.subscribe(&[INPUT]).unwrap();
    for _ in 0..n {
        consumer.recv().await.expect("record");
        first.get_or_insert_with(Instant::now);
    }
    Run {
        total: started.elapsed(),
        steady: first.map_or(started.elapsed(), |f| f.elapsed()),
    }
}

/// A broker for one measurement: the embedded mock cluster, or Apache
/// Kafka on free ports.
enum Broker {
    Mock(EmbeddedBroker),
    Kafka(apache::ApacheKafka),
}

impl Broker {
    async fn start(kafka: bool, partitions: i32, topics: &[&str]) -> Broker {
        if !kafka {
            let broker = EmbeddedBroker::start().unwrap();
            for t in topics {
                broker.create_topic(t, partitions).unwrap();
            }
            return Broker::Mock(broker);
        }
        let broker =
            tokio::task::block_in_place(|| apache::ApacheKafka::start(apache::Security::Plain));
        let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
            client(&broker.bootstrap()).create().unwrap();
        let new: Vec<_> = topics
            .iter()
            .map(|t| {
                rdkafka::admin::NewTopic::new(
                    t,
                    partitions,
                    rdkafka::admin::TopicReplication::Fixed(1),
                )
            })
            .collect();
        admin
            .create_topics(&new, &rdkafka::admin::AdminOptions::new())
            .await
            .expect("topics created");
        Broker::Kafka(broker)
    }

    fn bootstrap(&self) -> String {
        match self {
            Broker::Mock(b) => b.bootstrap(),
            Broker::Kafka(k) => k.bootstrap(),
        }
    }
}

/// Whether Apache Kafka's jars are where `scripts/setup.sh --test` puts them.
fn kafka_available() -> bool {
    apache::jars().join(".complete").exists()
}

struct P1 {
    partitions: i32,
    n: usize,
    size: usize,
    router: Run,
    passthrough: Run,
    raw: Run,
}

async fn p1(partitions: i32, kafka: bool, exactly_once: bool) -> P1 {
    // The mock cluster keeps about 5 MB per partition; stay under it.
    let n = if kafka {
        40_000
    } else {
        4500 * partitions.min(10) as usize
    };
    let topics = [INPUT, "payment.payment.succeeded", "passthrough.out"];
    let broker_a = Broker::start(kafka, partitions, &topics).await;
    let broker_b = Broker::start(kafka, partitions, &topics).await;
    let size = produce_inputs(&broker_a.bootstrap(), n).await;
    produce_inputs(&broker_b.bootstrap(), n).await;
    let raw = raw_consume(&broker_a.bootstrap(), n).await;
    let passthrough = if exactly_once {
        passthrough_txn(&broker_a.bootstrap(), n, "passthrough", "passthrough.out").await
    } else {
        passthrough(&broker_a.bootstrap(), n, "passthrough", "passthrough.out").await
    };
    let dir = tempfile::tempdir().unwrap();
    let router = router_run(
        &broker_b.bootstrap(),
        n as u64,
        dir.path(),
        kafka,
        exactly_once,
    )
    .await;
    P1 {
        partitions,
        n,
        size,
        router,
        passthrough,
        raw,
    }
}

struct P2 {
    reused_us: f64,
    fresh_us: f64,
    native_us: f64,
}

fn p2() -> P2 {
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
            envelope::decode(&Record {
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
    let per_call = |f: &mut dyn FnMut(&switchyard::event::Event)| {
        let started = Instant::now();
        for e in &events {
            f(e);
        }
        started.elapsed().as_secs_f64() * 1e6 / events.len() as f64
    };
    let mut instance = engine.instantiate(&version).unwrap();
    let mut reused = |e: &switchyard::event::Event| {
        assert!(instance.call(e, input()).unwrap().result.is_ok());
    };
    let mut fresh = |e: &switchyard::event::Event| {
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
    P2 {
        reused_us,
        fresh_us,
        native_us,
    }
}

/// Microseconds per event for handler `H` compiled natively into this
/// program, on fresh state per event; best of three.
fn native_us<H: switchyard_sdk::Handler>(
    events: &[switchyard::event::Event],
    config: &Value,
) -> f64 {
    let sdk_events: Vec<switchyard_sdk::Event> = events
        .iter()
        .map(|e| switchyard_sdk::Event {
            id: e.id.clone(),
            ty: e.ty.clone(),
            source: e.source.clone(),
            time: e.time.clone(),
            data: e.data.clone(),
            topic: e.topic.clone(),
            ..switchyard_sdk::Event::default()
        })
        .collect();
    let run = || {
        let started = Instant::now();
        for e in &sdk_events {
            let mut state = switchyard_sdk::testing::MemoryState::default();
            let out = switchyard_sdk::testing::run::<H>(&mut state, config.clone(), e).unwrap();
            // What the host does with emits besides the call: JSON text.
            std::hint::black_box(out.iter().map(|e| e.data.len()).sum::<usize>());
        }
        started.elapsed().as_secs_f64() * 1e6 / sdk_events.len() as f64
    };
    (0..3).map(|_| run()).fold(f64::MAX, f64::min)
}

/// One language's row of P8.
struct P8 {
    lang: &'static str,
    size_mb: f64,
    cold_s: f64,
    rebuilt_s: f64,
    cached_ms: f64,
    reused_us: f64,
    fresh_us: f64,
}

/// `payment.payment.succeeded` number `i`, in catalog 000's envelope.
fn payment_succeeded(i: usize) -> switchyard::event::Event {
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
    envelope::decode(&Record {
        topic: "payment.payment.succeeded".into(),
        value: Some(value.to_string().into_bytes()),
        ..Record::default()
    })
    .unwrap()
}

fn p8() -> (Vec<P8>, f64) {
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
    let per_call = |f: &mut dyn FnMut(&switchyard::event::Event)| {
        let started = Instant::now();
        for e in &events {
            f(e);
        }
        started.elapsed().as_secs_f64() * 1e6 / events.len() as f64
    };
    let best = |f: &mut dyn FnMut() -> f64| (0..3).map(|_| f()).fold(f64::MAX, f64::min);
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
        let (rebuilt_s, _) = timed(&engine(), &variant(&wasm, 1));
        let engine = engine();
        let (cached_s, version) = timed(&engine, &wasm);
        let mut instance = engine.instantiate(&version).unwrap();
        let mut reused = |e: &switchyard::event::Event| {
            assert!(instance.call(e, input()).unwrap().result.is_ok());
        };
        per_call(&mut reused);
        let reused_us = best(&mut || per_call(&mut reused));
        let mut fresh = |e: &switchyard::event::Event| {
            assert!(engine.call(&version, e, input()).unwrap().result.is_ok());
        };
        per_call(&mut fresh);
        let fresh_us = best(&mut || per_call(&mut fresh));
        eprintln!(
            "P8 {lang}: cold {cold_s:.1} s rebuilt {rebuilt_s:.1} s cached {:.0} ms reused {reused_us:.0} us fresh {fresh_us:.0} us",
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
        });
    }
    let native = native_us::<receipt::Receipt>(&events, &json!({"receipt_base_url": "https://r/"}));
    (rows, native)
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

struct P3 {
    warm: (f64, f64),
    cold: (f64, f64),
}

fn variant(wasm: &[u8], n: usize) -> Vec<u8> {
    let name = b"switchyard-bench";
    let payload = format!("variant {n}");
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(payload.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0);
    out.push(section.len() as u8);
    out.extend(section);
    out
}

fn p3() -> P3 {
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
    let engine = Arc::new(
        Engine::new(EngineOptions {
            cache_dir: Some(dir.path().join("cache")),
            ..EngineOptions::default()
        })
        .unwrap(),
    );
    let registry = Arc::new(PluginRegistry::load(&engine, &config, None).unwrap());
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
    let mut cold: Vec<f64> = (1..=12).map(|i| swap(&variant(&wasm, i))).collect();
    // Every variant is now in the compile cache: swapping back is warm.
    let mut warm: Vec<f64> = (0..40).map(|i| swap(&variant(&wasm, 1 + i % 12))).collect();
    P3 {
        warm: (percentile(&mut warm, 0.5), percentile(&mut warm, 0.99)),
        cold: (percentile(&mut cold, 0.5), percentile(&mut cold, 0.99)),
    }
}

fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, text))
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn spawn_router(
    config: &Path,
    bootstrap: &str,
    admin: &str,
    dir: &Path,
    cache: &Path,
) -> std::process::Child {
    std::process::Command::new(root().join("target/release/switchyard"))
        .args([
            "run",
            "--no-create-topics",
            "--group",
            "bench",
            "--brokers",
            bootstrap,
        ])
        .arg("--config")
        .arg(config)
        .args(["--admin", admin])
        .arg("--state-dir")
        .arg(dir)
        .env("SWITCHYARD_CACHE_DIR", cache)
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("target/release/switchyard (cargo build --release)")
}

fn output_count(bootstrap: &str, topic: &str) -> usize {
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

struct P4 {
    cold_ready: f64,
    warm_ready: f64,
    cold_first: f64,
    warm_first: f64,
}

async fn p4() -> P4 {
    let broker = EmbeddedBroker::start().unwrap();
    for t in [INPUT, "payment.payment.succeeded"] {
        broker.create_topic(t, 3).unwrap();
    }
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
        let admin = free_addr();
        let started = Instant::now();
        let mut child = spawn_router(
            &config,
            &broker.bootstrap(),
            &admin,
            &dir.path().join(format!("s{i}")),
            &cache,
        );
        let mut ready = None;
        let first;
        loop {
            if ready.is_none() && http_get(&admin, "/readyz").is_some_and(|(c, _)| c == 200) {
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
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        (ms(ready.unwrap_or(first)), ms(first))
    };
    let mut results = Vec::new();
    for i in 0..2 {
        // One new record per start: each start routes exactly one.
        produce_one(&broker.bootstrap(), i).await;
        results.push(start(i));
    }
    P4 {
        cold_ready: results[0].0,
        cold_first: results[0].1,
        warm_ready: results[1].0,
        warm_first: results[1].1,
    }
}

async fn produce_one(bootstrap: &str, i: usize) {
    let producer: FutureProducer = client(bootstrap).create().unwrap();
    let value = booking(100_000 + i).to_string();
    producer
        .send(
            FutureRecord::to(INPUT).key("k").payload(&value),
            Duration::from_secs(5),
        )
        .await
        .expect("produced");
}

async fn p5() -> f64 {
    let broker = EmbeddedBroker::start().unwrap();
    for t in [
        INPUT,
        "payment.payment.succeeded",
        "receipt.receipt.generated",
    ] {
        broker.create_topic(t, 12).unwrap();
    }
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
    let admin = free_addr();
    let mut child = spawn_router(
        &config,
        &broker.bootstrap(),
        &admin,
        &dir.path().join("state"),
        &dir.path().join("cache"),
    );
    let started = Instant::now();
    while output_count(&broker.bootstrap(), "receipt.receipt.generated") < n {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "P5 load did not finish"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// One hop at light load: produce one input, wait for its output.
async fn hop_latencies(bootstrap: &str, out: &str, samples: usize) -> Vec<f64> {
    let producer: FutureProducer = client(bootstrap).set("linger.ms", "0").create().unwrap();
    let consumer: StreamConsumer = client(bootstrap)
        .set("group.id", format!("watch-{out}"))
        .set("auto.offset.reset", "latest")
        .set("fetch.wait.max.ms", "5")
        .create()
        .unwrap();
    consumer.subscribe(&[out]).unwrap();
    // Let the watcher join before measuring.
    let _ = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await;
    let mut latencies = Vec::new();
    for i in 0..samples {
        let value = booking(500_000 + i).to_string();
        let started = Instant::now();
        producer
            .send(
                FutureRecord::to(INPUT).key("k").payload(&value),
                Duration::from_secs(5),
            )
            .await
            .expect("produced");
        tokio::time::timeout(Duration::from_secs(10), consumer.recv())
            .await
            .expect("an output within 10 s")
            .expect("output");
        latencies.push(started.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies
}

struct P7 {
    router: (f64, f64),
    passthrough: (f64, f64),
}

async fn p7() -> P7 {
    const SAMPLES: usize = 200;
    let pct = |mut v: Vec<f64>| (percentile(&mut v, 0.5), percentile(&mut v, 0.99));
    // The passthrough, running for as long as the samples take.
    let broker = EmbeddedBroker::start().unwrap();
    for t in [INPUT, "passthrough.out"] {
        broker.create_topic(t, 3).unwrap();
    }
    let bootstrap = broker.bootstrap();
    let runner = {
        let b = bootstrap.clone();
        tokio::spawn(async move {
            passthrough(&b, SAMPLES + 1000, "pt-latency", "passthrough.out").await;
        })
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    let passthrough = pct(hop_latencies(&bootstrap, "passthrough.out", SAMPLES).await);
    runner.abort();

    let broker = EmbeddedBroker::start().unwrap();
    for t in [INPUT, "payment.payment.succeeded"] {
        broker.create_topic(t, 3).unwrap();
    }
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let runner = {
        let b = bootstrap.clone();
        let d = dir.path().to_path_buf();
        tokio::spawn(async move {
            router_run(&b, u64::MAX, &d, false, false).await;
        })
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    let router = pct(hop_latencies(&bootstrap, "payment.payment.succeeded", SAMPLES).await);
    runner.abort();
    P7 {
        router,
        passthrough,
    }
}

fn version_of(text: &str, package: &str) -> String {
    let needle = format!("name = \"{package}\"\nversion = \"");
    text.find(&needle)
        .map(|i| {
            let rest = &text[i + needle.len()..];
            rest[..rest.find('"').unwrap_or(0)].to_string()
        })
        .unwrap_or_default()
}

fn main() {
    let only = std::env::args().nth(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let wants = |p: &str| only.as_deref().is_none_or(|o| o.split(',').any(|x| x == p));
    let mut out = String::new();
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    writeln!(
        out,
        "Run on {} ({} cores, {cpu}); rustc release build; wasmtime {}, rdkafka {} (librdkafka {}).\n",
        chrono_date(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        version_of(&lock, "wasmtime"),
        version_of(&lock, "rdkafka"),
        rdkafka::util::get_rdkafka_version().1,
    )
    .unwrap();
    if wants("p1") {
        writeln!(out, "## P1: end-to-end throughput\n").unwrap();
        writeln!(out, "Steady state: first record consumed → last output acknowledged and its offset stored. With join: from client start, group join included.\n").unwrap();
        writeln!(out, "| broker | guarantee | partitions | records | bytes/record | router rec/s | passthrough rec/s | raw consume rec/s | **router / passthrough** | router / raw | with join: router / passthrough |").unwrap();
        writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|").unwrap();
        // BENCH_MOCK_ONLY=1 skips Apache Kafka, for quick sweeps.
        let mut runs: Vec<(bool, bool, i32)> = [1, 3, 12].map(|p| (false, false, p)).to_vec();
        if kafka_available() && std::env::var_os("BENCH_MOCK_ONLY").is_none() {
            for p in [3, 12] {
                runs.push((true, false, p));
                runs.push((true, true, p));
            }
        }
        let mut router_rates = std::collections::HashMap::new();
        for (kafka, exactly_once, partitions) in runs {
            let r = runtime.block_on(p1(partitions, kafka, exactly_once));
            let name = if kafka {
                "Apache Kafka 4.1"
            } else {
                "embedded (mock)"
            };
            let guarantee = if exactly_once {
                "exactly-once"
            } else {
                "at-least-once"
            };
            let rate = |d: Duration| r.n as f64 / d.as_secs_f64();
            let (router, pass, raw) = (
                rate(r.router.steady),
                rate(r.passthrough.steady),
                rate(r.raw.steady),
            );
            router_rates.insert((kafka, exactly_once, partitions), router);
            eprintln!(
                "P1 {name} {guarantee} {partitions}: router {router:.0}/s passthrough {pass:.0}/s raw {raw:.0}/s"
            );
            writeln!(
                out,
                "| {name} | {guarantee} | {} | {} | {} | {router:.0} | {pass:.0} | {raw:.0} | **{:.2}x** | {:.2}x | {:.2}x ({:.2} s vs {:.2} s) |",
                r.partitions, r.n, r.size, router / pass, router / raw,
                r.passthrough.total.as_secs_f64() / r.router.total.as_secs_f64(),
                r.router.total.as_secs_f64(), r.passthrough.total.as_secs_f64(),
            )
            .unwrap();
        }
        writeln!(out).unwrap();
        for p in [3, 12] {
            if let (Some(eos), Some(alo)) = (
                router_rates.get(&(true, true, p)),
                router_rates.get(&(true, false, p)),
            ) {
                writeln!(
                    out,
                    "The cost of exactly-once on Apache Kafka at {p} partitions: the router with it runs at **{:.2}x** its at-least-once rate.\n",
                    eos / alo
                )
                .unwrap();
            }
        }
    }
    if wants("p2") {
        let r = p2();
        eprintln!(
            "P2: reused {:.1} us fresh {:.1} us native {:.1} us",
            r.reused_us, r.fresh_us, r.native_us
        );
        writeln!(
            out,
            "## P2: per-event plugin cost (payment plugin, catalog-000 booking)\n"
        )
        .unwrap();
        writeln!(out, "| path | us/event | vs native |").unwrap();
        writeln!(out, "|---|---|---|").unwrap();
        writeln!(
            out,
            "| native Rust (same handler, in this process) | {:.2} | 1.00x |",
            r.native_us
        )
        .unwrap();
        writeln!(
            out,
            "| wasm, reused instance | {:.2} | **{:.2}x** |",
            r.reused_us,
            r.reused_us / r.native_us
        )
        .unwrap();
        writeln!(
            out,
            "| wasm, fresh instance per event | {:.2} | {:.2}x |\n",
            r.fresh_us,
            r.fresh_us / r.native_us
        )
        .unwrap();
    }
    if wants("p3") {
        let r = p3();
        eprintln!("P3: warm {:?} cold {:?}", r.warm, r.cold);
        percentile_table(
            &mut out,
            "P3: hot reload, file renamed into place → new version live",
            "compile cache",
            &[
                ("warm (version compiled before)", r.warm),
                ("cold (new bytes: compile)", r.cold),
            ],
        );
    }
    if wants("p4") {
        let r = runtime.block_on(p4());
        eprintln!(
            "P4: cold ready {:.0} first {:.0}; warm ready {:.0} first {:.0}",
            r.cold_ready, r.cold_first, r.warm_ready, r.warm_first
        );
        writeln!(
            out,
            "## P4: `switchyard run` start (process spawn) → ready, → first record routed\n"
        )
        .unwrap();
        writeln!(
            out,
            "| compile cache | → /readyz 200 ms | → first output ms |"
        )
        .unwrap();
        writeln!(out, "|---|---|---|").unwrap();
        writeln!(out, "| cold | {:.0} | {:.0} |", r.cold_ready, r.cold_first).unwrap();
        writeln!(out, "| warm | {:.0} | {:.0} |", r.warm_ready, r.warm_first).unwrap();
        writeln!(
            out,
            "| **warm / cold (ready)** | **{:.2}x** | {:.2}x |\n",
            r.warm_ready / r.cold_ready,
            r.warm_first / r.cold_first
        )
        .unwrap();
    }
    if wants("p5") {
        let mb = runtime.block_on(p5());
        eprintln!("P5: {mb:.0} MB");
        writeln!(
            out,
            "## P5: peak RSS, 4 plugins, 12 partitions, 12,000 bookings through payment → receipt\n"
        )
        .unwrap();
        writeln!(
            out,
            "| measure | value |\n|---|---|\n| VmHWM of `switchyard run` | {mb:.0} MB |\n"
        )
        .unwrap();
    }
    if wants("p8") {
        let (rows, native) = p8();
        writeln!(
            out,
            "## P8: plugins in Rust, Python and JavaScript (the receipt plugin, the same fixtures)\n"
        )
        .unwrap();
        writeln!(out, "Compile: a cold compile cache; a rebuilt component (another hash, the same code) with the function cache warm; a cached component. Per event: a `payment.payment.succeeded` through the plugin on a reused (the router's default) and a fresh instance, against the Rust handler compiled natively into this program ({native:.2} us/event).\n").unwrap();
        writeln!(out, "| language | size MB | compile cold s | rebuilt s | cache load ms | reused us/event | vs native | fresh us/event | vs native |").unwrap();
        writeln!(out, "|---|---|---|---|---|---|---|---|---|").unwrap();
        for r in rows {
            writeln!(
                out,
                "| {} | {:.1} | {:.1} | {:.1} | {:.0} | {:.1} | {:.0}x | {:.0} | {:.0}x |",
                r.lang,
                r.size_mb,
                r.cold_s,
                r.rebuilt_s,
                r.cached_ms,
                r.reused_us,
                r.reused_us / native,
                r.fresh_us,
                r.fresh_us / native
            )
            .unwrap();
        }
        writeln!(out).unwrap();
    }
    if wants("p6") {
        let rows = p6(&runtime);
        writeln!(
            out,
            "## P6: scale-out on a shared PostgreSQL store\n\n\
             18,000 bookings through the payment plugin on 6 partitions of the embedded broker; \
             the instances run in one process, in one consumer group, on this machine's cores. \
             Steady state: first record consumed → last offset stored, summed over instances.\n\n\
             | setup | rec/s | **/ redb** | batch commits | mean commit wait ms | records re-run | aborted transactions |\n\
             |---|---|---|---|---|---|---|"
        )
        .unwrap();
        let base = rows[0].rate;
        for r in &rows {
            writeln!(
                out,
                "| {} | {:.0} | {:.2}× | {} | {:.1} | {} | {} |",
                r.label,
                r.rate,
                r.rate / base,
                r.commits,
                r.commit_ms,
                r.reruns,
                r.aborted
            )
            .unwrap();
        }
        writeln!(out).unwrap();
    }
    if wants("p7") {
        let r = runtime.block_on(p7());
        eprintln!("P7: router {:?} passthrough {:?}", r.router, r.passthrough);
        let gap = (r.router.0 - r.passthrough.0, r.router.1 - r.passthrough.1);
        percentile_table(
            &mut out,
            "P7: one hop at light load (produce input → output consumed), 200 samples",
            "path",
            &[
                ("passthrough", r.passthrough),
                ("router (payment)", r.router),
                ("**router − passthrough**", gap),
            ],
        );
    }
    print!("{out}");
}

/// One P6 configuration's result.
struct P6 {
    label: String,
    rate: f64,
    commits: u64,
    commit_ms: f64,
    reruns: u64,
    aborted: i64,
}

/// Runs `instances` routers in one group on `n` records (6 partitions),
/// on redb (`url` `None`) or the PostgreSQL database at `url`, until every
/// record is acknowledged.
async fn p6_run(n: usize, instances: usize, url: Option<String>) -> (f64, Vec<Arc<Stats>>) {
    let broker = Broker::start(false, 6, &[INPUT, "payment.payment.succeeded"]).await;
    produce_inputs(&broker.bootstrap(), n).await;
    let dir = tempfile::tempdir().unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stats: Vec<Arc<Stats>> = (0..instances).map(|_| Arc::default()).collect();
    let routers = stats.iter().enumerate().map(|(i, stats)| {
        let dir = dir.path().join(format!("i{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let config = payment_config(&dir, "");
        let options = RunOptions {
            brokers: broker.bootstrap(),
            group: "p6".into(),
            instance_id: None,
            state_dir: dir.join("state"),
            state_url: url.clone(),
            cache_dir: Some(root().join("target/bench-cache")),
            summary_every: None,
            create_topics: false,
            admin: None,
            watch: false,
            rebuild: false,
            workers: None,
            stats: Some(stats.clone()),
        };
        let mut stopped = stopped.clone();
        async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            service::run(config, options, shutdown)
                .await
                .expect("router");
        }
    });
    let watch = {
        let stats = stats.clone();
        async move {
            let sum = |f: fn(&Stats) -> u64| stats.iter().map(|s| f(s)).sum::<u64>();
            let mut first = None;
            while sum(|s| s.acked.load(Ordering::Relaxed)) < n as u64 {
                if first.is_none() && sum(|s| s.records.load(Ordering::Relaxed)) > 0 {
                    first = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let took = first.map_or(Duration::from_millis(1), |f| f.elapsed());
            let _ = stop.send(true);
            n as f64 / took.as_secs_f64()
        }
    };
    let (rate, _) = futures::join!(watch, futures::future::join_all(routers));
    (rate, stats)
}

fn p6(runtime: &tokio::runtime::Runtime) -> Vec<P6> {
    // The mock cluster keeps about 5 MB per partition; stay under it.
    let n = 6 * 3000;
    let mut rows = Vec::new();
    let summarise = |label: String, rate: f64, stats: &[Arc<Stats>], aborted: i64| {
        let commits: u64 = stats
            .iter()
            .map(|s| s.commits.load(Ordering::Relaxed))
            .sum();
        let micros: u64 = stats
            .iter()
            .map(|s| s.commit_micros.load(Ordering::Relaxed))
            .sum();
        P6 {
            label,
            rate,
            commits,
            commit_ms: micros as f64 / 1000.0 / commits.max(1) as f64,
            reruns: stats.iter().map(|s| s.reruns.load(Ordering::Relaxed)).sum(),
            aborted,
        }
    };
    let (rate, stats) = runtime.block_on(p6_run(n, 1, None));
    rows.push(summarise(
        "1 instance, redb (baseline)".into(),
        rate,
        &stats,
        0,
    ));
    let pg = postgres::Postgres::start();
    for instances in 1..=3 {
        let db = format!("p6_{instances}");
        pg.sql(&format!("CREATE DATABASE {db}"));
        let aborted = |pg: &postgres::Postgres| -> i64 {
            pg.sql(&format!(
                "SELECT xact_rollback FROM pg_stat_database WHERE datname = '{db}'"
            ))
            .parse()
            .unwrap_or(0)
        };
        let before = aborted(&pg);
        let (rate, stats) = runtime.block_on(p6_run(n, instances, Some(pg.url_of(&db))));
        let after = aborted(&pg);
        rows.push(summarise(
            format!("{instances} instance(s), PostgreSQL"),
            rate,
            &stats,
            after - before,
        ));
        eprintln!("P6 {instances}: {rate:.0}/s");
    }
    rows
}

/// A markdown table of p50 and p99 milliseconds, one row per measure.
fn percentile_table(out: &mut String, title: &str, what: &str, rows: &[(&str, (f64, f64))]) {
    writeln!(
        out,
        "## {title}\n\n| {what} | p50 ms | p99 ms |\n|---|---|---|"
    )
    .unwrap();
    for (name, (p50, p99)) in rows {
        writeln!(out, "| {name} | {p50:.1} | {p99:.1} |").unwrap();
    }
    writeln!(out).unwrap();
}

fn chrono_date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
