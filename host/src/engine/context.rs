//! The per-call store context: a locked-down WASI context, the memory cap,
//! and the host side of the `log`, `state` and `config` imports.

use crate::bindings::switchyard::plugin::{config, log, state, types};
use crate::state::{Reads, StateStore, Writes};
use chrono::DateTime;
use rand::SeedableRng;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{
    HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

/// What one plugin call may touch, besides the event.
pub(crate) struct CallCtx {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryCap,
    /// What the guest wrote to stderr (a panic message, say), kept for errors.
    pub(crate) stderr: MemoryOutputPipe,
    plugin: Arc<str>,
    event_id: String,
    store: Arc<dyn StateStore>,
    pub(crate) staged: Writes,
    pub(crate) reads: Reads,
    pub(crate) state_error: Option<String>,
    config: Arc<Map<String, Value>>,
}

impl CallCtx {
    /// A context for calling `plugin` on the event `event_id` at `time`.
    ///
    /// WASI gets no preopened directories, no environment, no arguments, no
    /// stdin, no sockets and no name lookups. Its wall clock reads the
    /// event's time, its monotonic clock advances by one nanosecond a read
    /// from zero, and both random sources are seeded from the event id.
    pub(crate) fn new(
        plugin: Arc<str>,
        event_id: &str,
        time: &str,
        store: Arc<dyn StateStore>,
        config: Arc<Map<String, Value>>,
        memory_bytes: usize,
    ) -> Self {
        let seed: [u8; 32] = Sha256::digest(event_id.as_bytes()).into();
        let at = DateTime::parse_from_rfc3339(time)
            .ok()
            .map(|t| Duration::new(t.timestamp().max(0) as u64, t.timestamp_subsec_nanos()))
            .unwrap_or_default();
        let stderr = MemoryOutputPipe::new(1 << 20);
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .wall_clock(FixedClock(at))
            .monotonic_clock(StepClock::default())
            .secure_random(rand::rngs::StdRng::from_seed(seed))
            .insecure_random(rand::rngs::StdRng::from_seed(seed))
            .insecure_random_seed(u128::from_le_bytes(
                seed[..16].try_into().expect("16 bytes"),
            ))
            .build();
        CallCtx {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryCap::new(memory_bytes),
            stderr,
            plugin,
            event_id: event_id.to_string(),
            store,
            staged: Writes::new(),
            reads: Reads::new(),
            state_error: None,
            config,
        }
    }
}

impl WasiView for CallCtx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A wall clock stopped at the event's time.
struct FixedClock(Duration);

impl HostWallClock for FixedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        self.0
    }
}

/// A monotonic clock that starts at zero and ticks once per read.
#[derive(Default)]
struct StepClock(std::sync::atomic::AtomicU64);

impl HostMonotonicClock for StepClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

/// Caps linear memory, and remembers whether the cap was hit so that the
/// resulting trap is reported as a memory overrun.
pub(crate) struct MemoryCap {
    limit: usize,
    pub(crate) exceeded: bool,
}

impl MemoryCap {
    fn new(limit: usize) -> Self {
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
    fn log(&mut self, level: log::Level, message: String) {
        let (plugin, event_id) = (&*self.plugin, self.event_id.as_str());
        match level {
            log::Level::Trace => tracing::trace!(plugin, event_id, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, event_id, "{message}"),
            log::Level::Info => tracing::info!(plugin, event_id, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, event_id, "{message}"),
            log::Level::Error => tracing::error!(plugin, event_id, "{message}"),
        }
    }
}

impl state::Host for CallCtx {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        if let Some(staged) = self.staged.get(&key) {
            return staged.clone();
        }
        if let Some(read) = self.reads.get(&key) {
            return read.clone();
        }
        match self.store.get(&self.plugin, &key) {
            Ok(value) => {
                self.reads.insert(key, value.clone());
                value
            }
            Err(e) => {
                self.state_error = Some(format!("state store read failed: {e:#}"));
                None
            }
        }
    }

    fn set(&mut self, key: String, value: Vec<u8>) {
        self.staged.insert(key, Some(value));
    }

    fn delete(&mut self, key: String) {
        self.staged.insert(key, None);
    }
}

impl config::Host for CallCtx {
    fn get(&mut self, key: String) -> Option<String> {
        self.config.get(&key).map(Value::to_string)
    }

    fn all(&mut self) -> String {
        Value::Object((*self.config).clone()).to_string()
    }
}
