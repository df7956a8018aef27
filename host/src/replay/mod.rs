//! `switchyard replay`: a topic's history run through a plugin's live
//! version and a candidate, offline, compared as a live shadow compares
//! them, with an exit code a CI job can gate a deployment on.
//!
//! Decisions:
//!
//! - **Reading.** The topic's partitions are read from the start position
//!   (`--from-offset N` on every partition, `--from-time` through the
//!   broker's offsets-for-times lookup, else each partition's beginning)
//!   up to the high watermarks taken when the replay starts, so a busy
//!   topic still ends. The consumer never joins a group: it is `assign()`ed
//!   its partitions, under a `group.id` of its own (`switchyard-replay`,
//!   never the config's; only a label then), with
//!   `enable.auto.commit=false`, and it commits nothing; it reads committed
//!   records only (`read_committed`), with the config's `[kafka.client]`
//!   settings (SASL, TLS) as the router would.
//!   An offset before a partition's first kept record starts at that
//!   record; a time after its last record reads nothing of it. A broker
//!   that cannot look offsets up by time (librdkafka's mock cluster, the
//!   embedded broker of `switchyard dev`, answers "none" for any time) is
//!   caught by reading the partition's last record and refused, rather
//!   than read as an empty range.
//! - **The same code path as a live shadow.** A registry holding only the
//!   plugin runs it on its live version (the config's `wasm` file; a version
//!   uploaded through the admin API is not looked up) with the candidate
//!   attached as its shadow ([`Shadow`]), and every record goes through
//!   [`Router::run_batch`], as on a partition worker: the same decoding,
//!   subscription, emit checks, retry policy and comparison. Records of one
//!   partition run in batches, in offset order, partitions in the order the
//!   broker delivers them.
//! - **No skipping.** A live batch runs at most [`SAMPLE`] of its records on
//!   the shadow; a replay passes batches of at most [`KEEP_DIFFS`] records
//!   (fewer than [`SAMPLE`]), so every record is compared, and every
//!   differing one is still among the shadow's newest when the batch is
//!   done, to be printed.
//! - **State.** The records run on an in-memory store ([`MemoryStore`])
//!   seeded with a snapshot of the plugin's namespace
//!   ([`StateStore::snapshot`]) in the router's store: `--state-url`
//!   (PostgreSQL), `--state-dir` (its redb file), else the config's
//!   `[state] url` or `.switchyard/state` as `switchyard run` would; or
//!   empty with `--empty-state`. The live version's effects are committed to
//!   that memory store after each batch, so each record sees the state the
//!   ones before it wrote, and the candidate sees the same state as the live
//!   version on every record. The snapshot holds values only: no processed
//!   marks (so events the router already handled run again rather than
//!   being taken as duplicates) and no timers (timer changes are compared;
//!   no timer fires during a replay). It is the state as of now, after the
//!   router handled the records replayed: a counter continues from today's
//!   value, not from its value at the start offset; both versions start
//!   from the same, which is what the comparison needs. The memory store
//!   keeps every replayed event's processed mark and outputs (an event id
//!   seen twice is a duplicate, as live), so memory grows with the range.
//!   A redb file is locked by the router
//!   that has it open; the replay then stops with one line naming the file
//!   and suggesting `--empty-state` or `--state-url`.
//! - **Nothing leaves.** Nothing is produced, dead-lettered or committed
//!   anywhere: the router's state store is only read (opening it creates
//!   its tables if they are missing, as a router would).
//! - **Result.** The counts (compared, equal, differing, skipped — always 0
//!   here), then each differing event's differences, as `switchyard
//!   shadow` prints a live shadow's (all of them, in the order they ran,
//!   or the first `--show N`). Exit status: 0 when nothing differs
//!   (also when no record was for the plugin, which is said), 1 when
//!   something does, 2 on an error (the caller maps errors to 2).

use crate::config::RouterConfig;
use crate::engine::Engine;
use crate::event::Record;
use crate::pool::Instances;
use crate::registry::PluginRegistry;
use crate::router::{RecordOutcome, Router};
use crate::shadow::{KEEP_DIFFS, SAMPLE, Shadow, ShadowDiff};
use crate::state::{RecordEffects, StateStore};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

mod history;
mod state;

use history::{GROUP, History, Start};
use state::seed;

