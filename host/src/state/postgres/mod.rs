//! Plugin state in PostgreSQL, shared by every router instance of a consumer
//! group (`--state-url postgres://...`).
//!
//! Kafka's consumer group spreads the partitions over the instances; this
//! store is what they share. It keeps the [`StateStore`] contract of the redb
//! store, and the plugin versions ([`VersionStore`](crate::state::VersionStore)).
//!
//! # Transactions
//!
//! One [`StateStore::commit`] is one `SERIALIZABLE` transaction, whatever
//! the number of partitions and records in it, in five statements at most
//! (seven when it changes timers). It reads ahead in two: the processed
//! marks of every event in it, and every value any call read (one query
//! each, not one per key). Then it runs the commit check every store shares,
//! record by record and in order, in memory against what it read; and writes
//! the plan in three: upsert the writes, delete the deletes, insert the
//! processed marks with their outputs; and, only when the plan changes
//! timers, two more: upsert the timers set, delete those cancelled or fired
//! (a firing only where the due time still matches). A record whose reads
//! no longer hold, or whose event is already marked, cuts its partition's
//! batch there, exactly as in redb.
//!
//! Two instances committing at once cannot both pass a check on the same
//! value: PostgreSQL aborts one of them with a serialization failure (or a
//! unique violation on the processed mark), and that transaction is run
//! again from the start, where its checks now see the winner's writes. This
//! covers reads of absent keys too (`SERIALIZABLE` keeps predicate locks),
//! which row locks alone would not. A global counter therefore stays
//! gapless across instances, and an event redelivered to another instance
//! after a rebalance or a crash finds its mark and its stored outputs.
//!
//! # The processed-id window
//!
//! Each plugin keeps the marks of its newest `keep` events (by commit
//! order), pruned a tenth of `keep` at a time, inline on the commit thread
//! right after the commit that crossed the step, in a statement of its own
//! (not in the background; a failed prune is logged and tried again at the
//! next step), so at most `keep + keep / 10` are kept. An event redelivered after its mark was
//! pruned runs again as a new event: on current state, with outputs that
//! may differ from the first run. Size `[state] keep_processed` so that it
//! covers the longest redelivery you expect (a consumer group's lag after an
//! outage), per plugin.
//!
//! # Timers
//!
//! Timers live in `switchyard_timers`, keyed by (plugin, name), with an
//! index on (topic, partition, due time, plugin, name): the due timers of a
//! partition and its next due time are range scans of that index (plugin
//! and name compared as bytes, so the order is the other stores' order).
//! The per-plugin counts for metrics aggregate the table (`GROUP BY`).
//!
//! # Threads
//!
//! The store is called from plain threads (plugin workers, the committer)
//! and from the async runtime. It runs its connections on a runtime of its
//! own, on one thread, and every call waits for its answer there.

mod commit;
mod schema;
mod versions;

use super::{DueTimer, RecordEffects, StateError, StateRead, StateStore, Timer};
use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

/// Plugin state and versions in a PostgreSQL database.
pub struct PgStore {
    pool: Pool,
    runtime: tokio::runtime::Handle,
    _stop: tokio::sync::oneshot::Sender<()>,
    keep: i64,
    /// New marks per plugin since its last prune.
    unpruned: Mutex<HashMap<String, i64>>,
    /// The URL without its password, for messages.
    shown: String,
}

/// `url` with its password, if any, replaced by `***`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// PostgreSQL did not answer (down, restarting, unreachable): a transient
/// failure to wait out.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot reach PostgreSQL: {0}")]
pub struct Unreachable(String);

impl Unreachable {
    /// PostgreSQL did not answer, for the reason `why`.
    pub(crate) fn new(why: impl std::fmt::Display) -> Self {
        Unreachable(why.to_string())
    }
}

impl PgStore {
    /// Connects to `url` with a pool of at most `connections`, runs the
    /// migrations, and remembers the last `keep` processed event ids of each
    /// plugin.
    pub fn connect(url: &str, connections: usize, keep: u64) -> anyhow::Result<Self> {
        let shown = redact(url);
        let config: tokio_postgres::Config = url.parse().with_context(|| {
            format!(
                "{shown}: not a PostgreSQL URL; use postgres://user[:password]@host[:port]/database"
            )
        })?;
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("switchyard-pg".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the PostgreSQL runtime");
                let _ = handle_tx.send(runtime.handle().clone());
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })?;
        let runtime = handle_rx
            .recv()
            .context("the PostgreSQL runtime did not start")?;
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(connections.max(2))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(5)))
            .wait_timeout(Some(Duration::from_secs(30)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .context("the PostgreSQL connection pool")?;
        let store = PgStore {
            pool,
            runtime,
            _stop: stop,
            keep: keep.clamp(1, i64::MAX as u64) as i64,
            unpruned: Mutex::default(),
            shown,
        };
        store.migrate().with_context(|| {
            format!(
                "{}: cannot set up the state store; check that PostgreSQL runs there and the \
                 user may create tables",
                store.shown
            )
        })?;
        Ok(store)
    }

    /// Runs `work` on the store's runtime and waits for it.
    fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = anyhow::Result<T>> + Send + 'static,
    ) -> anyhow::Result<T> {
        let task = self.runtime.spawn(work);
        futures::executor::block_on(task).context("the PostgreSQL task stopped")?
    }

    async fn client(pool: &Pool) -> anyhow::Result<deadpool_postgres::Client> {
        use deadpool_postgres::PoolError;
        pool.get().await.map_err(|e| match e {
            // The server answered and refused (a wrong password, a missing
            // database): a setup error, said as it is.
            PoolError::Backend(e) if e.code().is_some() => anyhow::Error::new(e),
            e => anyhow::Error::new(Unreachable::new(e)),
        })
    }

    /// Whether the database answers, for `/readyz`.
    pub(crate) fn ping(&self) -> anyhow::Result<()> {
        let pool = self.pool.clone();
        self.run(async move {
            Self::client(&pool).await?.simple_query("SELECT 1").await?;
            Ok(())
        })
    }
}

