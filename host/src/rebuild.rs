//! Building plugins from their sources: once when stale, and on every save
//! in `switchyard dev`, as `spin watch` does.
//!
//! A plugin with `sources` (and optionally `build`) in its `[[plugin]]`
//! table can be built by the host: the command runs through `sh -c` in the
//! sources folder, with `{wasm}` replaced by the plugin's `.wasm` path (also
//! in `SWITCHYARD_WASM`).
//!
//! - `switchyard test` and `switchyard dev` first build a plugin whose
//!   `.wasm` is missing or older than a file in its sources (links are
//!   followed). A failed startup build stops `test`; `dev` prints it and
//!   serves the `.wasm` already there, if there is one.
//! - Only the sources folder counts: a build that also reads files outside
//!   it (a shared SDK, say) is not rebuilt when those change.
//! - Schemas, fixtures and `router.toml` are read when `dev` starts: a
//!   rebuilt version is checked against the fixtures as they are on disk,
//!   but a changed schema or config takes a restart.
//! - `switchyard dev` then watches the sources. A save, once quiet for
//!   [`QUIET`], rebuilds; the result goes live through the same reload path
//!   as a new `.wasm` file (checked against the world and the plugin's
//!   fixtures before it is swapped in). Saves during a build start one more
//!   build after it.
//! - A failing build prints its output once, on stderr, and the version
//!   already serving keeps serving.
//!
//! Build products never count as sources: anything under `target/`,
//! `node_modules/`, `__pycache__/` or a hidden folder, `.wasm` and `.cwasm`
//! files, and editor backups (`~`, `.swp`, `.tmp`).

use crate::config::{PluginSpec, RouterConfig};
use crate::reload::Reloader;
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime};

/// How long sources must be quiet after a save before a rebuild starts.
pub(crate) const QUIET: Duration = Duration::from_millis(200);

/// The last lines of a failed build's output that are printed.
const SHOWN_LINES: usize = 60;

/// Whether `path` (inside a sources folder) is a build product or editor
/// litter rather than a source.
pub(crate) fn ignored(path: &Path) -> bool {
    let hidden_or_product = path.components().any(|c| {
        let c = c.as_os_str().to_string_lossy();
        matches!(c.as_ref(), "target" | "node_modules" | "__pycache__")
            || (c.starts_with('.') && c != "." && c != "..")
    });
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    hidden_or_product
        || [".wasm", ".cwasm", "~", ".swp", ".tmp"]
            .iter()
            .any(|end| name.ends_with(end))
}

/// The newest modification time of a source file under `dir`.
fn newest_source(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if ignored(path.strip_prefix(&dir).unwrap_or(&path)) {
                continue;
            }
            // Through links: a linked helper's own time is what counts.
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => stack.push(path),
                Ok(m) => newest = newest.max(m.modified().ok()),
                Err(_) => {}
            }
        }
    }
    newest
}

/// `dir` and every folder below it that is not ignored.
fn source_folders(dir: &Path) -> Vec<PathBuf> {
    let mut folders = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < folders.len() {
        let here = folders[i].clone();
        for entry in std::fs::read_dir(&here).into_iter().flatten().flatten() {
            let path = entry.path();
            let inside = path.strip_prefix(dir).unwrap_or(&path);
            if entry.file_type().is_ok_and(|t| t.is_dir()) && !ignored(inside) {
                folders.push(path);
            }
        }
        i += 1;
    }
    folders
}

/// Whether a plugin's `.wasm` is missing or older than one of its sources.
pub(crate) fn is_stale(spec: &PluginSpec) -> bool {
    let Some(build) = &spec.build else {
        return false;
    };
    let built = std::fs::metadata(&spec.wasm).and_then(|m| m.modified());
    match (built, newest_source(&build.dir)) {
        (Err(_), _) => true,
        (Ok(built), Some(source)) => source > built,
        (Ok(_), None) => false,
    }
}

