//! What makes a call a pure function of its event: clocks that read the
//! event's time, randomness seeded from the event id, and virtual sleeps
//! that advance the monotonic clock instead of blocking.

use super::context::CallCtx;
use rand::SeedableRng;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::component::Linker;
use wasmtime_wasi::p2::Pollable;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// The clocks one instance's WASI context reads; [`CallCtx::begin`] sets
/// them for each call.
#[derive(Default)]
pub(super) struct Clocks {
    /// The event's time, in nanoseconds since the epoch.
    pub(super) wall: AtomicU64,
    /// The virtual monotonic time of the call, in nanoseconds.
    pub(super) monotonic: AtomicU64,
}

/// A wall clock stopped at the event's time.
pub(super) struct FixedClock(pub(super) Arc<Clocks>);

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
pub(super) struct StepClock(pub(super) Arc<Clocks>);

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
pub(super) struct Seeded {
    /// The event id to seed from, until the first draw of the call.
    pub(super) pending: Option<String>,
    pub(super) rng: rand::rngs::StdRng,
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
pub(super) struct SeededRng(pub(super) Arc<Mutex<Seeded>>);

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

/// The WASI monotonic-clock interface whose subscriptions become virtual
/// sleeps: the version `wasmtime-wasi` links.
pub(super) const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// A pollable that is always ready: what a virtual sleep returns.
pub(super) struct Ready;

#[async_trait::async_trait]
impl Pollable for Ready {
    async fn ready(&mut self) {}
}

/// The error a call fails with when its virtual sleeps pass its deadline.
#[derive(Debug, thiserror::Error)]
#[error("slept past the deadline")]
pub(super) struct SleptPastDeadline;

/// Shadows WASI's monotonic-clock subscriptions with virtual sleeps (see the
/// module docs). Call after WASI is added to `linker`.
///
/// It replaces WASI's own definitions, under the interface version
/// `wasmtime-wasi` links ([`MONOTONIC_CLOCK`]). Should an upgrade link
/// another version, the shadow would sit beside the real clock and every
/// sleep would block a worker for real again; so it first checks that the
/// name it shadows is defined (defining a function under it without
/// shadowing must fail), and refuses to start otherwise.
pub(super) fn add_virtual_sleeps(linker: &mut Linker<CallCtx>) -> wasmtime::Result<()> {
    linker.allow_shadowing(false);
    let probe = linker.instance(MONOTONIC_CLOCK)?.func_wrap(
        "subscribe-duration",
        |_: wasmtime::StoreContextMut<'_, CallCtx>, (_,): (u64,)| -> wasmtime::Result<(u32,)> {
            Err(wasmtime::Error::msg("never called"))
        },
    );
    if probe.is_ok() {
        wasmtime::bail!(
            "WASI does not link `{MONOTONIC_CLOCK}`, so plugin sleeps would be real: \
             update MONOTONIC_CLOCK in engine/determinism.rs to the version wasmtime-wasi links"
        );
    }
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shadow_refuses_a_linker_without_the_wasi_clock() {
        let engine = wasmtime::Engine::default();
        let mut bare: Linker<CallCtx> = Linker::new(&engine);
        let refused = add_virtual_sleeps(&mut bare).unwrap_err().to_string();
        assert!(refused.contains(MONOTONIC_CLOCK), "{refused}");

        let mut linked: Linker<CallCtx> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linked).unwrap();
        add_virtual_sleeps(&mut linked).expect("wasmtime-wasi links the shadowed version");
    }
}
