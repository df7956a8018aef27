//! Plugin state in PostgreSQL, shared by every router instance of a consumer
//! group (`--state-url postgres://...`).
//!
//! Kafka's consumer group spreads the partitions over the instances; this
//! store is what they share. It keeps the [`StateStore`] contract of the redb
//! store, and the plugin versions ([`VersionStore`]).
//!
//! # Transactions
//!
//! One [`StateStore::commit`] is one `SERIALIZABLE` transaction, whatever
//! the number of partitions and records in it, in five round trips: fetch
//! the processed marks of every event in it, fetch every value any call
//! read, then (after the checks, made record by record in memory, in order)
//! upsert the writes, delete the deletes and insert the processed marks with
//! their outputs. A record whose reads no longer hold, or whose event is
//! already marked, cuts its partition's batch there, exactly as in redb.
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
//! after the commit that crossed the step (not in the background), so at most
//! `keep + keep / 10` are kept. An event redelivered after its mark was
//! pruned runs again as a new event: on current state, with outputs that
//! may differ from the first run. Size `[state] keep_processed` so that it
//! covers the longest redelivery you expect (a consumer group's lag after an
//! outage), per plugin.
//!
//! # Threads
//!
//! The store is called from plain threads (plugin workers, the committer)
//! and from the async runtime. It runs its connections on a runtime of its
//! own, on one thread, and every call waits for its answer there.

use super::{LiveVersion, RecordEffects, StateRead, StateStore, VersionStore};
use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio_postgres::error::SqlState;

/// How often one commit is run again after a serialization failure before
/// the store reports an error (the partition then waits and retries).
const MAX_ATTEMPTS: u32 = 64;

