//! Tests that run the `mychat` executable (`CARGO_BIN_EXE_mychat`) as a
//! child process: the command line, backup and restore, crashes and
//! signals. They use part of the in-process harness of `tests/e2e` (an
//! in-process server to write while a backup runs, the socket client, a
//! test CA).

// The e2e binary uses all of the harness and is where an unused helper
// shows up as dead code; here only a part of it is used.
#[allow(dead_code)]
#[path = "../e2e/harness/mod.rs"]
mod harness;

mod backup;
mod cli;
mod crash;
mod full_disk;
mod load;
mod memory;
mod migrate;
mod service;
mod soak;
mod tls;

use std::process::Command;

/// The `mychat` executable, without the machine's own `MYCHAT_*`
/// environment (which must not leak into the tests).
fn mychat() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mychat"));
    for (key, _) in std::env::vars() {
        if key.starts_with("MYCHAT_") {
            cmd.env_remove(key);
        }
    }
    cmd
}
