//! Abuse limits over a real server: client addresses behind trusted
//! proxies, login limits that never lock the owner out, upload budgets and
//! the free-disk floor, socket caps, and who may read `/metrics`.
//!
//! Loopback is a whole /8: a client bound to 127.0.0.2 reaches the server
//! on 127.0.0.1 from its own address, so these tests play several clients.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::harness::fixtures::{self, space_with};
use crate::harness::ws::{self, Refused};
use crate::harness::{FROM_SITE, Owner, Reply, SITE, TestServer, WAIT, eventually};
use mychat::config::Cidr;
use mychat::spaces::model::{ChatSpace, SpaceSettings};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

/// A client whose connections come from `ip` (any 127.x.y.z).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn send(request: reqwest::RequestBuilder) -> Reply {
    Reply::read(request.send().await.expect("request sent")).await
}

async fn login_from(server: &TestServer, client: &reqwest::Client, password: &str) -> Reply {
    login_as(server, client, "ann@acme.test", password).await
}

async fn login_as(
    server: &TestServer,
    client: &reqwest::Client,
    email: &str,
    password: &str,
) -> Reply {
    let body = json!({"email": email, "password": password});
    send(client.post(server.url("/api/v1/auth/login")).json(&body)).await
}

#[tokio::test]
async fn guessing_from_one_address_never_locks_the_owner_out_of_another() {
    let server = TestServer::start_with(|c| {
        c.limits.login_per_account_per_minute = 3;
        c.limits.login_per_ip_per_minute = 100;
    })
    .await;
    server.register("Acme", "ann@acme.test").await;
    let guesser = client_from("127.0.0.2");
    for _ in 0..3 {
        let r = login_from(&server, &guesser, "not the password").await;
        assert_eq!(r.err(401), "unauthorized");
    }
    let r = login_from(&server, &guesser, "not the password").await;
    assert_eq!(r.err(429), "rate_limited");
    assert!(r.retry_after() >= 1);
    // Even the right password waits at that address...
    let r = login_from(&server, &guesser, PASSWORD).await;
    assert_eq!(r.err(429), "rate_limited");
    // ...while the owner, at hers, gets in.
    let owner = client_from("127.0.0.3");
    let r = login_from(&server, &owner, PASSWORD).await;
    assert!(r.ok()["accessToken"].is_string());
}

