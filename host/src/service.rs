//! The router as a service: wires config, engine, state, source, partition
//! workers and sink together, and shuts down in bounded time.
//!
//! The consumer loop only reads records and hands each to its partition's
//! queue ([`PartitionQueue`]); it never waits on a partition. A full queue
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

use crate::admin::{self, AdminState};
use crate::committer::Committer;
use crate::config::Guarantee;
use crate::config::RouterConfig;
use crate::engine::{Engine, EngineOptions};
use crate::kafka::{self, sink::Sink, source::Source, txn, txn::Transactions};
use crate::metrics::Metrics;
use crate::partition::{PartitionQueue, Shared, Stats};
use crate::pool::WorkerPool;
use crate::registry::PluginRegistry;
use crate::reload::Reloader;
use crate::router::Router;
use crate::state::{DiskStore, PgStore, StateStore, Unreachable, VersionStore};
use anyhow::Context;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
    /// timeout before moving. Each live instance needs its own id.
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
    /// Plugin worker threads (`None`: one per core).
    pub workers: Option<usize>,
    /// Counters to share with the caller (benchmarks, embedding); `None`
    /// makes fresh ones.
    pub stats: Option<Arc<Stats>>,
}

/// Runs the router until `shutdown` resolves.
pub async fn run(
    config: RouterConfig,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let workers = options.workers.unwrap_or_else(WorkerPool::default_size);
    let mut engine_options = EngineOptions::default();
    if options.cache_dir.is_some() {
        engine_options.cache_dir = options.cache_dir.clone();
    }
    // One warm instance per worker and plugin, plus room for reload checks.
    engine_options.pool_size = engine_options
        .pool_size
        .max((workers * config.plugins.len() * 2 + 32) as u32);
    let engine = Arc::new(Engine::new(engine_options)?);
    let registry = Arc::new(PluginRegistry::load(&engine, &config, None)?);
    let (store, versions) = open_store(&config, &options, workers).await?;
    tracing::info!(target: "switchyard::service", "state: {}", store.describe());
    let metrics = Arc::new(Metrics::new(&options.group));
    metrics.declare(
        &config.input_topics(),
        &config
            .plugins
            .iter()
            .map(|p| p.name.clone())
            .collect::<Vec<_>>(),
    );
    metrics.label_topics_of(&config.plugins);
    let reloader = Arc::new(
        Reloader::new(
            engine.clone(),
            registry.clone(),
            config.clone(),
            metrics.clone(),
        )
        .with_versions(versions),
    );
    {
        let reloader = reloader.clone();
        tokio::task::spawn_blocking(move || reloader.adopt())
            .await?
            .context("applying the plugin versions kept in the state store")?;
    }
    reloader.follow()?;
    let _watcher = if options.watch {
        Some(reloader.watch(options.rebuild)?)
    } else {
        None
    };
    let _source_watcher = if options.rebuild {
        crate::rebuild::watch(reloader.clone())?
    } else {
        None
    };
    let router = Arc::new(Router::new(
        registry,
        config.exclude.clone(),
        config.max_hops,
        config.kafka.max_record_bytes,
    ));
    let stats = options.stats.clone().unwrap_or_default();
    let flows = Arc::new(crate::flows::Flows::default());
    let client = kafka::client_config(&options.brokers, &config.kafka.client);
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_state = Arc::new(AdminState {
        reloader,
        metrics: metrics.clone(),
        stats: stats.clone(),
        token: admin::token(config.admin.token.as_deref()),
        ready: AtomicBool::new(false),
        flows: flows.clone(),
        kafka: Some(client.clone()),
        dlq_cache: Default::default(),
        store: store.describe(),
        waiting: Default::default(),
        source: Default::default(),
    });
    let admin_task = match options.admin {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
                format!("cannot serve the admin API on {addr}; pass another --admin address")
            })?;
            tracing::info!(target: "switchyard::service", "admin: http://{}", listener.local_addr()?);
            Some(tokio::spawn(admin::serve(
                listener,
                admin_state.clone(),
                async {
                    let _ = admin_stopped.await;
                },
            )))
        }
        None => None,
    };
    let exactly_once = config.kafka.guarantee == Guarantee::ExactlyOnce;
    let transactional_id =
        exactly_once.then(|| txn::transactional_id(&options.group, options.instance_id.as_deref()));
    let sink = Arc::new(Sink::new(
        &client,
        options.create_topics,
        &config.kafka,
        transactional_id.as_deref(),
    )?);
    let failed = sink
        .ensure_topics(&config.topics_to_create(), &config.kafka)
        .await;
    if !failed.is_empty() {
        tracing::warn!(
            "cannot create topics at {}: {}; running on (the broker may create them on first use; \
             create them yourself or pass --no-create-topics)",
            options.brokers,
            failed.join(", ")
        );
    }
    let source = Arc::new(Source::new(
        client,
        &options.group,
        options.instance_id.as_deref(),
        &config.kafka.client,
        Some(metrics.clone()),
        exactly_once,
        config.exclude.patterns(),
    )?);
    let _ = admin_state.source.set(source.state().clone());
    let (stop_workers, shutdown_rx) = tokio::sync::watch::channel(false);
    let (txn, mut rewinds) = if exactly_once {
        let (txn, rewinds) = Transactions::start(
            sink.clone(),
            source.clone(),
            Duration::from_millis(config.kafka.transaction_interval_ms),
            Duration::from_millis(config.kafka.transaction_timeout_ms),
        )
        .await?;
        tracing::info!(target: "switchyard::service", id = transactional_id.as_deref().unwrap_or_default(),
            "exactly-once: a Kafka transaction every {} ms", config.kafka.transaction_interval_ms);
        (Some(txn), Some(rewinds))
    } else {
        (None, None)
    };
    let (stop_txn, txn_stopped) = tokio::sync::watch::channel(false);
    let txn_task = txn.clone().map(|t| tokio::spawn(t.run(txn_stopped)));
    let pool = Arc::new(WorkerPool::new(engine, workers)?);
    let shared = Arc::new(Shared {
        router,
        pool: pool.clone(),
        store: store.clone(),
        committer: Arc::new(Committer::new(store, metrics.clone())?),
        sink: sink.clone(),
        source: source.clone(),
        txn: txn.clone(),
        kafka: config.kafka.clone(),
        stats: stats.clone(),
        metrics,
        flows: flows.clone(),
        store_failing: Default::default(),
        shutdown: shutdown_rx,
    });
    admin_state.ready.store(true, Ordering::Relaxed);
    tracing::info!(brokers = %options.brokers, group = %options.group, plugins = config.plugins.len(), workers, "router started");

    let mut partitions: HashMap<(String, i32), PartitionQueue> = HashMap::new();
    let mut tasks = Vec::new();
    let summary = summary_task(stats, options.summary_every);
    let sampler = tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::flows::SAMPLE_EVERY);
        loop {
            tick.tick().await;
            flows.sample();
        }
    });
    let health = health_task(admin_state.clone(), shared.clone());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            why = source.state().authentication_failed() => {
                anyhow::bail!(
                    "{}: the Kafka brokers at {} refused the credentials ({why}); fix \
                     `sasl.username` and `sasl.password` (and `sasl.mechanism`, \
                     `security.protocol`) under `[kafka.client]`",
                    config.path.display(),
                    options.brokers
                );
            }
            Some(rewound) = txn::next_rewind(&mut rewinds) => {
                for p in &rewound {
                    partitions.remove(p);
                }
                let source = source.clone();
                let parts = rewound.clone();
                let result = tokio::task::spawn_blocking(move || source.rewind(&parts))
                    .await
                    .map_err(anyhow::Error::from)
                    .and_then(|rewound| rewound);
                match (result, &txn) {
                    (Ok(()), _) => tracing::info!("{} partition(s) rewound to their committed offsets", rewound.len()),
                    (Err(e), Some(txn)) => {
                        tracing::warn!("rewinding after an aborted transaction: {e:#}; retrying");
                        txn.rewind_later(rewound);
                    }
                    (Err(e), None) => tracing::error!("rewinding: {e:#}"),
                }
            }
            next = source.next() => {
                let record = match next {
                    Ok(record) => record,
                    Err(e) => {
                        tracing::warn!("consumer: {e}");
                        continue;
                    }
                };
                let key = (record.topic.clone(), record.partition);
                if source.state().rewinding(&key) {
                    // Fetched before the rewind: it comes again from the
                    // committed offset.
                    continue;
                }
                let queue = match partitions.get(&key) {
                    Some(queue) if queue.live() => queue,
                    _ => {
                        let lease = source.lease(&key);
                        let (queue, task) = PartitionQueue::start(shared.clone(), key.clone(), lease);
                        tasks.push(task);
                        tasks.retain(|t| !t.is_finished());
                        partitions.entry(key).insert_entry(queue).into_mut()
                    }
                };
                queue.push(record, &source, config.kafka.queue_records);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_millis(config.kafka.drain_timeout_ms);
    tracing::info!("draining {} partition worker(s)", partitions.len());
    let _ = stop_workers.send(true);
    drop(partitions);
    let drained = tokio::time::timeout_at(deadline.into(), futures::future::join_all(tasks)).await;
    if drained.is_err() {
        tracing::warn!("drain timed out; unfinished records will be redelivered");
    }
    let _ = stop_txn.send(true);
    if let Some(task) = txn_task {
        let _ = task.await;
    }
    if let Some(txn) = &txn
        && tokio::time::timeout_at(deadline.into(), txn.commit())
            .await
            .is_err()
    {
        tracing::warn!(
            "the last transaction did not commit in time; its records will be redelivered"
        );
    }
    drop(txn);
    summary.abort();
    sampler.abort();
    health.abort();
    let _ = health.await;
    pool.stop();
    // The consumer and producer close when their last reference goes, which
    // must be in the blocking task below, after the final commit.
    drop(shared);
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1));
    let closing = tokio::task::spawn_blocking(move || {
        if let Err(e) = source.commit() {
            tracing::warn!("final offset commit: {e:#}");
        }
        sink.flush(left);
        // Leaving the group and closing the clients can block while the
        // broker is gone; it runs here so that it cannot hold the exit.
        drop(source);
        drop(sink);
    });
    if tokio::time::timeout(left, closing).await.is_err() {
        tracing::warn!("the Kafka clients did not close in time; exiting anyway");
    }
    let _ = stop_admin.send(());
    if let Some(task) = admin_task {
        let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
    }
    tracing::info!("router stopped");
    Ok(())
}

