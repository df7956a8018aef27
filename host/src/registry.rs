//! The plugin registry: each configured plugin with its live version, the
//! versions before it (for rollback), its status and whether it is paused.
//!
//! Versions are swapped atomically behind a lock that is held only to clone
//! an `Arc`, so an event in flight keeps running on the version it started
//! with while a new one goes live: each event runs on exactly one version.

use crate::config::{PluginSpec, RouterConfig};
use crate::engine::{Engine, LoadError, PluginVersion};
use serde::Serialize;
use std::sync::{Arc, Mutex, RwLock};

/// How many earlier versions each plugin keeps for rollback.
pub(crate) const KEEP_VERSIONS: usize = 5;

/// A configured plugin and its current version.
#[derive(Debug)]
pub struct Plugin {
    /// Its resolved settings.
    pub(crate) spec: PluginSpec,
    current: RwLock<Arc<PluginVersion>>,
    status: Mutex<Status>,
    paused: std::sync::atomic::AtomicBool,
    reloading: std::sync::atomic::AtomicBool,
    shadow: RwLock<Option<Arc<crate::shadow::Shadow>>>,
}

#[derive(Debug)]
struct Status {
    history: Vec<Arc<PluginVersion>>,
    /// How the live version went live: `file`, `upload` or `rollback`.
    how: &'static str,
    loaded_at: String,
    last_error: Option<String>,
    invocations: u64,
    errors: u64,
}