#[tokio::test]
async fn an_address_that_keeps_failing_is_held_back_on_every_account() {
    let server = TestServer::start_with(|c| {
        c.limits.login_per_ip_per_minute = 4;
        c.limits.login_per_account_per_minute = 100;
    })
    .await;
    server.register("Acme", "ann@acme.test").await;
    let guesser = client_from("127.0.0.2");
    for i in 0..4 {
        let r = login_as(&server, &guesser, &format!("user{i}@acme.test"), "guess").await;
        assert_eq!(r.err(401), "unauthorized");
    }
    let r = login_as(&server, &guesser, "user9@acme.test", "guess").await;
    assert_eq!(r.err(429), "rate_limited");
    let r = login_from(&server, &client_from("127.0.0.3"), PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// `POST /widget/session` for a new visitor, with extra headers.
async fn new_session(
    server: &TestServer,
    client: &reqwest::Client,
    space: &ChatSpace,
    headers: &[(&str, &str)],
) -> u16 {
    let mut req = client
        .post(server.url("/api/v1/widget/session"))
        .header("origin", SITE)
        .json(&json!({"key": space.widget_key}));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    send(req).await.status.as_u16()
}

async fn owner_and_space(server: &TestServer) -> (Owner, ChatSpace) {
    let owner = server.register("Acme", "ann@acme.test").await;
    let space = fixtures::space(server, &owner).await;
    (owner, space)
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let server = TestServer::start_with(|c| {
        c.http.trusted_proxies = vec!["127.0.0.1".parse::<Cidr>().unwrap()];
        c.limits.sessions_per_ip_per_minute = 2;
    })
    .await;
    let (_, space) = owner_and_space(&server).await;
    let proxy = client_from("127.0.0.1");
    let from = |xff: &'static str| [("x-forwarded-for", xff)];
    // Behind the trusted proxy, each client has its own limit.
    for _ in 0..2 {
        assert_eq!(
            new_session(&server, &proxy, &space, &from("203.0.113.1")).await,
            201
        );
    }
    assert_eq!(
        new_session(&server, &proxy, &space, &from("203.0.113.1")).await,
        429
    );
    assert_eq!(
        new_session(&server, &proxy, &space, &from("203.0.113.2")).await,
        201
    );
    // What the client itself put in front of the proxy's entry is ignored.
    let forged = from("198.51.100.7, 203.0.113.1");
    assert_eq!(new_session(&server, &proxy, &space, &forged).await, 429);

    // From a peer that is no proxy, the header is the client's claim and
    // counts for nothing: the peer's own address is limited.
    let direct = client_from("127.0.0.2");
    assert_eq!(
        new_session(&server, &direct, &space, &from("192.0.2.1")).await,
        201
    );
    assert_eq!(
        new_session(&server, &direct, &space, &from("192.0.2.2")).await,
        201
    );
    assert_eq!(
        new_session(&server, &direct, &space, &from("192.0.2.3")).await,
        429
    );
}

#[tokio::test]
async fn without_trusted_proxies_forwarded_headers_are_ignored() {
    let server = TestServer::start_with(|c| c.limits.sessions_per_ip_per_minute = 2).await;
    let (_, space) = owner_and_space(&server).await;
    let client = client_from("127.0.0.1");
    for (xff, want) in [("192.0.2.1", 201), ("192.0.2.2", 201), ("192.0.2.3", 429)] {
        let status = new_session(&server, &client, &space, &[("x-forwarded-for", xff)]).await;
        assert_eq!(status, want, "{xff}");
    }
    let forwarded = [("forwarded", "for=192.0.2.4")];
    assert_eq!(new_session(&server, &client, &space, &forwarded).await, 429);
}

#[tokio::test]
async fn ipv6_clients_share_a_limit_per_64() {
    let server = TestServer::start_with(|c| {
        c.http.trusted_proxies = vec!["127.0.0.0/8".parse::<Cidr>().unwrap()];
        c.http.forwarded_header = mychat::config::ForwardedHeader::Forwarded;
        c.limits.sessions_per_ip_per_minute = 2;
    })
    .await;
    let (_, space) = owner_and_space(&server).await;
    let proxy = client_from("127.0.0.1");
    let fwd = |v: &'static str| [("forwarded", v)];
    let same_64 = [
        "for=\"[2001:db8:1:2::1]\"",
        "for=\"[2001:db8:1:2:ffff::9]:4711\";proto=https",
        "for=\"[2001:db8:1:2:abcd::3]\"",
    ];
    assert_eq!(
        new_session(&server, &proxy, &space, &fwd(same_64[0])).await,
        201
    );
    assert_eq!(
        new_session(&server, &proxy, &space, &fwd(same_64[1])).await,
        201
    );
    assert_eq!(
        new_session(&server, &proxy, &space, &fwd(same_64[2])).await,
        429
    );
    let next_64 = fwd("for=\"[2001:db8:1:3::1]\"");
    assert_eq!(new_session(&server, &proxy, &space, &next_64).await, 201);
}

/// Every file under the data dir's attachments folder, temp files included.
fn stored_files(server: &TestServer) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&server.data_dir().join("attachments"), &mut out);
    out
}

/// A multipart body with `bytes` as the text file `notes.txt`:
/// (content type, body).
fn text_file(bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----mychat-abuse-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\nContent-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A visitor's upload of a text file from `client`.
async fn upload_from(
    server: &TestServer,
    client: &reqwest::Client,
    token: &str,
    bytes: Vec<u8>,
) -> Reply {
    let (content_type, body) = text_file(&bytes);
    let req = client
        .post(server.url("/api/v1/widget/attachments"))
        .header("origin", SITE)
        .header("content-type", content_type)
        .bearer_auth(token)
        .body(body);
    send(req).await
}

async fn session_token(server: &TestServer, space: &ChatSpace) -> String {
    let body = json!({"key": space.widget_key});
    fixtures::visitor_session(server, FROM_SITE, body).await.0
}

fn kib(n: usize) -> Vec<u8> {
    vec![b'a'; n * 1024]
}

#[tokio::test]
async fn a_visitor_may_hold_only_so_many_unsent_uploads() {
    let server = TestServer::start_with(|c| c.limits.max_pending_uploads = 2).await;
    let (_, space) = owner_and_space(&server).await;
    let token = session_token(&server, &space).await;
    let client = client_from("127.0.0.1");
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = upload_from(&server, &client, &token, kib(1)).await;
        ids.push(r.created()["id"].as_str().unwrap().to_owned());
    }
    let r = upload_from(&server, &client, &token, kib(1)).await;
    assert_eq!(r.err(429), "too_many_pending_uploads");
    assert_eq!(
        stored_files(&server).len(),
        2,
        "the refused file is not kept"
    );
    // Another visitor has its own allowance.
    let other = session_token(&server, &space).await;
    upload_from(&server, &client, &other, kib(1))
        .await
        .created();
    // Sending one makes room for the next.
    let body = json!({
        "content": "here",
        "clientMsgId": uuid::Uuid::new_v4().to_string(),
        "attachmentIds": [ids[0]],
    });
    fixtures::visitor_posts(&server, &token, body)
        .await
        .created();
    upload_from(&server, &client, &token, kib(1))
        .await
        .created();
}

