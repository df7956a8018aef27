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

use crate::engine::Limits;
use crate::envelope::EnvelopeKind;
use crate::schemas::Schemas;
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A config problem, as one line naming the file and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{path}{line}: {message}", line = line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    /// The file at fault.
    pub path: String,
    /// The line at fault, when known.
    pub line: Option<usize>,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    kafka: KafkaConfig,
    #[serde(default)]
    admin: AdminConfig,
    #[serde(default)]
    state: StateConfig,
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    max_hops: Option<u32>,
    #[serde(default, rename = "plugin")]
    plugins: Vec<RawPlugin>,
}

/// Defaults that apply to every plugin.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    timeout_ms: Option<u64>,
    memory_mib: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubscribe {
    #[serde(default)]
    types: Vec<String>,
    #[serde(default)]
    topics: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugin {
    name: String,
    wasm: PathBuf,
    #[serde(default)]
    fixtures: Option<PathBuf>,
    #[serde(default)]
    subscribe: RawSubscribe,
    #[serde(default)]
    emits: Vec<String>,
    #[serde(default)]
    topics: BTreeMap<String, String>,
    #[serde(default)]
    key_field: Option<String>,
    #[serde(default)]
    input_key_field: Option<String>,
    #[serde(default)]
    envelope: Option<EnvelopeKind>,
    #[serde(default)]
    lift: Option<Vec<String>>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    memory_mib: Option<u64>,
    #[serde(default)]
    isolation: Isolation,
    #[serde(default)]
    schemas: Option<PathBuf>,
    #[serde(default)]
    sources: Option<PathBuf>,
    #[serde(default)]
    build: Option<String>,
    #[serde(default)]
    config: toml::Table,
}

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
    pub fn backoff(&self, attempt: u32) -> Duration {
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
    pub token: Option<String>,
}

/// The `[state]` table: where plugin state and versions are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// A PostgreSQL URL (`postgres://user[:password]@host[:port]/db`) shared
    /// by every instance of the group; `--state-url` and
    /// `SWITCHYARD_STATE_URL` override it. Without one, each instance keeps
    /// a redb file in `--state-dir`.
    pub url: Option<String>,
    /// How many processed event ids each plugin remembers, newest first. A
    /// redelivered event within that window re-produces its stored outputs
    /// and changes no state; one older than it runs again as a new event.
    pub keep_processed: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            url: None,
            keep_processed: 100_000,
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

/// A plugin's source folder and the command that builds its `.wasm` there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    /// The folder `switchyard dev` watches (`sources`).
    pub dir: PathBuf,
    /// The shell command, run in `dir` (`build`, or the default for the
    /// folder's language); `{wasm}` stands for the plugin's `.wasm` path,
    /// inserted already quoted for the shell (do not quote it again; the
    /// path is also in `$SWITCHYARD_WASM`).
    pub command: String,
}

/// The languages a plugin can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust with the `switchyard-sdk` crate.
    Rust,
    /// Python with componentize-py.
    Python,
    /// JavaScript with componentize-js.
    Js,
}

impl Build {
    /// The language of the plugin whose sources are in `dir`: Rust when it
    /// holds `Cargo.toml`, Python for `app.py`, JavaScript for `app.js`.
    pub fn detect(dir: &Path) -> Option<Lang> {
        [
            ("Cargo.toml", Lang::Rust),
            ("app.py", Lang::Python),
            ("app.js", Lang::Js),
        ]
        .into_iter()
        .find(|(file, _)| dir.join(file).is_file())
        .map(|(_, lang)| lang)
    }

    /// The default build command for a language, run in the plugin's folder.
    pub fn default_command_for(lang: Lang) -> &'static str {
        match lang {
            Lang::Rust => "cargo build --release --target wasm32-wasip2",
            Lang::Python => "componentize-py -d wit -w handler componentize app -o {wasm}",
            Lang::Js => {
                "componentize-js --wit wit -n handler -d http -d fetch-event -o {wasm} app.js"
            }
        }
    }

    /// The command with `{wasm}` replaced by `wasm`, shell-quoted.
    pub fn command_for(&self, wasm: &Path) -> String {
        let quoted = format!("'{}'", wasm.display().to_string().replace('\'', "'\\''"));
        self.command.replace("{wasm}", &quoted)
    }
}

