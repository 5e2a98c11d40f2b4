//! A list cursor from a query string: parsed, or refused quietly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mychat::store::ThreadCursor;

fuzz_target!(|text: &str| {
    if let Some(cursor) = ThreadCursor::parse(text) {
        assert_eq!(ThreadCursor::parse(&cursor.encode()), Some(cursor));
    }
});
