//! The `[kafka]`, `[admin]` and `[state]` tables.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The `[kafka]` table: how the router talks to the cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `bootstrap.servers`; overridden by `--brokers` or `SWITCHYARD_BROKERS`.
    pub bootstrap_servers: String,
    /// The consumer group every router instance joins; scale out by
    /// starting more instances with the same group and one shared
    /// `[state] url` (each instance's own redb file would split the state).
    pub group_id: String,
    /// Topics never consumed (globs), besides `*.dlq` and `__*`, which are
    /// always excluded so the router never eats its own dead letters.
    pub exclude: Vec<String>,
    /// Topics to create at startup besides the outputs, such as the inputs
    /// on a fresh cluster.
    pub create: Vec<String>,
    /// Partition count of the topics the router creates.
    pub partitions: i32,
    /// Per-topic partition counts overriding `partitions`.
    pub topic_partitions: BTreeMap<String, i32>,
    /// Replication factor of the topics the router creates.
    pub replication: i32,
    /// How many times a `retry` error is retried before dead-lettering.
    pub max_retries: u32,
    /// The first retry's delay; each further retry doubles it.
    pub retry_backoff_ms: u64,
    /// The longest delay between two retries.
    pub max_backoff_ms: u64,
    /// Extra librdkafka properties for every client, such as
    /// `"topic.metadata.refresh.interval.ms" = "5000"`.
    pub client: BTreeMap<String, String>,
    /// The most records a partition hands to its plugins in one batch.
    pub batch_records: usize,
    /// The most bytes (of record values) in one batch.
    pub batch_bytes: usize,
    /// How long a partition waits for more records to fill a batch once it
    /// has one; 0 takes what is ready.
    pub linger_ms: u64,
    /// How many records a partition may have queued before it is paused in
    /// the consumer (it resumes below half of this).
    pub queue_records: usize,
    /// How many bytes of records (keys, values and headers) a partition may
    /// have queued before it is paused (it resumes below half of this, and
    /// of `queue_records`).
    pub queue_bytes: usize,
    /// The largest record the router produces, in bytes; emits above it are
    /// refused as `invalid-emit`, and dead letters are cut to fit it. Keep it
    /// at or below the broker's `message.max.bytes`.
    pub max_record_bytes: usize,
    /// How long a shutdown waits for in-flight records before it gives up on
    /// them (they are redelivered after a restart).
    pub drain_timeout_ms: u64,
    /// What a downstream consumer sees of the router's outputs
    /// ([`Guarantee`]).
    pub guarantee: Guarantee,
    /// With exactly-once, how often the open Kafka transaction (the outputs
    /// and input offsets of every batch committed since the last one) is
    /// committed. Kafka Streams' default under exactly-once, 100 ms: a
    /// read_committed consumer sees outputs about this much later.
    pub transaction_interval_ms: u64,
    /// With exactly-once, the producer's `transaction.timeout.ms`: the
    /// broker aborts a transaction left open this long (a crashed or
    /// stalled instance's), which releases read_committed consumers waiting
    /// behind it. Kafka Streams' default under exactly-once, 10 s.
    pub transaction_timeout_ms: u64,
}

/// What the router promises about its outputs. State effects (state
/// writes, processed marks, the outbox) apply exactly once in both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Guarantee {
    /// Every output reaches Kafka at least once; after a crash, records
    /// are redelivered and their outputs produced again, byte for byte
    /// (consumers dedupe by event id). Works on every broker.
    #[default]
    AtLeastOnce,
    /// Each group commit is also one Kafka transaction holding the outputs,
    /// dead letters and input offsets (KIP-447), so a read_committed
    /// consumer sees each output exactly once. Needs a broker with
    /// transactions (Apache Kafka 2.5+); not the embedded one.
    ExactlyOnce,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap_servers: "127.0.0.1:9092".into(),
            group_id: "switchyard".into(),
            exclude: Vec::new(),
            create: Vec::new(),
            partitions: 3,
            topic_partitions: BTreeMap::new(),
            replication: 1,
            max_retries: 3,
            retry_backoff_ms: 200,
            max_backoff_ms: 10_000,
            client: BTreeMap::new(),
            batch_records: 500,
            batch_bytes: 1 << 20,
            linger_ms: 0,
            queue_records: 2000,
            queue_bytes: 16 << 20,
            max_record_bytes: 1_000_000,
            drain_timeout_ms: 10_000,
            guarantee: Guarantee::AtLeastOnce,
            transaction_interval_ms: 100,
            transaction_timeout_ms: 10_000,
        }
    }
}

impl KafkaConfig {
    /// The partition count for a topic the router creates.
    pub fn partitions_for(&self, topic: &str) -> i32 {
        self.topic_partitions
            .get(topic)
            .copied()
            .unwrap_or(self.partitions)
    }

    /// The delay before retry number `attempt` (1-based).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let ms = self
            .retry_backoff_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
        Duration::from_millis(ms.min(self.max_backoff_ms))
    }
}

/// The `[admin]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// The bearer token that admin API changes need; `SWITCHYARD_ADMIN_TOKEN`
    /// overrides it. Without either, every change is refused.
    pub(crate) token: Option<String>,
}

/// The `[state]` table: where plugin state and versions are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// A PostgreSQL URL (`postgres://user[:password]@host[:port]/db`) shared
    /// by every instance of the group; `--state-url` and
    /// `SWITCHYARD_STATE_URL` override it. Without one, each instance keeps
    /// a redb file in `--state-dir`.
    pub(crate) url: Option<String>,
    /// How many processed event ids each plugin remembers, newest first. A
    /// redelivered event within that window re-produces its stored outputs
    /// and changes no state; one older than it runs again as a new event.
    pub(crate) keep_processed: u64,
    /// The memory, in MiB, the redb store keeps of its file's pages (1 to
    /// 65536; 32 by default). A commit touches the pages at each end of the
    /// outbox, and processed ids are answered from memory, so the default
    /// is ample for plugins that read few state keys per event; a plugin
    /// that reads many keys of a large state reads the rest through the
    /// kernel's page cache, and a larger cache keeps them in the process
    /// (BENCHMARKS.md, item 19). PostgreSQL ignores it.
    pub(crate) cache_mib: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            url: None,
            keep_processed: 100_000,
            cache_mib: crate::state::CACHE_MIB,
        }
    }
}
