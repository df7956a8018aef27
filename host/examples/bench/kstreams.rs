//! P1's baselines in other processes: `bench/kstreams`, the payment
//! plugin's booking decision as a Kafka Streams application (built by
//! `scripts/kstreams.sh`), run as its own JVM on the same input; and
//! `bench/python/payment.py`, the same decision as a plain Python script
//! with confluent-kafka (at-least-once only).
//!
//! They are timed as the router and the passthrough are: from the first
//! record (each prints `first` when it handles it) to the last output, and
//! from the start (the process spawn, so JVM start-up is included) for the
//! "with join" figure. The last output is when:
//!
//! - at-least-once: the output topics' high watermarks (every output
//!   acknowledged) reach the input's count;
//! - exactly-once: the application's committed input offsets reach the
//!   input's count. Kafka Streams commits them in the transaction holding
//!   the outputs, so that is when the last output becomes visible to a
//!   `read_committed` consumer (the watermarks also count the transaction
//!   markers, so they would stop early).

use crate::load::{INPUT, client};
use crate::runs::{Run, cpu_time};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use switchyard_testkit::root;

/// The prefix of the application's output topics (then the event type).
pub const PREFIX: &str = "kstreams.";

/// Its output topics.
pub const OUTPUTS: [&str; 2] = [
    "kstreams.payment.payment.succeeded",
    "kstreams.payment.payment.failed",
];

/// The application's classpath, from `scripts/kstreams.sh` (which builds
/// it when it is not up to date); `None`, with the reason on stderr, when
/// it cannot be built (no Maven).
pub fn classpath() -> Option<String> {
    static CLASSPATH: OnceLock<Option<String>> = OnceLock::new();
    CLASSPATH
        .get_or_init(|| {
            let out = Command::new(root().join("scripts/kstreams.sh"))
                .output()
                .ok()?;
            if !out.status.success() {
                eprintln!(
                    "P1: no Kafka Streams baseline: scripts/kstreams.sh failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                return None;
            }
            Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .clone()
}

/// Runs the application on `bootstrap` (whose [`INPUT`] holds `n`
/// bookings and which has the [`OUTPUTS`] topics, with the input's
/// partitions) as consumer group `app_id`, with its state in `dir`, until
/// its last output; then stops it.
pub fn kstreams_run(
    classpath: &str,
    bootstrap: &str,
    n: usize,
    exactly_once: bool,
    app_id: &str,
    dir: &Path,
) -> Run {
    let guarantee = if exactly_once {
        "exactly_once_v2"
    } else {
        "at_least_once"
    };
    let mut java = Command::new("java");
    java.args(["-cp", classpath, "dev.switchyard.kstreams.PaymentStreams"])
        .args(["--bootstrap-servers", bootstrap])
        .args(["--application-id", app_id])
        .args(["--guarantee", guarantee])
        .args(["--output-prefix", PREFIX])
        // The benchmark's plugin config (load::payment_config).
        .args(["--max-amount", "5000.0"])
        .arg("--state-dir")
        .arg(dir);
    let progress = Progress::new(bootstrap, app_id, exactly_once, &OUTPUTS);
    baseline_run(java, "Kafka Streams", n, &progress).0
}

/// The prefix of the Python script's output topics (then the event type).
pub const PY_PREFIX: &str = "python.";

/// The Python script's output topics.
pub const PY_OUTPUTS: [&str; 2] = [
    "python.payment.payment.succeeded",
    "python.payment.payment.failed",
];

/// Runs the plain Python baseline (`bench/python/payment.py`,
/// at-least-once) on `bootstrap` (whose [`INPUT`] holds `n` bookings and
/// which has the [`PY_OUTPUTS`] topics) as consumer group `group`, until
/// its last output is acknowledged; then stops it. Also the CPU time the
/// script used.
pub fn python_run(bootstrap: &str, n: usize, group: &str) -> (Run, Duration) {
    let mut python = Command::new("python3");
    python
        .arg(root().join("bench/python/payment.py"))
        .args(["--bootstrap-servers", bootstrap])
        .args(["--group", group])
        .args(["--output-prefix", PY_PREFIX])
        // The benchmark's plugin config (load::payment_config).
        .args(["--max-amount", "5000.0"]);
    let progress = Progress::new(bootstrap, group, false, &PY_OUTPUTS);
    baseline_run(python, "the Python script", n, &progress)
}

/// Runs a baseline's `command` (which prints `first` when it handles its
/// first record and stops when its standard input closes) until
/// `progress` counts `n`; then stops it. Also the CPU time its process used
/// from its first record until then (the steady state).
fn baseline_run(
    mut command: Command,
    name: &str,
    n: usize,
    progress: &Progress,
) -> (Run, Duration) {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{name} runs (scripts/setup.sh --test installs it): {e}"));
    let first = Arc::new(Mutex::new(None));
    let stdout = child.stdout.take().unwrap();
    let (seen, pid) = (first.clone(), child.id());
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line == "first" {
                *seen.lock().unwrap() = Some((Instant::now(), cpu_time(Some(pid))));
            }
        }
    });
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{name} exited early: {status}");
        }
        let count = progress.count();
        if count >= n {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "{name} got {count} of {n} records through in 300 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let end = Instant::now();
    let cpu = cpu_time(Some(child.id()));
    // A closed stdin stops it cleanly; a stuck close is killed.
    drop(child.stdin.take());
    let stop = Instant::now();
    while child.try_wait().ok().flatten().is_none() {
        if stop.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = reader.join();
    let (first, cpu_at_first) = first.lock().unwrap().unwrap_or((started, Duration::ZERO));
    let run = Run::new(started, Some(first), end);
    (run, cpu.saturating_sub(cpu_at_first))
}

/// How far the application is: its outputs, or its committed input. One
/// request per look (ListOffsets for every output partition, or
/// OffsetFetch), so that looking every 10 ms puts no load on the broker
/// worth measuring.
struct Progress {
    consumer: BaseConsumer,
    exactly_once: bool,
    /// The input's partitions.
    input: TopicPartitionList,
    /// The output topics' partitions, at [`Offset::End`]: asking for the
    /// offsets of that "time" gives their high watermarks.
    outputs: TopicPartitionList,
}

impl Progress {
    fn new(bootstrap: &str, app_id: &str, exactly_once: bool, outputs: &[&str]) -> Self {
        let consumer: BaseConsumer = client(bootstrap)
            .set("group.id", app_id)
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let partitions = |list: &mut TopicPartitionList, topic: &str, offset: Offset| {
            let metadata = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .expect("metadata");
            for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
                list.add_partition_offset(topic, p.id(), offset).unwrap();
            }
        };
        let mut input = TopicPartitionList::new();
        partitions(&mut input, INPUT, Offset::Invalid);
        let mut outputs_list = TopicPartitionList::new();
        for topic in outputs {
            partitions(&mut outputs_list, topic, Offset::End);
        }
        Progress {
            consumer,
            exactly_once,
            input,
            outputs: outputs_list,
        }
    }

    /// Inputs committed (exactly-once) or outputs acknowledged
    /// (at-least-once) so far; the topics are new, so their offsets count
    /// their records.
    fn count(&self) -> usize {
        let timeout = Duration::from_secs(5);
        let found = if self.exactly_once {
            self.consumer.committed_offsets(self.input.clone(), timeout)
        } else {
            self.consumer
                .offsets_for_times(self.outputs.clone(), timeout)
        };
        found.map_or(0, |list| {
            list.elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => o as usize,
                    _ => 0,
                })
                .sum()
        })
    }
}
