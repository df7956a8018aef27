//! The local test harness behind `switchyard test`: runs plugins on fixture
//! files with no broker.
//!
//! The fixture format and how a fixture runs are in [`crate::fixtures`];
//! this module runs every plugin's fixtures and prints a line per fixture
//! and a diff per failure.

pub use crate::fixtures::fixture_files;

use crate::config::RouterConfig;
use crate::engine::Engine;
use crate::fixtures::{HISTORY, fixture_files as files_of, history_check, run_fixture};
use crate::registry::PluginRegistry;
use anyhow::bail;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// The result of running a set of fixtures.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Fixtures that passed.
    pub(crate) passed: usize,
    /// Fixtures that failed, with why.
    pub(crate) failed: Vec<(PathBuf, String)>,
}

/// Runs the fixtures of every plugin in `config` (or only `only`), printing
/// one line per fixture and a diff for each failure to `out`.
pub(crate) fn run_config(
    engine: &Arc<Engine>,
    config: &RouterConfig,
    only: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<Report> {
    if let Some(name) = only
        && config.plugin(name).is_none()
    {
        bail!(
            "{}: no plugin named `{name}`; pick one of the `[[plugin]]` names",
            config.path.display()
        );
    }
    let registry = Arc::new(PluginRegistry::load(engine, config, only)?);
    let mut report = Report::default();
    for plugin in registry.plugins() {
        let files = files_of(&plugin.spec)?;
        let history = history_check(engine, config, plugin, &files);
        for (file, history) in files.into_iter().zip(history) {
            let shown = file.display().to_string();
            match run_fixture(engine, config, plugin, &file).and_then(|fresh| match history {
                Some(Ok(warm)) if warm != fresh => Err(HISTORY.to_string()),
                Some(Err(why)) => Err(format!("{HISTORY}\n{why}")),
                _ => Ok(()),
            }) {
                Ok(()) => {
                    report.passed += 1;
                    writeln!(out, "ok   {:<12} {shown}", plugin.spec.name)?;
                }
                Err(why) => {
                    writeln!(
                        out,
                        "FAIL {:<12} {shown}\n{}",
                        plugin.spec.name,
                        indent(&why)
                    )?;
                    report.failed.push((file, why));
                }
            }
        }
    }
    Ok(report)
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("     {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
