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

use super::determinism::{
    Clocks, FixedClock, Ready, Seeded, SeededRng, SleptPastDeadline, StepClock,
};
use super::imports::MemoryCap;
use super::output::CallOutput;
use crate::state::{Reads, StateRead, Writes};
use chrono::DateTime;
use rand::SeedableRng;
use serde_json::{Map, Value};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// What one plugin call may touch, besides the event.
pub(crate) struct CallCtx {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(crate) limiter: MemoryCap,
    /// What the guest wrote to stderr during the current call (a panic
    /// message, say), kept for errors and the log.
    pub(crate) stderr: CallOutput,
    /// What it wrote to stdout during the current call, for the log.
    pub(crate) stdout: CallOutput,
    /// When this instance's output last went to the log, and how many
    /// calls' output was left out since (one line a second at most).
    pub(super) logged: Option<(std::time::Instant, u64)>,
    pub(super) plugin: Arc<str>,
    pub(super) event_id: String,
    pub(super) state: Option<Arc<dyn StateRead>>,
    pub(crate) staged: Writes,
    /// Timer changes staged by this call.
    pub(crate) timers: super::StagedTimers,
    /// The call's time (the event's, or a timer's due time), in
    /// milliseconds since the epoch: what `set-after` counts from.
    pub(super) now_ms: i64,
    pub(crate) reads: Reads,
    pub(crate) state_error: Option<String>,
    pub(super) config: Arc<Map<String, Value>>,
    /// `config` as JSON text, made once per config rather than per call.
    pub(super) config_text: Arc<str>,
    pub(super) clocks: Arc<Clocks>,
    pub(super) random: Arc<Mutex<Seeded>>,
    /// The call's deadline, against which virtual sleeps are counted.
    pub(super) timeout: Duration,
    /// Set when the guest slept past `timeout`.
    pub(crate) slept_past_deadline: bool,
    /// Bytes the host holds for this call: staged state keys and values and
    /// log lines. They count against the plugin's memory cap like its linear
    /// memory, so a plugin cannot make the host allocate without limit.
    pub(super) host_bytes: usize,
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
            timers: Default::default(),
            now_ms: 0,
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
        let at = epoch_nanos(time);
        self.clocks.wall.store(at, Ordering::Relaxed);
        self.now_ms = (at / 1_000_000) as i64;
        self.clocks.monotonic.store(0, Ordering::Relaxed);
        match &mut self.random.lock().expect("rng lock").pending {
            Some(pending) => {
                pending.clear();
                pending.push_str(event_id);
            }
            none => *none = Some(event_id.to_string()),
        }
        self.event_id.clear();
        self.event_id.push_str(event_id);
        self.state = Some(state);
        if !Arc::ptr_eq(&self.config, &config) {
            self.config_text = Value::Object((*config).clone()).to_string().into();
            self.config = config;
        }
        self.staged.clear();
        self.timers.clear();
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
    pub(super) fn sleep(&mut self, nanos: u64) -> wasmtime::Result<Resource<DynPollable>> {
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

/// An RFC 3339 time as nanoseconds since the Unix epoch (0 before it, or
/// when it is not a time). The catalogs' form, `2025-11-24T10:30:00Z` with
/// or without a fraction, is read directly, since every call starts with
/// it; any other offset goes through chrono.
fn epoch_nanos(time: &str) -> u64 {
    fast_utc_nanos(time.as_bytes()).unwrap_or_else(|| chrono_nanos(time))
}

/// [`epoch_nanos`] through chrono, for any RFC 3339 time.
fn chrono_nanos(time: &str) -> u64 {
    DateTime::parse_from_rfc3339(time)
        .ok()
        .map(|t| {
            (t.timestamp().max(0) as u64)
                .saturating_mul(1_000_000_000)
                .saturating_add(u64::from(t.timestamp_subsec_nanos()))
        })
        .unwrap_or_default()
}

/// `YYYY-MM-DDTHH:MM:SS[.f…]Z` from 1970 on, or `None`.
fn fast_utc_nanos(b: &[u8]) -> Option<u64> {
    let num = |range: std::ops::Range<usize>| -> Option<u64> {
        b.get(range)?.iter().try_fold(0u64, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
        })
    };
    if b.len() < 20
        || (b[4], b[7], b[13], b[16]) != (b'-', b'-', b':', b':')
        || !matches!(b[10], b'T' | b't')
        || !matches!(b[b.len() - 1], b'Z' | b'z')
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let fraction = &b[19..b.len() - 1];
    let nanos = match fraction {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            num(20..20 + digits.len())? * 10u64.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if year < 1970
        || !(1..=12).contains(&month)
        || !(1..=month_days).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), which counts
    // years from March so that a leap day ends the year.
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let year_of_era = y - era * 400;
    let day_of_year = (153 * m + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = (era * 146_097 + day_of_era).checked_sub(719_468)?;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(seconds * 1_000_000_000 + nanos)
}

#[cfg(test)]
mod tests {
    use super::{chrono_nanos, epoch_nanos};

    #[test]
    fn times_read_directly_agree_with_chrono() {
        for t in [
            "1970-01-01T00:00:00Z",
            "2025-11-24T10:30:00Z",
            "2024-02-29T23:59:59.5Z",
            "2000-03-01T00:00:00.123456789Z",
            "2100-12-31T12:00:00.001z",
            "2025-11-24T10:30:00+02:00",
            "1969-12-31T23:59:59Z",
            "2025-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-02-30T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2025-04-31T00:00:00Z",
            "2025-11-24T10:30:00.Z",
            "2025-11-24T10:30:60Z",
            "not a time",
        ] {
            assert_eq!(epoch_nanos(t), chrono_nanos(t), "{t}");
        }
    }
}
