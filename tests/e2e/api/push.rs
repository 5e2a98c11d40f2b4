//! Web Push over the real server, to a real push service on loopback: the
//! test plays the browser (its own P-256 key and auth secret, as
//! `pushManager.subscribe` makes them) and the push service (checks the
//! VAPID header — an ES256 JWT for the endpoint's origin, signed by the key
//! it names — and decrypts the aes128gcm body with the browser's keys).
//!
//! "Nothing was pushed" is proven by counting: pushes are written in the
//! commit of their event, so once none is pending and the sent counter
//! equals what the service received, nothing else was ever queued.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mychat::accounts::model::Role;
use mychat::ids::AgentId;
use mychat::spaces::model::ChatSpace;
use mychat::store::Reader;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::harness::fixtures::{self, Agent};
use crate::harness::{FROM_SITE, Owner, TestServer, WAIT, eventually};

/// One push as the push service received it.
#[derive(Clone, Debug)]
struct Got {
    device: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A push service: records every push, answers with the statuses queued
/// for a device (201 once its queue is empty).
#[derive(Clone, Default)]
struct PushService {
    got: Arc<Mutex<Vec<Got>>>,
    answers: Arc<Mutex<HashMap<String, Vec<u16>>>>,
    arrived: Arc<Notify>,
    base: String,
}

impl PushService {
    async fn start() -> PushService {
        let mut service = PushService::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        service.base = format!("http://{}", listener.local_addr().unwrap());
        let state = service.clone();
        let app = axum::Router::new().route(
            "/push/{device}",
            post(
                move |Path(device): Path<String>, headers: HeaderMap, body: axum::body::Bytes| {
                    let state = state.clone();
                    async move {
                        let code = state
                            .answers
                            .lock()
                            .unwrap()
                            .get_mut(&device)
                            .filter(|q| !q.is_empty())
                            .map_or(201, |q| q.remove(0));
                        state.got.lock().unwrap().push(Got {
                            device,
                            headers,
                            body: body.to_vec(),
                        });
                        state.arrived.notify_waiters();
                        AxumStatus::from_u16(code).unwrap()
                    }
                },
            ),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        service
    }

    fn answer(&self, device: &str, code: u16) {
        self.answers
            .lock()
            .unwrap()
            .entry(device.to_owned())
            .or_default()
            .push(code);
    }

    fn of(&self, device: &str) -> Vec<Got> {
        let got = self.got.lock().unwrap();
        got.iter().filter(|g| g.device == device).cloned().collect()
    }

    fn total(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    /// Waits until `device` has received `n` pushes; returns them.
    async fn wait_for(&self, device: &str, n: usize) -> Vec<Got> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let arrived = self.arrived.notified();
            let got = self.of(device);
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::timeout_at(deadline, arrived).await.is_ok(),
                "{device} got {} of {n} pushes",
                got.len()
            );
        }
    }
}

/// A browser's subscription: its own key pair and auth secret.
struct Device {
    name: String,
    endpoint: String,
    secret: p256::SecretKey,
    auth: [u8; 16],
}

impl Device {
    fn new(service: &PushService, name: &str) -> Device {
        let secret = loop {
            if let Ok(s) = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
                break s;
            }
        };
        Device {
            name: name.to_owned(),
            endpoint: format!("{}/push/{name}", service.base),
            secret,
            auth: rand::random(),
        }
    }

    /// What `PushSubscription.toJSON()` gives.
    fn json(&self) -> Value {
        let point = self.secret.public_key().to_encoded_point(false);
        json!({
            "endpoint": self.endpoint,
            "expirationTime": null,
            "keys": { "p256dh": B64.encode(point.as_bytes()), "auth": B64.encode(self.auth) },
        })
    }

    /// Checks a push as a push service and opens it as the browser: the
    /// VAPID header against `server_key`, then the decrypted payload.
    fn open(&self, got: &Got, server_key: &str) -> Value {
        let header = |name: &str| {
            got.headers
                .get(name)
                .unwrap_or_else(|| panic!("no {name} header"))
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(header("content-encoding"), "aes128gcm");
        assert_eq!(header("urgency"), "high");
        assert!(header("ttl").parse::<u64>().unwrap() > 0);
        let authorization = header("authorization");
        let (jwt, k) = authorization
            .strip_prefix("vapid t=")
            .and_then(|rest| rest.split_once(", k="))
            .unwrap_or_else(|| panic!("not a VAPID header: {authorization}"));
        assert_eq!(k, server_key, "the header names the server's key");
        // The JWT must be signed by the key it names (ES256 over P-256).
        let point = B64.decode(k).unwrap();
        assert_eq!((point.len(), point[0]), (65, 4), "an uncompressed point");
        let key =
            DecodingKey::from_ec_components(&B64.encode(&point[1..33]), &B64.encode(&point[33..]))
                .unwrap();
        let origin = self
            .endpoint
            .trim_end_matches(&format!("/push/{}", self.name));
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&[origin]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Value>(jwt, &key, &validation)
            .expect("a valid VAPID token")
            .claims;
        let exp = claims["exp"].as_i64().unwrap();
        let now = chrono::Utc::now().timestamp();
        assert!(
            exp > now && exp <= now + 24 * 3600,
            "exp within 24 h: {claims}"
        );
        assert!(
            !claims["sub"].as_str().unwrap_or_default().is_empty(),
            "{claims}"
        );
        let auth = web_push_native::Auth::from(self.auth);
        let plain = web_push_native::decrypt(got.body.clone(), &self.secret, &auth)
            .expect("the body decrypts with the browser's keys");
        serde_json::from_slice(&plain).expect("the payload is JSON")
    }
}