/// What the admin API shows of a plugin.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PluginStatus {
    /// Its name.
    pub(crate) name: String,
    /// The live version label (content-hash prefix).
    pub(crate) version: String,
    /// The live version's full SHA-256.
    pub(crate) hash: String,
    /// How it went live: `file`, `upload` or `rollback`.
    pub(crate) origin: String,
    /// When the live version went live (RFC 3339).
    pub(crate) loaded_at: String,
    /// The event types it subscribes to.
    pub(crate) subscribe_types: Vec<String>,
    /// The topics it subscribes to.
    pub(crate) subscribe_topics: Vec<String>,
    /// Calls so far.
    pub(crate) invocations: u64,
    /// Failed calls so far.
    pub(crate) errors: u64,
    /// The last refused reload, or `null`.
    pub(crate) last_error: Option<String>,
    /// Whether it is paused.
    pub(crate) paused: bool,
    /// Earlier versions, newest first, for rollback.
    pub(crate) previous: Vec<String>,
    /// The shadow version's label, if one runs (see `/plugins/{name}/shadow`).
    pub(crate) shadow: Option<String>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Plugin {
    /// A plugin running `version`.
    pub(crate) fn new(spec: PluginSpec, version: Arc<PluginVersion>) -> Self {
        Plugin {
            spec,
            current: RwLock::new(version),
            status: Mutex::new(Status {
                history: Vec::new(),
                how: "file",
                loaded_at: now(),
                last_error: None,
                invocations: 0,
                errors: 0,
            }),
            paused: std::sync::atomic::AtomicBool::new(false),
            reloading: std::sync::atomic::AtomicBool::new(false),
            shadow: RwLock::new(None),
        }
    }

    /// Its shadow version, if one runs beside the live one.
    pub(crate) fn shadow(&self) -> Option<Arc<crate::shadow::Shadow>> {
        self.shadow.read().expect("plugin lock poisoned").clone()
    }

    /// Attaches `shadow` (or, with `None`, drops the one attached).
    pub(crate) fn set_shadow(&self, shadow: Option<Arc<crate::shadow::Shadow>>) {
        *self.shadow.write().expect("plugin lock poisoned") = shadow;
    }

    /// The version new events run on.
    pub fn current(&self) -> Arc<PluginVersion> {
        self.current.read().expect("plugin lock poisoned").clone()
    }

    /// Makes `version` live, keeping the one it replaces for rollback; `how`
    /// is `file`, `upload` or `rollback`.
    pub(crate) fn install(&self, version: Arc<PluginVersion>, how: &'static str) {
        let mut status = self.status.lock().expect("plugin lock poisoned");
        status.how = how;
        let old = std::mem::replace(
            &mut *self.current.write().expect("plugin lock poisoned"),
            version,
        );
        status.history.push(old);
        if status.history.len() > KEEP_VERSIONS {
            status.history.remove(0);
        }
        status.loaded_at = now();
    }

    /// Makes the previous version live again; `None` when there is none.
    pub(crate) fn rollback(&self) -> Option<Arc<PluginVersion>> {
        let mut status = self.status.lock().expect("plugin lock poisoned");
        let previous = status.history.pop()?;
        *self.current.write().expect("plugin lock poisoned") = previous.clone();
        status.how = "rollback";
        status.loaded_at = now();
        Some(previous)
    }

    /// The previous version, the one [`Plugin::rollback`] would make live.
    pub(crate) fn previous(&self) -> Option<Arc<PluginVersion>> {
        let status = self.status.lock().expect("plugin lock poisoned");
        status.history.last().cloned()
    }

    /// How the live version went live: `file`, `upload` or `rollback`.
    pub(crate) fn how(&self) -> &'static str {
        self.status.lock().expect("plugin lock poisoned").how
    }

    /// Records a refused reload.
    pub(crate) fn refused(&self, error: String) {
        self.status.lock().expect("plugin lock poisoned").last_error = Some(error);
    }

    /// Counts `calls` calls, `errors` of which failed.
    pub(crate) fn count(&self, calls: u64, errors: u64) {
        let mut status = self.status.lock().expect("plugin lock poisoned");
        status.invocations += calls;
        status.errors += errors;
    }

    /// Pauses or resumes it. While paused, records it subscribes to wait.
    pub(crate) fn set_paused(&self, paused: bool) {
        self.paused
            .store(paused, std::sync::atomic::Ordering::Relaxed);
    }

    /// Marks a new version as being checked (`true`) or done (`false`).
    pub(crate) fn set_reloading(&self, reloading: bool) {
        self.reloading
            .store(reloading, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a new version is being checked before it may go live.
    pub(crate) fn is_reloading(&self) -> bool {
        self.reloading.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether it is paused.
    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Its status for the admin API.
    pub(crate) fn status(&self) -> PluginStatus {
        let current = self.current();
        let status = self.status.lock().expect("plugin lock poisoned");
        PluginStatus {
            name: self.spec.name.clone(),
            version: current.label().to_string(),
            hash: current.hash.clone(),
            origin: status.how.to_string(),
            loaded_at: status.loaded_at.clone(),
            subscribe_types: self.spec.types.patterns().to_vec(),
            subscribe_topics: self.spec.topics.patterns().to_vec(),
            invocations: status.invocations,
            errors: status.errors,
            last_error: status.last_error.clone(),
            paused: self.is_paused(),
            previous: status
                .history
                .iter()
                .rev()
                .map(|v| v.label().to_string())
                .collect(),
            shadow: self.shadow().map(|s| s.version.label().to_string()),
        }
    }
}

/// Every configured plugin, in config order.
#[derive(Debug)]
pub struct PluginRegistry {
    plugins: Vec<Arc<Plugin>>,
}

/// A plugin file that could not be loaded, as one line naming file and fix.
#[derive(Debug, thiserror::Error)]
#[error("{path}: plugin `{plugin}` {error}{hint}")]
pub struct PluginLoadError {
    /// The wasm file.
    pub(crate) path: String,
    /// The plugin's name.
    pub(crate) plugin: String,
    /// What went wrong.
    pub(crate) error: LoadError,
    hint: String,
}

impl PluginRegistry {
    /// Loads every plugin of `config` (all of them, or only `only`).
    pub fn load(
        engine: &Engine,
        config: &RouterConfig,
        only: Option<&str>,
    ) -> Result<Self, PluginLoadError> {
        let mut plugins = Vec::new();
        for spec in &config.plugins {
            if only.is_some_and(|o| o != spec.name) {
                continue;
            }
            let version = engine.load_file(&spec.name, &spec.wasm).map_err(|error| {
                let hint = match &error {
                    LoadError::Io(e) if e.kind() == std::io::ErrorKind::NotFound => format!(
                        "; build the plugins with `scripts/build-plugins.sh`, or fix `wasm` in {}",
                        config.path.display()
                    ),
                    _ => String::new(),
                };
                PluginLoadError {
                    path: spec.wasm.display().to_string(),
                    plugin: spec.name.clone(),
                    error,
                    hint,
                }
            })?;
            tracing::info!(plugin = %spec.name, version = version.label(), origin = ?version.origin, "plugin loaded");
            if let Some(schemas) = &spec.schemas {
                let unchecked: Vec<&String> = spec
                    .emits
                    .patterns()
                    .iter()
                    .filter(|ty| !ty.contains('*') && !schemas.types().any(|s| s == ty.as_str()))
                    .collect();
                if !unchecked.is_empty() {
                    tracing::warn!(plugin = %spec.name, "no schema for {unchecked:?}; those emits are not checked");
                }
            }
            plugins.push(Arc::new(Plugin::new(spec.clone(), Arc::new(version))));
        }
        Ok(PluginRegistry { plugins })
    }

    /// A registry of already loaded plugins.
    pub(crate) fn from_plugins(plugins: Vec<Arc<Plugin>>) -> Self {
        PluginRegistry { plugins }
    }

    /// Every plugin.
    pub(crate) fn plugins(&self) -> &[Arc<Plugin>] {
        &self.plugins
    }

    /// The plugin named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.plugins.iter().find(|p| p.spec.name == name)
    }

    /// The plugins subscribed to an event of type `ty` read from `topic`.
    pub(crate) fn subscribers<'a>(
        &'a self,
        ty: &'a str,
        topic: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Plugin>> + 'a {
        self.plugins
            .iter()
            .filter(move |p| p.spec.subscribes(ty, topic))
    }
}
