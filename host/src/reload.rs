//! Hot reload: new plugin versions from the file system or the admin API.
//!
//! A new version is compiled off the event path (through the content-hash
//! compile cache), checked against the world, and must pass the plugin's
//! fixture files before it is swapped in atomically. A broken file, a file
//! of the wrong world or failing fixtures never replace the running version;
//! the refusal goes to the log, the admin API (`last_error`) and the
//! `switchyard_plugin_reload_failures_total` metric.
//!
//! The watcher watches the folder of each plugin's file rather than the file
//! itself, so an editor or a build that replaces the file (write to a
//! temporary, rename over) is still seen; events are debounced for 300 ms.

use crate::config::RouterConfig;
use crate::engine::{Engine, PluginVersion};
use crate::harness;
use crate::metrics::Metrics;
use crate::registry::{Plugin, PluginRegistry};
use notify::{RecursiveMode, Watcher};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

/// How long file events must be quiet before a reload. Editors and build
/// tools replace a file by renaming a finished one over it, which is one
/// event; a copy written in pieces that pauses longer than this is refused
/// as unreadable and reloaded again by its next write event.
const DEBOUNCE: Duration = Duration::from_millis(25);

/// Loads, checks and swaps in plugin versions.
pub struct Reloader {
    engine: Arc<Engine>,
    registry: Arc<PluginRegistry>,
    config: RouterConfig,
    metrics: Arc<Metrics>,
}

impl Reloader {
    /// A reloader for `registry`'s plugins.
    pub fn new(
        engine: Arc<Engine>,
        registry: Arc<PluginRegistry>,
        config: RouterConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        for plugin in registry.plugins() {
            metrics.live_version(&plugin.spec.name, plugin.current().label());
        }
        Reloader {
            engine,
            registry,
            config,
            metrics,
        }
    }

    /// Makes `wasm` the live version of plugin `name` if it loads, fits the
    /// world and passes the plugin's fixtures. `origin` says where it came
    /// from, for messages.
    pub fn reload(
        &self,
        name: &str,
        wasm: &[u8],
        origin: &str,
    ) -> Result<Arc<PluginVersion>, String> {
        let plugin = self.plugin(name)?;
        let current = plugin.current();
        let outcome = self
            .engine
            .load(name, wasm)
            .map_err(|e| format!("{origin}: {e}"))
            .map(Arc::new)
            .and_then(|version| {
                if version.hash == current.hash {
                    return Ok(version);
                }
                harness::check_version(&self.engine, &self.config, &plugin.spec, version.clone())
                    .map(|_| version)
                    .map_err(|why| format!("{origin}: {why}"))
            });
        match outcome {
            Ok(version) if version.hash == current.hash => Ok(current),
            Ok(version) => {
                plugin.install(version.clone());
                self.metrics.live_version(name, version.label());
                tracing::info!(
                    plugin = name,
                    from = current.label(),
                    to = version.label(),
                    "{origin}: new version live"
                );
                Ok(version)
            }
            Err(why) => {
                tracing::warn!(
                    plugin = name,
                    "reload refused, {} stays live: {why}",
                    current.label()
                );
                plugin.refused(why.clone());
                self.metrics.reload_failed(name);
                Err(why)
            }
        }
    }

    /// Reloads plugin `name` from its configured file.
    pub fn reload_file(&self, name: &str) -> Result<Arc<PluginVersion>, String> {
        let plugin = self.plugin(name)?;
        let path = plugin.spec.wasm.clone();
        let bytes =
            std::fs::read(&path).map_err(|e| format!("{}: cannot read it: {e}", path.display()));
        match bytes {
            Ok(bytes) => self.reload(name, &bytes, &path.display().to_string()),
            Err(why) => {
                plugin.refused(why.clone());
                self.metrics.reload_failed(name);
                Err(why)
            }
        }
    }

    /// Makes plugin `name`'s previous version live again.
    pub fn rollback(&self, name: &str) -> Result<Arc<PluginVersion>, String> {
        let plugin = self.plugin(name)?;
        let version = plugin
            .rollback()
            .ok_or_else(|| format!("plugin `{name}` has no earlier version"))?;
        self.metrics.live_version(name, version.label());
        tracing::info!(plugin = name, to = version.label(), "rolled back");
        Ok(version)
    }

    fn plugin(&self, name: &str) -> Result<&Arc<Plugin>, String> {
        self.registry
            .get(name)
            .ok_or_else(|| format!("no plugin named `{name}`"))
    }

    /// The plugins.
    pub fn registry(&self) -> &Arc<PluginRegistry> {
        &self.registry
    }

    /// Watches every plugin's file and reloads it when it changes. The
    /// returned watcher must be kept alive.
    pub fn watch(self: &Arc<Self>) -> anyhow::Result<notify::RecommendedWatcher> {
        let (tx, rx) = mpsc::channel::<PathBuf>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && !matches!(event.kind, notify::EventKind::Access(_))
                {
                    for path in event.paths {
                        let _ = tx.send(path);
                    }
                }
            })?;
        let mut dirs = HashSet::new();
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        for plugin in self.registry.plugins() {
            let file = absolute(&plugin.spec.wasm);
            if let Some(dir) = file.parent()
                && dirs.insert(dir.to_path_buf())
            {
                watcher.watch(dir, RecursiveMode::NonRecursive)?;
            }
            files.push((plugin.spec.name.clone(), file));
        }
        let this = self.clone();
        std::thread::Builder::new()
            .name("switchyard-reload".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut changed = HashSet::from([absolute(&first)]);
                    while let Ok(path) = rx.recv_timeout(DEBOUNCE) {
                        changed.insert(absolute(&path));
                    }
                    for (name, file) in &files {
                        if changed.contains(file) && file.exists() {
                            let _ = this.reload_file(name);
                        }
                    }
                }
            })?;
        Ok(watcher)
    }
}

fn absolute(path: &Path) -> PathBuf {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (
        path.parent().and_then(|d| d.canonicalize().ok()),
        path.file_name(),
    ) {
        (Some(dir), Some(name)) => dir.join(name),
        _ => path,
    }
}
