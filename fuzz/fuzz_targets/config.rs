//! Any text as a `router.toml`: it parses or says why, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use switchyard::config::RouterConfig;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = RouterConfig::parse(text, Path::new("/nonexistent/fuzz/router.toml"));
    }
});
