//! P1: records/s through the router against a passthrough with the same
//! guarantees and a raw consume, on the embedded broker with 1, 3 and 12
//! partitions and on Apache Kafka with 3 and 12, at-least-once and
//! exactly-once; on Apache Kafka also against Kafka Streams holding the
//! same decision (`bench/kstreams`, see `kstreams.rs`).

use crate::kstreams::{OUTPUTS, classpath, kstreams_run};
use crate::load::{INPUT, kafka_available, produce_inputs, start_broker};
use crate::runs::{Run, passthrough, passthrough_txn, raw_consume, router_run};

/// One configuration's result.
pub struct P1 {
    /// On Apache Kafka (else the embedded broker).
    pub kafka: bool,
    /// With exactly-once (else at-least-once).
    pub exactly_once: bool,
    /// Partitions of every topic.
    pub partitions: i32,
    /// Records through each path.
    pub n: usize,
    /// Mean bytes per input record.
    pub size: usize,
    /// The router.
    pub router: Run,
    /// The passthrough with the same guarantees.
    pub passthrough: Run,
    /// The raw consume.
    pub raw: Run,
    /// Kafka Streams with the same decision and guarantee (Apache Kafka
    /// only, when it could be built).
    pub kstreams: Option<Run>,
}

impl P1 {
    /// The broker's and the guarantee's names, as the table shows them.
    pub fn names(&self) -> (&'static str, &'static str) {
        let name = if self.kafka {
            "Apache Kafka 4.1"
        } else {
            "embedded (mock)"
        };
        let guarantee = if self.exactly_once {
            "exactly-once"
        } else {
            "at-least-once"
        };
        (name, guarantee)
    }

    /// Steady-state records/s of the router, the passthrough and the raw
    /// consume.
    pub fn rates(&self) -> (f64, f64, f64) {
        let rate = |r: &Run| self.n as f64 / r.steady.as_secs_f64();
        (rate(&self.router), rate(&self.passthrough), rate(&self.raw))
    }

    /// Steady-state records/s of Kafka Streams, where it ran.
    pub fn kstreams_rate(&self) -> Option<f64> {
        self.kstreams
            .map(|r| self.n as f64 / r.steady.as_secs_f64())
    }
}

/// Every configuration; `BENCH_MOCK_ONLY=1` skips Apache Kafka, for quick
/// sweeps.
pub fn run(runtime: &tokio::runtime::Runtime) -> Vec<P1> {
    let mut runs: Vec<(bool, bool, i32)> = [1, 3, 12].map(|p| (false, false, p)).to_vec();
    if kafka_available() && std::env::var_os("BENCH_MOCK_ONLY").is_none() {
        for p in [3, 12] {
            runs.push((true, false, p));
            runs.push((true, true, p));
        }
    }
    let mut rows = Vec::new();
    for (kafka, exactly_once, partitions) in runs {
        let r = runtime.block_on(p1(partitions, kafka, exactly_once));
        let (name, guarantee) = r.names();
        let (router, pass, raw) = r.rates();
        let kstreams = r.kstreams_rate().unwrap_or(f64::NAN);
        eprintln!(
            "P1 {name} {guarantee} {partitions}: router {router:.0}/s passthrough {pass:.0}/s raw {raw:.0}/s kstreams {kstreams:.0}/s"
        );
        rows.push(r);
    }
    rows
}

/// One configuration: a raw consume, the passthrough and (Apache Kafka)
/// Kafka Streams on one broker, the router on another, each on the same
/// records.
async fn p1(partitions: i32, kafka: bool, exactly_once: bool) -> P1 {
    // The mock cluster keeps about 5 MB per partition; stay under it.
    let n = if kafka {
        40_000
    } else {
        4500 * partitions.min(10) as usize
    };
    let mut topics = vec![INPUT, "payment.payment.succeeded", "passthrough.out"];
    let classpath = if kafka { classpath() } else { None };
    if classpath.is_some() {
        topics.extend(OUTPUTS);
    }
    let (broker_a, broker_b) = tokio::task::block_in_place(|| {
        (
            start_broker(kafka, partitions, &topics),
            start_broker(kafka, partitions, &topics),
        )
    });
    let size = produce_inputs(&broker_a.bootstrap(), n).await;
    produce_inputs(&broker_b.bootstrap(), n).await;
    let raw = raw_consume(&broker_a.bootstrap(), n).await;
    let passthrough = if exactly_once {
        passthrough_txn(&broker_a.bootstrap(), n, "passthrough", "passthrough.out").await
    } else {
        passthrough(&broker_a.bootstrap(), n, "passthrough", "passthrough.out").await
    };
    let dir = tempfile::tempdir().unwrap();
    let kstreams = classpath.map(|cp| {
        let app = if exactly_once {
            "kstreams-eos"
        } else {
            "kstreams-alo"
        };
        let state = dir.path().join("kstreams");
        let bootstrap = broker_a.bootstrap();
        tokio::task::block_in_place(|| kstreams_run(&cp, &bootstrap, n, exactly_once, app, &state))
    });
    let router = router_run(
        &broker_b.bootstrap(),
        n as u64,
        dir.path(),
        kafka,
        exactly_once,
    )
    .await;
    P1 {
        kafka,
        exactly_once,
        partitions,
        n,
        size,
        router,
        passthrough,
        raw,
        kstreams,
    }
}

