//! The `switchyard` command line.
//!
//! - `switchyard test <example-dir|router.toml>... [--plugin NAME]` runs
//!   plugins on their fixture files with no broker, ending with a line
//!   `N passed, N failed`; it exits non-zero on any failure.
//! - `switchyard validate <file.wasm>...` says whether each file is a
//!   component implementing `switchyard:plugin/handler` (0.2.0, or 0.1.0).
//! - `switchyard run --config <file>` routes a Kafka cluster's events.
//! - `switchyard dev [--config <file>]` does the same on an embedded broker,
//!   printing `bootstrap: 127.0.0.1:<port>`, a live tail and a summary.
//! - `switchyard dlq replay <topic.dlq>` sends dead letters back to their
//!   original topics.
//! - `switchyard replay --config <file> --topic T --plugin P --candidate
//!   <file.wasm>` runs a topic's history through a plugin's live version and
//!   a candidate and compares them (see [`crate::replay`]).
//! - `switchyard new <name> [--lang rust|python|js] [--dir PATH]` writes a
//!   plugin that builds and passes `switchyard test` at once.
//!
//! `test` and `dev` first build the plugins whose `.wasm` is older than
//! their `sources`; `dev` also rebuilds and reloads them on every save (see
//! [`crate::rebuild`]).

mod shadow;

use crate::config::RouterConfig;
use crate::engine::{Engine, EngineOptions};
use crate::harness;
use crate::kafka::{self, broker::EmbeddedBroker};
use crate::service::{self, RunOptions};
use crate::{rebuild, scaffold};
use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

mod args;

pub(crate) use args::{Cli, Command, DlqCommand};

