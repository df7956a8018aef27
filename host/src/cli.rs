//! The `switchyard` command line.
//!
//! - `switchyard test <example-dir|router.toml>... [--plugin NAME]` runs
//!   plugins on their fixture files with no broker, ending with a line
//!   `N passed, N failed`; it exits non-zero on any failure.
//! - `switchyard validate <file.wasm>...` says whether each file is a
//!   component implementing `switchyard:plugin/handler@0.1.0`.

use crate::config::RouterConfig;
use crate::engine::{Engine, EngineOptions};
use crate::harness;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Routes Kafka events to sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about)]
pub struct Cli {
    /// Where compiled plugins are cached (default: $SWITCHYARD_CACHE_DIR,
    /// else $XDG_CACHE_HOME/switchyard, else ~/.cache/switchyard).
    #[arg(long, global = true, env = "SWITCHYARD_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
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
}

/// Parses the command line, runs it, and returns the process exit code.
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
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
        Command::Validate { files } => validate(engine(cli.cache_dir)?, &files),
    }
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
                "ok: {} implements switchyard:plugin/handler@0.1.0 (version {})",
                file.display(),
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
