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
//!   Kafka Streams do); on Apache Kafka also against a Kafka Streams
//!   application holding the payment decision natively (`bench/kstreams`,
//!   built by `scripts/kstreams.sh`), with the same guarantee.
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
//! - P9: timers: records/s and peak RSS with 0 and 1,000,000 timers
//!   pending, and lateness at p50 and p99 at light load.
//! - P10: P1's setup on Apache Kafka with a shadow version attached,
//!   against none.
//!
//! `target/release/examples/bench p1,p2` runs some of them;
//! `bench p8-loop receipt-py.wasm 20000` only runs one plugin's reused
//! instance for that many events, to profile it with `perf` (`BENCH_P2_LOOP=N
//! bench p2` does the same for P2's reused instance, N × 2,000 events;
//! `bench p1-router kafka eos 12 300000` runs only P1's router, on a broker
//! of its own, and prints `router starting` (with the process id) once its
//! input is in, for `perf record -p`); `bench p1-alone` runs only P1's
//! side-by-side rounds (each path alone on its own broker). For sweeps,
//! `BENCH_KAFKA='batch_records = 100'` adds `[kafka]` keys to the router's
//! config in P1 and P7, `BENCH_WORKERS=N` sets the plugin workers of the
//! router run in this process (P1, P7, P10; default: one per core, and one
//! more), and `BENCH_MOCK_ONLY=1` skips Apache Kafka in P1.

//!
//! One file per measure (`p1_throughput.rs` … `p10_shadow.rs`), what
//! they feed and read (`load.rs`), what they time besides `switchyard run`
//! (`runs.rs`), and the report (`report.rs`). Brokers, the `switchyard run`
//! process and HTTP come from the test kit (`tests/kit`).

/// The allocator `switchyard` runs with (`host/src/main.rs`), since P1 runs
/// the router in this process.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod commit_loop;
mod kstreams;
mod load;
mod p10_shadow;
mod p1_throughput;
mod p2_plugin_cost;
mod p3_reload;
mod p4_startup;
mod p5_memory;
mod p6_scale_out;
mod p7_latency;
mod p8_languages;
mod p9_timers;
mod report;
mod runs;

/// Runs the measures the first argument names (`p1,p7`; all without one)
/// and prints their report.
fn main() {
    let only = std::env::args().nth(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let wants = |p: &str| only.as_deref().is_none_or(|o| o.split(',').any(|x| x == p));
    if only.as_deref() == Some("p8-loop") {
        let arg = |i: usize| std::env::args().nth(i).expect("bench p8-loop FILE EVENTS");
        p8_languages::reused_loop(&arg(2), arg(3).parse().unwrap());
        return;
    }
    if only.as_deref() == Some("commit-loop") {
        let n = std::env::args()
            .nth(2)
            .map_or(300_000, |n| n.parse().unwrap());
        commit_loop::run(n);
        return;
    }
    if only.as_deref() == Some("p1-router") {
        let arg = |i: usize| {
            std::env::args()
                .nth(i)
                .expect("bench p1-router kafka|mock alo|eos PARTITIONS RECORDS")
        };
        let (kafka, eos) = (arg(2) == "kafka", arg(3) == "eos");
        let (partitions, n) = (arg(4).parse().unwrap(), arg(5).parse().unwrap());
        runtime.block_on(p1_throughput::router_alone(kafka, eos, partitions, n));
        return;
    }
    if only.as_deref() == Some("p1-python") {
        let arg = |i: usize| {
            std::env::args()
                .nth(i)
                .expect("bench p1-python PARTITIONS RECORDS")
                .parse()
                .unwrap()
        };
        runtime.block_on(p1_throughput::python_alone(arg(2) as i32, arg(3)));
        return;
    }
    let mut out = String::new();
    report::header(&mut out);
    if only.as_deref() == Some("p1-alone") {
        report::p1_alone(&mut out, &p1_throughput::alone(&runtime));
        print!("{out}");
        return;
    }
    if wants("p1") {
        report::p1(&mut out, &p1_throughput::run(&runtime));
        report::p1_alone(&mut out, &p1_throughput::alone(&runtime));
    }
    if wants("p2") {
        report::p2(&mut out, &p2_plugin_cost::run());
    }
    if wants("p3") {
        report::p3(&mut out, &p3_reload::run());
    }
    if wants("p4") {
        report::p4(&mut out, &runtime.block_on(p4_startup::run()));
    }
    if wants("p5") {
        report::p5(&mut out, runtime.block_on(p5_memory::run()));
    }
    if wants("p8") {
        let (rows, native) = p8_languages::run();
        report::p8(&mut out, &rows, native);
    }
    if wants("p6") {
        report::p6(&mut out, &p6_scale_out::run(&runtime));
    }
    if wants("p7") {
        report::p7(&mut out, &runtime.block_on(p7_latency::run()));
    }
    if wants("p10") {
        report::p10(&mut out, p10_shadow::run(&runtime));
    }
    if wants("p9") {
        report::p9(&mut out, &runtime.block_on(p9_timers::run()));
    }
    print!("{out}");
}
