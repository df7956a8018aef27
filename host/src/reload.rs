//! Hot reload: new plugin versions from the file system or the admin API.
//!
//! A new version is compiled off the event path (through the content-hash
//! compile cache), checked against the world, and must pass the plugin's
//! fixture files before it is swapped in atomically. A broken file, a file
//! of the wrong world or failing fixtures never replace the running version;
//! the refusal goes to the log, the admin API (`last_error`) and the
//! `switchyard_plugin_reload_failures_total` metric.
//!
//! # Versions kept in the state store
//!
//! Every change (a reload from the file or an upload, a rollback, a pause)
//! is stored in the state store before it goes live here, so it outlives a
//! restart; when the store is shared (PostgreSQL), every other instance
//! polls it each [`FOLLOW_EVERY`] and serves the same version a moment
//! later. A change the store refuses does not go live anywhere.
//!
//! At startup, a stored version that came from an upload or a rollback
//! wins over the plugin's file: a restart keeps what the operator chose.
//! A stored version that came from a file is replaced by this instance's
//! file, so deploying a new file and restarting picks it up. To return to
//! the file after an upload, reload it (`POST /plugins/{name}/reload`).
//!
//! The watcher watches the folder of each plugin's file rather than the file
//! itself, so an editor or a build that replaces the file (write to a
//! temporary, rename over) is still seen; events are debounced for 25 ms
//! (`DEBOUNCE`).

use crate::config::RouterConfig;
use crate::engine::{Engine, PluginVersion};

use crate::metrics::Metrics;
use crate::registry::{Plugin, PluginRegistry};
use crate::state::{LiveVersion, VersionStore};
use notify::{RecursiveMode, Watcher};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often an instance sharing its store looks for versions changed by
/// the others.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(1);

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
    versions: Option<Arc<dyn VersionStore>>,
    /// Held while a change is stored and made, and while stored changes are
    /// applied, so that the two never interleave.
    changes: Mutex<()>,
}

