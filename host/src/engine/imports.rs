//! The host side of the plugin's `log`, `state` and `config` imports, and
//! the memory cap every call runs under.

use super::context::CallCtx;
use crate::bindings::switchyard::plugin::{config, log, state, types};
use serde_json::Value;

/// Caps linear memory, and remembers whether the cap was hit so that the
/// resulting trap is reported as a memory overrun.
pub(crate) struct MemoryCap {
    pub(crate) limit: usize,
    pub(crate) exceeded: bool,
}

impl MemoryCap {
    pub(super) fn new(limit: usize) -> Self {
        MemoryCap {
            limit,
            exceeded: false,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl types::Host for CallCtx {}

impl log::Host for CallCtx {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        self.charge(message.len())?;
        let (plugin, event_id) = (&*self.plugin, self.event_id.as_str());
        match level {
            log::Level::Trace => tracing::trace!(plugin, event_id, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, event_id, "{message}"),
            log::Level::Info => tracing::info!(plugin, event_id, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, event_id, "{message}"),
            log::Level::Error => tracing::error!(plugin, event_id, "{message}"),
        }
        Ok(())
    }
}

impl state::Host for CallCtx {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        if let Some(staged) = self.staged.get(&key) {
            return Ok(staged.clone());
        }
        if let Some(read) = self.reads.get(&key) {
            return Ok(read.clone());
        }
        let Some(state) = &self.state else {
            return Ok(None);
        };
        match state.get(&self.plugin, &key) {
            Ok(value) => {
                self.charge(key.len() + value.as_ref().map_or(0, Vec::len))?;
                self.reads.insert(key, value.clone());
                Ok(value)
            }
            Err(e) => {
                self.state_error = Some(format!("state store read failed: {e:#}"));
                Ok(None)
            }
        }
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<()> {
        self.charge(key.len() + value.len())?;
        self.staged.insert(key, Some(value));
        Ok(())
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        self.charge(key.len())?;
        self.staged.insert(key, None);
        Ok(())
    }
}

impl config::Host for CallCtx {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        let value = self.config.get(&key).map(Value::to_string);
        self.charge(value.as_ref().map_or(0, String::len))?;
        Ok(value)
    }

    fn all(&mut self) -> wasmtime::Result<String> {
        self.charge(self.config_text.len())?;
        Ok(self.config_text.to_string())
    }
}