/// The schema, one migration per entry; applied in order, once each.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE switchyard_state (
    plugin text NOT NULL,
    key text NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (plugin, key)
);
CREATE TABLE switchyard_processed (
    plugin text NOT NULL,
    event_id text NOT NULL,
    outputs bytea NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (plugin, event_id)
);
CREATE INDEX switchyard_processed_order ON switchyard_processed (plugin, seq);
CREATE TABLE switchyard_wasm (
    hash text PRIMARY KEY,
    wasm bytea NOT NULL
);
CREATE TABLE switchyard_plugins (
    plugin text PRIMARY KEY,
    hash text NOT NULL,
    origin text NOT NULL,
    paused boolean NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
"#];

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
#[derive(Debug, thiserror::Error)]
#[error("cannot reach PostgreSQL: {0}")]
pub struct Unreachable(String);

fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(&SqlState::T_R_SERIALIZATION_FAILURE)
            | Some(&SqlState::T_R_DEADLOCK_DETECTED)
            | Some(&SqlState::UNIQUE_VIOLATION)
    )
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
            e => anyhow::Error::new(Unreachable(e.to_string())),
        })
    }

    fn migrate(&self) -> anyhow::Result<()> {
        let pool = self.pool.clone();
        self.run(async move {
            let mut client = Self::client(&pool).await?;
            let txn = client.transaction().await?;
            // One instance migrates at a time; the others then see it done.
            txn.execute("SELECT pg_advisory_xact_lock(7355608001)", &[])
                .await?;
            txn.batch_execute(
                "CREATE TABLE IF NOT EXISTS switchyard_schema (version integer PRIMARY KEY)",
            )
            .await?;
            let done: i32 = txn
                .query_one(
                    "SELECT coalesce(max(version), 0) FROM switchyard_schema",
                    &[],
                )
                .await?
                .get(0);
            for (i, migration) in MIGRATIONS.iter().enumerate().skip(done as usize) {
                txn.batch_execute(migration).await?;
                txn.execute(
                    "INSERT INTO switchyard_schema (version) VALUES ($1)",
                    &[&(i as i32 + 1)],
                )
                .await?;
            }
            txn.commit().await?;
            Ok(())
        })
    }

    /// Whether the database answers, for `/readyz`.
    pub fn ping(&self) -> anyhow::Result<()> {
        let pool = self.pool.clone();
        self.run(async move {
            Self::client(&pool).await?.simple_query("SELECT 1").await?;
            Ok(())
        })
    }

    /// Deletes the marks of plugins past their window, a tenth of `keep`
    /// after the last prune.
    fn prune(&self, added: HashMap<String, i64>) {
        let due: Vec<String> = {
            let mut unpruned = self.unpruned.lock().expect("prune lock");
            let step = (self.keep / 10).max(1);
            added
                .into_iter()
                .filter_map(|(plugin, n)| {
                    let count = unpruned.entry(plugin.clone()).or_default();
                    *count += n;
                    (*count >= step).then(|| {
                        *count = 0;
                        plugin
                    })
                })
                .collect()
        };
        if due.is_empty() {
            return;
        }
        let (pool, keep) = (self.pool.clone(), self.keep);
        let pruned = self.run(async move {
            let client = Self::client(&pool).await?;
            for plugin in due {
                client
                    .execute(
                        "DELETE FROM switchyard_processed WHERE plugin = $1 AND seq <= \
                         (SELECT seq FROM switchyard_processed WHERE plugin = $1 \
                          ORDER BY seq DESC OFFSET $2 LIMIT 1)",
                        &[&plugin, &keep],
                    )
                    .await?;
            }
            Ok(())
        });
        if let Err(e) = pruned {
            tracing::warn!("state store: pruning processed ids: {e:#}");
        }
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

/// The plugin, key and value columns of a batch, as arrays for `unnest`.
#[derive(Default)]
struct Columns {
    plugins: Vec<String>,
    keys: Vec<String>,
    values: Vec<Vec<u8>>,
}

/// What one commit decided, before it is written.
struct Plan {
    applied: Vec<usize>,
    upserts: Columns,
    deletes: Columns,
    marks: Columns,
    added: HashMap<String, i64>,
}

/// Checks `batches` record by record against the committed `values` and
/// `marked` events, in order, as the redb store does.
fn plan(
    batches: &[Vec<RecordEffects>],
    mut values: HashMap<(String, String), Option<Vec<u8>>>,
    mut marked: HashSet<(String, String)>,
) -> Plan {
    let mut writes: BTreeMap<(String, String), Option<Vec<u8>>> = BTreeMap::new();
    let mut plan = Plan {
        applied: Vec::with_capacity(batches.len()),
        upserts: Columns::default(),
        deletes: Columns::default(),
        marks: Columns::default(),
        added: HashMap::new(),
    };
    for batch in batches {
        let mut n = 0;
        for record in batch {
            let holds = record.iter().all(|e| {
                !marked.contains(&(e.plugin.clone(), e.event_id.clone()))
                    && e.reads.iter().all(|(k, seen)| {
                        values
                            .get(&(e.plugin.clone(), k.clone()))
                            .cloned()
                            .flatten()
                            .as_deref()
                            == seen.as_deref()
                    })
            });
            if !holds {
                break;
            }
            for e in record {
                for (key, value) in &e.writes {
                    let at = (e.plugin.clone(), key.clone());
                    values.insert(at.clone(), value.clone());
                    writes.insert(at, value.clone());
                }
                marked.insert((e.plugin.clone(), e.event_id.clone()));
                plan.marks.plugins.push(e.plugin.clone());
                plan.marks.keys.push(e.event_id.clone());
                plan.marks.values.push(e.outputs.clone());
                *plan.added.entry(e.plugin.clone()).or_default() += 1;
            }
            n += 1;
        }
        plan.applied.push(n);
    }
    for ((plugin, key), value) in writes {
        let columns = match value {
            Some(value) => {
                plan.upserts.values.push(value);
                &mut plan.upserts
            }
            None => &mut plan.deletes,
        };
        columns.plugins.push(plugin);
        columns.keys.push(key);
    }
    plan
}

/// One attempt at a commit: `Ok(Err(e))` is a conflict to run again.
async fn try_commit(
    pool: &Pool,
    batches: &[Vec<RecordEffects>],
) -> anyhow::Result<Result<Plan, tokio_postgres::Error>> {
    let mut client = PgStore::client(pool).await?;
    let attempt = async {
        let txn = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::Serializable)
            .start()
            .await?;
        let (mut ids, mut keys) = (Columns::default(), Columns::default());
        for e in batches.iter().flatten().flatten() {
            ids.plugins.push(e.plugin.clone());
            ids.keys.push(e.event_id.clone());
            for key in e.reads.keys() {
                keys.plugins.push(e.plugin.clone());
                keys.keys.push(key.clone());
            }
        }
        let marked: HashSet<(String, String)> = txn
            .query(
                "SELECT p.plugin, p.event_id FROM switchyard_processed p \
                 JOIN unnest($1::text[], $2::text[]) AS i(plugin, event_id) \
                 USING (plugin, event_id)",
                &[&ids.plugins, &ids.keys],
            )
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let mut values: HashMap<(String, String), Option<Vec<u8>>> = keys
            .plugins
            .iter()
            .cloned()
            .zip(keys.keys.iter().cloned())
            .map(|k| (k, None))
            .collect();
        if !keys.plugins.is_empty() {
            for row in txn
                .query(
                    "SELECT s.plugin, s.key, s.value FROM switchyard_state s \
                     JOIN (SELECT DISTINCT * FROM unnest($1::text[], $2::text[])) AS k(plugin, key) \
                     USING (plugin, key)",
                    &[&keys.plugins, &keys.keys],
                )
                .await?
            {
                values.insert((row.get(0), row.get(1)), Some(row.get(2)));
            }
        }
        let plan = plan(batches, values, marked);
        if !plan.upserts.plugins.is_empty() {
            txn.execute(
                "INSERT INTO switchyard_state (plugin, key, value) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]) \
                 ON CONFLICT (plugin, key) DO UPDATE SET value = EXCLUDED.value",
                &[
                    &plan.upserts.plugins,
                    &plan.upserts.keys,
                    &plan.upserts.values,
                ],
            )
            .await?;
        }
        if !plan.deletes.plugins.is_empty() {
            txn.execute(
                "DELETE FROM switchyard_state s USING unnest($1::text[], $2::text[]) AS d(plugin, key) \
                 WHERE s.plugin = d.plugin AND s.key = d.key",
                &[&plan.deletes.plugins, &plan.deletes.keys],
            )
            .await?;
        }
        if !plan.marks.plugins.is_empty() {
            txn.execute(
                "INSERT INTO switchyard_processed (plugin, event_id, outputs) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])",
                &[&plan.marks.plugins, &plan.marks.keys, &plan.marks.values],
            )
            .await?;
        }
        txn.commit().await?;
        Ok::<_, tokio_postgres::Error>(plan)
    };
    match attempt.await {
        Ok(plan) => Ok(Ok(plan)),
        Err(e) if retryable(&e) => Ok(Err(e)),
        Err(e) => Err(anyhow::Error::new(e).context("state commit")),
    }
}