/// Runs a plugin's build command; `Err` holds what to print (the command,
/// its exit status and the end of its output).
pub(crate) fn build(spec: &PluginSpec) -> Result<Duration, String> {
    let Some(build) = &spec.build else {
        return Err(format!("plugin `{}` has no `sources` to build", spec.name));
    };
    let wasm = std::path::absolute(&spec.wasm).unwrap_or_else(|_| spec.wasm.clone());
    let command = build.command_for(&wasm);
    let started = Instant::now();
    let output = Command::new("sh")
        .arg("-c")
        .arg(&command)
        .current_dir(&build.dir)
        .env("SWITCHYARD_WASM", &wasm)
        .output()
        .map_err(|e| {
            format!(
                "build of `{}`: cannot run `sh -c {command}`: {e}",
                spec.name
            )
        })?;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr).to_string()
            + &String::from_utf8_lossy(&output.stdout);
        let lines: Vec<&str> = text.lines().collect();
        let shown = &lines[lines.len().saturating_sub(SHOWN_LINES)..];
        return Err(format!(
            "build of `{}` failed ({}), in {}: {command}\n{}",
            spec.name,
            output.status,
            build.dir.display(),
            shown
                .iter()
                .map(|l| format!("  | {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    // A build tool with nothing to do (cargo after a fixture edit) leaves the
    // file as it was; marking it built keeps it from counting as stale.
    let touched = std::fs::File::options()
        .append(true)
        .open(&wasm)
        .and_then(|f| f.set_modified(SystemTime::now()));
    if touched.is_err() {
        return Err(format!(
            "build of `{}` succeeded but wrote no {}; make `build` write there or fix `wasm`",
            spec.name,
            wasm.display()
        ));
    }
    Ok(started.elapsed())
}

/// Builds every plugin of `config` (or just `only`) that is stale, saying
/// so on stderr.
pub fn build_stale(config: &RouterConfig, only: Option<&str>) -> anyhow::Result<()> {
    let wanted = |s: &&PluginSpec| only.is_none_or(|name| s.name == name);
    for spec in config.plugins.iter().filter(wanted).filter(|s| is_stale(s)) {
        let wasm = std::path::absolute(&spec.wasm).unwrap_or_else(|_| spec.wasm.clone());
        let command = spec.build.as_ref().map(|b| b.command_for(&wasm));
        eprintln!("building `{}`: {}", spec.name, command.unwrap_or_default());
        let took = build(spec).map_err(|e| anyhow::anyhow!(e))?;
        eprintln!("built `{}` in {:.1} s", spec.name, took.as_secs_f64());
    }
    Ok(())
}

/// Watches the sources of every plugin that has them, rebuilding and
/// reloading on a save. `None` when no plugin has sources; otherwise the
/// watcher must be kept alive.
pub(crate) fn watch(reloader: Arc<Reloader>) -> anyhow::Result<Option<notify::RecommendedWatcher>> {
    let plugins: Vec<(String, PathBuf)> = reloader
        .registry()
        .plugins()
        .iter()
        .filter_map(|p| {
            let dir = &p.spec.build.as_ref()?.dir;
            match dir.canonicalize() {
                Ok(dir) => Some((p.spec.name.clone(), dir)),
                Err(e) => {
                    tracing::warn!(plugin = %p.spec.name, "not rebuilt on save: sources {}: {e}", dir.display());
                    None
                }
            }
        })
        .collect();
    if plugins.is_empty() {
        return Ok(None);
    }
    let (tx, rx) = mpsc::channel::<PathBuf>();
    let roots: Vec<PathBuf> = plugins.iter().map(|(_, dir)| dir.clone()).collect();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
            // Build products never reach the debounce, so a build writing
            // to `target/` cannot hold back a rebuild.
            for path in event.paths {
                let source = roots
                    .iter()
                    .any(|root| path.strip_prefix(root).is_ok_and(|inside| !ignored(inside)));
                if source {
                    let _ = tx.send(path);
                }
            }
        }
    })?;
    // Each source folder is watched on its own, skipping `target/`,
    // `node_modules/` and the like, which can hold thousands of folders (and
    // exhaust inotify's watches). A folder created later is not watched
    // until `dev` restarts.
    for (_, dir) in &plugins {
        for folder in source_folders(dir) {
            watcher.watch(&folder, RecursiveMode::NonRecursive)?;
        }
    }
    let affected = move |path: &Path| -> Vec<String> {
        plugins
            .iter()
            .filter(|(_, dir)| path.strip_prefix(dir).is_ok_and(|inside| !ignored(inside)))
            .map(|(name, _)| name.clone())
            .collect()
    };
    std::thread::Builder::new()
        .name("switchyard-rebuild".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut due: BTreeSet<String> = affected(&first).into_iter().collect();
                while let Ok(path) = rx.recv_timeout(if due.is_empty() {
                    Duration::from_secs(3600)
                } else {
                    QUIET
                }) {
                    due.extend(affected(&path));
                }
                for name in due {
                    rebuild(&reloader, &name);
                }
            }
        })?;
    Ok(Some(watcher))
}

/// One rebuild after a save, and its reload.
fn rebuild(reloader: &Reloader, name: &str) {
    let Some(plugin) = reloader.registry().get(name) else {
        return;
    };
    let serving = plugin.current().label().to_string();
    tracing::info!(plugin = name, "sources changed; rebuilding");
    match build(&plugin.spec) {
        Ok(took) => match reloader.reload_file(name) {
            Ok(version) if version.label() == serving => tracing::info!(
                plugin = name,
                "rebuilt in {:.1} s; the same version {serving} keeps serving",
                took.as_secs_f64()
            ),
            Ok(version) => tracing::info!(
                plugin = name,
                "rebuilt in {:.1} s; {} serving",
                took.as_secs_f64(),
                version.label()
            ),
            Err(why) => {
                eprintln!("{name}: the rebuilt version was refused, {serving} keeps serving: {why}")
            }
        },
        Err(output) => eprintln!("{output}\n{name}: {serving} keeps serving"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_products_and_editor_litter_are_not_sources() {
        for path in [
            "target/wasm32-wasip2/release/x.wasm",
            "node_modules/a/b.js",
            "__pycache__/app.cpython-314.pyc",
            ".git/index",
            "src/.lib.rs.swp",
            "app.py~",
            "hello.wasm",
        ] {
            assert!(ignored(Path::new(path)), "{path}");
        }
        for path in ["src/lib.rs", "app.py", "wit/switchyard.wit", "Cargo.toml"] {
            assert!(!ignored(Path::new(path)), "{path}");
        }
    }
}
