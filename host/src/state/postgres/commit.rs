//! The PostgreSQL store's commit: one `SERIALIZABLE` transaction per group,
//! run again on a serialization failure, and the pruning of processed ids.

use super::PgStore;
use crate::state::RecordEffects;
use deadpool_postgres::Pool;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use tokio_postgres::error::SqlState;

/// How often one commit is run again after a serialization failure before
/// the store reports an error (the partition then waits and retries).
const MAX_ATTEMPTS: u32 = 64;

fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(&SqlState::T_R_SERIALIZATION_FAILURE)
            | Some(&SqlState::T_R_DEADLOCK_DETECTED)
            | Some(&SqlState::UNIQUE_VIOLATION)
    )
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

impl PgStore {
    /// Commits `batches` in one transaction, run again on a serialization
    /// failure, then prunes the processed ids that fell out of the window.
    pub(super) fn commit_batches(
        &self,
        batches: &[&[RecordEffects]],
    ) -> anyhow::Result<Vec<usize>> {
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
