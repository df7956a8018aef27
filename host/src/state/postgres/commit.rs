//! The PostgreSQL store's commit: one `SERIALIZABLE` transaction per group,
//! run again on a serialization failure, and the pruning of processed ids.

use super::{PgStore, Unreachable};
use crate::state::check::{Plan, ReadAhead, check, touched};
use crate::state::timers::TimerOp;
use crate::state::{RecordEffects, StateError};
use deadpool_postgres::Pool;
use std::collections::{BTreeSet, HashMap};
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

/// Whether the connection failed under the commit (the server stopped or
/// the network dropped): the store is unreachable, not wrong.
fn lost(e: &tokio_postgres::Error) -> bool {
    e.is_closed() || std::error::Error::source(e).is_some_and(|cause| cause.is::<std::io::Error>())
}

/// The plugin, key and value columns of a batch, as arrays for `unnest`.
#[derive(Default)]
struct Columns {
    plugins: Vec<String>,
    keys: Vec<String>,
    values: Vec<Vec<u8>>,
}

/// The columns of the timers a plan sets, as arrays for `unnest`.
#[derive(Default)]
struct SetTimers {
    plugins: Vec<String>,
    names: Vec<String>,
    dues: Vec<i64>,
    payloads: Vec<Vec<u8>>,
    topics: Vec<String>,
    partitions: Vec<i32>,
    contexts: Vec<Vec<u8>>,
}

/// The timers a plan removes: a row each with the due time it must still
/// have (a firing), or none (a cancel).
#[derive(Default)]
struct RemoveTimers {
    plugins: Vec<String>,
    names: Vec<String>,
    dues: Vec<Option<i64>>,
}

/// Writes the plan's timer ops in `txn`: one statement for the timers it
/// sets, one for those it removes, none when it changes no timer.
async fn write_timers(
    txn: &deadpool_postgres::Transaction<'_>,
    plan: &Plan<'_>,
) -> Result<(), tokio_postgres::Error> {
    let (mut set, mut remove) = (SetTimers::default(), RemoveTimers::default());
    for ((plugin, name), op) in &plan.timers {
        let mut removed = |due: Option<i64>| {
            remove.plugins.push(plugin.to_string());
            remove.names.push(name.to_string());
            remove.dues.push(due);
        };
        match op {
            TimerOp::Set(timer) => {
                set.plugins.push(plugin.to_string());
                set.names.push(name.to_string());
                set.dues.push(timer.due_ms);
                set.payloads.push(timer.payload.clone());
                set.topics.push(timer.topic.clone());
                set.partitions.push(timer.partition);
                set.contexts.push(timer.context.clone());
            }
            TimerOp::Cancel => removed(None),
            TimerOp::Fired(dues) => dues.iter().for_each(|due| removed(Some(*due))),
        }
    }
    if !set.plugins.is_empty() {
        txn.execute(
            "INSERT INTO switchyard_timers \
             (plugin, name, due_ms, payload, topic, partition, context) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::bytea[], \
                                  $5::text[], $6::int4[], $7::bytea[]) \
             ON CONFLICT (plugin, name) DO UPDATE SET due_ms = EXCLUDED.due_ms, \
             payload = EXCLUDED.payload, topic = EXCLUDED.topic, \
             partition = EXCLUDED.partition, context = EXCLUDED.context",
            &[
                &set.plugins,
                &set.names,
                &set.dues,
                &set.payloads,
                &set.topics,
                &set.partitions,
                &set.contexts,
            ],
        )
        .await?;
    }
    if !remove.plugins.is_empty() {
        txn.execute(
            "DELETE FROM switchyard_timers t \
             USING unnest($1::text[], $2::text[], $3::int8[]) AS d(plugin, name, due_ms) \
             WHERE t.plugin = d.plugin AND t.name = d.name \
             AND (d.due_ms IS NULL OR t.due_ms = d.due_ms)",
            &[&remove.plugins, &remove.names, &remove.dues],
        )
        .await?;
    }
    Ok(())
}

/// What one commit applied.
struct Done {
    /// For each batch, how many of its records were applied.
    applied: Vec<usize>,
    /// How many events of each plugin were marked processed.
    marked: HashMap<String, i64>,
}