impl StateStore for PgStore {
    fn commit(&self, batches: &[&[RecordEffects]]) -> anyhow::Result<Vec<usize>> {
        let owned: Vec<Vec<RecordEffects>> = batches.iter().map(|b| b.to_vec()).collect();
        let pool = self.pool.clone();
        let plan = self.run(async move {
            let mut attempt = 0;
            loop {
                attempt += 1;
                match try_commit(&pool, &owned).await? {
                    Ok(plan) => return Ok(plan),
                    Err(e) if attempt >= MAX_ATTEMPTS => {
                        return Err(anyhow::Error::new(e).context(format!(
                            "state commit conflicted {MAX_ATTEMPTS} times in a row"
                        )));
                    }
                    Err(_) => {
                        // Let the winner finish; spread the losers out.
                        let jitter = rand::random_range(1..=4u64 * attempt.min(8) as u64);
                        tokio::time::sleep(Duration::from_millis(jitter)).await;
                    }
                }
            }
        })?;
        let applied = plan.applied;
        self.prune(plan.added);
        Ok(applied)
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

    fn remote(&self) -> bool {
        true
    }

    fn health(&self) -> anyhow::Result<()> {
        self.ping()
    }

    fn describe(&self) -> String {
        format!("PostgreSQL at {}", self.shown)
    }
}

impl VersionStore for PgStore {
    fn live(&self) -> anyhow::Result<Vec<LiveVersion>> {
        let pool = self.pool.clone();
        self.run(async move {
            let rows = Self::client(&pool)
                .await?
                .query(
                    "SELECT plugin, hash, origin, paused FROM switchyard_plugins",
                    &[],
                )
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| LiveVersion {
                    plugin: r.get(0),
                    hash: r.get(1),
                    origin: r.get(2),
                    paused: r.get(3),
                })
                .collect())
        })
    }

    fn publish(&self, live: &LiveVersion, wasm: Option<&[u8]>) -> anyhow::Result<()> {
        let (pool, live, wasm) = (self.pool.clone(), live.clone(), wasm.map(<[u8]>::to_vec));
        self.run(async move {
            let mut client = Self::client(&pool).await?;
            let txn = client.transaction().await?;
            if let Some(wasm) = wasm {
                txn.execute(
                    "INSERT INTO switchyard_wasm (hash, wasm) VALUES ($1, $2) \
                     ON CONFLICT (hash) DO NOTHING",
                    &[&live.hash, &wasm],
                )
                .await?;
            }
            txn.execute(
                "INSERT INTO switchyard_plugins (plugin, hash, origin, paused) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (plugin) DO UPDATE SET \
                 hash = EXCLUDED.hash, origin = EXCLUDED.origin, paused = EXCLUDED.paused, \
                 changed_at = now()",
                &[&live.plugin, &live.hash, &live.origin, &live.paused],
            )
            .await?;
            txn.commit().await?;
            Ok(())
        })
    }

    fn wasm(&self, hash: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let (pool, hash) = (self.pool.clone(), hash.to_string());
        self.run(async move {
            let row = Self::client(&pool)
                .await?
                .query_opt("SELECT wasm FROM switchyard_wasm WHERE hash = $1", &[&hash])
                .await?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn shared(&self) -> bool {
        true
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