/// Opens the state store the options and config name: PostgreSQL when a
/// URL is given (waiting while it is unreachable), else redb in the state
/// folder. It also keeps the plugin versions.
async fn open_store(
    config: &RouterConfig,
    options: &RunOptions,
    workers: usize,
) -> anyhow::Result<(Arc<dyn StateStore>, Arc<dyn VersionStore>)> {
    let keep = config.state.keep_processed;
    let Some(url) = options.state_url.clone().or(config.state.url.clone()) else {
        let store = Arc::new(DiskStore::open(
            &options.state_dir.join("state.redb"),
            keep,
        )?);
        return Ok((store.clone(), store));
    };
    let mut warned = false;
    loop {
        let url = url.clone();
        let connecting =
            tokio::task::spawn_blocking(move || PgStore::connect(&url, workers + 4, keep)).await?;
        match connecting {
            Ok(store) => {
                let store = Arc::new(store);
                return Ok((store.clone(), store));
            }
            Err(e) if e.chain().any(|c| c.is::<Unreachable>()) => {
                if !warned {
                    tracing::warn!("state store: {e:#}; waiting for it");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Keeps `/readyz` in step with the brokers and the state store.
fn health_task(admin: Arc<AdminState>, shared: Arc<Shared>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut ping: Option<tokio::task::JoinHandle<anyhow::Result<()>>> = None;
        let mut unhealthy: Option<String> = None;
        loop {
            tick.tick().await;
            // Ask the store whether it answers, one question at a time.
            if ping.as_ref().is_none_or(|p| p.is_finished()) {
                if let Some(done) = ping.take() {
                    unhealthy = match done.await {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(format!("{e:#}")),
                        Err(e) => Some(e.to_string()),
                    };
                }
                let store = shared.store.clone();
                ping = Some(tokio::task::spawn_blocking(move || store.health()));
            }
            let store = shared
                .store_failing
                .lock()
                .expect("store lock")
                .clone()
                .or(unhealthy.clone());
            let why = if shared.source.state().broker_down() {
                Some("the Kafka brokers are unreachable".to_string())
            } else {
                store.map(|e| format!("the state store fails: {e}"))
            };
            *admin.waiting.lock().expect("waiting lock") = why;
        }
    })
}

fn summary_task(stats: Arc<Stats>, every: Option<Duration>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(every) = every else { return };
        let mut last = 0;
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let records = stats.records.load(Ordering::Relaxed);
            tracing::info!(
                target: "switchyard::summary",
                "{records} records ({:.1}/s), {} emitted, {} errors, {} dead letters",
                (records - last) as f64 / every.as_secs_f64(),
                stats.emitted.load(Ordering::Relaxed),
                stats.errors.load(Ordering::Relaxed),
                stats.dead_letters.load(Ordering::Relaxed),
            );
            last = records;
        }
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn signals() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested");
}