struct World {
    server: TestServer,
    owner: Owner,
    space: ChatSpace,
    service: PushService,
    /// The server's VAPID public key.
    key: String,
}

async fn world() -> World {
    let server = TestServer::start_with(|c| c.push.allow_private_endpoints = true).await;
    let owner = server.register("Acme", "ann@acme.test").await;
    let space = fixtures::space(&server, &owner).await;
    let service = PushService::start().await;
    let key = server.get("/api/v1/push/vapid-key", &owner.token).await;
    let key = key.ok()["publicKey"].as_str().unwrap().to_owned();
    World {
        server,
        owner,
        space,
        service,
        key,
    }
}

impl World {
    async fn agent(&self, name: &str, scope: &str, quiet: u32) -> Agent {
        let agent = fixtures::agent(&self.server, &self.owner, name, Role::Agent).await;
        self.prefer(&agent.id, &agent.token, scope, quiet).await;
        agent
    }

    async fn prefer(&self, id: &str, token: &str, scope: &str, quiet: u32) {
        let body = json!({ "notify": { "scope": scope, "quietMinutes": quiet } });
        let r = self
            .server
            .patch(&format!("/api/v1/agents/{id}"), token, body)
            .await;
        assert_eq!(r.ok()["notify"]["scope"], scope);
    }

    async fn subscribe(&self, token: &str, device: &Device) {
        let r = self
            .server
            .post("/api/v1/push/subscriptions", token, device.json())
            .await;
        assert_eq!(r.created()["endpoint"], device.endpoint.as_str());
    }

    fn devices_of(&self, agent: &str) -> usize {
        let agent: AgentId = agent.parse().unwrap();
        let read = self.server.app_state.store.read().unwrap();
        read.push_subscriptions_of(agent).unwrap().len()
    }

    /// A new visitor writes `text`; the thread id.
    async fn visitor_writes(&self, text: &str) -> (String, String) {
        let (token, _) = fixtures::visitor_session(
            &self.server,
            FROM_SITE,
            json!({ "key": self.space.widget_key }),
        )
        .await;
        let thread = self.visitor_again(&token, text).await;
        (token, thread)
    }

    async fn visitor_again(&self, token: &str, text: &str) -> String {
        let body = json!({ "content": text, "clientMsgId": uuid::Uuid::new_v4().to_string() });
        let r = fixtures::visitor_posts(&self.server, token, body).await;
        assert!(r.status.is_success(), "{}", r.body);
        r.body["thread"]["id"].as_str().unwrap().to_owned()
    }

    /// `mychat_push_total{result}` and `mychat_push_pending` from /metrics.
    async fn counts(&self) -> (u64, u64, u64, u64) {
        let text = crate::harness::text(self.server.client.get(self.server.url("/metrics"))).await;
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no {name} in /metrics"))
        };
        (
            value("mychat_push_total{result=\"sent\"}"),
            value("mychat_push_total{result=\"failed\"}"),
            value("mychat_push_total{result=\"skipped\"}"),
            value("mychat_push_pending"),
        )
    }

    /// Waits until nothing is pending and the counters are `(sent, failed,
    /// skipped)`; then the push service has had exactly `sent + failed`.
    async fn settled(&self, sent: u64, failed: u64, skipped: u64) {
        eventually(WAIT, "pushes to settle", || async {
            let (s, f, k, pending) = self.counts().await;
            (pending == 0 && (s, f, k) == (sent, failed, skipped)).then_some(())
        })
        .await;
        assert_eq!(self.service.total() as u64, sent + failed);
    }

    async fn transfer(&self, token: &str, thread: &str, to: &str) {
        let r = self
            .server
            .post(
                &format!("/api/v1/threads/{thread}/transfer"),
                token,
                json!({ "agentId": to }),
            )
            .await;
        r.ok();
    }
}

