//! P1: records/s through the router against a passthrough with the same
//! guarantees and a raw consume, on the embedded broker with 1, 3 and 12
//! partitions and on Apache Kafka with 3 and 12, at-least-once and
//! exactly-once; on Apache Kafka also against Kafka Streams holding the
//! same decision (`bench/kstreams`, see `kstreams.rs`) and, side by side,
//! against the same decision as a plain Python script
//! (`bench/python/payment.py`).

use crate::kstreams::{OUTPUTS, PY_OUTPUTS, classpath, kstreams_run, python_run};
use crate::load::{INPUT, kafka_available, produce_inputs, start_broker};
use crate::runs::{
    CpuSampler, Run, cpu_time, passthrough, passthrough_txn, raw_consume, router_run,
};

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
/// (passthrough, router at-least-once, router exactly-once, the plain
/// Python script), two rounds.
/// In the table above each path follows different company (the raw
/// consume, Kafka Streams on the other broker), which moves the ratios by
/// more than the paths differ.
pub struct Alone {
    /// Partitions of every topic.
    pub partitions: i32,
    /// The at-least-once passthrough, one per round.
    pub passthrough: Vec<Sample>,
    /// The router at-least-once, one per round.
    pub at_least_once: Vec<Sample>,
    /// The router exactly-once, one per round.
    pub exactly_once: Vec<Sample>,
    /// The plain Python script (`bench/python/payment.py`, the same
    /// decision, at-least-once), one per round.
    pub python: Vec<Sample>,
}

/// One run of one path in [`alone`].
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Steady records/s.
    pub rate: f64,
    /// The path's own CPU time per record in the steady state (its first
    /// record → its last acknowledged), in µs: the benchmark's process
    /// (the passthrough or the router, and the benchmark's look at its
    /// progress), or the script's process.
    pub own_us: f64,
    /// The broker's CPU time per record in the same steady state, in µs.
    pub broker_us: f64,
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
            python: Vec::new(),
        };
        for _ in 0..ROUNDS {
            let n = ALONE_RECORDS;
            row.passthrough
                .push(runtime.block_on(alone_run(Path::Passthrough, partitions, n)));
            row.at_least_once
                .push(runtime.block_on(alone_run(Path::Router(false), partitions, n)));
            row.exactly_once
                .push(runtime.block_on(alone_run(Path::Router(true), partitions, n)));
            row.python
                .push(runtime.block_on(alone_run(Path::Python, partitions, n)));
        }
        eprintln!(
            "P1 alone {partitions}: passthrough {:?} router {:?} exactly-once {:?} python {:?}",
            row.passthrough, row.at_least_once, row.exactly_once, row.python
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
    /// The plain Python script, at-least-once.
    Python,
}

/// One path alone on a fresh Apache Kafka broker with `n` bookings
/// queued.
async fn alone_run(path: Path, partitions: i32, n: usize) -> Sample {
    let mut topics = vec![INPUT, "payment.payment.succeeded", "passthrough.out"];
    topics.extend(PY_OUTPUTS);
    let broker = tokio::task::block_in_place(|| start_broker(true, partitions, &topics));
    produce_inputs(&broker.bootstrap(), n).await;
    let sampler = CpuSampler::start(broker.pid());
    let (run, child) = match path {
        Path::Python => {
            let bootstrap = broker.bootstrap();
            let (run, cpu) = tokio::task::block_in_place(|| python_run(&bootstrap, n, "python"));
            (run, Some(cpu))
        }
        Path::Passthrough => (
            passthrough(&broker.bootstrap(), n, "passthrough", "passthrough.out").await,
            None,
        ),
        Path::Router(exactly_once) => {
            let dir = tempfile::tempdir().unwrap();
            let run = router_run(
                &broker.bootstrap(),
                n as u64,
                dir.path(),
                true,
                exactly_once,
            )
            .await;
            (run, None)
        }
    };
    let (own, broker_cpu) = sampler.between(run.ended - run.steady, run.ended);
    let per_record = |cpu: std::time::Duration| cpu.as_secs_f64() * 1e6 / n as f64;
    Sample {
        rate: n as f64 / run.steady.as_secs_f64(),
        own_us: per_record(child.unwrap_or(own)),
        broker_us: per_record(broker_cpu),
    }
}

/// Only the plain Python script, on a broker of its own with `n` bookings
/// queued (`bench p1-python`): prints its steady records/s.
pub async fn python_alone(partitions: i32, n: usize) {
    let s = alone_run(Path::Python, partitions, n).await;
    eprintln!(
        "python: {:.0} rec/s steady, {:.1} us of CPU per record (the broker {:.1})",
        s.rate, s.own_us, s.broker_us
    );
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
    let (cpu, broker_cpu) = (cpu_time(None), cpu_time(broker.pid()));
    let sampler = CpuSampler::start(broker.pid());
    let run = router_run(
        &broker.bootstrap(),
        n as u64,
        dir.path(),
        kafka,
        exactly_once,
    )
    .await;
    let (cpu, broker_cpu) = (cpu_time(None) - cpu, cpu_time(broker.pid()) - broker_cpu);
    let (steady, broker_steady) = sampler.between(run.ended - run.steady, run.ended);
    let per_record = |cpu: std::time::Duration| cpu.as_secs_f64() * 1e6 / n as f64;
    eprintln!(
        "router: {:.0} rec/s steady ({:.2} s), {:.1} us of CPU per record (the broker {:.1}); in the steady state {:.1} (the broker {:.1})",
        n as f64 / run.steady.as_secs_f64(),
        run.steady.as_secs_f64(),
        per_record(cpu),
        per_record(broker_cpu),
        per_record(steady),
        per_record(broker_steady)
    );
}