/// The most records one batch holds; see the module docs.
const BATCH: usize = if KEEP_DIFFS < SAMPLE {
    KEEP_DIFFS
} else {
    SAMPLE
};

/// The arguments of `switchyard replay`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    /// The router config: the plugin's live version, settings and
    /// `[kafka.client]` settings.
    #[arg(long)]
    pub(crate) config: PathBuf,
    /// `bootstrap.servers`, overriding the config's.
    #[arg(long, env = "SWITCHYARD_BROKERS")]
    pub(crate) brokers: Option<String>,
    /// The topic whose history to replay.
    #[arg(long)]
    pub(crate) topic: String,
    /// The plugin to compare.
    #[arg(long)]
    pub(crate) plugin: String,
    /// The candidate version's wasm file.
    #[arg(long)]
    pub(crate) candidate: PathBuf,
    /// Start at this offset on every partition (default: the beginning).
    #[arg(long, conflicts_with = "from_time")]
    pub(crate) from_offset: Option<i64>,
    /// Start at the first record at or after this time (RFC 3339, such as
    /// 2025-11-24T00:00:00Z).
    #[arg(long, value_parser = parse_time)]
    pub(crate) from_time: Option<i64>,
    /// Snapshot the plugin's state from this PostgreSQL store
    /// (default: the config's `[state] url`).
    #[arg(long, env = "SWITCHYARD_STATE_URL")]
    pub(crate) state_url: Option<String>,
    /// Snapshot the plugin's state from the redb store in this folder
    /// (default: .switchyard/state); it must not be in use by a router.
    #[arg(long)]
    pub(crate) state_dir: Option<PathBuf>,
    /// Start from empty state instead of a snapshot.
    #[arg(long, conflicts_with = "state_dir")]
    pub(crate) empty_state: bool,
    /// Print at most this many differing events, the first ones (default:
    /// all); the counts cover every event.
    #[arg(long, value_name = "N")]
    pub(crate) show: Option<usize>,
}

/// Parses an RFC 3339 time into milliseconds since the epoch.
fn parse_time(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("`{text}`: not an RFC 3339 time ({e}), such as 2025-11-24T00:00:00Z"))
}

