//! Step one: wire config, engine, state, plugins, the admin API, the Kafka
//! clients, transactions and the worker pool together.

use super::RunOptions;
use super::tasks::{health_task, sampler_task, summary_task, timers_task};
use crate::admin::{self, AdminState};
use crate::committer::Committer;
use crate::config::{Guarantee, RouterConfig};
use crate::engine::{Engine, EngineOptions};
use crate::kafka::source::{Partition, Source};
use crate::kafka::{self, sink::Sink, txn, txn::Transactions};
use crate::metrics::Metrics;
use crate::partition::{PartitionQueue, Shared};
use crate::pool::WorkerPool;
use crate::registry::PluginRegistry;
use crate::reload::Reloader;
use crate::router::Router;
use crate::state::{DiskStore, PgStore, StateStore, Unreachable, VersionStore};
use anyhow::Context;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

/// A built router: everything [`Service::consume`] and [`Service::drain`]
/// use.
pub(super) struct Service {
    pub(super) config: RouterConfig,
    pub(super) brokers: String,
    pub(super) source: Arc<Source>,
    pub(super) sink: Arc<Sink>,
    pub(super) txn: Option<Arc<Transactions>>,
    /// Partitions to seek back after an aborted transaction.
    pub(super) rewinds: Option<mpsc::UnboundedReceiver<Vec<Partition>>>,
    pub(super) shared: Arc<Shared>,
    pub(super) pool: Arc<WorkerPool>,
    /// Each live partition's queue.
    pub(super) partitions: HashMap<Partition, PartitionQueue>,
    /// The partition workers, and which partition each task serves.
    pub(super) workers: JoinSet<()>,
    pub(super) worker_of: HashMap<tokio::task::Id, Partition>,
    pub(super) stop_workers: watch::Sender<bool>,
    pub(super) stop_txn: watch::Sender<bool>,
    pub(super) txn_task: Option<JoinHandle<()>>,
    /// Health, summary and flow sampling.
    pub(super) background: Vec<JoinHandle<()>>,
    pub(super) stop_admin: Option<oneshot::Sender<()>>,
    pub(super) admin_task: Option<JoinHandle<std::io::Result<()>>>,
    /// File and source watchers, kept alive while the router runs.
    _watchers: (
        Option<notify::RecommendedWatcher>,
        Option<notify::RecommendedWatcher>,
    ),
}

impl Service {
    /// Builds the router: loads the plugins, opens the state store (waiting
    /// while PostgreSQL is unreachable), serves the admin API, creates the
    /// configured topics, joins the consumer group and, with exactly-once,
    /// initialises the transactional producer.
    pub(super) async fn build(config: RouterConfig, options: RunOptions) -> anyhow::Result<Self> {
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
        let names: Vec<String> = config.plugins.iter().map(|p| p.name.clone()).collect();
        metrics.declare(&config.input_topics(), &names);
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
        for (name, path) in &options.shadows {
            let wasm = std::fs::read(path)
                .with_context(|| format!("{}: cannot read the shadow version", path.display()))?;
            reloader
                .shadow(name, &wasm, &path.display().to_string())
                .map_err(|e| anyhow::anyhow!("--shadow {name}={}: {e}", path.display()))?;
        }
        reloader.follow()?;
        let watchers = (
            match options.watch {
                true => Some(reloader.watch(options.rebuild)?),
                false => None,
            },
            match options.rebuild {
                true => crate::rebuild::watch(reloader.clone())?,
                false => None,
            },
        );
        let router = Arc::new(Router::new(
            registry,
            config.exclude.clone(),
            config.max_hops,
            config.kafka.max_record_bytes,
        ));
        let stats = options.stats.clone().unwrap_or_default();
        let flows = Arc::new(crate::flows::Flows::default());
        let client = kafka::client_config(&options.brokers, &config.kafka.client);
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
        let (stop_admin, admin_task) = match options.admin {
            Some(addr) => {
                let (stop, stopped) = oneshot::channel::<()>();
                let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
                    format!("cannot serve the admin API on {addr}; pass another --admin address")
                })?;
                tracing::info!(target: "switchyard::service", "admin: http://{}", listener.local_addr()?);
                let serving = admin::serve(listener, admin_state.clone(), async {
                    let _ = stopped.await;
                });
                (Some(stop), Some(tokio::spawn(serving)))
            }
            None => (None, None),
        };
        let exactly_once = config.kafka.guarantee == Guarantee::ExactlyOnce;
        let transactional_id = exactly_once
            .then(|| txn::transactional_id(&options.group, options.instance_id.as_deref()));
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
                "cannot create topics at {}: {}; running on (the broker may create them on first \
                 use; create them yourself or pass --no-create-topics)",
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
        let (stop_workers, shutdown_rx) = watch::channel(false);
        let (txn, rewinds) = if exactly_once {
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
        let (stop_txn, txn_stopped) = watch::channel(false);
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
        tracing::info!(brokers = %options.brokers, group = %options.group,
            plugins = config.plugins.len(), workers, "router started");
        let background = vec![
            summary_task(stats, options.summary_every),
            sampler_task(flows),
            health_task(admin_state, shared.clone(), source.clone()),
            timers_task(shared.clone()),
        ];
        Ok(Service {
            config,
            brokers: options.brokers,
            source,
            sink,
            txn,
            rewinds,
            shared,
            pool,
            partitions: HashMap::new(),
            workers: JoinSet::new(),
            worker_of: HashMap::new(),
            stop_workers,
            stop_txn,
            txn_task,
            background,
            stop_admin,
            admin_task,
            _watchers: watchers,
        })
    }

    /// Queues `record` on its partition's worker (`key`), starting one when
    /// the partition has none (or its worker ended with its lease).
    pub(super) fn dispatch(&mut self, key: Partition, record: crate::event::Record) {
        self.worker(&key);
        self.partitions[&key].push(record, self.source.as_ref(), &self.config.kafka);
    }

    /// Starts a worker for every partition this instance owns that has
    /// none, records or not: a worker also fires its partition's timers,
    /// which must not wait for the partition's next record (after a restart
    /// or a rebalance, there may be none).
    pub(super) fn adopt_assigned(&mut self) {
        for key in self.source.state().owned() {
            if !self.source.state().rewinding(&key) {
                self.worker(&key);
            }
        }
    }

    /// Starts a worker for `key` unless it has a live one.
    fn worker(&mut self, key: &Partition) {
        let live = self.partitions.get(key).is_some_and(PartitionQueue::live);
        if !live {
            let key = key.clone();
            let lease = self.source.lease(&key);
            let (queue, task) =
                PartitionQueue::start(self.shared.clone(), key.clone(), lease, &mut self.workers);
            self.worker_of.insert(task, key.clone());
            self.partitions.insert(key, queue);
        }
    }
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
        let store = Arc::new(DiskStore::open_with_cache(
            &options.state_dir.join("state.redb"),
            keep,
            config.state.cache_mib,
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