#[tokio::test]
async fn a_new_thread_reaches_the_agent_encrypted_and_signed_and_410_unsubscribes() {
    let w = world().await;
    let bob = w.agent("Bob", "all", 0).await;
    let phone = Device::new(&w.service, "bob-phone");
    w.subscribe(&bob.token, &phone).await;

    let (visitor, thread) = w.visitor_writes("Hello,   I need\nhelp").await;
    let got = w.service.wait_for("bob-phone", 1).await;
    let payload = phone.open(&got[0], &w.key);
    assert_eq!(payload["title"], "New conversation: Visitor #1");
    assert_eq!(payload["body"], "Hello, I need help");
    assert_eq!(payload["url"], format!("/app/#/inbox/available/{thread}"));
    assert_eq!(payload["tag"], format!("thread-{thread}"));

    // Bob takes it; the visitor's next message is for Bob, whose push
    // service now says the subscription has expired.
    let claim = format!("/api/v1/threads/{thread}/claim");
    w.server.post(&claim, &bob.token, json!({})).await.ok();
    w.service.answer("bob-phone", 410);
    w.visitor_again(&visitor, "Are you there?").await;
    let got = w.service.wait_for("bob-phone", 2).await;
    let payload = phone.open(&got[1], &w.key);
    assert_eq!(payload["title"], "New message: Visitor #1");
    assert_eq!(payload["body"], "Are you there?");
    assert_eq!(payload["url"], format!("/app/#/inbox/mine/{thread}"));
    w.settled(1, 1, 0).await;
    assert_eq!(w.devices_of(&bob.id), 0, "a 410 removes the subscription");

    // With no device left, nothing is even queued.
    w.visitor_again(&visitor, "Hello?").await;
    assert_eq!(w.counts().await.3, 0);
    w.settled(1, 1, 0).await;
}

#[tokio::test]
async fn each_agent_hears_what_its_preferences_ask_for_and_never_its_own_doing() {
    let w = world().await;
    let all = w.agent("All", "all", 0).await;
    let assigned = w.agent("Assigned", "assigned", 0).await;
    let none = w.agent("None", "none", 0).await;
    let (a, b, c) = (
        Device::new(&w.service, "all"),
        Device::new(&w.service, "assigned"),
        Device::new(&w.service, "none"),
    );
    w.subscribe(&all.token, &a).await;
    w.subscribe(&assigned.token, &b).await;
    w.subscribe(&none.token, &c).await;

    // A new thread: only the agent who wants everything hears of it.
    let (visitor, thread) = w.visitor_writes("Hi").await;
    w.service.wait_for("all", 1).await;
    // Held threads: "assigned" hears its visitor.
    let claim = format!("/api/v1/threads/{thread}/claim");
    w.server.post(&claim, &assigned.token, json!({})).await.ok();
    w.visitor_again(&visitor, "For you").await;
    let got = w.service.wait_for("assigned", 1).await;
    assert_eq!(b.open(&got[0], &w.key)["body"], "For you");
    // "none" hears nothing, not even a thread handed to it.
    w.transfer(&assigned.token, &thread, &none.id).await;
    w.visitor_again(&visitor, "Still there?").await;
    // A transfer tells its new holder; handing it to oneself tells no one.
    w.transfer(&w.owner.token, &thread, &all.id).await;
    let got = w.service.wait_for("all", 2).await;
    let payload = a.open(&got[1], &w.key);
    assert_eq!(payload["title"], "Conversation handed to you: Visitor #1");
    assert_eq!(payload["body"], "Still there?");
    w.transfer(&all.token, &thread, &all.id).await;
    // Agents' own messages and internal notes are never pushed.
    fixtures::agent_message(&w.server, &all.token, &thread, "On it", false).await;
    fixtures::agent_message(&w.server, &all.token, &thread, "Note", true).await;

    w.settled(3, 0, 0).await;
    assert_eq!(w.service.of("all").len(), 2);
    assert_eq!(w.service.of("assigned").len(), 1);
    assert_eq!(w.service.of("none").len(), 0);
}

