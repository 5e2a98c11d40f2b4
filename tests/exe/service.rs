//! The executable as systemd runs it: `Type=notify` readiness and stopping
//! over a notify socket the test binds (what `systemd-notify` and systemd
//! read), and request ids in the log lines of a request.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::mychat;

/// Reads notify datagrams until one holds `line`; all of them so far.
fn until_notified(socket: &UnixDatagram, line: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no {line} after {seen:?}: {e}"));
        let message = String::from_utf8_lossy(&buf[..n]).into_owned();
        let done = message.lines().any(|l| l == line);
        seen.push(message);
        if done {
            return seen;
        }
    }
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn ready_is_notified_once_it_answers_and_stopping_on_sigterm() {
    let dir = crate::harness::scratch::temp_dir();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let data = dir.path().join("data");
    let mut child = mychat()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "200000")
        .env("MYCHAT_DEMO", "false")
        .env("MYCHAT_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let seen = until_notified(&socket, "READY=1");
    let status = seen.last().unwrap();
    let url = status
        .lines()
        .find_map(|l| l.strip_prefix("STATUS=serving "))
        .unwrap_or_else(|| panic!("a status with the address in {status}"));
    // READY means serving: the first request after it is answered.
    let health = reqwest::get(format!("{url}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");
    // WATCHDOG_USEC set: the server pings while its store runs.
    until_notified(&socket, "WATCHDOG=1");

    terminate(&child);
    until_notified(&socket, "STOPPING=1");
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    drop(child.stdout.take());
}

#[tokio::test]
async fn every_log_line_of_a_request_names_its_request_id() {
    let dir = crate::harness::scratch::temp_dir();
    let mut child = mychat()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("MYCHAT_DEMO", "false")
        .env("MYCHAT_LOG", "info,tower_http=debug")
        .env("MYCHAT_LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = stdout.next().expect("the banner").unwrap();
        if let Some(url) = line.strip_prefix("My-Chat is running at ") {
            break url.trim().to_owned();
        }
    };
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1/threads"))
        .header("x-request-id", "support-ticket-77")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-request-id"], "support-ticket-77");
    // tower_http logs the start and the end of every request at debug.
    // stderr is read to its end, so the server never writes into a closed pipe.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (lines, logged) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines() {
            let _ = lines.send(line.unwrap());
        }
    });
    let mut of_request = Vec::new();
    loop {
        let line = logged
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e} after {of_request:?}"));
        if !line.contains("/api/v1/threads") {
            continue;
        }
        let done = line.contains("finished processing request");
        of_request.push(line);
        if done {
            break;
        }
    }
    assert!(of_request.len() >= 2, "{of_request:?}");
    for line in &of_request {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(event["span"]["request_id"], "support-ticket-77", "{line}");
    }
    terminate(&child);
    assert!(child.wait().unwrap().success());
}