impl PluginSpec {
    /// Whether this plugin subscribed to an event of type `ty` read from `topic`.
    pub fn subscribes(&self, ty: &str, topic: &str) -> bool {
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

/// The topics the router never consumes, whatever `kafka.exclude` says.
pub const ALWAYS_EXCLUDED: [&str; 2] = ["*.dlq", "__*"];

/// A set of glob patterns (`*` matches anything, dots included).
#[derive(Debug, Clone)]
pub struct Matcher {
    patterns: Vec<String>,
    set: GlobSet,
}

impl Matcher {
    /// Compiles `patterns`.
    pub fn new(patterns: &[String]) -> Result<Self, String> {
        let mut builder = GlobSetBuilder::new();
        for p in patterns {
            builder.add(Glob::new(p).map_err(|e| format!("bad pattern `{p}`: {e}"))?);
        }
        Ok(Matcher {
            patterns: patterns.to_vec(),
            set: builder.build().map_err(|e| e.to_string())?,
        })
    }

    /// Whether any pattern matches `text`.
    pub fn matches(&self, text: &str) -> bool {
        self.set.is_match(text)
    }

    /// The patterns as written.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

impl RouterConfig {
    /// Reads and resolves a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: shown.clone(),
            line: None,
            message: format!("cannot read the config ({e}); pass an existing router.toml"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses and resolves config text; relative paths resolve against `path`'s folder.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let fail = |line: Option<usize>, message: String| ConfigError {
            path: shown.clone(),
            line,
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            fail(
                line,
                format!(
                    "{}; fix this entry (see the `config` module docs for every field)",
                    e.message().trim()
                ),
            )
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let line_of = |name: &str| {
            let needle = format!("\"{name}\"");
            text.lines()
                .position(|l| l.contains("name") && l.contains(&needle))
                .map(|i| i + 1)
        };
        let default_timeout = raw.defaults.timeout_ms.unwrap_or(1000);
        let default_memory = raw.defaults.memory_mib.unwrap_or(64);
        let mut plugins: Vec<PluginSpec> = Vec::new();
        for p in raw.plugins {
            let line = line_of(&p.name);
            let bad = |m: String| fail(line, format!("plugin `{}`: {m}", p.name));
            if p.name.is_empty()
                || !p
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(bad(
                    "`name` must be non-empty letters, digits, `-` or `_`".into()
                ));
            }
            if plugins.iter().any(|q| q.name == p.name) {
                return Err(bad(
                    "a plugin of this name is already defined; give each plugin a unique `name`"
                        .into(),
                ));
            }
            if p.subscribe.types.is_empty() && p.subscribe.topics.is_empty() {
                return Err(bad(
                    "subscribes to nothing; set `subscribe.types` or `subscribe.topics`".into(),
                ));
            }
            let timeout_ms = p.timeout_ms.unwrap_or(default_timeout);
            if timeout_ms == 0 || timeout_ms > 60_000 {
                return Err(bad(format!(
                    "`timeout_ms = {timeout_ms}` is out of range; use 1 to 60000"
                )));
            }
            let memory_mib = p.memory_mib.unwrap_or(default_memory);
            if memory_mib == 0 || memory_mib > 512 {
                return Err(bad(format!(
                    "`memory_mib = {memory_mib}` is out of range; use 1 to 512"
                )));
            }
            let matcher = |patterns: &[String], field: &str| {
                Matcher::new(patterns).map_err(|m| bad(format!("`{field}`: {m}")))
            };
            let config = serde_json::to_value(&p.config)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default();
            plugins.push(PluginSpec {
                wasm: base.join(&p.wasm),
                fixtures: p.fixtures.as_ref().map(|f| base.join(f)),
                types: matcher(&p.subscribe.types, "subscribe.types")?,
                topics: matcher(&p.subscribe.topics, "subscribe.topics")?,
                emits: matcher(&p.emits, "emits")?,
                topic_map: p.topics,
                key_field: p.key_field,
                input_key_field: p.input_key_field,
                envelope: p.envelope,
                lift: p.lift,
                source: p.source.unwrap_or_else(|| format!("switchyard/{}", p.name)),
                limits: Limits {
                    timeout: Duration::from_millis(timeout_ms),
                    memory_bytes: (memory_mib as usize) << 20,
                },
                isolation: p.isolation,
                config: Arc::new(config),
                schemas: match &p.schemas {
                    None => None,
                    Some(dir) => Some(Arc::new(Schemas::load(&base.join(dir)).map_err(&bad)?)),
                },
                build: match (p.sources.as_ref().map(|d| base.join(d)), p.build.clone()) {
                    (Some(dir), _) if !dir.is_dir() => {
                        return Err(bad(format!(
                            "`sources`: {} is not a folder; point it at the plugin's source folder",
                            dir.display()
                        )));
                    }
                    (None, None) => None,
                    (dir, Some(command)) => Some(Build {
                        dir: dir.unwrap_or_else(|| base.to_path_buf()),
                        command,
                    }),
                    (Some(dir), None) => match Build::detect(&dir).map(Build::default_command_for) {
                        Some(command) => Some(Build {
                            dir,
                            command: command.into(),
                        }),
                        None => {
                            return Err(bad(format!(
                                "`sources = {:?}` holds no Cargo.toml, app.py or app.js, so there is no default build; set `build = \"...\"`",
                                p.sources.as_ref().map(|d| d.display().to_string()).unwrap_or_default()
                            )));
                        }
                    },
                },
                name: p.name,
            });
        }
        if plugins.is_empty() {
            return Err(fail(
                None,
                "no plugins; add a `[[plugin]]` table with `name`, `wasm` and `subscribe`".into(),
            ));
        }
        let mut excluded: Vec<String> = ALWAYS_EXCLUDED.map(String::from).to_vec();
        excluded.extend(
            raw.kafka
                .exclude
                .iter()
                .filter(|p| !ALWAYS_EXCLUDED.contains(&p.as_str()))
                .cloned(),
        );
        let exclude =
            Matcher::new(&excluded).map_err(|m| fail(None, format!("`kafka.exclude`: {m}")))?;
        if raw.kafka.partitions < 1 || raw.kafka.topic_partitions.values().any(|p| *p < 1) {
            return Err(fail(None, "`kafka.partitions` must be at least 1".into()));
        }
        let k = &raw.kafka;
        if k.guarantee == Guarantee::ExactlyOnce
            && (k.transaction_interval_ms == 0
                || k.transaction_timeout_ms < 1000
                || k.transaction_timeout_ms <= k.transaction_interval_ms)
        {
            return Err(fail(
                None,
                "`kafka.transaction_timeout_ms` must be at least 1000 and above \
                 `kafka.transaction_interval_ms`, which must be above 0"
                    .into(),
            ));
        }
        Ok(RouterConfig {
            path: path.to_path_buf(),
            kafka: raw.kafka,
            admin: raw.admin,
            state: raw.state,
            exclude,
            max_hops: raw.max_hops.unwrap_or(8),
            plugins,
        })
    }

    /// The input topics the config names literally: subscribed topics, and
    /// subscribed types without wildcards (the catalogs name topics after
    /// types).
    pub fn input_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .plugins
            .iter()
            .flat_map(|p| p.topics.patterns().iter().chain(p.types.patterns()))
            .filter(|t| !t.contains(['*', '?', '[', '{']))
            .cloned()
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// The plugin named `name`.
    pub fn plugin(&self, name: &str) -> Option<&PluginSpec> {
        self.plugins.iter().find(|p| p.name == name)
    }

    /// The topics the router produces to that it can name up front: every
    /// mapped topic, and the topic of every literal (glob-free) emit type.
    pub fn output_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = Vec::new();
        for p in &self.plugins {
            topics.extend(p.topic_map.values().cloned());
            for ty in p.emits.patterns() {
                if !ty.contains(['*', '?', '[', '{']) {
                    topics.push(p.topic_for(ty));
                }
            }
        }
        topics.sort();
        topics.dedup();
        topics
    }

    /// Every topic the router creates at startup when missing: the outputs,
    /// the literal subscribed topics and `kafka.create`.
    pub fn topics_to_create(&self) -> Vec<String> {
        let mut topics = self.output_topics();
        topics.extend(self.kafka.create.iter().cloned());
        for p in &self.plugins {
            let literal = |t: &&String| !t.contains(['*', '?', '[', '{']);
            topics.extend(p.topics.patterns().iter().filter(literal).cloned());
        }
        topics.sort();
        topics.dedup();
        topics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RouterConfig, ConfigError> {
        RouterConfig::parse(text, Path::new("ex/router.toml"))
    }

    #[test]
    fn resolves_paths_defaults_and_globs() {
        let c = parse(
            r#"
            [defaults]
            timeout_ms = 250
            [[plugin]]
            name = "payment"
            wasm = "p.wasm"
            subscribe.types = ["booking.booking.*"]
            emits = ["payment.*"]
            topics = { "payment.payment.failed" = "failures" }
            [plugin.config]
            limit = 5
            "#,
        )
        .unwrap();
        let p = &c.plugins[0];
        assert_eq!(p.wasm, Path::new("ex/p.wasm"));
        assert_eq!(p.limits.timeout, Duration::from_millis(250));
        assert_eq!(p.limits.memory_bytes, 64 << 20);
        assert!(p.subscribes("booking.booking.created", "x"));
        assert!(!p.subscribes("payment.payment.succeeded", "x"));
        assert!(p.emits.matches("payment.payment.succeeded"));
        assert_eq!(p.topic_for("payment.payment.failed"), "failures");
        assert_eq!(
            p.topic_for("payment.payment.succeeded"),
            "payment.payment.succeeded"
        );
        assert_eq!(p.config["limit"], 5);
        assert_eq!(p.source, "switchyard/payment");
    }

    #[test]
    fn errors_are_one_line_with_file_line_and_fix() {
        let e = parse("[[plugin]]\nname = \"a\"\nwasm = \"a.wasm\"\nsubscribe.types = [\"x\"]\ntimout_ms = 5\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("ex/router.toml:"), "{e}");
        assert!(e.contains("timout_ms"), "{e}");
        assert!(!e.contains('\n'), "{e}");

        let e = parse("[[plugin]]\nname = \"a\"\nwasm = \"a.wasm\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "ex/router.toml:2: plugin `a`: subscribes to nothing; set `subscribe.types` or `subscribe.topics`"
        );
    }
}
