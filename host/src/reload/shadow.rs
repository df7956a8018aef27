//! Shadow versions through the reloader: attaching one (it must load and
//! fit the world; its fixtures are checked when it is promoted), dropping
//! it, and promoting it through the same checked swap as any reload.
//!
//! A shadow is stored like a live version, under the name `<plugin>#shadow`
//! (an empty hash once dropped), so a restart keeps it and every instance
//! sharing the store runs the same one (`adopt` and `follow` apply such
//! rows with [`Reloader::apply_shadow`]).

use super::{ReloadError, Reloader};
use crate::engine::PluginVersion;
use crate::shadow::Shadow;
use crate::state::LiveVersion;
use std::sync::Arc;

/// How a shadow's row is named in the version store.
const SUFFIX: &str = "#shadow";

impl Reloader {
    /// Attaches `wasm` as plugin `name`'s shadow, replacing any earlier one.
    pub(crate) fn shadow(
        &self,
        name: &str,
        wasm: &[u8],
        origin: &str,
    ) -> Result<Arc<PluginVersion>, ReloadError> {
        let plugin = self.plugin(name)?;
        let _changing = self.lock();
        let version =
            self.engine
                .load(name, wasm)
                .map(Arc::new)
                .map_err(|e| ReloadError::Load {
                    origin: origin.to_string(),
                    why: e.to_string(),
                })?;
        self.store_shadow(name, Some(&version))?;
        plugin.set_shadow(Some(Arc::new(Shadow::new(version.clone()))));
        tracing::info!(
            plugin = name,
            live = plugin.current().label(),
            shadow = version.label(),
            "{origin}: shadow attached"
        );
        Ok(version)
    }

    /// Drops plugin `name`'s shadow.
    pub(crate) fn drop_shadow(&self, name: &str) -> Result<(), ReloadError> {
        let plugin = self.plugin(name)?;
        let _changing = self.lock();
        if plugin.shadow().is_none() {
            return Err(ReloadError::NoShadow(name.to_string()));
        }
        self.store_shadow(name, None)?;
        plugin.set_shadow(None);
        tracing::info!(plugin = name, "shadow dropped");
        Ok(())
    }

    /// Makes plugin `name`'s shadow its live version, if its fixtures pass
    /// (as any reload; the live one is kept for rollback), and drops the
    /// shadow.
    pub(crate) fn promote_shadow(&self, name: &str) -> Result<Arc<PluginVersion>, ReloadError> {
        let plugin = self.plugin(name)?;
        let shadow = plugin
            .shadow()
            .ok_or_else(|| ReloadError::NoShadow(name.to_string()))?;
        let version = self.reload(name, &shadow.version.wasm, "shadow")?;
        self.drop_shadow(name)?;
        Ok(version)
    }

    fn store_shadow(&self, name: &str, version: Option<&PluginVersion>) -> Result<(), ReloadError> {
        let Some(store) = &self.versions else {
            return Ok(());
        };
        let row = LiveVersion {
            plugin: format!("{name}{SUFFIX}"),
            hash: version.map(|v| v.hash.clone()).unwrap_or_default(),
            origin: "shadow".into(),
            paused: false,
        };
        store
            .publish(&row, version.map(|v| &v.wasm[..]))
            .map_err(|e| ReloadError::Store(format!("{e:#}")))
    }

    /// Applies a stored shadow row here; false if `row` is not one.
    pub(super) fn apply_shadow(&self, row: &LiveVersion) -> anyhow::Result<bool> {
        let Some(name) = row.plugin.strip_suffix(SUFFIX) else {
            return Ok(false);
        };
        let Some(plugin) = self.registry.get(name) else {
            return Ok(true);
        };
        let attached = plugin.shadow();
        if row.hash.is_empty() {
            if attached.is_some() {
                plugin.set_shadow(None);
                tracing::info!(plugin = name, "the stored shadow was dropped");
            }
            return Ok(true);
        }
        if attached.is_some_and(|s| s.version.hash == row.hash) {
            return Ok(true);
        }
        let store = self.versions.as_ref().expect("a version store");
        let wasm = store
            .wasm(&row.hash)?
            .ok_or_else(|| anyhow::anyhow!("plugin `{name}`: shadow {} is not stored", row.hash))?;
        let version = self
            .engine
            .load(name, &wasm)
            .map_err(|e| anyhow::anyhow!("stored shadow of `{name}`: {e}"))?;
        tracing::info!(
            plugin = name,
            shadow = version.label(),
            "the stored shadow runs"
        );
        plugin.set_shadow(Some(Arc::new(Shadow::new(Arc::new(version)))));
        Ok(true)
    }
}
