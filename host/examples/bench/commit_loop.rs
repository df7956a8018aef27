//! `bench commit-loop RECORDS`: the state store's group commit alone, as
//! the router's commit thread runs it for the payment plugin: groups of
//! 1,150 records (what one group carried in the P1 profiles), each a
//! processed mark with a random event id and 1.3 KB of outbox, into a redb
//! file with the default window of 100,000 marks. Prints the CPU time per
//! record, for comparing layouts of the store side by side (BENCHMARKS.md,
//! the hot path, items 16 and 17), then the time to open the file again
//! with its full window (the index of processed ids is rebuilt on open),
//! and one lookup of an id marked and of one not.

use crate::runs::cpu_time;
use std::time::Instant;
use switchyard::{DiskStore, Effect, StateStore};

/// Records per group commit.
const GROUP: usize = 1150;
/// The processed-mark window (`keep_processed`'s default).
const KEEP: u64 = 100_000;

/// Commits `n` records in groups and prints what it cost; with
/// `BENCH_SEQUENTIAL_IDS=1` the event ids ascend, as the benchmark's
/// bookings' did before 2026-12-01 20:40 UTC, instead of being random
/// version 4 UUIDs, as producers make them.
pub fn run(n: usize) {
    let n = n.max(1);
    let sequential = std::env::var_os("BENCH_SEQUENTIAL_IDS").is_some_and(|v| v == "1");
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(&dir.path().join("state.redb"), KEEP).unwrap();
    let outputs = vec![b'x'; 1300];
    let effect = |i: usize| Effect {
        plugin: "payment".into(),
        event_id: if sequential {
            format!("e0000001-0000-4000-8000-{i:012}")
        } else {
            crate::load::uuid_v4(i as u64)
        },
        reads: Default::default(),
        writes: Default::default(),
        outputs: outputs.clone(),
        timers: Default::default(),
    };
    let (started, cpu) = (Instant::now(), cpu_time(None));
    let mut done = 0;
    while done < n {
        let group: Vec<Vec<Effect>> = (done..(done + GROUP).min(n))
            .map(|i| vec![effect(i)])
            .collect();
        store.commit(&[&group]).unwrap();
        done += group.len();
    }
    let cpu = cpu_time(None) - cpu;
    eprintln!(
        "commit: {:.1} us of CPU and {:.1} us of wall time per record ({n} records, groups of {GROUP}, window {KEEP})",
        cpu.as_secs_f64() * 1e6 / n as f64,
        started.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    drop(store);
    let before = rss_mb();
    let started = Instant::now();
    let store = DiskStore::open(&dir.path().join("state.redb"), KEEP).unwrap();
    let opened = started.elapsed();
    let grew = rss_mb() - before;
    let (known, unknown) = (effect(n - 1).event_id, effect(n).event_id);
    let started = Instant::now();
    assert!(store.processed("payment", &known).unwrap().is_some());
    let hit = started.elapsed();
    let started = Instant::now();
    assert!(store.processed("payment", &unknown).unwrap().is_none());
    let miss = started.elapsed();
    eprintln!(
        "reopen: {:.0} ms and {grew:.0} MB more resident with {} marks; a lookup: {:.1} us marked, {:.1} us not",
        opened.as_secs_f64() * 1e3,
        KEEP.min(n as u64),
        hit.as_secs_f64() * 1e6,
        miss.as_secs_f64() * 1e6
    );
}

/// This process's resident memory, MB.
fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
