//! The command line's arguments, as clap parses them.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// `--lang`: the languages `switchyard new` writes, as the command line
/// spells them (the config's [`Lang`](crate::config::Lang) knows no clap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LangArg {
    /// Rust with the `switchyard-sdk` crate.
    Rust,
    /// Python with componentize-py.
    Python,
    /// JavaScript with componentize-js.
    Js,
}

impl From<LangArg> for crate::config::Lang {
    fn from(lang: LangArg) -> Self {
        use crate::config::Lang;
        match lang {
            LangArg::Rust => Lang::Rust,
            LangArg::Python => Lang::Python,
            LangArg::Js => Lang::Js,
        }
    }
}

/// Routes Kafka events to sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about)]
pub(crate) struct Cli {
    /// Where compiled plugins are cached (default: $SWITCHYARD_CACHE_DIR,
    /// else $XDG_CACHE_HOME/switchyard, else ~/.cache/switchyard).
    #[arg(long, global = true, env = "SWITCHYARD_CACHE_DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run plugins on fixture files, without a broker.
    Test {
        /// Example folders (holding router.toml) or router.toml files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Only this plugin's fixtures.
        #[arg(long)]
        plugin: Option<String>,
    },
    /// Check that wasm files implement the handler world.
    Validate {
        /// The component files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Route a Kafka cluster's events to the plugins.
    Run {
        /// The router config.
        #[arg(long)]
        config: PathBuf,
        /// `bootstrap.servers`, overriding the config's.
        #[arg(long, env = "SWITCHYARD_BROKERS")]
        brokers: Option<String>,
        /// Where to serve the admin API and /metrics.
        #[arg(long, default_value = "127.0.0.1:9464")]
        admin: std::net::SocketAddr,
        /// Do not serve the admin API.
        #[arg(long)]
        no_admin: bool,
        /// Where the plugin state store lives.
        #[arg(long, default_value = ".switchyard/state")]
        state_dir: PathBuf,
        /// Keep plugin state and versions in PostgreSQL instead of a local
        /// file, shared by every instance of the group:
        /// `postgres://user[:password]@host[:port]/database`.
        #[arg(long, env = "SWITCHYARD_STATE_URL")]
        state_url: Option<String>,
        /// The consumer group, overriding the config's.
        #[arg(long)]
        group: Option<String>,
        /// A stable id for this instance in the group (static membership):
        /// restarted with the same id, it takes its partitions back at once
        /// instead of after the session timeout. Give each instance its own,
        /// such as its pod name.
        #[arg(long, env = "SWITCHYARD_INSTANCE_ID")]
        instance_id: Option<String>,
        /// Do not create topics through the admin API: for brokers without
        /// CreateTopics (the librdkafka mock cluster), which auto-create on
        /// first produce.
        #[arg(long)]
        no_create_topics: bool,
    },
    /// Run the router on an embedded Kafka-protocol broker, with a live tail.
    Dev {
        /// The router config.
        #[arg(long, default_value = "examples/booking/router.toml")]
        config: PathBuf,
        /// Where the plugin state store lives (default: a fresh temporary folder).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Seconds between summary lines.
        #[arg(long, default_value_t = 10)]
        summary_secs: u64,
        /// Where to serve the admin API (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        admin: std::net::SocketAddr,
        /// Run a candidate version beside a plugin's live one and compare
        /// them on every event, producing nothing of it: `name=file.wasm`
        /// (repeatable). The status page shows the differences.
        #[arg(long, value_name = "PLUGIN=FILE", value_parser = shadow_arg)]
        shadow: Vec<(String, PathBuf)>,
    },
    /// Write a new plugin: a handler, a fixture, a schema and a router.toml.
    New {
        /// The plugin's name (lowercase letters, digits, `-`, `_`).
        name: String,
        /// Its language.
        #[arg(long, value_enum, default_value = "rust")]
        lang: LangArg,
        /// The folder to create (default: `./<name>`).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Rust only: the switchyard-sdk crate to depend on (default: the
        /// checkout this binary was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// A plugin's shadow version on a running router, through its admin
    /// API: attach a candidate (`switchyard shadow receipt new.wasm`), show
    /// how it compares with the live version (no file), promote or drop it.
    Shadow {
        /// The plugin.
        plugin: String,
        /// The candidate's wasm file, to attach as the shadow.
        file: Option<PathBuf>,
        /// Make the shadow live (its fixtures must pass), and drop it.
        #[arg(long, conflicts_with_all = ["file", "drop"])]
        promote: bool,
        /// Drop the shadow.
        #[arg(long, conflicts_with = "file")]
        drop: bool,
        /// The router's admin API.
        #[arg(
            long,
            env = "SWITCHYARD_ADMIN",
            default_value = "http://127.0.0.1:9464"
        )]
        admin: String,
        /// The admin token (`[admin] token` of the router's config).
        #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Replay a topic's history through a plugin's live version and a
    /// candidate, offline, and compare them as a shadow does: exit 0 when
    /// nothing differs, 1 when something does, 2 on an error. It reads
    /// outside the consumer group, commits and produces nothing.
    Replay(crate::replay::ReplayArgs),
    /// Dead-letter topics.
    Dlq {
        /// What to do with them.
        #[command(subcommand)]
        command: DlqCommand,
    },
}

/// `switchyard dlq` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// Send every record of a dead-letter topic back to its original topic.
    Replay {
        /// The dead-letter topic, such as `booking.booking.created.dlq`.
        topic: String,
        /// `bootstrap.servers`.
        #[arg(long, env = "SWITCHYARD_BROKERS", default_value = "127.0.0.1:9092")]
        brokers: String,
        /// Give up after this many seconds without a record.
        #[arg(long, default_value_t = 30)]
        idle_secs: u64,
        /// A `router.toml` whose `[kafka.client]` settings (SASL, TLS) the
        /// replay uses, as the router does.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Parses `name=file.wasm`.
fn shadow_arg(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((name, file)) if !name.is_empty() && !file.is_empty() => {
            Ok((name.to_string(), PathBuf::from(file)))
        }
        _ => Err(format!(
            "`{text}`: write it as PLUGIN=FILE, such as receipt=receipt-v2.wasm"
        )),
    }
}
