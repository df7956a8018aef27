//! Any text as a fixture file: it parses or says why, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::harness;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = harness::parse_fixture(text);
    }
});
