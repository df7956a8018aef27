//! P9: timers. The record rate of `switchyard run` with no timer pending
//! and with 1,000,000 pending in its redb store (written there before the
//! start, as a million earlier records would have), side by side, with
//! each run's peak RSS: for P1's payment plugin, which sets no timer, and
//! for the counter guest setting one timer per record (due in a day). And
//! how late 5,000 timers due over 10 s fire at light load, from the
//! router's lateness histogram.

use crate::load::{INPUT, client, produce_inputs, start_broker, switchyard_run};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::path::Path;
use std::time::{Duration, Instant};
use switchyard::{DiskStore, Effect, StateStore, Timer, TimerChange};
use switchyard_testkit::{Broker, Router, eventually, guest, root};

/// Input and output topics.
const TICKS: &str = "tick.in";
const PARTITIONS: i32 = 6;

/// What the records of a rate run do.
#[derive(Clone, Copy, PartialEq)]
enum Work {
    /// P1's payment plugin on bookings: no timers.
    Payment,
    /// The counter guest: one timer set per record.
    SetTimer,
}

/// P9's figures.
pub struct P9 {
    /// Records measured in each rate run.
    pub records: usize,
    /// Timers pending in the second run of each pair.
    pub pending: usize,
    /// The payment plugin: records/s with no timer pending, and with
    /// `pending`.
    pub payment: (f64, f64),
    /// Peak RSS in MB of those two runs.
    pub payment_mb: (f64, f64),
    /// The counter guest setting a timer per record: records/s with none
    /// pending, and with `pending`.
    pub rates: (f64, f64),
    /// Peak RSS in MB of those two runs.
    pub rss_mb: (f64, f64),
    /// Timers in the lateness run, and their lateness at p50 and p99 as
    /// the histogram's bucket bounds in seconds.
    pub lateness: (usize, f64, f64),
}

/// Runs P9.
pub async fn run() -> P9 {
    let records = 90_000;
    let pending = 1_000_000;
    // The embedded broker keeps about 5 MB a partition: 45,000 bookings of
    // 1 KB over 12 partitions, as in P1.
    let paid = rate_run(45_000, 0, Work::Payment).await;
    let paid_loaded = rate_run(45_000, pending, Work::Payment).await;
    let empty = rate_run(records, 0, Work::SetTimer).await;
    let loaded = rate_run(records, pending, Work::SetTimer).await;
    let late = lateness_run(5_000).await;
    P9 {
        records,
        pending,
        payment: (paid.0, paid_loaded.0),
        payment_mb: (paid.1, paid_loaded.1),
        rates: (empty.0, loaded.0),
        rss_mb: (empty.1, loaded.1),
        lateness: late,
    }
}

