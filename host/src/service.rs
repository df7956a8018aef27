//! The router as a service: wires config, engine, state, source, pipeline
//! and sink together, runs one task per partition (in order within a
//! partition, in parallel across partitions), and drains on shutdown.
//!
//! Shutdown (the `shutdown` future resolving, e.g. on SIGINT or SIGTERM):
//! stop reading, let every partition task finish the records it was given,
//! store their offsets, commit synchronously, flush the producer. Nothing is
//! lost and nothing is handled twice after a restart.

use crate::admin::{self, AdminState};
use crate::config::RouterConfig;
use crate::engine::{Engine, EngineOptions};
use crate::kafka::{self, sink::Sink, source::Source};
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, Stats};
use crate::registry::PluginRegistry;
use crate::reload::Reloader;
use crate::router::Router;
use crate::state::DiskStore;
use anyhow::Context;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

/// How to run the router.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// The consumer group.
    pub group: String,
    /// The folder of the state store.
    pub state_dir: PathBuf,
    /// Where compiled plugins are cached.
    pub cache_dir: Option<PathBuf>,
    /// How often to log a one-line summary (`None`: never).
    pub summary_every: Option<Duration>,
    /// Whether to create missing topics through the admin API (off for the
    /// embedded broker, which has none and auto-creates instead).
    pub create_topics: bool,
    /// Where to serve the admin API (`None`: not at all).
    pub admin: Option<std::net::SocketAddr>,
    /// Whether to watch plugin files and hot-reload them.
    pub watch: bool,
}

/// Runs the router until `shutdown` resolves or a fatal error occurs.
pub async fn run(
    config: RouterConfig,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut engine_options = EngineOptions::default();
    if options.cache_dir.is_some() {
        engine_options.cache_dir = options.cache_dir.clone();
    }
    let engine = Arc::new(Engine::new(engine_options)?);
    let registry = Arc::new(PluginRegistry::load(&engine, &config, None)?);
    let store = Arc::new(DiskStore::open(
        &options.state_dir.join("state.redb"),
        100_000,
    )?);
    let metrics = Arc::new(Metrics::new(&options.group));
    let reloader = Arc::new(Reloader::new(
        engine.clone(),
        registry.clone(),
        config.clone(),
        metrics.clone(),
    ));
    let _watcher = if options.watch {
        Some(reloader.watch()?)
    } else {
        None
    };
    let router = Arc::new(Router::new(engine, registry, store, config.max_hops));
    let stats = Arc::new(Stats::default());
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_state = Arc::new(AdminState {
        reloader,
        metrics: metrics.clone(),
        stats: stats.clone(),
        token: std::env::var("SWITCHYARD_ADMIN_TOKEN")
            .ok()
            .or_else(|| config.admin.token.clone()),
        ready: AtomicBool::new(false),
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
    let client = kafka::client_config(&options.brokers, &config.kafka.client);
    let sink = Arc::new(Sink::new(&client, options.create_topics)?);
    sink.ensure_topics(&config.topics_to_create(), &config.kafka)
        .await
        .with_context(|| format!("cannot reach Kafka at {} to create topics", options.brokers))?;
    let source = Arc::new(Source::new(client, &options.group, Some(metrics.clone()))?);
    let pipeline = Arc::new(Pipeline::new(
        router,
        sink.clone(),
        config.kafka.clone(),
        config.exclude.clone(),
        stats.clone(),
        metrics,
    ));
    admin_state.ready.store(true, Ordering::Relaxed);
    tracing::info!(brokers = %options.brokers, group = %options.group, plugins = config.plugins.len(), "router started");

    let (fatal_tx, mut fatal_rx) = mpsc::channel::<anyhow::Error>(1);
    let mut partitions: HashMap<(String, i32), mpsc::Sender<crate::event::Record>> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let summary = summary_task(stats, options.summary_every);
    tokio::pin!(shutdown);
    let outcome = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            Some(e) = fatal_rx.recv() => break Err(e),
            next = source.next() => {
                let record = match next {
                    Ok(record) => record,
                    Err(e) => {
                        tracing::warn!("consumer: {e:#}");
                        continue;
                    }
                };
                let key = (record.topic.clone(), record.partition);
                let sender = partitions.entry(key).or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(256);
                    tasks.spawn(partition_task(rx, pipeline.clone(), source.clone(), fatal_tx.clone()));
                    tx
                });
                if sender.send(record).await.is_err() {
                    // The task stopped after a fatal error; the error arrives on fatal_rx.
                    continue;
                }
            }
        }
    };
    tracing::info!("draining {} partition task(s)", partitions.len());
    drop(partitions);
    while tasks.join_next().await.is_some() {}
    summary.abort();
    source.commit().context("final offset commit")?;
    sink.flush();
    let _ = stop_admin.send(());
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    tracing::info!("router stopped");
    outcome
}

/// Handles one partition's records in order; stops at the first fatal error
/// without storing that record's offset.
async fn partition_task(
    mut rx: mpsc::Receiver<crate::event::Record>,
    pipeline: Arc<Pipeline>,
    source: Arc<Source>,
    fatal: mpsc::Sender<anyhow::Error>,
) {
    while let Some(record) = rx.recv().await {
        match pipeline.handle(&record).await {
            Ok(()) => source.ack(&record),
            Err(e) => {
                source.inflight().end(&record.topic, record.partition);
                let _ = fatal
                    .send(e.context(format!(
                        "{}[{}]@{}",
                        record.topic, record.partition, record.offset
                    )))
                    .await;
                while let Some(r) = rx.recv().await {
                    source.inflight().end(&r.topic, r.partition);
                }
                return;
            }
        }
    }
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