/// Runs `switchyard replay`; exit 0 when nothing differs, 1 when something
/// does. An error is the caller's to report (exit 2).
pub(crate) fn run(engine: Arc<Engine>, args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let config = RouterConfig::load(&args.config)?;
    let name = args.plugin.as_str();
    if !config.plugins.iter().any(|p| p.name == name) {
        let names: Vec<&str> = config.plugins.iter().map(|p| p.name.as_str()).collect();
        anyhow::bail!(
            "{}: no plugin `{name}`; it configures {}",
            config.path.display(),
            names.join(", ")
        );
    }
    let registry = Arc::new(PluginRegistry::load(&engine, &config, Some(name))?);
    let plugin = registry.get(name).expect("the plugin was loaded").clone();
    let candidate = engine
        .load_file(name, &args.candidate)
        .map_err(|e| anyhow::anyhow!("{}: the candidate: {e}", args.candidate.display()))?;
    let shadow = Arc::new(Shadow::new(Arc::new(candidate)));
    plugin.set_shadow(Some(shadow.clone()));

    let (memory, state) = seed(&config, &args, name)?;
    let store: Arc<dyn StateStore> = memory;
    let start = match (args.from_offset, args.from_time) {
        (Some(offset), _) => Start::Offset(offset),
        (None, Some(ms)) => Start::Time(ms),
        (None, None) => Start::Beginning,
    };
    let brokers = args
        .brokers
        .clone()
        .unwrap_or_else(|| config.kafka.bootstrap_servers.clone());
    let client = crate::kafka::client_config(&brokers, &config.kafka.client);
    // A group id of its own, never the live group's; it is only a label:
    // the consumer is assigned its partitions and commits nothing.
    let group = match config.kafka.group_id.as_str() {
        GROUP => format!("{GROUP}-2"),
        _ => GROUP.to_string(),
    };
    let mut history = History::open(&client, &group, &args.topic, start)?;

    println!(
        "replaying {} {start} to its end as of now ({} partition(s), {} offset(s)) through `{name}`",
        args.topic,
        history.ends.len(),
        history.total
    );
    println!(
        "  live:      {} ({})",
        plugin.current().label(),
        plugin.spec.wasm.display()
    );
    println!(
        "  candidate: {} ({})",
        shadow.version.label(),
        args.candidate.display()
    );
    println!("  state:     {state}");

    let router = Router::new(
        registry,
        config.exclude.clone(),
        config.max_hops,
        config.kafka.max_record_bytes,
    );
    router.learn(&args.topic);
    let mut instances = Instances::new(engine);
    let mut tally = Tally::default();
    let mut diffs: Vec<ShadowDiff> = Vec::new();
    let shown = args.show.unwrap_or(usize::MAX);
    while let Some(batch) = history.next_batch(BATCH)? {
        run_batch(
            &router,
            &config,
            &batch,
            &store,
            &mut instances,
            &shadow,
            &mut tally,
            &mut diffs,
        )?;
        diffs.truncate(shown);
    }

    let r = shadow.report();
    println!(
        "\n{name}: candidate {} against live {}: {} compared, {} equal, {} differing ({} errors), {} skipped",
        r.version,
        plugin.current().label(),
        r.compared,
        r.equal,
        r.differing,
        r.shadow_errors,
        r.skipped
    );
    println!(
        "  {} record(s) read: {} for `{name}`, {} not for it, {} that do not decode",
        tally.read, tally.routed, tally.other, tally.undecodable
    );
    for d in &diffs {
        println!("\n{} {} at {}:", d.event_type, d.event_id, d.at);
        for line in d.text.lines() {
            println!("  {line}");
        }
    }
    if r.differing as usize > diffs.len() {
        println!(
            "\n… and {} more differing event(s) (--show N prints more)",
            r.differing as usize - diffs.len()
        );
    }
    if r.differing > 0 {
        println!(
            "\n{} of {} compared event(s) differ",
            r.differing, r.compared
        );
        Ok(ExitCode::from(1))
    } else {
        if r.compared == 0 {
            println!("\nno record in the range was for `{name}`: nothing compared");
        } else {
            println!("\nno difference over {} compared event(s)", r.compared);
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// What the replay read.
#[derive(Debug, Default)]
struct Tally {
    read: u64,
    routed: u64,
    other: u64,
    undecodable: u64,
}

/// The most runs of a batch that waits before the replay gives up (as the
/// fixture runner, it skips backoff delays: a retry runs again at once).
const MAX_WAITS: u32 = 100;

/// Runs one batch as a partition worker would, committing the live
/// version's effects to `store`, and collects the new differences.
#[allow(clippy::too_many_arguments)]
fn run_batch(
    router: &Router,
    config: &RouterConfig,
    records: &[Record],
    store: &Arc<dyn StateStore>,
    instances: &mut Instances,
    shadow: &Shadow,
    tally: &mut Tally,
    diffs: &mut Vec<ShadowDiff>,
) -> anyhow::Result<()> {
    let (mut from, mut attempt) = (0, 1);
    while from < records.len() {
        let before = shadow.report().differing;
        let run = router.run_batch(&records[from..], attempt, store, instances, &config.kafka);
        let effects: Vec<RecordEffects> = run.done.iter().map(RecordOutcome::effects).collect();
        let applied = store
            .commit(&[&effects])
            .context("committing to the in-memory store")?;
        anyhow::ensure!(
            applied.first().copied().unwrap_or(0) == effects.len(),
            "the in-memory store refused a batch (nothing else writes to it)"
        );
        for outcome in &run.done {
            tally.read += 1;
            match outcome {
                RecordOutcome::Routed { calls, .. } if !calls.is_empty() => tally.routed += 1,
                RecordOutcome::Undecodable(_) => tally.undecodable += 1,
                _ => tally.other += 1,
            }
        }
        let report = shadow.report();
        let new = (report.differing - before) as usize;
        diffs.extend(report.newest.into_iter().take(new).rev());
        from += run.done.len();
        if let Some(stop) = run.stop {
            attempt = if run.done.is_empty() { attempt + 1 } else { 2 };
            if attempt > config.kafka.max_retries.max(1) + MAX_WAITS {
                let r = &records[from];
                anyhow::bail!(
                    "{}[{}]@{}: plugin `{}` still waits after {attempt} runs: {}",
                    r.topic,
                    r.partition,
                    r.offset,
                    stop.plugin,
                    stop.failure
                );
            }
        } else {
            attempt = 1;
        }
    }
    Ok(())
}
