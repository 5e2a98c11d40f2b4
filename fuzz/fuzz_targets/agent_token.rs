//! An agent's bearer token: anything but a token the server signed is refused.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mychat::auth::jwt::JwtKeys;

fuzz_target!(|token: &str| {
    static KEYS: OnceLock<(tempfile::TempDir, JwtKeys)> = OnceLock::new();
    let (_, keys) = KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let keys = JwtKeys::load(dir.path(), "", 900).unwrap();
        (dir, keys)
    });
    assert!(keys.verify(token).is_none());
});
