//! Waiting for something to become true: the one polling loop of the tests
//! and the benchmark.

use std::time::{Duration, Instant};

/// What one look of [`eventually`] found: done (with a value), or not yet,
/// with what it saw, which the panic shows if the wait times out.
pub trait Check {
    /// What a finished wait returns.
    type Output;
    /// `Ok` once done; otherwise what was seen.
    fn check(self) -> Result<Self::Output, String>;
}

impl Check for bool {
    type Output = ();
    fn check(self) -> Result<(), String> {
        if self {
            Ok(())
        } else {
            Err("the condition was still false".into())
        }
    }
}

impl<T> Check for Option<T> {
    type Output = T;
    fn check(self) -> Result<T, String> {
        self.ok_or_else(|| "still nothing".into())
    }
}

impl<T> Check for Result<T, String> {
    type Output = T;
    fn check(self) -> Result<T, String> {
        self
    }
}

/// Looks with `f` until it reports done, and returns what it found; panics
/// after `timeout` with `what` and what the last look saw. The first look
/// is at once; between looks it pauses for as long as the last one took,
/// and at least 100 ms, so that an expensive look (consuming a topic) does
/// not crowd out what it waits for.
pub fn eventually<C: Check>(what: &str, timeout: Duration, mut f: impl FnMut() -> C) -> C::Output {
    let started = Instant::now();
    loop {
        let look = Instant::now();
        let seen = match f().check() {
            Ok(done) => return done,
            Err(seen) => seen,
        };
        assert!(
            started.elapsed() < timeout,
            "timed out after {:.1} s waiting for {what}; the last look saw: {seen}",
            started.elapsed().as_secs_f64()
        );
        std::thread::sleep(look.elapsed().max(Duration::from_millis(100)));
    }
}
