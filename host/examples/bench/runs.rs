//! What the measures time besides `switchyard run`: the router's own
//! service loop in this process, its Rust baselines (consume→produce
//! passthroughs, a raw consume, the handler compiled natively), and the
//! arithmetic on the samples.

use crate::load::{INPUT, client, payment_config};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use switchyard::RunOptions;
use switchyard::Stats;

/// Times of one run: start → last record acknowledged, and first record →
/// last acknowledged (the steady state, without the group join).
#[derive(Clone, Copy)]
pub struct Run {
    /// Start → last record acknowledged.
    pub total: Duration,
    /// First record → last acknowledged.
    pub steady: Duration,
    /// When the last record was acknowledged.
    pub ended: Instant,
}

impl Run {
    /// A run that started at `started`, took its first record at `first`
    /// (none: the steady state is the whole run) and had its last one
    /// acknowledged at `end`.
    pub fn new(started: Instant, first: Option<Instant>, end: Instant) -> Run {
        Run {
            total: end - started,
            steady: end - first.unwrap_or(started),
            ended: end,
        }
    }
}

/// Runs the router until it has acknowledged `n` records, then shuts it
/// down (drain, commit, flush).
pub async fn router_run(
    bootstrap: &str,
    n: u64,
    dir: &Path,
    create_topics: bool,
    exactly_once: bool,
) -> Run {
    router_run_with(bootstrap, n, dir, create_topics, exactly_once, Vec::new()).await
}

/// [`router_run`] with shadow versions attached: (plugin, wasm file).
pub async fn router_run_with(
    bootstrap: &str,
    n: u64,
    dir: &Path,
    create_topics: bool,
    exactly_once: bool,
    shadows: Vec<(String, std::path::PathBuf)>,
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
        workers: std::env::var("BENCH_WORKERS")
            .ok()
            .map(|w| w.parse().expect("BENCH_WORKERS=N")),
        stats: Some(stats.clone()),
        shadows,
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
            eprintln!(
                "router: {} records handled ({} skipped), {} outputs",
                stats.records.load(Ordering::Relaxed),
                stats.skipped.load(Ordering::Relaxed),
                stats.emitted.load(Ordering::Relaxed)
            );
            let _ = tx.send(Run::new(started, first, end));
        }
    };
    switchyard::run(config, options, done)
        .await
        .expect("router");
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
pub async fn passthrough(bootstrap: &str, n: usize, group: &str, out: &str) -> Run {
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
    Run::new(started, first, end)
}

/// The passthrough with exactly-once: a transactional producer, the input
/// offsets sent with the consumer's group metadata, one transaction every
/// 100 ms (Kafka Streams' commit interval under exactly-once).
pub async fn passthrough_txn(bootstrap: &str, n: usize, group: &str, out: &str) -> Run {
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
            // As the router does: wait for the acknowledgements here, since
            // rust-rdkafka's flush inside `commit_transaction` would poll on
            // for 100 ms.
            switchyard::delivered(&producer, timeout);
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
    Run::new(started, first, end)
}

/// Consumes `n` records of the input and nothing else: the ceiling.
pub async fn raw_consume(bootstrap: &str, n: usize) -> Run {
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
    let end = Instant::now();
    Run::new(started, first, end)
}

/// One pass of handler `H`, compiled natively into this program, over
/// `events` on fresh state per event, as a closure that returns
/// microseconds per event each time it runs.
pub fn native_round<H: switchyard_sdk::Handler>(
    events: &[switchyard::Event],
    config: &Value,
) -> impl FnMut() -> f64 {
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
    let config = config.clone();
    move || {
        let started = Instant::now();
        for e in &sdk_events {
            let mut state = switchyard_sdk::testing::MemoryState::default();
            let out = switchyard_sdk::testing::run::<H>(&mut state, config.clone(), e).unwrap();
            // What the host does with emits besides the call: JSON text.
            std::hint::black_box(out.iter().map(|e| e.data.len()).sum::<usize>());
        }
        started.elapsed().as_secs_f64() * 1e6 / sdk_events.len() as f64
    }
}

