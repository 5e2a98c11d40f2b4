//! An uploaded file: its name made safe, its bytes judged by the sniffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mychat::attachments::policy::{self, Kind};

fuzz_target!(|input: (&str, &[u8])| {
    let (name, bytes) = input;
    let safe = policy::sanitize_name(name);
    assert!(!safe.is_empty() && !safe.contains(['/', '\\']));
    let _ = policy::content_disposition(&safe, true);
    for ext in [
        "png", "jpg", "gif", "webp", "pdf", "txt", "csv", "docx", "xlsx", "doc", "zip",
    ] {
        if let Some(kind) = Kind::from_extension(ext) {
            let _ = policy::verify(kind, bytes);
        }
    }
});
