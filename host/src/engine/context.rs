//! The store context of one instance: a locked-down WASI context, the
//! memory cap, virtual clocks and seeded randomness, and the host side of the
//! `log`, `state` and `config` imports.
//!
//! An instance may serve many calls (see [`super::Instance`]). Everything a
//! call can observe besides its own memory is reset by [`CallCtx::begin`]:
//! the wall clock reads the event's time, the monotonic clock restarts at
//! zero, randomness is reseeded from the event id, and staged state is
//! cleared. Sleeps are virtual: `subscribe-duration` and `subscribe-instant`
//! advance the monotonic clock and return a pollable that is already ready,
//! so a plugin cannot block its worker thread; a call whose sleeps add up to
//! more than its deadline fails with `timeout`, like one that spins.

use super::output::CallOutput;
use crate::bindings::switchyard::plugin::{config, log, state, types};
use crate::state::{Reads, StateRead, Writes};
use chrono::DateTime;
use rand::SeedableRng;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::{DynPollable, Pollable};
use wasmtime_wasi::{
    HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

/// What one plugin call may touch, besides the event.
pub(crate) struct CallCtx {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryCap,
    /// What the guest wrote to stderr during the current call (a panic
    /// message, say), kept for errors and the log.
    pub(crate) stderr: CallOutput,
    /// What it wrote to stdout during the current call, for the log.
    pub(crate) stdout: CallOutput,
    /// When this instance's output last went to the log, and how many
    /// calls' output was left out since (one line a second at most).
    logged: Option<(std::time::Instant, u64)>,
    plugin: Arc<str>,
    event_id: String,
    state: Option<Arc<dyn StateRead>>,
    pub(crate) staged: Writes,
    pub(crate) reads: Reads,
    pub(crate) state_error: Option<String>,
    config: Arc<Map<String, Value>>,
    /// `config` as JSON text, made once per config rather than per call.
    config_text: Arc<str>,
    clocks: Arc<Clocks>,
    random: Arc<Mutex<Seeded>>,
    /// The call's deadline, against which virtual sleeps are counted.
    timeout: Duration,
    /// Set when the guest slept past `timeout`.
    pub(crate) slept_past_deadline: bool,
    /// Bytes the host holds for this call: staged state keys and values and
    /// log lines. They count against the plugin's memory cap like its linear
    /// memory, so a plugin cannot make the host allocate without limit.
    host_bytes: usize,
}

/// The trap a host call raises when the call's host budget is spent.
#[derive(Debug)]
struct OverBudget;

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the call's host memory budget is spent")
    }
}

impl std::error::Error for OverBudget {}

/// The clocks one instance's WASI context reads; [`CallCtx::begin`] sets
/// them for each call.
#[derive(Default)]
struct Clocks {
    /// The event's time, in nanoseconds since the epoch.
    wall: AtomicU64,
    /// The virtual monotonic time of the call, in nanoseconds.
    monotonic: AtomicU64,
}

/// A wall clock stopped at the event's time.
struct FixedClock(Arc<Clocks>);

impl HostWallClock for FixedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.wall.load(Ordering::Relaxed))
    }
}

/// A monotonic clock that starts at zero each call, ticks once per read and
/// jumps forward on sleeps.
struct StepClock(Arc<Clocks>);

impl HostMonotonicClock for StepClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        self.0.monotonic.fetch_add(1, Ordering::Relaxed)
    }
}

/// A generator seeded from the current call's event id, on first use (most
/// calls never ask for randomness, so they do not pay for the seeding).
struct Seeded {
    /// The event id to seed from, until the first draw of the call.
    pending: Option<String>,
    rng: rand::rngs::StdRng,
}

impl Seeded {
    fn rng(&mut self) -> &mut rand::rngs::StdRng {
        if let Some(id) = self.pending.take() {
            let seed: [u8; 32] = Sha256::digest(id.as_bytes()).into();
            self.rng = rand::rngs::StdRng::from_seed(seed);
        }
        &mut self.rng
    }
}

/// Randomness reseeded from each call's event id.
struct SeededRng(Arc<Mutex<Seeded>>);

impl rand::TryRng for SeededRng {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(rand::Rng::next_u32(self.0.lock().expect("rng lock").rng()))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(rand::Rng::next_u64(self.0.lock().expect("rng lock").rng()))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        rand::Rng::fill_bytes(self.0.lock().expect("rng lock").rng(), dst);
        Ok(())
    }
}

/// A pollable that is always ready: what a virtual sleep returns.
struct Ready;

#[async_trait::async_trait]
impl Pollable for Ready {
    async fn ready(&mut self) {}
}

/// The error a call fails with when its virtual sleeps pass its deadline.
#[derive(Debug, thiserror::Error)]
#[error("slept past the deadline")]
pub(crate) struct SleptPastDeadline;

