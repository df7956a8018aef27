//! The router's config file (`router.toml`), parsed strictly and resolved
//! fully before anything runs.
//!
//! ```toml
//! [kafka]                                # all optional
//! bootstrap_servers = "127.0.0.1:9092"
//! group_id = "switchyard"
//! exclude = ["audit.*"]                  # never consumed, besides `*.dlq` and `__*`
//! create = ["booking.booking.created"]   # also created at startup
//! partitions = 3                         # for the topics the router creates
//! max_retries = 3                        # `retry` errors, then dead-letter
//! retry_backoff_ms = 200                 # doubles per retry, up to max_backoff_ms
//! batch_records = 500                    # per partition batch, at most
//! batch_bytes = 1048576
//! linger_ms = 0                          # wait this long to fill a batch
//! queue_records = 2000                   # queued per partition before it is paused
//! queue_bytes = 16777216                 # or this many bytes queued
//! max_record_bytes = 1000000             # larger emits are refused; dead letters are cut to fit
//! drain_timeout_ms = 10000               # shutdown gives up on in-flight records after this
//! guarantee = "at-least-once"            # or "exactly-once" (brokers with transactions)
//! transaction_interval_ms = 100          # exactly-once: one Kafka transaction this often
//! transaction_timeout_ms = 10000         # exactly-once: the broker aborts a transaction this old
//!
//! [admin]
//! token = "..."                          # or SWITCHYARD_ADMIN_TOKEN
//!
//! [state]
//! url = "postgres://switchyard@db/switchyard"  # shared by every instance; or --state-url,
//!                                        # SWITCHYARD_STATE_URL; default: redb in --state-dir
//! keep_processed = 100000                # processed event ids remembered per plugin
//! cache_mib = 32                         # redb: MiB of the file's pages kept in memory
//!
//! [defaults]
//! timeout_ms = 1000      # per-call deadline
//! memory_mib = 64        # per-call linear memory cap
//!
//! [[plugin]]
//! name = "payment"
//! wasm = "../../plugins/target/wasm32-wasip2/release/payment.wasm"
//! fixtures = "fixtures"                  # files for `switchyard test`
//! subscribe.types = ["booking.booking.created"]
//! subscribe.topics = []
//! emits = ["payment.payment.*"]          # what it may emit; the rest is dead-lettered
//! key_field = "payment_id"               # key for emits that name none
//! # input_key_field = "booking_id"       # inputs keyed otherwise are dead-lettered (`key`)
//! # isolation = "per-event"             # default "reuse": one warm instance per worker
//! # envelope = "snake"                   # default: the cause's style
//! # lift = ["bookingId"]                 # camelCase: data fields put at top level
//! # schemas = "schemas"                  # <type>.json JSON Schemas its emits must match
//! # sources = "."                        # `switchyard dev` rebuilds on a save in here,
//! # build = "cargo build --release --target wasm32-wasip2"  # with this (default per language)
//! [plugin.topics]                        # type -> topic; default topic = type
//! "payment.payment.succeeded" = "payment.payment.succeeded"
//! [plugin.config]                        # handed to the plugin as JSON
//! decline_over = 10000
//! ```
//!
//! Every error names the file, the line when there is one, and what to fix.

mod build;
mod kafka;
mod load;
mod matcher;
mod raw;

pub use build::{Build, Lang};
pub use kafka::{AdminConfig, Guarantee, KafkaConfig, StateConfig};
pub use matcher::{ALWAYS_EXCLUDED, Matcher};

use crate::envelope::EnvelopeKind;
use crate::schemas::Schemas;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A config problem, as one line naming the file and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{path}{line}: {message}", line = line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    /// The file at fault.
    pub(crate) path: String,
    /// The line at fault, when known.
    pub(crate) line: Option<usize>,
    /// What is wrong and how to fix it.
    pub(crate) message: String,
}

/// Per-call limits, configurable per plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall time a call may run before it is interrupted.
    pub timeout: Duration,
    /// The most linear memory a call may grow to, in bytes.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_millis(1000),
            memory_bytes: 64 << 20,
        }
    }
}

/// A fully resolved router config.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// The file it was read from.
    pub path: PathBuf,
    /// How to reach and use the Kafka cluster.
    pub kafka: KafkaConfig,
    /// The admin API.
    pub admin: AdminConfig,
    /// The state store.
    pub state: StateConfig,
    /// Topics never consumed, compiled from `kafka.exclude`.
    pub exclude: Matcher,
    /// Emits of an event that already went through this many routing hops
    /// are refused, which stops plugin loops.
    pub max_hops: u32,
    /// The plugins, in file order.
    pub plugins: Vec<PluginSpec>,
}

/// One plugin's resolved settings.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// Its unique name; also its state namespace.
    pub name: String,
    /// The component file (resolved against the config's folder).
    pub wasm: PathBuf,
    /// Its fixture folder or file, if it ships any.
    pub fixtures: Option<PathBuf>,
    /// The event types it subscribes to (globs).
    pub types: Matcher,
    /// The topics it subscribes to (globs).
    pub topics: Matcher,
    /// The event types it may emit (globs).
    pub emits: Matcher,
    /// Topic for each emitted type; unmapped types go to the topic named like the type.
    pub topic_map: BTreeMap<String, String>,
    /// The data field whose value keys emits that carry no key of their own.
    pub key_field: Option<String>,
    /// The data field its input records are keyed by: a record whose key is
    /// set and is not that field's value is dead-lettered for this plugin
    /// with class `key`, since its partition would not keep that entity's
    /// events in order. Unset: keys are not checked.
    pub input_key_field: Option<String>,
    /// The envelope style for its emits; `None` means the cause's style.
    pub envelope: Option<EnvelopeKind>,
    /// camelCase emits: the data fields written at the envelope's top level
    /// (`None`: the fields the cause had there).
    pub lift: Option<Vec<String>>,
    /// The `source` its emits carry.
    pub source: String,
    /// Its per-call limits.
    pub limits: Limits,
    /// Whether its instances are reused across events.
    pub isolation: Isolation,
    /// Its config, handed to the plugin as JSON.
    pub config: Arc<Map<String, Value>>,
    /// The JSON Schemas its emits must match, by type (`schemas`).
    pub schemas: Option<Arc<Schemas>>,
    /// How `switchyard dev` rebuilds it on a save, if it can.
    pub build: Option<Build>,
}

impl PluginSpec {
    /// Whether this plugin subscribed to an event of type `ty` read from `topic`.
    pub(crate) fn subscribes(&self, ty: &str, topic: &str) -> bool {
        self.types.matches(ty) || self.topics.matches(topic)
    }

    /// The topic an emit of type `ty` goes to.
    pub fn topic_for(&self, ty: &str) -> String {
        self.topic_map
            .get(ty)
            .cloned()
            .unwrap_or_else(|| ty.to_string())
    }
}

/// How a plugin's instances are used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// One warm instance per worker serves event after event; it is
    /// replaced after any fault and every few thousand calls. Clocks,
    /// randomness and staged state are still reset for every event, and
    /// `switchyard test` checks that emits do not depend on what the
    /// instance handled before.
    #[default]
    Reuse,
    /// A fresh instance for every event, for plugins that keep globals.
    PerEvent,
}
