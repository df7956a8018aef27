//! Per-plugin key-value state, committed a batch at a time.
//!
//! Each plugin has a private namespace. While a handler runs, the engine
//! records what it read ([`Reads`]) and stages what it wrote ([`Writes`]);
//! together with the event id and the records it produced they make one
//! [`Effect`]. A partition's batch runs its records in order against a
//! [`BatchView`], so each record sees the writes of the ones before it.
//!
//! [`StateStore::commit`] then applies the batches of every partition that
//! is ready in **one transaction** (group commit). Record by record, in
//! order, it checks that every value each call read is still the one in the
//! store and that the event is not already marked processed (optimistic
//! concurrency: the processed-id check happens inside the committing
//! transaction). A record that passes has its writes applied, its event
//! marked processed and its outputs stored (an outbox, so a redelivered event
//! re-produces the same bytes). At the first record that fails, that
//! partition's batch stops: the records before it are committed, it and the
//! ones after it run again on fresh state. Two partitions running one plugin
//! therefore never lose an update, and a global counter stays gapless.
//!
//! That check is written once (`state/check.rs`) and returns a plan: per
//! partition how many records pass, and the writes, processed marks and
//! outputs to apply. Each store only reads what the check asks for (inside
//! its committing transaction) and applies the plan in that transaction.
//!
//! Optimistic concurrency was chosen over serialising each plugin's calls:
//! most plugins keep state per entity (a booking, a payment), so partitions
//! rarely touch the same key and never wait for each other; a plugin with a
//! global counter pays with re-runs of the losing batches, not with a lock
//! held across the produce path.
//!
//! [`MemoryStore`] serves the test harness; [`DiskStore`] is the router's
//! durable default, one redb file per instance; [`PgStore`] is PostgreSQL,
//! shared by every instance of a consumer group (`--state-url`). All three
//! keep the same contract, checked by [`contract::check_store`].
//!
//! # Timers
//!
//! A plugin call may also set, replace, cancel or fire named timers
//! ([`TimerChanges`] in its [`Effect`]; one timer per name per plugin).
//! They are staged like writes: applied in the same transaction as the
//! effect's writes, processed mark and outputs when its record passes the
//! check, discarded otherwise. They take no part in the check itself, but a
//! commit applies them in commit order (a later record's change to the same
//! timer wins; a firing removes the timer only if it is still due at the
//! time it fired for). Each timer belongs to the input partition of the
//! event that last set it; [`StateStore::due_timers`] and
//! [`StateStore::next_due`] answer per partition from an index by (topic,
//! partition, due time) in the durable stores, so a million pending timers
//! neither fill memory nor slow a commit that does not touch them.
//!
//! The durable stores also keep the plugin versions ([`VersionStore`]), so
//! an upload, a rollback or a pause outlives a restart, and every instance
//! sharing a PostgreSQL store serves the same version.

mod check;
#[doc(hidden)]
pub mod contract;
mod disk;
mod error;
mod memory;
mod postgres;
mod timers;
mod view;

pub(crate) use disk::CACHE_MIB;
pub use disk::DiskStore;
pub use error::StateError;
pub use memory::MemoryStore;
pub use postgres::{PgStore, Unreachable};
pub use timers::{DueTimer, Timer, TimerChange, TimerChanges};
pub(crate) use view::BatchView;

use std::collections::{BTreeMap, HashMap};

/// Staged writes of one handler call: `Some(value)` sets, `None` deletes.
pub(crate) type Writes = BTreeMap<String, Option<Vec<u8>>>;

/// Values one handler call read, by key (`None`: absent).
pub(crate) type Reads = BTreeMap<String, Option<Vec<u8>>>;

/// Reads state; what a plugin call sees.
pub trait StateRead: Send + Sync {
    /// The value of `key` in `plugin`'s namespace.
    fn get(&self, plugin: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
}

/// What one plugin call on one event does to state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    /// The plugin.
    pub plugin: String,
    /// The event it handled.
    pub event_id: String,
    /// What it read, checked at commit.
    pub reads: Reads,
    /// What it wrote.
    pub writes: Writes,
    /// The records it produced, encoded (see [`crate::event::OutRecord`]).
    pub outputs: Vec<u8>,
    /// What it did to its plugin's timers, applied with its writes.
    pub timers: TimerChanges,
}

/// The effects of one record: one per plugin that ran on it.
pub(crate) type RecordEffects = Vec<Effect>;

/// A transactional store of plugin state.
pub trait StateStore: StateRead {
    /// Applies `batches` in one transaction, each batch's records in order,
    /// and returns for each batch how many of its records were applied
    /// before the first whose reads or processed mark no longer held. On an
    /// error nothing was applied.
    fn commit(&self, batches: &[&[RecordEffects]]) -> Result<Vec<usize>, StateError>;
    /// The outputs recorded when `plugin` processed `event_id`, if it did.
    fn processed(&self, plugin: &str, event_id: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Every committed key and value of `plugin`'s namespace.
    fn snapshot(&self, plugin: &str) -> anyhow::Result<BTreeMap<String, Vec<u8>>>;
    /// The timers of `partition` (topic, partition) due at or before
    /// `until_ms`, ordered by due time, then plugin, then name; at most
    /// `limit` of them.
    fn due_timers(
        &self,
        partition: &(String, i32),
        until_ms: i64,
        limit: usize,
    ) -> anyhow::Result<Vec<DueTimer>>;
    /// The earliest due time among the timers of `partition`, if it has any.
    fn next_due(&self, partition: &(String, i32)) -> anyhow::Result<Option<i64>>;
    /// Per plugin with timers, how many are pending and the earliest due
    /// time among them (for metrics and the status page).
    fn pending_timers(&self) -> anyhow::Result<BTreeMap<String, (u64, Option<i64>)>>;
    /// The outputs recorded for each of `keys` (plugin, event id) that was
    /// processed; the others are absent from the answer. A batch asks once
    /// for all its records ([`BatchView::prefetch`]); a store answers in one
    /// read transaction or round trip where it can.
    fn processed_many(
        &self,
        keys: &[(String, String)],
    ) -> anyhow::Result<HashMap<(String, String), Vec<u8>>> {
        let mut found = HashMap::new();
        for (plugin, id) in keys {
            if let Some(outputs) = self.processed(plugin, id)? {
                found.insert((plugin.clone(), id.clone()), outputs);
            }
        }
        Ok(found)
    }
    /// Whether the store answers now (for `/readyz`); local stores always do.
    fn health(&self) -> anyhow::Result<()> {
        Ok(())
    }
    /// What and where the store is, for logs and the status page.
    fn describe(&self) -> String {
        "in memory".into()
    }
}

/// A plugin's live version as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveVersion {
    /// The plugin.
    pub plugin: String,
    /// The SHA-256 of its wasm, in hex.
    pub hash: String,
    /// How it went live: `file`, `upload` or `rollback`.
    pub origin: String,
    /// Whether the plugin is paused.
    pub paused: bool,
}

/// Where plugin versions are kept, so that they outlive a restart and every
/// instance sharing the store serves the same one.
pub trait VersionStore: Send + Sync {
    /// The live version of every plugin that has one stored.
    fn live(&self) -> anyhow::Result<Vec<LiveVersion>>;
    /// Makes `live` the stored live version, storing `wasm` under its hash
    /// first when given.
    fn publish(&self, live: &LiveVersion, wasm: Option<&[u8]>) -> anyhow::Result<()>;
    /// The wasm stored under `hash`.
    fn wasm(&self, hash: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Whether other instances may share it (then changes are polled for).
    fn shared(&self) -> bool {
        false
    }
}
