//! The plugin registry: each configured plugin with its live version.
//!
//! Versions are swapped atomically behind a lock that is held only to clone
//! an `Arc`, so an event in flight keeps running on the version it started
//! with while a new one goes live.

use crate::config::{PluginSpec, RouterConfig};
use crate::engine::{Engine, LoadError, PluginVersion};
use std::sync::{Arc, RwLock};

/// A configured plugin and its current version.
#[derive(Debug)]
pub struct Plugin {
    /// Its resolved settings.
    pub spec: PluginSpec,
    current: RwLock<Arc<PluginVersion>>,
}

impl Plugin {
    /// A plugin running `version`.
    pub fn new(spec: PluginSpec, version: Arc<PluginVersion>) -> Self {
        Plugin {
            spec,
            current: RwLock::new(version),
        }
    }

    /// The version new events run on.
    pub fn current(&self) -> Arc<PluginVersion> {
        self.current.read().expect("plugin lock poisoned").clone()
    }

    /// Makes `version` the one new events run on; returns the previous one.
    pub fn swap(&self, version: Arc<PluginVersion>) -> Arc<PluginVersion> {
        std::mem::replace(
            &mut *self.current.write().expect("plugin lock poisoned"),
            version,
        )
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
    pub path: String,
    /// The plugin's name.
    pub plugin: String,
    /// What went wrong.
    pub error: LoadError,
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
            plugins.push(Arc::new(Plugin::new(spec.clone(), Arc::new(version))));
        }
        Ok(PluginRegistry { plugins })
    }

    /// A registry of already loaded plugins.
    pub fn from_plugins(plugins: Vec<Arc<Plugin>>) -> Self {
        PluginRegistry { plugins }
    }

    /// Every plugin.
    pub fn plugins(&self) -> &[Arc<Plugin>] {
        &self.plugins
    }

    /// The plugin named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.plugins.iter().find(|p| p.spec.name == name)
    }

    /// The plugins subscribed to an event of type `ty` read from `topic`.
    pub fn subscribers<'a>(
        &'a self,
        ty: &'a str,
        topic: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Plugin>> + 'a {
        self.plugins
            .iter()
            .filter(move |p| p.spec.subscribes(ty, topic))
    }
}
