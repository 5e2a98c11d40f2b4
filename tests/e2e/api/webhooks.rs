//! Webhooks over the real server, delivered to a real HTTP receiver on
//! loopback: signatures checked with an independent HMAC, retries, rotation,
//! disabling, the SSRF guard, bad input.

use std::sync::{Arc, Mutex};

use crate::harness::TestServer;
use crate::harness::WAIT;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::Notify;

/// What the receiver got.
#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: String,
}

/// A webhook endpoint: records every request, answers with the statuses
/// queued (200 once the queue is empty).
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<Vec<u16>>>,
    arrived: Arc<Notify>,
    url: String,
}

impl Receiver {
    async fn start() -> Receiver {
        let mut r = Receiver::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        r.url = format!("http://{}/hook", listener.local_addr().unwrap());
        let state = r.clone();
        let app = axum::Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    state.got.lock().unwrap().push(Received { headers, body });
                    state.arrived.notify_waiters();
                    let code = {
                        let mut a = state.answers.lock().unwrap();
                        if a.is_empty() { 200 } else { a.remove(0) }
                    };
                    AxumStatus::from_u16(code).unwrap()
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        r
    }

    /// Waits until `n` requests have arrived; returns them all.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let arrived = self.arrived.notified();
            {
                let got = self.got.lock().unwrap();
                if got.len() >= n {
                    return got.clone();
                }
            }
            assert!(
                tokio::time::timeout_at(deadline, arrived).await.is_ok(),
                "only {} of {n} webhook requests arrived",
                self.got.lock().unwrap().len()
            );
        }
    }
}

