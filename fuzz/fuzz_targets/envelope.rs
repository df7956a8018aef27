//! Any record value, with any headers, through every envelope decoder.
//! Input: header lines `key=value` up to a blank line, then the value; an
//! input without a blank line is all value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::envelope;
use switchyard::event::{Header, Record};

fuzz_target!(|data: &[u8]| {
    let (head, value) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (&[][..], data),
    };
    let headers = head
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let at = line.iter().position(|b| *b == b'=')?;
            Some(Header::from_bytes(
                String::from_utf8_lossy(&line[..at]),
                Some(&line[at + 1..]),
            ))
        })
        .collect();
    let record = Record {
        topic: "fuzz.topic".into(),
        partition: 0,
        offset: 0,
        key: Some(b"k".to_vec()),
        headers,
        value: Some(value.to_vec()),
    };
    if let Ok(event) = envelope::decode(&record) {
        // What decodes has an id and a type.
        assert!(!event.ty.is_empty());
    }
});