/// Parses the command line, runs it, and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_filter = match cli.command {
        Command::Run { .. } => "info",
        Command::Dev { .. } => {
            "warn,switchyard::tail=info,switchyard::summary=info,switchyard::service=info"
        }
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn engine(cache_dir: Option<PathBuf>) -> anyhow::Result<Arc<Engine>> {
    let mut options = EngineOptions::default();
    if cache_dir.is_some() {
        options.cache_dir = cache_dir;
    }
    Ok(Arc::new(Engine::new(options)?))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Test { paths, plugin } => test(engine(cli.cache_dir)?, &paths, plugin.as_deref()),
        Command::New {
            name,
            lang,
            dir,
            sdk,
        } => {
            let dir = scaffold::create(&scaffold::NewPlugin {
                name,
                lang: lang.into(),
                dir,
                sdk,
            })?;
            let shown = dir.display();
            println!("created {shown}/");
            println!(
                "  switchyard test {shown}                       # builds it, runs its fixture"
            );
            println!(
                "  switchyard dev --config {shown}/router.toml   # runs it; rebuilds on every save"
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { files } => validate(engine(cli.cache_dir)?, &files),
        Command::Run {
            config,
            brokers,
            admin,
            state_dir,
            state_url,
            group,
            instance_id,
            no_create_topics,
            no_admin,
        } => {
            let config = RouterConfig::load(&config)?;
            let options = RunOptions {
                brokers: brokers.unwrap_or_else(|| config.kafka.bootstrap_servers.clone()),
                group: group.unwrap_or_else(|| config.kafka.group_id.clone()),
                instance_id,
                state_dir,
                state_url,
                cache_dir: cli.cache_dir,
                summary_every: Some(Duration::from_secs(60)),
                create_topics: !no_create_topics,
                admin: (!no_admin).then_some(admin),
                watch: true,
                rebuild: false,
                workers: None,
                stats: None,
                shadows: Vec::new(),
            };
            serve(config, options)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Dev {
            config,
            state_dir,
            summary_secs,
            admin,
            shadow,
        } => {
            let mut config = RouterConfig::load(&config)?;
            if config.kafka.guarantee == crate::config::Guarantee::ExactlyOnce {
                anyhow::bail!(
                    "{}: `[kafka] guarantee = \"exactly-once\"` needs Kafka transactions, which the \
                     embedded broker of `switchyard dev` does not have; set it to \"at-least-once\" \
                     for dev, or use `switchyard run` against Apache Kafka",
                    config.path.display()
                );
            }
            if let Err(e) = rebuild::build_stale(&config, None) {
                // The version on disk, if any, serves until a save builds.
                if config.plugins.iter().any(|p| !p.wasm.is_file()) {
                    return Err(e);
                }
                eprintln!("{e}\nserving the .wasm files already built; fix the sources and save");
            }
            // The mock cluster holds a group's rebalance for the session
            // timeout after a member leaves or a topic appears; a short one
            // keeps restarts and new topics quick in dev.
            for (key, value) in [
                ("session.timeout.ms", "6000"),
                ("heartbeat.interval.ms", "500"),
            ] {
                config
                    .kafka
                    .client
                    .entry(key.to_string())
                    .or_insert_with(|| value.to_string());
            }
            let broker = EmbeddedBroker::start()?;
            for topic in config.topics_to_create() {
                let partitions = config.kafka.partitions_for(&topic);
                broker.create_topic(&topic, partitions)?;
                broker.create_topic(&kafka::dlq::topic_of(&topic), partitions)?;
            }
            let temp;
            let state_dir = match state_dir {
                Some(dir) => dir,
                None => {
                    temp = tempfile::tempdir()?;
                    temp.path().to_path_buf()
                }
            };
            {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                writeln!(out, "bootstrap: {}", broker.bootstrap())?;
                out.flush()?;
            }
            tracing::info!(
                target: "switchyard::service",
                "embedded broker: in memory, keeps about 5 MB per partition (older records are \
                 dropped silently); for more, run `switchyard run` against a real cluster"
            );
            let options = RunOptions {
                brokers: broker.bootstrap(),
                group: config.kafka.group_id.clone(),
                instance_id: None,
                state_dir,
                state_url: None,
                cache_dir: cli.cache_dir,
                summary_every: Some(Duration::from_secs(summary_secs.max(1))),
                create_topics: false,
                admin: Some(admin),
                watch: true,
                rebuild: true,
                workers: None,
                stats: None,
                shadows: shadow,
            };
            serve(config, options)?;
            drop(broker);
            Ok(ExitCode::SUCCESS)
        }
        Command::Shadow {
            plugin,
            file,
            promote,
            drop,
            admin,
            token,
        } => shadow::run(
            &admin,
            token.as_deref(),
            &plugin,
            file.as_deref(),
            promote,
            drop,
        ),
        Command::Replay(args) => Ok(replay(cli.cache_dir, args)),
        Command::Dlq {
            command:
                DlqCommand::Replay {
                    topic,
                    brokers,
                    idle_secs,
                    config,
                },
        } => {
            let extra = match config {
                Some(path) => RouterConfig::load(&path)?.kafka.client,
                None => Default::default(),
            };
            let client = kafka::client_config(&brokers, &extra);
            let n = runtime()?.block_on(kafka::dlq::replay(
                &client,
                &topic,
                Duration::from_secs(idle_secs),
            ))?;
            println!("replayed {n} record(s) from {topic}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `switchyard replay`, whose errors exit 2 (1 means "differs").
fn replay(cache_dir: Option<PathBuf>, args: crate::replay::ReplayArgs) -> ExitCode {
    match engine(cache_dir).and_then(|engine| crate::replay::run(engine, args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the router until a signal; the runtime gets one second to wind
/// down, so a client stuck on a vanished broker cannot hold the exit.
fn serve(config: RouterConfig, options: RunOptions) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let result = runtime.block_on(service::run(config, options, service::signals()));
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn config_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("router.toml")
    } else {
        path.to_path_buf()
    }
}

fn test(engine: Arc<Engine>, paths: &[PathBuf], plugin: Option<&str>) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let (mut passed, mut failed) = (0, 0);
    for path in paths {
        use std::io::Write;
        let config = RouterConfig::load(&config_path(path))?;
        rebuild::build_stale(&config, plugin)?;
        let report = harness::run_config(&engine, &config, plugin, &mut out)?;
        writeln!(
            out,
            "{}: {} passed, {} failed",
            path.display(),
            report.passed,
            report.failed.len()
        )?;
        passed += report.passed;
        failed += report.failed.len();
    }
    if paths.len() > 1 {
        use std::io::Write;
        writeln!(out, "total: {passed} passed, {failed} failed")?;
    }
    Ok(if failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn validate(engine: Arc<Engine>, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut ok = true;
    for file in files {
        match engine.load_file("validate", file) {
            Ok(version) => println!(
                "ok: {} implements switchyard:plugin/handler@{} (version {})",
                file.display(),
                version.contract(),
                version.label()
            ),
            Err(e) => {
                ok = false;
                eprintln!("error: {}: {e}", file.display());
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
