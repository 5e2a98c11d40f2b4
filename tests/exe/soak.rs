//! The churn soak of `mychat-load` for two minutes against the real
//! binary: sockets of visitors and agents connect, send, drop, resume,
//! claim, upload and close at random; every acknowledged message must be
//! stored exactly once, every resume exact, and the server's memory and
//! file descriptors must come back to their baseline.

use std::process::Command;

#[test]
fn two_minutes_of_churn_lose_nothing_and_leak_nothing() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mychat-load"));
    for (key, _) in std::env::vars() {
        if key.starts_with("MYCHAT_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .args([
            "--json",
            "soak",
            "--minutes",
            "2",
            "--visitors",
            "8",
            "--agents",
            "2",
        ])
        .arg("--server-bin")
        .arg(env!("CARGO_BIN_EXE_mychat"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    // The churn really happened.
    for key in [
        "visitorMessages",
        "agentMessages",
        "abruptDrops",
        "resumesChecked",
        "closes",
    ] {
        assert!(report[key].as_u64().unwrap() > 0, "no {key}: {report}");
    }
    assert!(report["acknowledged"].as_u64().unwrap() >= 100, "{report}");
    assert!(report["fdsEnd"].as_u64() <= report["fdsBase"].as_u64().map(|b| b + 2));
}
