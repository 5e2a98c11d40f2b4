//! Tests that run the `mychat` executable (`CARGO_BIN_EXE_mychat`) as a
//! child process: the command line, backup and restore, crashes and
//! signals. They use part of the in-process harness of `tests/e2e` (an
//! in-process server to write while a backup runs, the socket client, a
//! test CA).

#[path = "../e2e/harness/mod.rs"]
mod harness;

mod backup;
mod cli;
mod crash;
mod tls;