fn config(dir: &Path, work: Work) -> std::path::PathBuf {
    let path = dir.join("router.toml");
    let payment = root().join("plugins/target/wasm32-wasip2/release/payment.wasm");
    let text = match work {
        Work::SetTimer => format!(
            "[[plugin]]\nname = \"counter\"\nwasm = \"{}\"\nsubscribe.types = [\"tick.*\"]\nemits = [\"ticked\"]\n",
            guest("counter").display()
        ),
        Work::Payment => format!(
            "[[plugin]]\nname = \"payment\"\nwasm = \"{}\"\nsubscribe.types = [\"{INPUT}\"]\nemits = [\"payment.*\"]\nkey_field = \"payment_id\"\n[plugin.config]\nvocabulary = \"booking\"\n",
            payment.display()
        ),
    };
    std::fs::write(&path, text).unwrap();
    path
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Produces `n` ticks whose timers are due `delay(i)` ms after them.
async fn produce_ticks(broker: &Broker, n: usize, delay: impl Fn(usize) -> u64) {
    let producer: FutureProducer = client(&broker.bootstrap())
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut pending = Vec::with_capacity(n);
    for i in 0..n {
        let value = serde_json::json!({
            "event_id": format!("tick-{i}"), "event_type": TICKS, "timestamp": now,
            "data": {"delay_ms": delay(i)}
        })
        .to_string();
        let key = format!("k{i}");
        loop {
            match producer.send_result(FutureRecord::to(TICKS).key(&key).payload(&value)) {
                Ok(d) => {
                    pending.push(d);
                    break;
                }
                Err((_, _)) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
    for d in pending {
        d.await.expect("delivered").expect("acked");
    }
}

/// Writes `n` timers of the counter plugin on `topic`'s `partitions`, due
/// in two days, into the redb store at `path`.
fn preload(path: &Path, n: usize, topic: &str, partitions: i32) {
    let store = DiskStore::open(path, 10_000).expect("the state store");
    let due = now_ms() + 2 * 86_400_000;
    let chunk = 20_000;
    for start in (0..n).step_by(chunk) {
        let batch: Vec<Vec<Effect>> = (start..(start + chunk).min(n))
            .map(|i| {
                vec![Effect {
                    plugin: "counter".into(),
                    event_id: format!("preload-{i}"),
                    reads: Default::default(),
                    writes: Default::default(),
                    outputs: Vec::new(),
                    timers: [(
                        format!("t:preload-{i}"),
                        TimerChange::Set(Timer {
                            due_ms: due + i as i64,
                            payload: b"{}".to_vec(),
                            topic: topic.into(),
                            partition: (i % partitions as usize) as i32,
                            context: Vec::new(),
                        }),
                    )]
                    .into(),
                }]
            })
            .collect();
        store.commit(&[&batch]).expect("preloaded");
    }
}

fn peak_rss_mb(router: &Router) -> f64 {
    std::fs::read_to_string(format!("/proc/{}/status", router.pid()))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Records/s over `n` records (first routed → last routed) and peak RSS,
/// with `pending` timers in the store at the start.
async fn rate_run(n: usize, pending: usize, work: Work) -> (f64, f64) {
    let topics = match work {
        Work::SetTimer => [TICKS, "ticked"],
        Work::Payment => [INPUT, "payment.payment.succeeded"],
    };
    let partitions = match work {
        Work::SetTimer => PARTITIONS,
        Work::Payment => 12,
    };
    let broker = start_broker(false, partitions, &topics);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    if pending > 0 {
        let started = Instant::now();
        preload(&state.join("state.redb"), pending, topics[0], partitions);
        eprintln!("P9: {pending} timers written in {:.1?}", started.elapsed());
    }
    match work {
        Work::SetTimer => produce_ticks(&broker, n, |_| 86_400_000).await,
        Work::Payment => {
            produce_inputs(&broker.bootstrap(), n).await;
        }
    }
    let router = switchyard_run(
        &config(dir.path(), work),
        &broker,
        &state,
        &dir.path().join("cache"),
    );
    let processed = || router.processed(topics[0]) as usize;
    eventually("P9's first tick", Duration::from_secs(120), || {
        router.or_log(processed() > 0)
    });
    let (first, t0) = (processed(), Instant::now());
    while processed() < n {
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "P9: stuck at {}",
            processed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = (n - first) as f64 / t0.elapsed().as_secs_f64();
    let rss = peak_rss_mb(&router);
    let metrics = router.get("/metrics");
    router.stop();
    let now_pending =
        switchyard_testkit::router::metric_sum(&metrics, "switchyard_timers_pending", &[]);
    eprintln!("P9: {pending} pending before, {now_pending} after: {rate:.0} rec/s, {rss:.0} MB");
    (rate, rss)
}

/// Lateness of `n` timers due 2–12 s after their ticks, produced while
/// the router runs idle.
async fn lateness_run(n: usize) -> (usize, f64, f64) {
    let broker = start_broker(false, PARTITIONS, &[TICKS, "ticked"]);
    let dir = tempfile::tempdir().unwrap();
    let router = switchyard_run(
        &config(dir.path(), Work::SetTimer),
        &broker,
        &dir.path().join("state"),
        &dir.path().join("cache"),
    );
    eventually("P9's router ready", Duration::from_secs(120), || {
        router.or_log(
            router.metric("switchyard_partition_owned", &[("topic", TICKS)]) == PARTITIONS as u64,
        )
    });
    produce_ticks(&broker, n, |i| 2_000 + (i % 10) as u64 * 1_000).await;
    let fired = || router.metric("switchyard_timers_fired_total", &[]) as usize;
    eventually("P9's timers firing", Duration::from_secs(120), || {
        router.or_log(fired() >= n)
    });
    let metrics = router.get("/metrics");
    router.stop();
    let buckets: Vec<(f64, u64)> = metrics
        .lines()
        .filter(|l| l.starts_with("switchyard_timer_lateness_seconds_bucket"))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let count = l.rsplit_once(' ')?.1.parse().ok()?;
            Some((le.parse().unwrap_or(f64::INFINITY), count))
        })
        .collect();
    let total = buckets.last().map_or(0, |b| b.1);
    let quantile = |q: f64| {
        buckets
            .iter()
            .find(|(_, c)| *c as f64 >= q * total as f64)
            .map_or(f64::INFINITY, |b| b.0)
    };
    (total as usize, quantile(0.5), quantile(0.99))
}
