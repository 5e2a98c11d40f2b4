//! `mychat-load http` against an in-process server: the senders' own
//! HTTP/1.1 connections (and, with `--reqwest`, the general client) get
//! every message acknowledged, and the store committed each one.

use std::process::Command;

fn http_run(extra: &[&str]) -> serde_json::Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mychat-load"));
    for (key, _) in std::env::vars() {
        if key.starts_with("MYCHAT_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .args(["--json", "http", "--senders", "3", "--messages", "25"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("one JSON line")
}

#[test]
fn both_http_clients_get_every_send_acknowledged_and_committed() {
    for extra in [&[][..], &["--reqwest"][..]] {
        let report = http_run(extra);
        assert_eq!(report["errors"], 0, "{extra:?}: {report}");
        assert_eq!(report["acknowledged"], 75, "{extra:?}: {report}");
        let writes = report["store"]["writes"].as_u64().unwrap();
        assert!(writes >= 75, "{extra:?}: {writes} writes: {report}");
    }
}