/// One attempt at a commit: read ahead what the check needs, check, write
/// the plan; `Ok(Err(e))` is a conflict to run again.
async fn try_commit(
    pool: &Pool,
    batches: &[Vec<RecordEffects>],
) -> anyhow::Result<Result<Done, tokio_postgres::Error>> {
    let mut client = PgStore::client(pool).await?;
    let attempt = async {
        let txn = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::Serializable)
            .start()
            .await?;
        let batches: Vec<&[RecordEffects]> = batches.iter().map(Vec::as_slice).collect();
        let touched = touched(&batches);
        let mut committed = ReadAhead::default();
        if !touched.events.is_empty() {
            let (plugins, ids) = columns(&touched.events);
            for row in txn
                .query(
                    "SELECT p.plugin, p.event_id FROM switchyard_processed p \
                     JOIN unnest($1::text[], $2::text[]) AS i(plugin, event_id) \
                     USING (plugin, event_id)",
                    &[&plugins, &ids],
                )
                .await?
            {
                committed.mark(row.get(0), row.get(1));
            }
        }
        if !touched.keys.is_empty() {
            let (plugins, keys) = columns(&touched.keys);
            for row in txn
                .query(
                    "SELECT s.plugin, s.key, s.value FROM switchyard_state s \
                     JOIN unnest($1::text[], $2::text[]) AS k(plugin, key) \
                     USING (plugin, key)",
                    &[&plugins, &keys],
                )
                .await?
            {
                committed.value(row.get(0), row.get(1), row.get(2));
            }
        }
        let plan = check(&batches, &committed)?;
        let (mut upserts, mut deletes) = (Columns::default(), Columns::default());
        for ((plugin, key), value) in &plan.writes {
            let columns = match value {
                Some(value) => {
                    upserts.values.push(value.to_vec());
                    &mut upserts
                }
                None => &mut deletes,
            };
            columns.plugins.push(plugin.to_string());
            columns.keys.push(key.to_string());
        }
        if !upserts.plugins.is_empty() {
            txn.execute(
                "INSERT INTO switchyard_state (plugin, key, value) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]) \
                 ON CONFLICT (plugin, key) DO UPDATE SET value = EXCLUDED.value",
                &[&upserts.plugins, &upserts.keys, &upserts.values],
            )
            .await?;
        }
        if !deletes.plugins.is_empty() {
            txn.execute(
                "DELETE FROM switchyard_state s USING unnest($1::text[], $2::text[]) AS d(plugin, key) \
                 WHERE s.plugin = d.plugin AND s.key = d.key",
                &[&deletes.plugins, &deletes.keys],
            )
            .await?;
        }
        if !plan.marks.is_empty() {
            let mut marks = Columns::default();
            for mark in &plan.marks {
                marks.plugins.push(mark.plugin.to_string());
                marks.keys.push(mark.event_id.to_string());
                marks.values.push(mark.outputs.to_vec());
            }
            txn.execute(
                "INSERT INTO switchyard_processed (plugin, event_id, outputs) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])",
                &[&marks.plugins, &marks.keys, &marks.values],
            )
            .await?;
        }
        if !plan.timers.is_empty() {
            write_timers(&txn, &plan).await?;
        }
        txn.commit().await?;
        Ok::<_, anyhow::Error>(Done {
            marked: plan.marks_per_plugin(),
            applied: plan.applied,
        })
    };
    match attempt.await {
        Ok(done) => Ok(Ok(done)),
        Err(e) => match e.downcast::<tokio_postgres::Error>() {
            Ok(e) if retryable(&e) => Ok(Err(e)),
            Ok(e) if lost(&e) => Err(anyhow::Error::new(Unreachable::new(e))),
            Ok(e) => Err(anyhow::Error::new(e).context("state commit")),
            Err(e) => Err(e.context("state commit")),
        },
    }
}

/// The plugin and the key (or event id) columns of `pairs`.
fn columns(pairs: &BTreeSet<(&str, &str)>) -> (Vec<String>, Vec<String>) {
    pairs
        .iter()
        .map(|(plugin, key)| (plugin.to_string(), key.to_string()))
        .unzip()
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
        let done = self.run(async move {
            let mut attempt = 0;
            loop {
                attempt += 1;
                match try_commit(&pool, &owned).await? {
                    Ok(done) => return Ok(done),
                    Err(e) if attempt >= MAX_ATTEMPTS => {
                        return Err(anyhow::Error::new(StateError::Conflict {
                            attempts: attempt,
                            last: e
                                .as_db_error()
                                .map_or_else(|| e.to_string(), ToString::to_string),
                        }));
                    }
                    Err(_) => {
                        // Let the winner finish; spread the losers out.
                        let jitter = rand::random_range(1..=4u64 * attempt.min(8) as u64);
                        tokio::time::sleep(Duration::from_millis(jitter)).await;
                    }
                }
            }
        })?;
        self.prune(done.marked);
        Ok(done.applied)
    }

    /// Deletes the marks of plugins past their window, a tenth of `keep`
    /// after the last prune. Runs inline, on the caller's (the commit)
    /// thread, after the commit and outside its transaction; a failure is
    /// only logged.
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
