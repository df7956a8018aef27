//! The router as a service: wires config, engine, state, source, partition
//! workers and sink together, and shuts down in bounded time.
//!
//! The consumer loop only reads records and hands each to its partition's
//! queue ([`PartitionQueue`](crate::partition::PartitionQueue)); it never waits on a partition. A full queue
//! pauses that partition in the consumer; a revoked partition's worker stops
//! (its lease ends in the rebalance callback).
//!
//! Shutdown (the `shutdown` future resolving, e.g. on SIGINT or SIGTERM):
//! stop reading; each worker finishes the batch it started, drops what it
//! had not started, and stores the offsets that were acknowledged; then one
//! synchronous commit and a producer flush. All of it is bounded by
//! `kafka.drain_timeout_ms`: what is not done by then is redelivered after a
//! restart (byte-identical, from the outbox), and the process still exits,
//! with or without a broker.

//!
//! [`run`] takes three steps, one file each: `build.rs` wires everything
//! together and starts the admin API; `consume.rs` runs the consumer loop
//! until shutdown (or a fatal error); `drain.rs` stops the workers, commits
//! and closes the clients within the drain timeout. `tasks.rs` holds the
//! background tasks (health, summary, flow sampling) and [`signals`].

mod build;
mod consume;
mod drain;
mod tasks;

pub(crate) use tasks::signals;

use crate::config::RouterConfig;
use crate::partition::Stats;
use build::Service;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How to run the router.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// The consumer group.
    pub group: String,
    /// This instance's static membership id in the group
    /// (`group.instance.id`, KIP-345), or `None` for a dynamic member.
    ///
    /// A restarted instance that keeps its id takes its partitions back at
    /// once, without waiting for the session timeout of the process it
    /// replaces; the price is that a stopped one's partitions wait that
    /// timeout before moving, and that its rebalances are eager (see
    /// RELIABILITY.md). Each live instance needs its own id.
    pub instance_id: Option<String>,
    /// The folder of the state store.
    pub state_dir: PathBuf,
    /// A PostgreSQL URL to keep state in instead, shared by every instance
    /// of the group (`None`: the config's `[state] url`, else redb in
    /// `state_dir`).
    pub state_url: Option<String>,
    /// Where compiled plugins are cached.
    pub cache_dir: Option<PathBuf>,
    /// How often to log a one-line summary (`None`: never).
    pub summary_every: Option<Duration>,
    /// Whether to create missing topics through the admin API. Topics it
    /// cannot create (no CreateTopics API, no permission) are named in a
    /// warning and the router runs on.
    pub create_topics: bool,
    /// Where to serve the admin API (`None`: not at all).
    pub admin: Option<std::net::SocketAddr>,
    /// Whether to watch plugin files and hot-reload them.
    pub watch: bool,
    /// Whether to also watch plugins' `sources`, rebuilding and reloading
    /// them on every save (`switchyard dev`).
    pub rebuild: bool,
    /// Plugin worker threads (`None`: one per core, and one more).
    pub workers: Option<usize>,
    /// Counters to share with the caller (benchmarks, embedding); `None`
    /// makes fresh ones.
    pub stats: Option<Arc<Stats>>,
    /// Shadow versions to attach at the start: (plugin, wasm file)
    /// (`switchyard dev --shadow name=file.wasm`; see [`crate::shadow`]).
    pub shadows: Vec<(String, PathBuf)>,
}

/// Runs the router until `shutdown` resolves; returns an error when it
/// cannot start, or stops for a reason other than `shutdown` (refused
/// credentials, a partition worker that panicked). It drains in every case.
pub async fn run(
    config: RouterConfig,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut service = Service::build(config, options).await?;
    let consumed = service.consume(shutdown).await;
    service.drain().await;
    consumed
}