#[tokio::test]
async fn other_organizations_and_other_spaces_never_hear() {
    let w = world().await;
    let here = Device::new(&w.service, "owner");
    w.subscribe(&w.owner.token, &here).await;
    // An agent of this organization who works only in another space.
    let elsewhere = w.agent("Elsewhere", "all", 0).await;
    let other_space = fixtures::space(&w.server, &w.owner).await;
    let r = w
        .server
        .patch(
            &format!("/api/v1/agents/{}", elsewhere.id),
            &w.owner.token,
            json!({ "spaceIds": [other_space.id] }),
        )
        .await;
    r.ok();
    let login = w
        .server
        .login(
            &format!("elsewhere@{}.test", w.owner.org_id),
            "agent password 1",
        )
        .await;
    let elsewhere_token = login.ok()["accessToken"].as_str().unwrap().to_owned();
    w.subscribe(&elsewhere_token, &Device::new(&w.service, "elsewhere"))
        .await;
    // Another organization's owner.
    let rival = w.server.register("Rival", "rita@rival.test").await;
    w.subscribe(&rival.token, &Device::new(&w.service, "rival"))
        .await;

    w.visitor_writes("Hello Acme").await;
    w.service.wait_for("owner", 1).await;
    w.settled(1, 0, 0).await;
    assert!(w.service.of("rival").is_empty());
    assert!(w.service.of("elsewhere").is_empty());
}