#[tokio::test]
async fn an_address_has_an_hourly_upload_budget() {
    let server = TestServer::start_with(|c| {
        c.limits.upload_bytes_per_ip_per_hour = 64 * 1024;
        c.limits.uploads_per_minute = 1000;
    })
    .await;
    let (_, space) = owner_and_space(&server).await;
    let token = session_token(&server, &space).await;
    let first = client_from("127.0.0.2");
    upload_from(&server, &first, &token, kib(40))
        .await
        .created();
    let r = upload_from(&server, &first, &token, kib(40)).await;
    assert_eq!(r.err(429), "rate_limited");
    assert!(r.retry_after() >= 1);
    assert_eq!(
        stored_files(&server).len(),
        1,
        "the refused file is not kept"
    );
    // Another address has its own budget.
    let second = client_from("127.0.0.3");
    upload_from(&server, &second, &token, kib(40))
        .await
        .created();
}

#[tokio::test]
async fn a_chat_space_has_an_hourly_upload_budget() {
    let server = TestServer::start_with(|c| {
        c.limits.upload_bytes_per_space_per_hour = 64 * 1024;
        c.limits.uploads_per_minute = 1000;
    })
    .await;
    let (owner, space) = owner_and_space(&server).await;
    let other_space = space_with(
        &server,
        &owner,
        "Shop",
        &["site.test"],
        SpaceSettings::default(),
    )
    .await;
    let (a, b) = (client_from("127.0.0.2"), client_from("127.0.0.3"));
    let token = session_token(&server, &space).await;
    upload_from(&server, &a, &token, kib(40)).await.created();
    // Spread over addresses, the space's budget still runs out.
    let token2 = session_token(&server, &space).await;
    let r = upload_from(&server, &b, &token2, kib(40)).await;
    assert_eq!(r.err(429), "rate_limited");
    // Another space is not held back by it.
    let token3 = session_token(&server, &other_space).await;
    upload_from(&server, &b, &token3, kib(40)).await.created();
}

