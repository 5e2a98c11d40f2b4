//! What operators see of a running server: `/metrics` in both formats,
//! linted by Prometheus' own `promtool`; request ids; the REST timeout.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::ws;
use crate::harness::{SITE, TestServer, WAIT, eventually, fixtures};

/// `GET /metrics` as Prometheus text: (content type, body).
async fn scrape(server: &TestServer, accept: Option<&str>) -> (String, String) {
    let mut request = server.client.get(server.url("/metrics"));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let r = request.send().await.unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    (content_type, r.text().await.unwrap())
}

/// `promtool check metrics` on `text`: its verdict and what it printed.
fn promtool(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (.ci/run installs the prometheus package)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

/// The value of the sample line that starts with `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l[series.len()..].trim().parse().ok())
}

#[tokio::test]
async fn metrics_pass_promtool_and_carry_the_series_dashboards_use() {
    let server = TestServer::start().await;
    let owner = server.register("Acme", "ann@acme.test").await;
    let space = fixtures::space(&server, &owner).await;
    let body = json!({ "key": space.widget_key });
    let (token, _) = fixtures::visitor_session(&server, &[("origin", SITE)], body).await;
    let (mut widget, _hello) = ws::widget(server.addr, &space.widget_key, &token).await;
    let sent = fixtures::visitor_posts(
        &server,
        &token,
        json!({ "content": "Hello", "clientMsgId": uuid::Uuid::new_v4().to_string() }),
    )
    .await;
    assert!(sent.status.is_success(), "{}", sent.body);
    // The socket hears its own message: the dispatcher has counted it.
    widget
        .until(|f| ws::kind(f) == "message:new" || ws::kind(f) == "visitor:message")
        .await;
    server
        .client
        .get(server.url("/no/such/page/42"))
        .send()
        .await
        .unwrap();

    let (content_type, text) = scrape(&server, None).await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let (clean, said) = promtool(&text);
    assert!(clean && said.trim().is_empty(), "promtool: {said}\n{text}");

    let version = env!("CARGO_PKG_VERSION");
    assert!(
        text.contains(&format!(
            "mychat_build_info{{version=\"{version}\",commit=\""
        )),
        "{text}"
    );
    for (series, at_least) in [
        (
            "mychat_http_requests_total{method=\"POST\",route=\"/api/v1/widget/session\",code=\"201\"}",
            1.0,
        ),
        (
            "mychat_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/widget/messages\",code=\"201\"}",
            1.0,
        ),
        ("mychat_sockets_open{kind=\"widget\"}", 1.0),
        (
            "mychat_socket_frames_total{kind=\"widget\",direction=\"out\"}",
            1.0,
        ),
        ("mychat_messages_total{author=\"visitor\"}", 1.0),
        ("mychat_store_commit_duration_seconds_count", 1.0),
        ("mychat_store_commits_total", 1.0),
        ("mychat_outbox_pending{outbox=\"webhooks\"}", 0.0),
        ("mychat_outbox_pending{outbox=\"email\"}", 0.0),
        ("mychat_outbox_pending{outbox=\"push\"}", 0.0),
        (
            "mychat_outbox_oldest_pending_seconds{outbox=\"webhooks\"}",
            0.0,
        ),
        ("mychat_threads{status=\"unassigned\"}", 1.0),
        ("process_open_fds", 1.0),
    ] {
        let value = sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
        assert!(value >= at_least, "{series} = {value}");
    }
    // A path no route matches is one series, whatever the path.
    assert!(
        text.contains(
            "mychat_http_requests_total{method=\"GET\",route=\"unmatched\",code=\"404\"}"
        ),
        "{text}"
    );
    assert!(
        !text.contains("/no/such/page/42"),
        "paths never become labels"
    );
    for (name, kind) in [
        ("mychat_http_requests_total", "counter"),
        ("mychat_http_request_duration_seconds", "histogram"),
        ("mychat_sockets_open", "gauge"),
        ("mychat_socket_frames_total", "counter"),
        ("mychat_store_commit_duration_seconds", "histogram"),
        ("mychat_outbox_pending", "gauge"),
    ] {
        let declared = format!("# TYPE {name} {kind}");
        assert!(text.contains(&declared), "{declared}");
    }

    // OpenMetrics for a scraper that asks for it (Prometheus does).
    let (content_type, open) =
        scrape(&server, Some("application/openmetrics-text; version=1.0.0")).await;
    assert!(content_type.starts_with("application/openmetrics-text; version=1.0.0"));
    assert!(open.ends_with("# EOF\n"));
    assert!(open.contains("# TYPE mychat_http_requests counter"));
    drop(widget);
    eventually(WAIT, "the widget socket is no longer counted", || async {
        let (_, text) = scrape(&server, None).await;
        (sample(&text, "mychat_sockets_open{kind=\"widget\"}") == Some(0.0)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn request_ids_are_taken_or_made_and_always_echoed() {
    let server = TestServer::start().await;
    let get = |path: &str, id: Option<&str>| {
        let mut request = server.client.get(server.url(path));
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.send()
    };
    let r = get("/healthz", Some("ticket-4711")).await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "ticket-4711");
    // Errors carry it too: that is what a user quotes.
    let r = get("/api/v1/threads", Some("ticket-4712")).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-request-id"], "ticket-4712");
    // None sent, or one that could break a log line: a new UUID.
    let long = "x".repeat(200);
    for sent in [None, Some("two words"), Some(long.as_str())] {
        let r = get("/healthz", sent).await.unwrap();
        let made = r.headers()["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(made).is_ok(), "{sent:?} -> {made}");
    }
    let a = get("/healthz", None).await.unwrap();
    let b = get("/healthz", None).await.unwrap();
    assert_ne!(a.headers()["x-request-id"], b.headers()["x-request-id"]);
}

#[tokio::test]
async fn a_rest_request_slower_than_the_timeout_is_answered_503() {
    let server = TestServer::start_with(|c| c.http.request_timeout_secs = 1).await;
    // A login whose body never arrives: the handler waits for it.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\nx-request-id: slow-1\r\n\r\n{{\"email\":",
        server.addr
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("}}") {
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("x-request-id: slow-1"), "{answer}");
    let body: Value =
        serde_json::from_str(&answer[answer.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
}
