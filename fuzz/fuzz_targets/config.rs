//! A config file: loaded and validated, or refused with an error.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &[u8]| {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
    let file = dir.path().join("mychat.toml");
    std::fs::write(&file, text).unwrap();
    if let Ok(config) = mychat::Config::load(Some(&file), &Default::default()) {
        let _ = config.validate();
    }
});
