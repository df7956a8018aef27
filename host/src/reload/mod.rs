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
use crate::fixtures::FixtureError;

use crate::metrics::Metrics;
use crate::registry::{Plugin, PluginRegistry};
use crate::state::VersionStore;
mod shadow;
mod shared;
mod watch;

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often an instance sharing its store looks for versions changed by
/// the others.
pub(crate) const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// Why a change to a plugin was refused; the live version stays.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReloadError {
    /// No plugin has that name.
    #[error("no plugin named `{0}`")]
    NoSuchPlugin(String),
    /// The plugin's file could not be read.
    #[error("{path}: cannot read it: {why}")]
    Unreadable {
        /// The file.
        path: String,
        /// The I/O error.
        why: String,
    },
    /// The wasm does not load: not a component, the wrong world, or it
    /// does not compile.
    #[error("{origin}: {why}")]
    Load {
        /// Where it came from (a path, or `upload`).
        origin: String,
        /// The engine's [`LoadError`](crate::engine::LoadError), as text.
        why: String,
    },
    /// It loads, but one of the plugin's fixtures fails on it.
    #[error("{origin}: {why}")]
    Fixtures {
        /// Where it came from.
        origin: String,
        /// The failing fixture and its diff.
        why: FixtureError,
    },
    /// The state store could not keep the change, so it was not made.
    #[error("cannot store the change, so nothing changed: {0}")]
    Store(String),
    /// A rollback with no earlier version to go back to.
    #[error("plugin `{0}` has no earlier version")]
    NoEarlierVersion(String),
    /// A shadow change for a plugin that has none.
    #[error("plugin `{0}` has no shadow version; upload one first (PUT /plugins/{0}/shadow)")]
    NoShadow(String),
}

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
    pub(crate) fn with_versions(mut self, store: Arc<dyn VersionStore>) -> Self {
        self.versions = Some(store);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.changes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `wasm` the live version of plugin `name` if it loads, fits the
    /// world and passes the plugin's fixtures. `origin` says where it came
    /// from, for messages.
    pub(crate) fn reload(
        &self,
        name: &str,
        wasm: &[u8],
        origin: &str,
    ) -> Result<Arc<PluginVersion>, ReloadError> {
        let plugin = self.plugin(name)?;
        let _changing = self.lock();
        let current = plugin.current();
        // A promoted shadow came through the API too: a restart keeps it.
        let kind = if origin == "upload" || origin == "shadow" {
            "upload"
        } else {
            "file"
        };
        plugin.set_reloading(true);
        let outcome = self
            .engine
            .load(name, wasm)
            .map_err(|e| ReloadError::Load {
                origin: origin.to_string(),
                why: e.to_string(),
            })
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
                .map_err(|why| ReloadError::Fixtures {
                    origin: origin.to_string(),
                    why,
                })
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
                plugin.refused(why.to_string());
                self.metrics.reload_failed(name);
                Err(why)
            }
        }
    }

    /// Reloads plugin `name` from its configured file.
    pub(crate) fn reload_file(&self, name: &str) -> Result<Arc<PluginVersion>, ReloadError> {
        let plugin = self.plugin(name)?;
        let path = plugin.spec.wasm.clone();
        let bytes = std::fs::read(&path).map_err(|e| ReloadError::Unreadable {
            path: path.display().to_string(),
            why: e.to_string(),
        });
        match bytes {
            Ok(bytes) => self.reload(name, &bytes, &path.display().to_string()),
            Err(why) => {
                plugin.refused(why.to_string());
                self.metrics.reload_failed(name);
                Err(why)
            }
        }
    }

    /// Makes plugin `name`'s previous version live again.
    pub(crate) fn rollback(&self, name: &str) -> Result<Arc<PluginVersion>, ReloadError> {
        let plugin = self.plugin(name)?;
        let _changing = self.lock();
        let previous = plugin
            .previous()
            .ok_or_else(|| ReloadError::NoEarlierVersion(name.to_string()))?;
        self.store(name, &previous, "rollback", plugin.is_paused(), true)?;
        let version = plugin.rollback().expect("a previous version");
        self.metrics.live_version(name, version.label());
        tracing::info!(plugin = name, to = version.label(), "rolled back");
        Ok(version)
    }

    /// Pauses (or resumes) plugin `name`: its records wait until it resumes.
    pub(crate) fn pause(&self, name: &str, paused: bool) -> Result<(), ReloadError> {
        let plugin = self.plugin(name)?;
        let _changing = self.lock();
        self.store(name, &plugin.current(), plugin.how(), paused, false)?;
        plugin.set_paused(paused);
        tracing::info!(plugin = name, paused, "pause state changed");
        Ok(())
    }

    fn plugin(&self, name: &str) -> Result<&Arc<Plugin>, ReloadError> {
        self.registry
            .get(name)
            .ok_or_else(|| ReloadError::NoSuchPlugin(name.to_string()))
    }

    /// The plugins.
    pub(crate) fn registry(&self) -> &Arc<PluginRegistry> {
        &self.registry
    }
}