/// P1a and P1c side by side: on Apache Kafka, each path alone on a fresh
/// broker of its own with the same input, nothing else running, in turns
/// (passthrough, router at-least-once, router exactly-once), two rounds.
/// In the table above each path follows different company (the raw
/// consume, Kafka Streams on the other broker), which moves the ratios by
/// more than the paths differ.
pub struct Alone {
    /// Partitions of every topic.
    pub partitions: i32,
    /// The at-least-once passthrough's steady records/s, one per round.
    pub passthrough: Vec<f64>,
    /// The router at-least-once, one per round.
    pub at_least_once: Vec<f64>,
    /// The router exactly-once, one per round.
    pub exactly_once: Vec<f64>,
}

/// How many rounds [`alone`] runs.
const ROUNDS: usize = 2;

/// Records per run in [`alone`]: enough for a steady state of several
/// seconds (a fresh broker's JVM is still warming up in the first).
const ALONE_RECORDS: usize = 200_000;

/// [`Alone`] at 3 and 12 partitions, where Apache Kafka is installed and
/// `BENCH_MOCK_ONLY` is not set.
pub fn alone(runtime: &tokio::runtime::Runtime) -> Vec<Alone> {
    if !kafka_available() || std::env::var_os("BENCH_MOCK_ONLY").is_some() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for partitions in [3, 12] {
        let mut row = Alone {
            partitions,
            passthrough: Vec::new(),
            at_least_once: Vec::new(),
            exactly_once: Vec::new(),
        };
        for _ in 0..ROUNDS {
            let n = ALONE_RECORDS;
            row.passthrough
                .push(runtime.block_on(alone_run(Path::Passthrough, partitions, n)));
            row.at_least_once
                .push(runtime.block_on(alone_run(Path::Router(false), partitions, n)));
            row.exactly_once
                .push(runtime.block_on(alone_run(Path::Router(true), partitions, n)));
        }
        eprintln!(
            "P1 alone {partitions}: passthrough {:?} router {:?} exactly-once {:?}",
            row.passthrough, row.at_least_once, row.exactly_once
        );
        out.push(row);
    }
    out
}

/// What one run of [`alone_run`] measures.
#[derive(Clone, Copy)]
enum Path {
    /// The at-least-once passthrough.
    Passthrough,
    /// The router, exactly-once or not.
    Router(bool),
}

/// One path alone on a fresh Apache Kafka broker with `n` bookings
/// queued; its steady records/s.
async fn alone_run(path: Path, partitions: i32, n: usize) -> f64 {
    let topics = [INPUT, "payment.payment.succeeded", "passthrough.out"];
    let broker = tokio::task::block_in_place(|| start_broker(true, partitions, &topics));
    produce_inputs(&broker.bootstrap(), n).await;
    let run = match path {
        Path::Passthrough => {
            passthrough(&broker.bootstrap(), n, "passthrough", "passthrough.out").await
        }
        Path::Router(exactly_once) => {
            let dir = tempfile::tempdir().unwrap();
            router_run(
                &broker.bootstrap(),
                n as u64,
                dir.path(),
                true,
                exactly_once,
            )
            .await
        }
    };
    n as f64 / run.steady.as_secs_f64()
}

/// Only the router of one configuration, on a broker of its own with `n`
/// bookings queued: for profiling (`bench p1-router`). Prints `router
/// starting` with the process id once the input is in.
pub async fn router_alone(kafka: bool, exactly_once: bool, partitions: i32, n: usize) {
    let topics = [INPUT, "payment.payment.succeeded"];
    let broker = tokio::task::block_in_place(|| start_broker(kafka, partitions, &topics));
    produce_inputs(&broker.bootstrap(), n).await;
    let dir = tempfile::tempdir().unwrap();
    eprintln!("router starting (pid {})", std::process::id());
    let cpu = process_cpu();
    let run = router_run(
        &broker.bootstrap(),
        n as u64,
        dir.path(),
        kafka,
        exactly_once,
    )
    .await;
    let cpu = process_cpu() - cpu;
    eprintln!(
        "router: {:.0} rec/s steady ({:.2} s), {:.1} us of CPU per record",
        n as f64 / run.steady.as_secs_f64(),
        run.steady.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / n as f64
    );
}

/// The CPU time (user and system) this process has used so far.
fn process_cpu() -> std::time::Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
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
    std::time::Duration::from_millis((ticks(11) + ticks(12)) * 10)
}
