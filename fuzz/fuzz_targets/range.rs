//! A `Range` header: never a part outside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mychat::attachments::http::{ByteRange, parse_range};

fuzz_target!(|input: (&str, u64)| {
    let (value, size) = input;
    if let ByteRange::Part { start, end } = parse_range(value, size) {
        assert!(start <= end && end < size);
    }
});