/// Runs `passes` in turns, each once a round, for `rounds` rounds; returns
/// each pass's samples (microseconds per event, as each pass returns them).
/// Side by side in turns, a slow stretch of this shared machine, which lasts
/// longer than a round, slows the passes of a round alike, so ratios are
/// taken round by round ([`median_ratio`]).
fn in_turns(rounds: usize, passes: &mut [&mut dyn FnMut() -> f64]) -> Vec<Vec<f64>> {
    let mut samples = vec![Vec::with_capacity(rounds); passes.len()];
    for _ in 0..rounds {
        for (pass, out) in passes.iter_mut().zip(&mut samples) {
            out.push(pass());
        }
    }
    samples
}

/// A plugin's per-event cost on a reused and a fresh instance against the
/// native handler, measured in turns ([`in_turns`]).
pub struct InTurns {
    /// Microseconds per event on a reused instance, the rounds' median.
    pub reused_us: f64,
    /// On a fresh instance per event, the rounds' median.
    pub fresh_us: f64,
    /// Reused against native: the median of the rounds' ratios, and their
    /// least and greatest.
    pub reused_ratio: (f64, f64, f64),
    /// Fresh against native, the median of the rounds' ratios.
    pub fresh_ratio: f64,
    /// The native handler's passes.
    pub native: Vec<f64>,
}

impl InTurns {
    /// Warms each pass up once, then runs them in turns for `rounds` rounds.
    pub fn measure(
        rounds: usize,
        reused: &mut dyn FnMut() -> f64,
        fresh: &mut dyn FnMut() -> f64,
        native: &mut dyn FnMut() -> f64,
    ) -> Self {
        reused();
        fresh();
        native();
        let mut samples = in_turns(rounds, &mut [reused, fresh, native]).into_iter();
        let (reused, fresh, native) = (
            samples.next().unwrap(),
            samples.next().unwrap(),
            samples.next().unwrap(),
        );
        InTurns {
            reused_us: median(&reused),
            fresh_us: median(&fresh),
            reused_ratio: median_ratio(&reused, &native),
            fresh_ratio: median_ratio(&fresh, &native).0,
            native,
        }
    }
}

/// The median of `samples`.
pub fn median(samples: &[f64]) -> f64 {
    percentile(&mut samples.to_vec(), 0.5)
}

/// The median of the rounds' ratios `of[i] / to[i]`, with their least and
/// greatest.
fn median_ratio(of: &[f64], to: &[f64]) -> (f64, f64, f64) {
    let ratios: Vec<f64> = of.iter().zip(to).map(|(a, b)| a / b).collect();
    let min = ratios.iter().copied().fold(f64::MAX, f64::min);
    let max = ratios.iter().copied().fold(0.0, f64::max);
    (median(&ratios), min, max)
}

/// The `p` quantile of `samples` (sorted in place).
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

/// The CPU time (user and system, every thread) that process `pid`, or
/// this process, has used so far; zero if it cannot be read.
pub fn cpu_time(pid: Option<u32>) -> Duration {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime, fields 14 and 15 of proc(5), in clock ticks of 10 ms.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// The CPU time of this process and of another one (the broker), read
/// every 10 ms (the kernel counts it in ticks of 10 ms) by a thread of its
/// own: a run's CPU over its steady state alone, without its start and
/// shutdown.
pub struct CpuSampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(Instant, Duration, Duration)>>,
}

impl CpuSampler {
    /// Starts reading this process's CPU time and `other`'s.
    pub fn start(other: Option<u32>) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            loop {
                let sample = (Instant::now(), cpu_time(None), cpu_time(other));
                samples.push(sample);
                if stopped.load(Ordering::Relaxed) {
                    return samples;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        CpuSampler { stop, thread }
    }

    /// The CPU time this process and the other one used from `from` to
    /// `to`: between the last reading at or before `from` and the first at
    /// or after `to`.
    pub fn between(self, from: Instant, to: Instant) -> (Duration, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.thread.join().expect("the CPU sampler");
        let start = samples
            .iter()
            .rev()
            .find(|s| s.0 <= from)
            .unwrap_or(&samples[0]);
        let end = samples
            .iter()
            .find(|s| s.0 >= to)
            .unwrap_or(&samples[samples.len() - 1]);
        (end.1.saturating_sub(start.1), end.2.saturating_sub(start.2))
    }
}
