//! The PostgreSQL store's schema and its migrations.

use super::PgStore;

/// The schema, one migration per entry; applied in order, once each.
const MIGRATIONS: &[&str] = &[
    r#"
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
"#,
    // Timers: one per (plugin, name); the index serves the due queries of
    // one partition in the order they answer (due time, then plugin and
    // name compared as bytes, as every store orders them).
    r#"
CREATE TABLE switchyard_timers (
    plugin text NOT NULL,
    name text NOT NULL,
    due_ms bigint NOT NULL,
    payload bytea NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    context bytea NOT NULL,
    PRIMARY KEY (plugin, name)
);
CREATE INDEX switchyard_timers_due ON switchyard_timers
    (topic, partition, due_ms, plugin COLLATE "C", name COLLATE "C");
"#,
];

impl PgStore {
    /// Applies the migrations not applied yet, one instance at a time.
    pub(super) fn migrate(&self) -> anyhow::Result<()> {
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
}