fn hmac_b64(secret: &str, id: &str, ts: &str, body: &str) -> String {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The signatures of a request, checked against `secret` the way any
/// Standard Webhooks library does.
fn signed_with(r: &Received, secret: &str) -> bool {
    let h = |n: &str| r.headers.get(n).unwrap().to_str().unwrap().to_owned();
    let expected = hmac_b64(secret, &h("webhook-id"), &h("webhook-timestamp"), &r.body);
    h("webhook-signature")
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

struct Setup {
    server: TestServer,
    owner: crate::harness::Owner,
    space_id: String,
    management: String,
}

async fn setup(allow_private: bool) -> Setup {
    let server = TestServer::start_with(|c| c.webhooks.allow_private_targets = allow_private).await;
    let o = crate::api::integrations::org(&server, "Acme").await;
    Setup {
        server,
        owner: o.owner,
        space_id: o.space_id,
        management: o.management,
    }
}

impl Setup {
    async fn webhook(&self, url: &str, events: &[&str]) -> (String, String) {
        let r = self
            .server
            .post(
                "/api/v1/webhooks",
                &self.owner.token,
                json!({"url": url, "events": events, "description": "platform"}),
            )
            .await;
        assert_eq!(r.status.as_u16(), 201, "{}", r.body);
        let secret = r.body["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("whsec_"));
        (r.body["id"].as_str().unwrap().to_owned(), secret)
    }

    async fn object_thread(&self, id: &str) -> String {
        let r = self
            .server
            .post(
                "/api/v1/management/threads",
                &self.management,
                json!({"chatSpaceId": self.space_id, "externalRef": {"type": "tender", "id": id}, "participants": ["u1", "u2"]}),
            )
            .await;
        r.ok()["id"].as_str().unwrap().to_owned()
    }

    async fn post_message(&self, thread: &str, cid: &str) -> Value {
        self.server
            .post(
                &format!("/api/v1/management/threads/{thread}/messages"),
                &self.management,
                json!({"content": format!("note {cid}"), "clientMsgId": cid}),
            )
            .await
            .ok()
            .clone()
    }

    /// The delivery log once `settled` holds for it (the attempt is recorded
    /// just after the receiver answered).
    async fn log_when(&self, hook: &str, settled: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let log = self.deliveries(hook).await;
            if settled(&log) {
                return log;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "deliveries never settled: {log:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    async fn deliveries(&self, hook: &str) -> Vec<Value> {
        self.server
            .get(
                &format!("/api/v1/webhooks/{hook}/deliveries"),
                &self.owner.token,
            )
            .await
            .ok()["items"]
            .as_array()
            .unwrap()
            .clone()
    }
}

#[tokio::test]
async fn deliveries_are_signed_and_carry_the_thread_the_message_and_the_participants() {
    let s = setup(true).await;
    let receiver = Receiver::start().await;
    let (hook, secret) = s
        .webhook(&receiver.url, &["message.new", "participant.joined"])
        .await;
    let listed = s.server.get("/api/v1/webhooks", &s.owner.token).await;
    assert!(
        !listed.ok().to_string().contains(&secret),
        "the secret is shown once"
    );
    let thread = s.object_thread("T-1").await;
    let message = s.post_message(&thread, "m1").await;

    let got = receiver.wait_for(1).await;
    let r = &got[0];
    assert!(signed_with(r, &secret), "signature: {:?}", r.headers);
    assert!(
        r.headers["webhook-id"]
            .to_str()
            .unwrap()
            .starts_with("msg_")
    );
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["type"], "message.new");
    assert!(body["timestamp"].is_string());
    assert_eq!(body["data"]["message"]["id"], message["id"]);
    assert_eq!(
        body["data"]["thread"]["externalRef"],
        json!({"type": "tender", "id": "T-1"})
    );
    assert_eq!(body["data"]["participants"], json!(["u1", "u2"]));
    assert!(!signed_with(
        r,
        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    ));

    // Internal notes never leave: an agent's note makes no delivery.
    s.server
        .post(
            &format!("/api/v1/threads/{thread}/messages"),
            &s.owner.token,
            json!({"content": "staff only", "clientMsgId": "n1", "internal": true}),
        )
        .await
        .ok();
    s.post_message(&thread, "m2").await;
    let got = receiver.wait_for(2).await;
    assert!(got.iter().all(|r| !r.body.contains("staff only")));
    let log = s
        .log_when(&hook, |l| {
            l.len() == 2 && l.iter().all(|d| d["status"] == "delivered")
        })
        .await;
    assert_eq!(log[0]["attempts"][0]["responseCode"], 200);
}

#[tokio::test]
async fn a_failed_delivery_is_retried_with_the_same_webhook_id() {
    let s = setup(true).await;
    let receiver = Receiver::start().await;
    receiver.answers.lock().unwrap().push(500);
    let (hook, secret) = s.webhook(&receiver.url, &["message.new"]).await;
    let thread = s.object_thread("T-2").await;
    s.post_message(&thread, "m1").await;
    let first = receiver.wait_for(1).await;
    // The retry is due 5 s later on the appliance's clock.
    let pending = s
        .log_when(&hook, |l| {
            l[0]["attempts"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    assert_eq!(pending[0]["status"], "pending");
    assert_eq!(pending[0]["attempts"][0]["responseCode"], 500);
    s.server
        .app_state
        .clock
        .advance(chrono::Duration::seconds(6));
    s.server.app_state.webhooks_due.notify_one();
    let both = receiver.wait_for(2).await;
    assert_eq!(
        both[1].headers["webhook-id"],
        first[0].headers["webhook-id"]
    );
    assert_eq!(both[1].body, first[0].body);
    assert!(signed_with(&both[1], &secret));
    let log = s.log_when(&hook, |l| l[0]["status"] != "pending").await;
    assert_eq!(log[0]["status"], "delivered");
    assert_eq!(log[0]["attempts"].as_array().unwrap().len(), 2);

    // A manual retry sends it once more, the same again.
    let did = log[0]["id"].as_str().unwrap();
    let r = s
        .server
        .post(
            &format!("/api/v1/webhooks/{hook}/deliveries/{did}/retry"),
            &s.owner.token,
            json!({}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 202);
    let three = receiver.wait_for(3).await;
    assert_eq!(
        three[2].headers["webhook-id"],
        first[0].headers["webhook-id"]
    );
}

#[tokio::test]
async fn after_a_rotation_both_secrets_sign_and_a_test_event_can_be_sent() {
    let s = setup(true).await;
    let receiver = Receiver::start().await;
    let (hook, old) = s.webhook(&receiver.url, &["message.new"]).await;
    let rotated = s
        .server
        .post(
            &format!("/api/v1/webhooks/{hook}/rotate-secret"),
            &s.owner.token,
            json!({}),
        )
        .await;
    let new = rotated.ok()["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let r = s
        .server
        .post(
            &format!("/api/v1/webhooks/{hook}/test"),
            &s.owner.token,
            json!({}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 202);
    let got = receiver.wait_for(1).await;
    assert!(signed_with(&got[0], &new) && signed_with(&got[0], &old));
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["type"], "webhook.test");
    assert_eq!(
        got[0].headers["webhook-signature"]
            .to_str()
            .unwrap()
            .split(' ')
            .count(),
        2
    );
}

#[tokio::test]
async fn a_webhook_failing_for_days_is_disabled_and_says_why() {
    let s = setup(true).await;
    let receiver = Receiver::start().await;
    receiver.answers.lock().unwrap().extend([500, 500, 500]);
    let (hook, _) = s.webhook(&receiver.url, &["message.new"]).await;
    let thread = s.object_thread("T-3").await;
    s.post_message(&thread, "m1").await;
    receiver.wait_for(1).await;
    s.log_when(&hook, |l| {
        l[0]["attempts"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    // Days pass on the appliance's clock; the next try fails too.
    s.server.app_state.clock.advance(chrono::Duration::days(6));
    s.server.app_state.webhooks_due.notify_one();
    receiver.wait_for(2).await;
    let view = loop {
        let v = s
            .server
            .get(&format!("/api/v1/webhooks/{hook}"), &s.owner.token)
            .await;
        if v.body["enabled"] == false {
            break v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert!(
        view.body["disabledReason"]
            .as_str()
            .unwrap()
            .contains("failed since"),
        "{}",
        view.body
    );
    // Disabled: no new deliveries are made for it.
    s.post_message(&thread, "m2").await;
    assert_eq!(s.deliveries(&hook).await.len(), 1);
    // An admin enables it again: a fresh start.
    let v = s
        .server
        .patch(
            &format!("/api/v1/webhooks/{hook}"),
            &s.owner.token,
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(v.ok()["enabled"], true);
    assert!(v.body["disabledReason"].is_null() && v.body["failingSince"].is_null());
}

#[tokio::test]
async fn webhooks_never_point_at_private_addresses() {
    let s = setup(false).await;
    let refused = [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://10.0.0.1/hook",
        "http://172.16.5.4/hook",
        "http://192.168.0.10/hook",
        "http://100.64.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0/hook",
        "http://[::1]/hook",
        "http://[fd00::1]/hook",
        "http://[fe80::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "https://user:pass@example.com/hook",
        "not a url",
    ];
    for url in refused {
        let r = s
            .server
            .post(
                "/api/v1/webhooks",
                &s.owner.token,
                json!({"url": url, "events": ["message.new"]}),
            )
            .await;
        assert_eq!(r.status.as_u16(), 400, "{url}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "validation_failed", "{url}");
    }
    let list = s.server.get("/api/v1/webhooks", &s.owner.token).await;
    assert_eq!(list.ok()["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn bad_webhook_input_changes_nothing_and_only_admins_manage_webhooks() {
    let s = setup(true).await;
    let receiver = Receiver::start().await;
    for body in [
        json!({"url": receiver.url, "events": []}),
        json!({"url": receiver.url, "events": ["message.deleted"]}),
        json!({"url": receiver.url, "events": ["message.new"], "description": "d".repeat(501)}),
        json!({"url": receiver.url, "events": ["message.new"], "secret": "mine"}),
        json!({"url": format!("{}/{}", receiver.url, "a".repeat(2001)), "events": ["message.new"]}),
        json!({"events": ["message.new"]}),
    ] {
        let r = s
            .server
            .post("/api/v1/webhooks", &s.owner.token, body.clone())
            .await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.body);
    }
    assert_eq!(
        s.server.get("/api/v1/webhooks", &s.owner.token).await.ok()["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let agent = crate::harness::fixtures::agent(
        &s.server,
        &s.owner,
        "Ann",
        mychat::accounts::model::Role::Agent,
    )
    .await;
    s.server
        .post(
            "/api/v1/webhooks",
            &agent.token,
            json!({"url": receiver.url, "events": ["message.new"]}),
        )
        .await
        .err(403);
    s.server
        .get("/api/v1/webhooks", &agent.token)
        .await
        .err(403);
    s.server
        .get("/api/v1/webhooks", &s.management)
        .await
        .err(403);
    // Another organization's webhook is a 404.
    let (hook, _) = s.webhook(&receiver.url, &["message.new"]).await;
    let other = s.server.register("Globex", "owner@globex.test").await;
    s.server
        .get(&format!("/api/v1/webhooks/{hook}"), &other.token)
        .await
        .err(404);
    s.server
        .delete(&format!("/api/v1/webhooks/{hook}"), &other.token)
        .await
        .err(404);
    s.server
        .post(
            &format!("/api/v1/webhooks/{hook}/rotate-secret"),
            &other.token,
            json!({}),
        )
        .await
        .err(404);
    s.server
        .get(&format!("/api/v1/webhooks/{hook}"), &s.owner.token)
        .await
        .ok();
}

#[tokio::test]
async fn thread_participant_and_offline_events_reach_the_webhooks_that_asked() {
    let s = setup(true).await;
    let receiver = Receiver::start().await;
    s.webhook(
        &receiver.url,
        &[
            "thread.created",
            "thread.closed",
            "visitor.offline_message",
            "participant.joined",
            "participant.left",
        ],
    )
    .await;
    // Another webhook of the organization, for messages only.
    let other = Receiver::start().await;
    s.webhook(&other.url, &["message.new"]).await;

    let key = s
        .server
        .get(
            &format!("/api/v1/chat-spaces/{}", s.space_id),
            &s.owner.token,
        )
        .await;
    let widget_key = key.ok()["widgetKey"].as_str().unwrap().to_owned();
    let session = s
        .server
        .call(
            reqwest::Method::POST,
            "/api/v1/widget/session",
            None,
            Some(json!({"key": widget_key})),
        )
        .await;
    let visitor = session.ok()["sessionToken"].as_str().unwrap().to_owned();
    let offline = s
        .server
        .client
        .post(s.server.url("/api/v1/widget/offline"))
        .header("origin", "https://platform.test")
        .bearer_auth(&visitor)
        .json(&json!({"name": "Eve", "email": "eve@example.test", "content": "Call me back"}))
        .send()
        .await
        .unwrap();
    assert_eq!(offline.status().as_u16(), 201);
    let thread = s.object_thread("T-7").await;
    s.server
        .post(
            &format!("/api/v1/management/threads/{thread}/participants"),
            &s.management,
            json!({"externalId": "u3"}),
        )
        .await
        .ok();
    s.server
        .delete(
            &format!("/api/v1/management/threads/{thread}/participants/u3"),
            &s.management,
        )
        .await
        .ok();
    let threads = s
        .server
        .get("/api/v1/threads?view=all", &s.owner.token)
        .await;
    let visitor_thread = threads.ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["visitorName"] == "Eve")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.server
        .post(
            &format!("/api/v1/threads/{visitor_thread}/close"),
            &s.owner.token,
            json!({}),
        )
        .await
        .ok();

    let got = receiver.wait_for(6).await;
    let types: Vec<String> = got
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.body).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let count = |t: &str| types.iter().filter(|x| *x == t).count();
    assert_eq!(count("thread.created"), 2, "{types:?}");
    assert_eq!(count("visitor.offline_message"), 1, "{types:?}");
    assert_eq!(count("participant.joined"), 1, "{types:?}");
    assert_eq!(count("participant.left"), 1, "{types:?}");
    assert_eq!(count("thread.closed"), 1, "{types:?}");
    let offline = got
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
        .find(|b| b["type"] == "visitor.offline_message")
        .unwrap();
    assert_eq!(offline["data"]["visitor"]["email"], "eve@example.test");
    assert_eq!(offline["data"]["message"]["content"], "Call me back");
    let joined = got
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
        .find(|b| b["type"] == "participant.joined")
        .unwrap();
    assert_eq!(joined["data"]["participant"]["externalId"], "u3");
    assert_eq!(joined["data"]["thread"]["externalRef"]["id"], "T-7");
    // The other webhook heard only what it asked for.
    let theirs = other.wait_for(1).await;
    assert!(
        theirs
            .iter()
            .all(|r| r.body.contains("\"type\":\"message.new\""))
    );
    assert!(
        theirs
            .iter()
            .all(|r| !r.body.contains("\"type\":\"thread."))
    );
}

/// Two nodes over one database both run the delivery worker: each event
/// still reaches the endpoint once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_two_nodes_each_event_is_delivered_once() {
    let mut nodes = TestServer::cluster(2, |c| c.webhooks.allow_private_targets = true).await;
    let other = nodes.pop().expect("node B");
    let server = nodes.pop().expect("node A");
    let o = crate::api::integrations::org(&server, "Acme").await;
    let s = Setup {
        server,
        owner: o.owner,
        space_id: o.space_id,
        management: o.management,
    };
    let receiver = Receiver::start().await;
    let (hook, _) = s.webhook(&receiver.url, &["message.new"]).await;
    let thread = s.object_thread("T-1").await;
    const N: usize = 30;
    for i in 0..N {
        s.post_message(&thread, &format!("m{i}")).await;
    }
    let log = s
        .log_when(&hook, |l| {
            l.len() == N && l.iter().all(|d| d["status"] == "delivered")
        })
        .await;
    for d in &log {
        assert_eq!(d["attempts"].as_array().unwrap().len(), 1, "{d}");
    }
    // Every delivery is recorded; a second send of one would have
    // arrived before its record.
    let got = receiver.got.lock().unwrap().clone();
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| r.headers["webhook-id"].to_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!((got.len(), ids.len()), (N, N), "each event once");
    drop(other);
}

/// The node that runs the jobs dies: another takes the jobs lock over and
/// delivers what is due, without anyone restarting anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_the_node_running_the_jobs_stops_another_delivers() {
    let nodes = TestServer::cluster(2, |c| c.webhooks.allow_private_targets = true).await;
    let leader = crate::harness::eventually(WAIT, "one node runs the jobs", || {
        let found = nodes.iter().position(|n| n.app_state.store.leads());
        async move { found }
    })
    .await;
    assert_eq!(
        nodes.iter().filter(|n| n.app_state.store.leads()).count(),
        1,
        "exactly one node runs the jobs"
    );
    let mut nodes = nodes;
    let mut stopped = nodes.remove(leader);
    let server = nodes.pop().expect("the other node");
    let o = crate::api::integrations::org(&server, "Acme").await;
    let s = Setup {
        server,
        owner: o.owner,
        space_id: o.space_id,
        management: o.management,
    };
    stopped.stop().await;
    drop(stopped);
    let receiver = Receiver::start().await;
    let (hook, _) = s.webhook(&receiver.url, &["message.new"]).await;
    let thread = s.object_thread("T-1").await;
    s.post_message(&thread, "m1").await;
    receiver.wait_for(1).await;
    s.log_when(&hook, |l| l.len() == 1 && l[0]["status"] == "delivered")
        .await;
    assert!(s.server.app_state.store.leads());
}