/// Shadows WASI's monotonic-clock subscriptions with virtual sleeps (see the
/// module docs). Call after WASI is added to `linker`.
pub(crate) fn add_virtual_sleeps(linker: &mut Linker<CallCtx>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance("wasi:clocks/monotonic-clock@0.2.12")?;
    clock.func_wrap(
        "subscribe-duration",
        |mut store: wasmtime::StoreContextMut<'_, CallCtx>, (nanos,): (u64,)| {
            store.data_mut().sleep(nanos).map(|r| (r,))
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |mut store: wasmtime::StoreContextMut<'_, CallCtx>, (at,): (u64,)| {
            let ctx = store.data_mut();
            let now = ctx.clocks.monotonic.load(Ordering::Relaxed);
            ctx.sleep(at.saturating_sub(now)).map(|r| (r,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

impl CallCtx {
    /// A context for an instance of `plugin`.
    ///
    /// WASI gets no preopened directories, no environment, no arguments, no
    /// stdin, no sockets and no name lookups; clocks and randomness are set
    /// per call by [`CallCtx::begin`].
    pub(crate) fn new(plugin: Arc<str>, config: Arc<Map<String, Value>>) -> Self {
        let clocks = Arc::new(Clocks::default());
        let random = Arc::new(Mutex::new(Seeded {
            pending: None,
            rng: rand::rngs::StdRng::from_seed([0; 32]),
        }));
        let stderr = CallOutput::default();
        let stdout = CallOutput::default();
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .stdout(stdout.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .wall_clock(FixedClock(clocks.clone()))
            .monotonic_clock(StepClock(clocks.clone()))
            .secure_random(SeededRng(random.clone()))
            .insecure_random(SeededRng(random.clone()))
            .insecure_random_seed(0)
            .build();
        CallCtx {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryCap::new(usize::MAX),
            stderr,
            stdout,
            logged: None,
            plugin,
            event_id: String::new(),
            state: None,
            staged: Writes::new(),
            reads: Reads::new(),
            state_error: None,
            config_text: Value::Object((*config).clone()).to_string().into(),
            config,
            clocks,
            random,
            timeout: Duration::MAX,
            slept_past_deadline: false,
            host_bytes: 0,
        }
    }

    /// Resets what a call observes for the event `event_id` at `time`.
    pub(crate) fn begin(
        &mut self,
        event_id: &str,
        time: &str,
        state: Arc<dyn StateRead>,
        config: Arc<Map<String, Value>>,
        limits: super::Limits,
    ) {
        let at = DateTime::parse_from_rfc3339(time)
            .ok()
            .map(|t| {
                (t.timestamp().max(0) as u64)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(u64::from(t.timestamp_subsec_nanos()))
            })
            .unwrap_or_default();
        self.clocks.wall.store(at, Ordering::Relaxed);
        self.clocks.monotonic.store(0, Ordering::Relaxed);
        self.random.lock().expect("rng lock").pending = Some(event_id.to_string());
        self.event_id = event_id.to_string();
        self.state = Some(state);
        if !Arc::ptr_eq(&self.config, &config) {
            self.config_text = Value::Object((*config).clone()).to_string().into();
            self.config = config;
        }
        self.staged.clear();
        self.reads.clear();
        self.state_error = None;
        self.limiter.limit = limits.memory_bytes;
        self.limiter.exceeded = false;
        self.timeout = limits.timeout;
        self.slept_past_deadline = false;
        self.host_bytes = 0;
        self.stderr.clear();
        self.stdout.clear();
    }

    /// Passes what the guest printed during the call on to the log, at
    /// most one call's output a second per instance (the rest is counted).
    pub(crate) fn log_output(&mut self) {
        let (out, out_dropped) = self.stdout.contents();
        let (err, err_dropped) = self.stderr.contents();
        if out.is_empty() && err.is_empty() {
            return;
        }
        let now = std::time::Instant::now();
        if let Some((at, skipped)) = &mut self.logged
            && now.duration_since(*at) < std::time::Duration::from_secs(1)
        {
            *skipped += 1;
            return;
        }
        let skipped = self.logged.map_or(0, |(_, n)| n);
        self.logged = Some((now, 0));
        let shown = |bytes: &[u8], dropped: usize| {
            let text = String::from_utf8_lossy(bytes);
            let text = crate::event::truncate_text(text.trim_end(), 512);
            if dropped > 0 {
                format!("{text} (+{dropped} bytes dropped)")
            } else {
                text.to_string()
            }
        };
        tracing::info!(
            target: "switchyard::plugin_output",
            plugin = %self.plugin,
            event = %self.event_id,
            calls_not_shown = skipped,
            "stdout: {:?} stderr: {:?}",
            shown(&out, out_dropped),
            shown(&err, err_dropped),
        );
    }

    /// Counts `bytes` more held by the host for this call; past the memory
    /// cap, the call stops with a memory fault.
    pub(crate) fn charge(&mut self, bytes: usize) -> wasmtime::Result<()> {
        self.host_bytes = self.host_bytes.saturating_add(bytes);
        if self.host_bytes > self.limiter.limit {
            self.limiter.exceeded = true;
            return Err(wasmtime::Error::new(OverBudget));
        }
        Ok(())
    }

    /// What the guest wrote to stderr during the current call (its first
    /// 64 KiB).
    pub(crate) fn call_stderr(&self) -> Vec<u8> {
        self.stderr.contents().0
    }

    /// A virtual sleep of `nanos`: advances the monotonic clock, and fails
    /// the call once the total passes its deadline.
    fn sleep(&mut self, nanos: u64) -> wasmtime::Result<Resource<DynPollable>> {
        let now = self
            .clocks
            .monotonic
            .fetch_add(nanos, Ordering::Relaxed)
            .saturating_add(nanos);
        if u128::from(now) > self.timeout.as_nanos() {
            self.slept_past_deadline = true;
            return Err(wasmtime::Error::new(SleptPastDeadline));
        }
        let ready = self.table.push(Ready)?;
        wasmtime_wasi::p2::subscribe(&mut self.table, ready)
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

/// Caps linear memory, and remembers whether the cap was hit so that the
/// resulting trap is reported as a memory overrun.
pub(crate) struct MemoryCap {
    pub(crate) limit: usize,
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
