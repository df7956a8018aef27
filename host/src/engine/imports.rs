//! The host side of the plugin's `log`, `state`, `config`, `timers` and
//! `ids` imports, and the memory cap every call runs under.
//!
//! The 0.2.0 imports are implemented here; the 0.1.0 ones (the same
//! interfaces without timers) delegate to them.

use super::context::CallCtx;
use crate::bindings::v1::switchyard::plugin as v1;
use crate::bindings::v2::switchyard::plugin::{config, ids, log, state, timers, types};
use serde_json::Value;

/// The longest timer name, and the largest payload, a plugin may set.
const MAX_TIMER_NAME: usize = 256;
const MAX_TIMER_PAYLOAD: usize = 64 << 10;

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

impl CallCtx {
    /// Stages a timer change, refusing names and payloads over the limits
    /// (a trap: the plugin is at fault, like an oversized emit).
    fn stage_timer(
        &mut self,
        name: String,
        change: Option<(i64, Vec<u8>)>,
    ) -> wasmtime::Result<()> {
        if name.is_empty() || name.len() > MAX_TIMER_NAME {
            wasmtime::bail!(
                "timer name must be 1 to {MAX_TIMER_NAME} bytes, got {}",
                name.len()
            );
        }
        if let Some((_, payload)) = &change
            && payload.len() > MAX_TIMER_PAYLOAD
        {
            wasmtime::bail!(
                "timer `{name}`: payload of {} bytes, over the {MAX_TIMER_PAYLOAD}-byte limit",
                payload.len()
            );
        }
        self.charge(name.len() + change.as_ref().map_or(0, |(_, p)| p.len()))?;
        self.timers.insert(name, change);
        Ok(())
    }
}

impl timers::Host for CallCtx {
    fn set_at(
        &mut self,
        name: String,
        at: String,
        payload: Vec<u8>,
    ) -> wasmtime::Result<Result<(), String>> {
        let Ok(due) = chrono::DateTime::parse_from_rfc3339(&at) else {
            return Ok(Err(format!(
                "timer `{name}`: {at:?} is not an RFC 3339 time"
            )));
        };
        self.stage_timer(name, Some((due.timestamp_millis(), payload)))?;
        Ok(Ok(()))
    }

    fn set_after(&mut self, name: String, delay_ms: u64, payload: Vec<u8>) -> wasmtime::Result<()> {
        let due = self
            .now_ms
            .saturating_add(i64::try_from(delay_ms).unwrap_or(i64::MAX));
        self.stage_timer(name, Some((due, payload)))
    }

    fn cancel(&mut self, name: String) -> wasmtime::Result<()> {
        self.stage_timer(name, None)
    }
}

impl ids::Host for CallCtx {
    fn derive(&mut self, namespace: String, name: String) -> wasmtime::Result<String> {
        Ok(derive_id(&namespace, &name))
    }
}

/// The SDKs' `derive_id`: the v5 UUID of `name` in the namespace
/// uuid5(NAMESPACE_URL, "switchyard:" + `namespace`).
fn derive_id(namespace: &str, name: &str) -> String {
    let ns = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("switchyard:{namespace}").as_bytes(),
    );
    uuid::Uuid::new_v5(&ns, name.as_bytes()).to_string()
}

impl v1::types::Host for CallCtx {}

impl v1::log::Host for CallCtx {
    fn log(&mut self, level: v1::log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            v1::log::Level::Trace => log::Level::Trace,
            v1::log::Level::Debug => log::Level::Debug,
            v1::log::Level::Info => log::Level::Info,
            v1::log::Level::Warn => log::Level::Warn,
            v1::log::Level::Error => log::Level::Error,
        };
        log::Host::log(self, level, message)
    }
}

impl v1::state::Host for CallCtx {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        state::Host::get(self, key)
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<()> {
        state::Host::set(self, key, value)
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        state::Host::delete(self, key)
    }
}

impl v1::config::Host for CallCtx {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        config::Host::get(self, key)
    }

    fn all(&mut self) -> wasmtime::Result<String> {
        config::Host::all(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_the_sdks() {
        // uuid5(uuid5(NAMESPACE_URL, "switchyard:receipt"), "pay-1"), as
        // Python's uuid module computes it.
        assert_eq!(
            derive_id("receipt", "pay-1"),
            "fbe79e72-e6aa-582a-9b3d-48741a368f86"
        );
    }
}