#[tokio::test]
async fn uploads_are_refused_below_the_free_disk_floor() {
    // A floor of 1 EiB: no disk has that much free.
    let server = TestServer::start_with(|c| c.limits.min_free_disk_mb = 1 << 40).await;
    let (owner, space) = owner_and_space(&server).await;
    let token = session_token(&server, &space).await;
    let r = upload_from(&server, &client_from("127.0.0.1"), &token, kib(1)).await;
    assert_eq!(r.err(507), "insufficient_storage");
    // Agents too.
    let (content_type, body) = text_file(&kib(1));
    let path = format!("/api/v1/attachments?chatSpaceId={}", space.id);
    let req = server
        .client
        .post(server.url(&path))
        .header("content-type", content_type)
        .bearer_auth(&owner.token)
        .body(body);
    assert_eq!(send(req).await.err(507), "insufficient_storage");
    assert_eq!(stored_files(&server), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn a_visitor_holds_at_most_its_share_of_sockets() {
    let server = TestServer::start_with(|c| c.limits.sockets_per_visitor = 2).await;
    let (_, space) = owner_and_space(&server).await;
    let token = session_token(&server, &space).await;
    let url = ws::widget_url(server.addr, &space.widget_key, &token);
    let (first, _) = ws::widget(server.addr, &space.widget_key, &token).await;
    let (_second, _) = ws::widget(server.addr, &space.widget_key, &token).await;
    match ws::connect(&url, FROM_SITE).await {
        Err(Refused::Status(429, body)) => {
            assert_eq!(body["error"]["code"], "too_many_sockets", "{body}");
        }
        Err(other) => panic!("expected a 429, got {other:?}"),
        Ok(_) => panic!("a third socket opened"),
    }
    // Other visitors are not held back by it.
    let other = session_token(&server, &space).await;
    ws::widget(server.addr, &space.widget_key, &other).await;
    // Once a socket ends, its place is free again.
    first.close().await;
    eventually(WAIT, "a freed socket place", || async {
        ws::connect(&url, FROM_SITE).await.ok()
    })
    .await;
}

#[tokio::test]
async fn the_appliance_holds_at_most_max_sockets_of_every_kind() {
    let server = TestServer::start_with(|c| c.limits.max_sockets = 2).await;
    let (owner, space) = owner_and_space(&server).await;
    let token = session_token(&server, &space).await;
    let (first, _) = ws::widget(server.addr, &space.widget_key, &token).await;
    let agent = ws::connect_agent(server.addr, &owner.token, &[])
        .await
        .expect("an agent socket opens");
    let other = session_token(&server, &space).await;
    let url = ws::widget_url(server.addr, &space.widget_key, &other);
    match ws::connect(&url, FROM_SITE).await {
        Err(Refused::Status(503, body)) => assert_eq!(body["error"]["code"], "unavailable"),
        Err(other) => panic!("expected a 503, got {other:?}"),
        Ok(_) => panic!("a socket over the cap opened"),
    }
    let refused = ws::connect_agent(server.addr, &owner.token, &[]).await;
    assert_eq!(refused.err().expect("refused").status(), 503);
    first.close().await;
    eventually(WAIT, "a freed socket place", || async {
        ws::connect(&url, FROM_SITE).await.ok()
    })
    .await;
    drop(agent);
}

/// `GET /metrics` from `client` with an optional bearer token and headers.
async fn scrape(
    server: &TestServer,
    client: &reqwest::Client,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut req = client.get(server.url("/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn error_code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).expect("a JSON error");
    v["error"]["code"]
        .as_str()
        .expect("an error code")
        .to_owned()
}

#[tokio::test]
async fn metrics_answer_loopback_clients_only() {
    let server = TestServer::start_with(|c| {
        c.http.trusted_proxies = vec!["127.0.0.1".parse::<Cidr>().unwrap()];
    })
    .await;
    let local = client_from("127.0.0.1");
    // Request series appear once there was a request.
    local.get(server.url("/healthz")).send().await.unwrap();
    let (status, text) = scrape(&server, &local, None, &[]).await;
    assert_eq!(status, 200);
    assert!(text.contains("mychat_http_requests_total"), "{text}");
    // Through a proxy on this machine, the client is whoever it forwards.
    let xff = [("x-forwarded-for", "203.0.113.5")];
    let (status, body) = scrape(&server, &local, None, &xff).await;
    assert_eq!((status, error_code(&body).as_str()), (403, "forbidden"));
}

#[tokio::test]
async fn with_a_metrics_token_every_scraper_needs_it() {
    let secret = "metrics-token-0123456789";
    let server = TestServer::start_with(|c| c.metrics.token = secret.into()).await;
    let local = client_from("127.0.0.1");
    for token in [None, Some("metrics-token-wrong-value")] {
        let (status, body) = scrape(&server, &local, token, &[]).await;
        assert_eq!((status, error_code(&body).as_str()), (401, "unauthorized"));
    }
    let (status, text) = scrape(&server, &client_from("127.0.0.2"), Some(secret), &[]).await;
    assert_eq!(status, 200);
    assert!(
        text.contains("mychat_threads{status=\"unassigned\"} 0"),
        "{text}"
    );
}

/// The value of one sample line of `/metrics`.
async fn gauge(server: &TestServer, sample: &str) -> u64 {
    let (status, text) = scrape(server, &server.client, None, &[]).await;
    assert_eq!(status, 200);
    let line = text
        .lines()
        .find(|l| l.starts_with(sample) && l[sample.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("no {sample} in {text}"));
    line[sample.len()..].trim().parse().unwrap()
}

#[tokio::test]
async fn thread_gauges_follow_every_write_and_survive_a_restart() {
    const UNASSIGNED: &str = "mychat_threads{status=\"unassigned\"}";
    const ACTIVE: &str = "mychat_threads{status=\"active\"}";
    let server = TestServer::start().await;
    let (owner, space) = owner_and_space(&server).await;
    let mut threads = Vec::new();
    for _ in 0..2 {
        let visitor = fixtures::visitor(&server, &space).await;
        threads.push(
            fixtures::visitor_says(&server, &visitor, "hello")
                .await
                .thread
                .id,
        );
    }
    assert_eq!(gauge(&server, UNASSIGNED).await, 2);
    assert_eq!(gauge(&server, ACTIVE).await, 0);
    let claim = format!("/api/v1/threads/{}/claim", threads[0]);
    server.post(&claim, &owner.token, json!({})).await.ok();
    assert_eq!(gauge(&server, UNASSIGNED).await, 1);
    assert_eq!(gauge(&server, ACTIVE).await, 1);

    // Counted again from storage at start.
    let server = server.restart().await;
    assert_eq!(gauge(&server, UNASSIGNED).await, 1);
    assert_eq!(gauge(&server, ACTIVE).await, 1);
    let owner = server.login("ann@acme.test", PASSWORD).await;
    let token = owner.ok()["accessToken"].as_str().unwrap().to_owned();
    let r = server
        .delete(&format!("/api/v1/threads/{}", threads[0]), &token)
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    assert_eq!(gauge(&server, ACTIVE).await, 0);
    assert_eq!(gauge(&server, UNASSIGNED).await, 1);
}