impl StateRead for PgStore {
    fn get(&self, plugin: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let (pool, plugin, key) = (self.pool.clone(), plugin.to_string(), key.to_string());
        self.run(async move {
            let client = Self::client(&pool).await?;
            let statement = client
                .prepare_cached("SELECT value FROM switchyard_state WHERE plugin = $1 AND key = $2")
                .await?;
            let row = client.query_opt(&statement, &[&plugin, &key]).await?;
            Ok(row.map(|r| r.get(0)))
        })
    }
}

impl StateStore for PgStore {
    fn commit(&self, batches: &[&[RecordEffects]]) -> Result<Vec<usize>, StateError> {
        Ok(self.commit_batches(batches)?)
    }

    fn processed(&self, plugin: &str, event_id: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let (pool, plugin, id) = (self.pool.clone(), plugin.to_string(), event_id.to_string());
        self.run(async move {
            let client = Self::client(&pool).await?;
            let statement = client
                .prepare_cached(
                    "SELECT outputs FROM switchyard_processed WHERE plugin = $1 AND event_id = $2",
                )
                .await?;
            let row = client.query_opt(&statement, &[&plugin, &id]).await?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn snapshot(&self, plugin: &str) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
        let (pool, plugin) = (self.pool.clone(), plugin.to_string());
        self.run(async move {
            let rows = Self::client(&pool)
                .await?
                .query(
                    "SELECT key, value FROM switchyard_state WHERE plugin = $1",
                    &[&plugin],
                )
                .await?;
            Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn processed_many(
        &self,
        keys: &[(String, String)],
    ) -> anyhow::Result<HashMap<(String, String), Vec<u8>>> {
        let (plugins, ids): (Vec<String>, Vec<String>) = keys.iter().cloned().unzip();
        let pool = self.pool.clone();
        self.run(async move {
            let client = Self::client(&pool).await?;
            let statement = client
                .prepare_cached(
                    "SELECT p.plugin, p.event_id, p.outputs FROM switchyard_processed p \
                     JOIN unnest($1::text[], $2::text[]) AS i(plugin, event_id) \
                     USING (plugin, event_id)",
                )
                .await?;
            let rows = client.query(&statement, &[&plugins, &ids]).await?;
            Ok(rows
                .into_iter()
                .map(|r| ((r.get(0), r.get(1)), r.get(2)))
                .collect())
        })
    }

    fn due_timers(
        &self,
        partition: &(String, i32),
        until_ms: i64,
        limit: usize,
    ) -> anyhow::Result<Vec<DueTimer>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (pool, (topic, partition)) = (self.pool.clone(), partition.clone());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(async move {
            let client = Self::client(&pool).await?;
            let statement = client
                .prepare_cached(
                    "SELECT plugin, name, due_ms, payload, topic, partition, context \
                     FROM switchyard_timers \
                     WHERE topic = $1 AND partition = $2 AND due_ms <= $3 \
                     ORDER BY due_ms, plugin COLLATE \"C\", name COLLATE \"C\" LIMIT $4",
                )
                .await?;
            let rows = client
                .query(&statement, &[&topic, &partition, &until_ms, &limit])
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| DueTimer {
                    plugin: r.get(0),
                    name: r.get(1),
                    timer: Timer {
                        due_ms: r.get(2),
                        payload: r.get(3),
                        topic: r.get(4),
                        partition: r.get(5),
                        context: r.get(6),
                    },
                })
                .collect())
        })
    }

    fn next_due(&self, partition: &(String, i32)) -> anyhow::Result<Option<i64>> {
        let (pool, (topic, partition)) = (self.pool.clone(), partition.clone());
        self.run(async move {
            let client = Self::client(&pool).await?;
            let statement = client
                .prepare_cached(
                    "SELECT due_ms FROM switchyard_timers \
                     WHERE topic = $1 AND partition = $2 ORDER BY due_ms LIMIT 1",
                )
                .await?;
            let row = client.query_opt(&statement, &[&topic, &partition]).await?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn pending_timers(&self) -> anyhow::Result<BTreeMap<String, (u64, Option<i64>)>> {
        let pool = self.pool.clone();
        self.run(async move {
            let rows = Self::client(&pool)
                .await?
                .query(
                    "SELECT plugin, count(*), min(due_ms) FROM switchyard_timers GROUP BY plugin",
                    &[],
                )
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    let count: i64 = r.get(1);
                    (r.get(0), (count.max(0) as u64, r.get(2)))
                })
                .collect())
        })
    }

    fn health(&self) -> anyhow::Result<()> {
        self.ping()
    }

    fn describe(&self) -> String {
        format!("PostgreSQL at {}", self.shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact("host=db user=app"), "host=db user=app");
    }
}