/// How a stored origin reads as the registry's.
fn how(origin: &str) -> &'static str {
    match origin {
        "upload" => "upload",
        "rollback" => "rollback",
        _ => "file",
    }
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
            versions: None,
            changes: Mutex::new(()),
        }
    }

    /// Keeps every change in `store`; see the module docs.
    pub fn with_versions(mut self, store: Arc<dyn VersionStore>) -> Self {
        self.versions = Some(store);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.changes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores plugin `name`'s live version as `version`, `how` and `paused`.
    fn store(
        &self,
        name: &str,
        version: &PluginVersion,
        how: &str,
        paused: bool,
        with_wasm: bool,
    ) -> Result<(), String> {
        let Some(store) = &self.versions else {
            return Ok(());
        };
        let live = LiveVersion {
            plugin: name.to_string(),
            hash: version.hash.clone(),
            origin: how.to_string(),
            paused,
        };
        store
            .publish(&live, with_wasm.then_some(&version.wasm[..]))
            .map_err(|e| format!("cannot store the change, so nothing changed: {e:#}"))
    }

    /// Applies the stored versions at startup; see the module docs.
    pub fn adopt(&self) -> anyhow::Result<()> {
        let Some(store) = &self.versions else {
            return Ok(());
        };
        let _changing = self.lock();
        let stored: HashMap<String, LiveVersion> = store
            .live()?
            .into_iter()
            .map(|l| (l.plugin.clone(), l))
            .collect();
        for plugin in self.registry.plugins() {
            let name = &plugin.spec.name;
            match stored.get(name) {
                Some(row) if row.origin != "file" => {
                    // A stored version that no longer loads (say, after the
                    // contract changed) must not stop the router: the file
                    // serves, and the store keeps the row for the others.
                    if let Err(e) = self.apply(plugin, row) {
                        tracing::warn!(
                            plugin = %name,
                            "the stored {} version {} cannot be used, the file serves: {e:#}",
                            row.origin,
                            &row.hash[..row.hash.len().min(12)]
                        );
                    }
                }
                row => {
                    let paused = row.is_some_and(|r| r.paused);
                    let current = plugin.current();
                    if row.is_none_or(|r| r.hash != current.hash) {
                        self.store(name, &current, "file", paused, true)
                            .map_err(anyhow::Error::msg)?;
                    }
                    plugin.set_paused(paused);
                }
            }
        }
        Ok(())
    }

    /// Makes `row` plugin's live version and pause state here.
    fn apply(&self, plugin: &Plugin, row: &LiveVersion) -> anyhow::Result<()> {
        let name = &plugin.spec.name;
        let current = plugin.current();
        if row.hash != current.hash {
            let previous = plugin.previous();
            let version = match previous.filter(|p| p.hash == row.hash) {
                Some(_) => plugin.rollback().expect("a previous version"),
                None => {
                    let store = self.versions.as_ref().expect("a version store");
                    let wasm = store.wasm(&row.hash)?.ok_or_else(|| {
                        anyhow::anyhow!("plugin `{name}`: version {} is not stored", row.hash)
                    })?;
                    let version = Arc::new(
                        self.engine
                            .load(name, &wasm)
                            .map_err(|e| anyhow::anyhow!("stored plugin `{name}`: {e}"))?,
                    );
                    plugin.install(version.clone(), how(&row.origin));
                    version
                }
            };
            self.metrics.live_version(name, version.label());
            tracing::info!(
                plugin = %name,
                from = current.label(),
                to = version.label(),
                "the stored version is live ({})",
                row.origin
            );
        }
        if plugin.is_paused() != row.paused {
            tracing::info!(plugin = %name, paused = row.paused, "the stored pause state applies");
            plugin.set_paused(row.paused);
        }
        Ok(())
    }

    /// Polls a shared store for changes made by other instances, every
    /// [`FOLLOW_EVERY`], until the reloader is dropped.
    pub fn follow(self: &Arc<Self>) -> std::io::Result<()> {
        if !self.versions.as_ref().is_some_and(|v| v.shared()) {
            return Ok(());
        }
        let this = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("switchyard-versions".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(FOLLOW_EVERY);
                    let Some(this) = this.upgrade() else { return };
                    let _changing = this.lock();
                    let stored = match this.versions.as_ref().expect("a version store").live() {
                        Ok(stored) => stored,
                        Err(e) => {
                            tracing::debug!("plugin versions: {e:#}");
                            continue;
                        }
                    };
                    for row in stored {
                        if let Some(plugin) = this.registry.get(&row.plugin)
                            && let Err(e) = this.apply(plugin, &row)
                        {
                            tracing::warn!("plugin versions: {e:#}");
                        }
                    }
                }
            })?;
        Ok(())
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
        let _changing = self.lock();
        let current = plugin.current();
        let kind = if origin == "upload" { "upload" } else { "file" };
        plugin.set_reloading(true);
        let outcome = self
            .engine
            .load(name, wasm)
            .map_err(|e| format!("{origin}: {e}"))
            .map(Arc::new)
            .and_then(|version| {
                if version.hash == current.hash {
                    return Ok(version);
                }
                crate::fixtures::check_version(
                    &self.engine,
                    &self.config,
                    &plugin.spec,
                    version.clone(),
                )
                .map(|_| version)
                .map_err(|why| format!("{origin}: {why}"))
            })
            .and_then(|version| {
                if version.hash != current.hash {
                    self.store(name, &version, kind, plugin.is_paused(), true)?;
                }
                Ok(version)
            });
        plugin.set_reloading(false);
        match outcome {
            Ok(version) if version.hash == current.hash => Ok(current),
            Ok(version) => {
                plugin.install(version.clone(), kind);
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
        let _changing = self.lock();
        let previous = plugin
            .previous()
            .ok_or_else(|| format!("plugin `{name}` has no earlier version"))?;
        self.store(name, &previous, "rollback", plugin.is_paused(), true)?;
        let version = plugin.rollback().expect("a previous version");
        self.metrics.live_version(name, version.label());
        tracing::info!(plugin = name, to = version.label(), "rolled back");
        Ok(version)
    }

    /// Pauses (or resumes) plugin `name`: its records wait until it resumes.
    pub fn pause(&self, name: &str, paused: bool) -> Result<(), String> {
        let plugin = self.plugin(name)?;
        let _changing = self.lock();
        self.store(name, &plugin.current(), plugin.how(), paused, false)?;
        plugin.set_paused(paused);
        tracing::info!(plugin = name, paused, "pause state changed");
        Ok(())
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

    /// Watches every plugin's file and reloads it when it changes, except,
    /// with `skip_built`, the plugins the host builds itself on a save (see
    /// [`crate::rebuild`]): their file is reloaded once its build ends, not
    /// while the build is still writing it. The returned watcher must be
    /// kept alive.
    pub fn watch(self: &Arc<Self>, skip_built: bool) -> anyhow::Result<notify::RecommendedWatcher> {
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
            if skip_built && plugin.spec.build.is_some() {
                continue;
            }
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