#[tokio::test]
async fn quiet_minutes_wait_and_a_thread_read_meanwhile_is_not_pushed() {
    let w = world().await;
    let dan = w.agent("Dan", "all", 5).await;
    let phone = Device::new(&w.service, "dan");
    w.subscribe(&dan.token, &phone).await;

    let (_, first) = w.visitor_writes("First").await;
    // Queued in the event's commit, due in five minutes.
    assert_eq!(w.counts().await.3, 1);
    let messages = w
        .server
        .get(&format!("/api/v1/threads/{first}/messages"), &dan.token)
        .await;
    let up_to = messages.ok()["items"][0]["id"].clone();
    let r = w
        .server
        .post(
            &format!("/api/v1/threads/{first}/read"),
            &dan.token,
            json!({ "upTo": up_to }),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    w.visitor_writes("Second").await;
    assert_eq!(w.counts().await.3, 2);

    w.server
        .app_state
        .clock
        .advance(chrono::Duration::minutes(6));
    w.server.app_state.push.due.notify_one();
    let got = w.service.wait_for("dan", 1).await;
    assert_eq!(phone.open(&got[0], &w.key)["body"], "Second");
    // The read one was dropped, not sent.
    w.settled(1, 0, 1).await;
}

#[tokio::test]
async fn bad_subscriptions_are_refused_and_nothing_is_stored() {
    let w = world().await;
    let device = Device::new(&w.service, "d");
    let good = device.json();
    let with = |path: &str, value: Value| {
        let mut v = good.clone();
        let mut at = &mut v;
        let parts: Vec<&str> = path.split('.').collect();
        for p in &parts[..parts.len() - 1] {
            at = &mut at[*p];
        }
        at[parts[parts.len() - 1]] = value;
        v
    };
    let short_key = B64.encode([4u8; 33]);
    let off_curve = B64.encode([4u8; 65]);
    for bad in [
        with("endpoint", json!("not a url")),
        with("endpoint", json!("ftp://push.example/x")),
        with(
            "endpoint",
            json!(format!("https://push.example/{}", "a".repeat(2001))),
        ),
        with("endpoint", json!(42)),
        with("keys.p256dh", json!(short_key)),
        with("keys.p256dh", json!(off_curve)),
        with("keys.p256dh", json!("!!not base64!!")),
        with("keys.auth", json!(B64.encode([1u8; 15]))),
        with("keys.auth", json!(B64.encode([1u8; 17]))),
        with("keys.extra", json!("x")),
        with("color", json!("red")),
        json!({ "endpoint": device.endpoint }),
        json!({}),
    ] {
        let r = w
            .server
            .post("/api/v1/push/subscriptions", &w.owner.token, bad.clone())
            .await;
        assert!(
            r.status == 400 || r.status == 422,
            "{bad} gave {} {}",
            r.status,
            r.body
        );
        assert!(r.body["error"]["code"].is_string(), "{}", r.body);
    }
    let anonymous = w
        .server
        .call(
            Method::POST,
            "/api/v1/push/subscriptions",
            None,
            Some(good.clone()),
        )
        .await;
    assert_eq!(anonymous.err(401), "unauthorized");
    let key = w
        .server
        .call(Method::GET, "/api/v1/push/vapid-key", None, None)
        .await;
    assert_eq!(key.err(401), "unauthorized");
    assert_eq!(w.devices_of(&w.owner.agent_id), 0);
    assert!(
        w.server
            .app_state
            .store
            .read()
            .unwrap()
            .is_empty(mychat::store::tables::PUSH_SUBSCRIPTIONS)
            .unwrap()
    );
    // The same body, well formed, is taken; twice is one subscription.
    w.subscribe(&w.owner.token, &device).await;
    let again = w
        .server
        .post("/api/v1/push/subscriptions", &w.owner.token, good)
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(w.devices_of(&w.owner.agent_id), 1);
}

#[tokio::test]
async fn private_or_plain_http_endpoints_are_refused_unless_allowed() {
    let server = TestServer::start().await;
    let owner = server.register("Acme", "ann@acme.test").await;
    let service = PushService::start().await;
    let mut device = Device::new(&service, "local");
    for endpoint in [
        device.endpoint.clone(),
        "https://127.0.0.1/push/x".to_owned(),
        "https://10.1.2.3/push/x".to_owned(),
        "https://[::1]/push/x".to_owned(),
        "https://localhost/push/x".to_owned(),
    ] {
        device.endpoint = endpoint.clone();
        let r = server
            .post("/api/v1/push/subscriptions", &owner.token, device.json())
            .await;
        assert_eq!(r.err(400), "validation_failed", "{endpoint}");
    }
    let read = server.app_state.store.read().unwrap();
    assert!(
        read.is_empty(mychat::store::tables::PUSH_SUBSCRIPTIONS)
            .unwrap()
    );
}

#[tokio::test]
async fn logout_and_unsubscribing_remove_subscriptions() {
    let w = world().await;
    let eve = w.agent("Eve", "all", 0).await;
    let (phone, laptop) = (
        Device::new(&w.service, "phone"),
        Device::new(&w.service, "laptop"),
    );
    w.subscribe(&eve.token, &phone).await;
    w.subscribe(&eve.token, &laptop).await;
    let owners = Device::new(&w.service, "owners");
    w.subscribe(&w.owner.token, &owners).await;
    assert_eq!(w.devices_of(&eve.id), 2);

    // One device unsubscribes; another agent cannot remove it for her.
    let gone = json!({ "endpoint": laptop.endpoint });
    let r = w
        .server
        .call(
            Method::DELETE,
            "/api/v1/push/subscriptions",
            Some(&w.owner.token),
            Some(gone.clone()),
        )
        .await;
    assert_eq!(r.err(404), "not_found");
    let r = w
        .server
        .call(
            Method::DELETE,
            "/api/v1/push/subscriptions",
            Some(&eve.token),
            Some(gone),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(w.devices_of(&eve.id), 1);

    // Logging out removes the rest, and only hers.
    let r = w
        .server
        .post(
            "/api/v1/auth/logout",
            &eve.token,
            json!({ "refreshToken": eve.refresh }),
        )
        .await;
    assert!(r.status.is_success(), "{} {}", r.status, r.body);
    assert_eq!(w.devices_of(&eve.id), 0);
    assert_eq!(w.devices_of(&w.owner.agent_id), 1);
}

#[tokio::test]
async fn a_thread_given_to_the_responsible_agent_reaches_only_that_agent() {
    let w = world().await;
    let bob = w.agent("Bob", "all", 0).await;
    let cat = w.agent("Cat", "all", 0).await;
    let (b, c) = (
        Device::new(&w.service, "bob"),
        Device::new(&w.service, "cat"),
    );
    w.subscribe(&bob.token, &b).await;
    w.subscribe(&cat.token, &c).await;
    w.server
        .patch(
            &format!("/api/v1/chat-spaces/{}", w.space.id),
            &w.owner.token,
            json!({ "settings": { "defaultAssignee": bob.id } }),
        )
        .await
        .ok();

    let (_, thread) = w.visitor_writes("Need a hand").await;
    let got = w.service.wait_for("bob", 1).await;
    let payload = b.open(&got[0], &w.key);
    assert_eq!(payload["title"], "New message: Visitor #1");
    assert_eq!(payload["body"], "Need a hand");
    assert_eq!(payload["url"], format!("/app/#/inbox/mine/{thread}"));
    // Nobody else may take it, so nobody else is told.
    w.settled(1, 0, 0).await;
    assert_eq!(w.service.of("cat").len(), 0);
}
