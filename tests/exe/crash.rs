//! The real binary as a child process: kill -9 in the middle of a burst of
//! sends loses no acknowledged message and duplicates nothing; SIGTERM closes
//! open sockets with 1012 ("going away, reconnect") and exits 0.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::SITE;
use crate::harness::ws::{self, Ws, kind};
use serde_json::{Value, json};

/// How soon every sender notices the crash.
const NOTICE_WITHIN: Duration = Duration::from_secs(10);

/// The `mychat serve` child and what it printed.
struct Server {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(data: &Path, config: &Path) -> Server {
        Server::start_with(data, config, &[])
    }

    /// With more `MYCHAT_*` variables (e.g. the PostgreSQL store).
    fn start_with(data: &Path, config: &Path, env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mychat"))
            .envs(env.iter().copied())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .arg("--config")
            .arg(config)
            .env("MYCHAT_REGISTRATION", "open")
            .env("MYCHAT_DEMO", "false")
            .env("MYCHAT_LIMITS__VISITOR_MESSAGES_PER_MINUTE", "100000")
            .env("MYCHAT_LIMITS__WS_FRAMES_PER_SECOND", "10000")
            .env("MYCHAT_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mychat starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let stdout = child.stdout.take().unwrap();
        let out_log = log.clone();
        // Reads the banner, then keeps draining so the child never blocks.
        std::thread::spawn(move || {
            let mut url = None;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(u) = line.strip_prefix("My-Chat is running at ") {
                    url = Some(u.trim().to_owned());
                } else if line.is_empty()
                    && let Some(u) = url.take()
                {
                    let _ = tx.send(u);
                }
                out_log.lock().unwrap().push(line);
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let err_log = log.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            err_log.lock().unwrap().push(text);
        });
        let base = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no banner; output: {:?}", log.lock().unwrap()));
        assert!(base.starts_with("http://"), "{base}");
        Server { child, base, log }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `127.0.0.1:<port>`.
    fn host(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    fn kill_9(&mut self) {
        // std's kill is SIGKILL on Unix: no chance to flush or clean up.
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaped");
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    async fn exit_status(&mut self) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server did not exit; output: {:?}",
                self.log.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Dirs {
    _root: tempfile::TempDir,
    data: PathBuf,
    config: PathBuf,
}

fn dirs() -> Dirs {
    let root = crate::harness::scratch::temp_dir();
    let data = root.path().join("data");
    // An empty config file, so no /etc/mychat/config.toml of the machine counts.
    let config = root.path().join("config.toml");
    std::fs::write(&config, "").unwrap();
    Dirs {
        data,
        config,
        _root: root,
    }
}

/// What a running appliance was set up with.
#[derive(Clone)]
struct Setup {
    agent_token: String,
    widget_key: String,
    visitor_token: String,
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    body: Value,
) -> reqwest::Result<(u16, Value)> {
    let mut req = client.post(url).header("origin", SITE).json(&body);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    // A body cut short by a crash is an error, not an answer.
    let bytes = resp.bytes().await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

async fn setup(server: &Server, client: &reqwest::Client) -> Setup {
    let (status, body) = post(
        client,
        &server.url("/api/v1/auth/register"),
        None,
        json!({
            "organizationName": "Acme",
            "displayName": "Ann",
            "email": "ann@acme.test",
            "password": "correct horse battery",
        }),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let agent_token = body["accessToken"].as_str().unwrap().to_owned();
    let (status, space) = post(
        client,
        &server.url("/api/v1/chat-spaces"),
        Some(&agent_token),
        json!({ "name": "Site", "allowedDomains": ["site.test"] }),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{space}");
    let widget_key = space["widgetKey"].as_str().unwrap().to_owned();
    let (status, session) = post(
        client,
        &server.url("/api/v1/widget/session"),
        None,
        json!({ "key": widget_key }),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{session}");
    Setup {
        agent_token,
        widget_key,
        visitor_token: session["sessionToken"].as_str().unwrap().to_owned(),
    }
}

async fn open_widget(server: &Server, s: &Setup) -> Ws {
    ws::widget(server.host(), &s.widget_key, &s.visitor_token)
        .await
        .0
}

async fn open_agent(server: &Server, s: &Setup) -> Ws {
    let mut ws = ws::connect_agent(server.host(), &s.agent_token, &[])
        .await
        .expect("agent socket");
    ws.expect("ready").await;
    ws
}

/// An acknowledged message: its id and content.
#[derive(Clone, Debug, PartialEq)]
struct Acked {
    id: String,
    content: String,
}

#[derive(Default)]
struct Ledger {
    /// Every clientMsgId a sender tried, with its content.
    attempted: BTreeMap<String, String>,
    acked: HashMap<String, Acked>,
}

type Shared = Arc<Mutex<Ledger>>;

fn content_of(cmid: &str) -> String {
    format!("message {cmid}")
}

/// Sends numbered messages over a socket, keeping a window of frames in
/// flight, until the socket dies.
async fn ws_sender(mut ws: Ws, name: String, thread: Option<String>, ledger: Shared) {
    let frame_for = |i: usize| {
        let cmid = format!("{name}-{i}");
        let body = match &thread {
            Some(t) => json!({
                "type": "agent:send_message",
                "threadId": t,
                "clientMsgId": cmid,
                "content": content_of(&cmid),
            }),
            None => json!({
                "type": "visitor:send_message",
                "clientMsgId": cmid,
                "content": content_of(&cmid),
            }),
        };
        (cmid, body.to_string())
    };
    const WINDOW: usize = 8;
    let mut next = 0;
    let mut in_flight = 0;
    loop {
        while in_flight < WINDOW {
            let (cmid, text) = frame_for(next);
            ledger
                .lock()
                .unwrap()
                .attempted
                .insert(cmid.clone(), content_of(&cmid));
            if !ws.try_send_text(&text).await {
                return;
            }
            next += 1;
            in_flight += 1;
        }
        match ws.next().await {
            ws::Frame::Json(f) if kind(&f) == "message:ack" => {
                let cmid = f["clientMsgId"].as_str().unwrap().to_owned();
                let acked = Acked {
                    id: f["message"]["id"].as_str().unwrap().to_owned(),
                    content: f["message"]["content"].as_str().unwrap().to_owned(),
                };
                ledger.lock().unwrap().acked.insert(cmid, acked);
                in_flight -= 1;
            }
            ws::Frame::Json(f) if kind(&f) == "error" => {
                panic!("{name}: a send was refused: {f}")
            }
            ws::Frame::Json(_) => {}
            _ => return,
        }
    }
}

/// Sends numbered messages over REST, one after another, until the server dies.
async fn rest_sender(
    server_url: String,
    name: String,
    bearer: String,
    thread: Option<String>,
    ledger: Shared,
) {
    let client = reqwest::Client::new();
    for i in 0.. {
        let cmid = format!("{name}-{i}");
        let content = content_of(&cmid);
        ledger
            .lock()
            .unwrap()
            .attempted
            .insert(cmid.clone(), content.clone());
        let (url, body) = match &thread {
            Some(t) => (
                format!("{server_url}/api/v1/threads/{t}/messages"),
                json!({ "content": content, "clientMsgId": cmid }),
            ),
            None => (
                format!("{server_url}/api/v1/widget/messages"),
                json!({ "content": content, "clientMsgId": cmid }),
            ),
        };
        let Ok((status, body)) = post(&client, &url, Some(&bearer), body).await else {
            return;
        };
        assert!(
            status == 201 || status == 200,
            "{name}: a send was refused: {status} {body}"
        );
        let message = if thread.is_some() {
            &body
        } else {
            &body["message"]
        };
        let acked = Acked {
            id: message["id"].as_str().unwrap().to_owned(),
            content: message["content"].as_str().unwrap().to_owned(),
        };
        ledger.lock().unwrap().acked.insert(cmid, acked);
    }
}

/// Every message of a thread, oldest first, through the agent API,
/// without the history lines (a reply's claim is one).
async fn all_messages(
    client: &reqwest::Client,
    server: &Server,
    token: &str,
    thread: &str,
) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("/api/v1/threads/{thread}/messages?limit=200");
        if let Some(c) = &cursor {
            url.push_str(&format!("&before={c}"));
        }
        let resp = client
            .get(server.url(&url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        let mut items = body["items"].as_array().unwrap().clone();
        items.append(&mut out);
        out = items;
        match body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => {
                out.retain(|m| m.get("event").is_none());
                return out;
            }
        }
    }
}

/// Asserts every acknowledged message is stored exactly once with its id
/// and content, and no clientMsgId or content is stored twice. Returns the
/// stored messages by clientMsgId.
fn check_stored(stored: &[Value], acked: &HashMap<String, Acked>) -> HashMap<String, Acked> {
    let mut by_cmid: HashMap<String, Acked> = HashMap::new();
    let mut contents = HashSet::new();
    let mut ids = HashSet::new();
    for m in stored {
        let cmid = m["clientMsgId"].as_str().unwrap_or("").to_owned();
        let content = m["content"].as_str().unwrap().to_owned();
        let id = m["id"].as_str().unwrap().to_owned();
        assert!(ids.insert(id.clone()), "message {id} listed twice");
        assert!(
            contents.insert(content.clone()),
            "content stored twice: {content}"
        );
        assert_eq!(content, content_of(&cmid), "content of {cmid}");
        let previous = by_cmid.insert(cmid.clone(), Acked { id, content });
        assert!(previous.is_none(), "clientMsgId {cmid} stored twice");
    }
    for (cmid, ack) in acked {
        let stored = by_cmid
            .get(cmid)
            .unwrap_or_else(|| panic!("acknowledged {cmid} ({}) was lost", ack.id));
        assert_eq!(stored, ack, "{cmid} is stored as acknowledged");
    }
    // Server order: ids ascend.
    let order: Vec<&str> = stored.iter().map(|m| m["id"].as_str().unwrap()).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "messages are listed in id order");
    by_cmid
}

/// Kills the server with SIGKILL once `at_least` sends are acknowledged
/// (more being in flight), waits for every sender to notice, and returns
/// what was attempted and what was acknowledged.
async fn crash_mid_burst(
    server: &mut Server,
    senders: Vec<tokio::task::JoinHandle<()>>,
    ledger: &Shared,
    at_least: usize,
) -> (BTreeMap<String, String>, HashMap<String, Acked>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while ledger.lock().unwrap().acked.len() < at_least {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the burst is too slow"
        );
        for s in &senders {
            assert!(!s.is_finished(), "a sender stopped before the crash");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill_9();
    for sender in senders {
        tokio::time::timeout(NOTICE_WITHIN, sender)
            .await
            .expect("senders notice the crash")
            .expect("sender did not panic");
    }
    let l = ledger.lock().unwrap();
    (l.attempted.clone(), l.acked.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_burst_loses_no_acknowledged_message_and_duplicates_none() {
    kill_9_mid_burst(false).await;
}

/// Two nodes over one PostgreSQL database: node A is killed mid-burst;
/// node B, running all along, holds every message A acknowledged, and the
/// clients' retries through B store each unacknowledged one once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_a_node_mid_burst_loses_no_acknowledged_message_on_postgres() {
    kill_9_mid_burst(true).await;
}

async fn kill_9_mid_burst(cluster: bool) {
    let other_dirs = dirs();
    let dirs = dirs();
    let client = reqwest::Client::new();
    let url = if cluster {
        crate::harness::postgres::fresh_database().await
    } else {
        String::new()
    };
    let env = [
        ("MYCHAT_STORE__BACKEND", "postgres"),
        ("MYCHAT_STORE__URL", url.as_str()),
    ];
    let env: &[(&str, &str)] = if cluster { &env } else { &[] };
    let mut server = Server::start_with(&dirs.data, &dirs.config, env);
    let other = cluster.then(|| Server::start_with(&other_dirs.data, &other_dirs.config, env));
    let s = setup(&server, &client).await;

    // The thread, started by the visitor.
    let (status, first) = post(
        &client,
        &server.url("/api/v1/widget/messages"),
        Some(&s.visitor_token),
        json!({ "content": content_of("first"), "clientMsgId": "first" }),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{first}");
    let thread = first["thread"]["id"].as_str().unwrap().to_owned();

    let ledger: Shared = Arc::default();
    {
        let mut l = ledger.lock().unwrap();
        l.attempted.insert("first".into(), content_of("first"));
        l.acked.insert(
            "first".into(),
            Acked {
                id: first["message"]["id"].as_str().unwrap().to_owned(),
                content: content_of("first"),
            },
        );
    }
    let mut senders = Vec::new();
    for k in 0..3 {
        let ws = open_widget(&server, &s).await;
        senders.push(tokio::spawn(ws_sender(
            ws,
            format!("vws{k}"),
            None,
            ledger.clone(),
        )));
    }
    for k in 0..2 {
        let ws = open_agent(&server, &s).await;
        senders.push(tokio::spawn(ws_sender(
            ws,
            format!("aws{k}"),
            Some(thread.clone()),
            ledger.clone(),
        )));
    }
    for k in 0..2 {
        senders.push(tokio::spawn(rest_sender(
            server.base.clone(),
            format!("vrest{k}"),
            s.visitor_token.clone(),
            None,
            ledger.clone(),
        )));
    }
    senders.push(tokio::spawn(rest_sender(
        server.base.clone(),
        "arest".into(),
        s.agent_token.clone(),
        Some(thread.clone()),
        ledger.clone(),
    )));

    // Mid-burst: once plenty are acknowledged, with more in flight.
    let (attempted, acked) = crash_mid_burst(&mut server, senders, &ledger, 400).await;
    assert!(acked.len() >= 400);
    let unacked: Vec<&String> = attempted
        .keys()
        .filter(|c| !acked.contains_key(*c))
        .collect();
    assert!(!unacked.is_empty(), "the crash came with sends in flight");

    // Restart on the same data dir; or, in a cluster, the other node.
    let server = match other {
        Some(node_b) => node_b,
        None => Server::start(&dirs.data, &dirs.config),
    };
    let stored = all_messages(&client, &server, &s.agent_token, &thread).await;
    let by_cmid = check_stored(&stored, &acked);
    for cmid in by_cmid.keys() {
        assert!(attempted.contains_key(cmid), "{cmid} was never sent");
    }

    // The clients retry whatever was not acknowledged: each ends up once,
    // and what was already stored comes back as it was.
    let mut widget_ws = open_widget(&server, &s).await;
    let mut agent_ws = open_agent(&server, &s).await;
    let mut retried = acked.clone();
    for (i, cmid) in unacked.iter().enumerate() {
        let content = content_of(cmid);
        let is_agent = cmid.starts_with('a');
        let (id, got_content) = if i % 2 == 0 {
            let ws = if is_agent {
                &mut agent_ws
            } else {
                &mut widget_ws
            };
            let frame = if is_agent {
                json!({ "type": "agent:send_message", "threadId": thread, "clientMsgId": cmid, "content": content })
            } else {
                json!({ "type": "visitor:send_message", "clientMsgId": cmid, "content": content })
            };
            ws.send(frame).await;
            let (ack, _) = ws
                .until(|f| {
                    (kind(f) == "message:ack" || kind(f) == "error") && f["clientMsgId"] == **cmid
                })
                .await;
            assert_eq!(kind(&ack), "message:ack", "{ack}");
            (
                ack["message"]["id"].as_str().unwrap().to_owned(),
                ack["message"]["content"].as_str().unwrap().to_owned(),
            )
        } else if is_agent {
            let (status, body) = post(
                &client,
                &server.url(&format!("/api/v1/threads/{thread}/messages")),
                Some(&s.agent_token),
                json!({ "content": content, "clientMsgId": cmid }),
            )
            .await
            .unwrap();
            assert!(status == 200 || status == 201, "{body}");
            (
                body["id"].as_str().unwrap().to_owned(),
                body["content"].as_str().unwrap().to_owned(),
            )
        } else {
            let (status, body) = post(
                &client,
                &server.url("/api/v1/widget/messages"),
                Some(&s.visitor_token),
                json!({ "content": content, "clientMsgId": cmid }),
            )
            .await
            .unwrap();
            assert!(status == 200 || status == 201, "{body}");
            (
                body["message"]["id"].as_str().unwrap().to_owned(),
                body["message"]["content"].as_str().unwrap().to_owned(),
            )
        };
        if let Some(before) = by_cmid.get(*cmid) {
            assert_eq!(
                before.id, id,
                "a retry of a stored {cmid} returns the original"
            );
        }
        retried.insert(
            (*cmid).clone(),
            Acked {
                id,
                content: got_content,
            },
        );
    }
    let stored = all_messages(&client, &server, &s.agent_token, &thread).await;
    let by_cmid = check_stored(&stored, &retried);
    assert_eq!(
        by_cmid.len(),
        attempted.len(),
        "every attempted message once"
    );
}

/// Two nodes over one PostgreSQL database, an agent online on each: node
/// A is killed, so it never says its agent left. Once its presence rows
/// outlive their time to live, node B's agent and the widget on node B
/// hear that A's agent is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_node_takes_its_agents_offline_on_the_others() {
    let (dirs_a, dirs_b) = (dirs(), dirs());
    let client = reqwest::Client::new();
    let url = crate::harness::postgres::fresh_database().await;
    let env = [
        ("MYCHAT_STORE__BACKEND", "postgres"),
        ("MYCHAT_STORE__URL", url.as_str()),
        ("MYCHAT_STORE__PRESENCE_TTL_SECS", "2"),
    ];
    let mut a = Server::start_with(&dirs_a.data, &dirs_a.config, &env);
    let b = Server::start_with(&dirs_b.data, &dirs_b.config, &env);
    let s = setup(&a, &client).await;
    let (status, body) = post(
        &client,
        &b.url("/api/v1/agents"),
        Some(&s.agent_token),
        json!({
            "email": "bob@acme.test",
            "displayName": "Bob",
            "role": "agent",
            "password": "correct horse battery",
        }),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let bob_id = body["agent"]["id"].as_str().unwrap().to_owned();
    let (status, login) = post(
        &client,
        &b.url("/api/v1/auth/login"),
        None,
        json!({ "email": "bob@acme.test", "password": "correct horse battery" }),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{login}");
    let bob = Setup {
        agent_token: login["accessToken"].as_str().unwrap().to_owned(),
        ..s.clone()
    };

    // Ann on node A, Bob and a widget on node B; each hears the other.
    let _ann_ws = open_agent(&a, &s).await;
    let me: Value = client
        .get(a.url("/api/v1/auth/me"))
        .bearer_auth(&s.agent_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ann_id = me["agent"]["id"]
        .as_str()
        .expect("/auth/me has the id")
        .to_owned();
    let mut bob_ws = ws::connect_agent(b.host(), &bob.agent_token, &[])
        .await
        .expect("agent socket");
    let ready = bob_ws.expect("ready").await;
    if !ready["agentsOnline"].to_string().contains(&ann_id) {
        bob_ws
            .until(|f| kind(f) == "agents:presence" && f.to_string().contains(&ann_id))
            .await;
    }
    let mut widget_ws = open_widget(&b, &s).await;

    a.kill_9();

    // Bob is still there; Ann is not.
    let (gone, _) = bob_ws
        .until(|f| kind(f) == "agents:presence" && !f.to_string().contains(&ann_id))
        .await;
    assert!(gone.to_string().contains(&bob_id), "{gone}");
    // The widget on node B is told again that someone (Bob) is online.
    let (status, _) = widget_ws.wait_for("agents:status").await;
    assert_eq!(status["online"], true, "{status}");
}

#[tokio::test]
async fn sigterm_closes_sockets_with_1012_commits_and_exits_0() {
    let dirs = dirs();
    let client = reqwest::Client::new();
    let mut server = Server::start(&dirs.data, &dirs.config);
    let s = setup(&server, &client).await;
    let mut widget_ws = open_widget(&server, &s).await;
    let mut agent_ws = open_agent(&server, &s).await;

    // A few sends in flight as the signal arrives.
    for i in 0..20 {
        let cmid = format!("t-{i}");
        widget_ws
            .send(json!({ "type": "visitor:send_message", "clientMsgId": cmid, "content": content_of(&cmid) }))
            .await;
    }
    server.sigterm();
    let mut acked = HashMap::new();
    let (code, reason, frames) = widget_ws.closed().await;
    assert_eq!(code, 1012, "{reason}");
    for f in frames.iter().filter(|f| kind(f) == "message:ack") {
        acked.insert(
            f["clientMsgId"].as_str().unwrap().to_owned(),
            Acked {
                id: f["message"]["id"].as_str().unwrap().to_owned(),
                content: f["message"]["content"].as_str().unwrap().to_owned(),
            },
        );
    }
    let (code, _, _) = agent_ws.closed().await;
    assert_eq!(code, 1012);
    let status = server.exit_status().await;
    assert!(status.success(), "exit status {status:?}");
    // New connections are refused once it is gone.
    assert!(client.get(server.url("/healthz")).send().await.is_err());

    // Everything acknowledged before the close is there after a restart.
    let server = Server::start(&dirs.data, &dirs.config);
    assert!(
        !acked.is_empty(),
        "some sends were acknowledged before the close"
    );
    {
        let threads = client
            .get(server.url("/api/v1/threads?view=all"))
            .bearer_auth(&s.agent_token)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        let thread = threads["items"][0]["id"].as_str().unwrap().to_owned();
        let stored = all_messages(&client, &server, &s.agent_token, &thread).await;
        check_stored(&stored, &acked);
    }
}

/// An organization with a space, a management token, a signing key and an
/// object-bound thread with two members; returns what the members need.
struct Platform {
    management: String,
    member_tokens: Vec<String>,
    dialog: String,
    owner_token: String,
}

fn member_token(key_id: &str, secret: &str, sub: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(key_id.to_owned());
    jsonwebtoken::encode(
        &header,
        &json!({"sub": sub, "name": sub, "tenant": "acme", "scope1": ["a"], "scope2": ["b"], "iat": now, "exp": now + 3600}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn platform(server: &Server, client: &reqwest::Client) -> Platform {
    let s = setup(server, client).await;
    let (status, space) = post(
        client,
        &server.url("/api/v1/chat-spaces"),
        Some(&s.agent_token),
        json!({ "name": "Platform", "allowedDomains": ["site.test"] }),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{space}");
    let (_, token) = post(
        client,
        &server.url("/api/v1/api-tokens"),
        Some(&s.agent_token),
        json!({"name": "backend", "scopes": ["management"]}),
    )
    .await
    .unwrap();
    let management = token["token"].as_str().unwrap().to_owned();
    let (_, key) = post(
        client,
        &server.url("/api/v1/signing-keys"),
        Some(&s.agent_token),
        json!({"name": "main"}),
    )
    .await
    .unwrap();
    let (key_id, secret) = (
        key["id"].as_str().unwrap().to_owned(),
        key["secret"].as_str().unwrap().to_owned(),
    );
    let (status, thread) = post(
        client,
        &server.url("/api/v1/management/threads"),
        Some(&management),
        json!({"chatSpaceId": space["id"], "externalRef": {"type": "order", "id": "1"}, "participants": ["m0", "m1", "m2"]}),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{thread}");
    Platform {
        management,
        member_tokens: (0..3)
            .map(|i| member_token(&key_id, &secret, &format!("m{i}")))
            .collect(),
        dialog: thread["id"].as_str().unwrap().to_owned(),
        owner_token: s.agent_token,
    }
}

/// A member sends numbered messages over its socket, a window in flight,
/// until the socket dies; every ack goes in the ledger.
async fn member_ws_sender(mut ws: Ws, name: String, dialog: String, ledger: Shared) {
    let mut i = 0usize;
    let mut in_flight = 0usize;
    loop {
        while in_flight < 8 {
            let cmid = format!("{name}-{i}");
            ledger
                .lock()
                .unwrap()
                .attempted
                .insert(cmid.clone(), content_of(&cmid));
            let frame = json!({"type": "member:send_message", "dialogId": dialog, "clientMsgId": cmid, "content": content_of(&cmid)});
            if !ws.try_send_text(&frame.to_string()).await {
                return;
            }
            i += 1;
            in_flight += 1;
        }
        match ws.next().await {
            ws::Frame::Json(f) if kind(&f) == "message:ack" => {
                in_flight -= 1;
                let cmid = f["clientMsgId"].as_str().unwrap().to_owned();
                ledger.lock().unwrap().acked.insert(
                    cmid,
                    Acked {
                        id: f["message"]["id"].as_str().unwrap().to_owned(),
                        content: f["message"]["content"].as_str().unwrap().to_owned(),
                    },
                );
            }
            ws::Frame::Json(_) => {}
            _ => return,
        }
    }
}

/// Every message of a dialog, as a member reads it.
async fn dialog_messages(
    client: &reqwest::Client,
    server: &Server,
    token: &str,
    dialog: &str,
) -> Vec<Value> {
    let mut out = Vec::new();
    // From the very start: without a cursor a page is the newest messages.
    let mut after = uuid::Uuid::nil().to_string();
    loop {
        let url = server.url(&format!(
            "/api/v1/dialogs/{dialog}/messages?limit=200&after={after}"
        ));
        let page: Value = client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap().clone();
        if items.is_empty() {
            return out;
        }
        after = items.last().unwrap()["id"].as_str().unwrap().to_owned();
        out.extend(items);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_burst_of_member_messages_loses_no_acknowledged_one() {
    let dirs = dirs();
    let client = reqwest::Client::new();
    let mut server = Server::start(&dirs.data, &dirs.config);
    let p = platform(&server, &client).await;
    let ledger: Shared = Arc::default();
    let mut senders = Vec::new();
    for (k, token) in p.member_tokens.iter().enumerate() {
        let protocol = format!("bearer, {token}");
        let mut ws = ws::connect(
            &format!("ws://{}/ws/member", server.host()),
            &[
                ("origin", SITE),
                ("sec-websocket-protocol", protocol.as_str()),
            ],
        )
        .await
        .expect("member socket");
        ws.expect("ready").await;
        senders.push(tokio::spawn(member_ws_sender(
            ws,
            format!("m{k}"),
            p.dialog.clone(),
            ledger.clone(),
        )));
    }
    let (attempted, acked) = crash_mid_burst(&mut server, senders, &ledger, 300).await;
    let server = Server::start(&dirs.data, &dirs.config);
    let stored = dialog_messages(&client, &server, &p.member_tokens[0], &p.dialog).await;
    let by_cmid = check_stored(&stored, &acked);
    for cmid in by_cmid.keys() {
        assert!(attempted.contains_key(cmid), "{cmid} was never sent");
    }
    let _ = (&p.management, &p.owner_token);
}

/// A webhook endpoint that refuses (503) until told to accept; counts the
/// distinct deliveries it accepted.
#[derive(Clone, Default)]
struct Endpoint {
    accepting: Arc<std::sync::atomic::AtomicBool>,
    accepted: Arc<Mutex<HashSet<String>>>,
    arrived: Arc<tokio::sync::Notify>,
}

async fn endpoint() -> (Endpoint, String) {
    let e = Endpoint::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let state = e.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let state = state.clone();
            async move {
                if !state.accepting.load(std::sync::atomic::Ordering::SeqCst) {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                let id = headers["webhook-id"].to_str().unwrap().to_owned();
                state.accepted.lock().unwrap().insert(id);
                state.arrived.notify_waiters();
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (e, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_after_commit_still_delivers_every_webhook_after_restart() {
    let dirs = dirs();
    std::fs::write(&dirs.config, "[webhooks]\nallow_private_targets = true\n").unwrap();
    let client = reqwest::Client::new();
    let (receiver, url) = endpoint().await;
    let mut server = Server::start(&dirs.data, &dirs.config);
    let p = platform(&server, &client).await;
    let (status, hook) = post(
        &client,
        &server.url("/api/v1/webhooks"),
        Some(&p.owner_token),
        json!({"url": url, "events": ["message.new"]}),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{hook}");
    // Acknowledged messages whose deliveries cannot go out yet.
    let mut acked = Vec::new();
    for i in 0..20 {
        let (status, m) = post(
            &client,
            &server.url(&format!("/api/v1/management/threads/{}/messages", p.dialog)),
            Some(&p.management),
            json!({"content": format!("event {i}"), "clientMsgId": format!("e{i}")}),
        )
        .await
        .unwrap();
        assert_eq!(status, 201, "{m}");
        acked.push(m["id"].as_str().unwrap().to_owned());
    }
    server.kill_9();
    receiver
        .accepting
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let _server = Server::start(&dirs.data, &dirs.config);
    // Pending deliveries carry on after the restart (the first retry is
    // due 5 s after a refused attempt).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let arrived = receiver.arrived.notified();
        if receiver.accepted.lock().unwrap().len() >= acked.len() {
            break;
        }
        assert!(
            tokio::time::timeout_at(deadline, arrived).await.is_ok(),
            "only {} of {} deliveries arrived after the restart",
            receiver.accepted.lock().unwrap().len(),
            acked.len()
        );
    }
    assert_eq!(receiver.accepted.lock().unwrap().len(), acked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_after_commit_still_sends_every_mail_after_restart() {
    use crate::harness::smtp::SmtpSink;
    let dirs = dirs();
    // The relay is down at first: mails are committed, tried, and wait.
    let port = crate::harness::free_port();
    std::fs::write(
        &dirs.config,
        format!("[email]\nsmtp_url = \"smtp://127.0.0.1:{port}\"\nfrom = \"chat@acme.test\"\n"),
    )
    .unwrap();
    let client = reqwest::Client::new();
    let mut server = Server::start(&dirs.data, &dirs.config);
    let s = setup(&server, &client).await;
    for i in 0..5 {
        let (status, session) = post(
            &client,
            &server.url("/api/v1/widget/session"),
            None,
            json!({ "key": s.widget_key }),
        )
        .await
        .unwrap();
        assert_eq!(status, 201, "{session}");
        let token = session["sessionToken"].as_str().unwrap();
        let (status, body) = post(
            &client,
            &server.url("/api/v1/widget/offline"),
            Some(token),
            json!({ "name": format!("V{i}"), "email": format!("v{i}@example.com"), "content": format!("offline {i}") }),
        )
        .await
        .unwrap();
        assert_eq!(status, 201, "{body}");
    }
    server.kill_9();
    let sink = SmtpSink::start_on(port).await;
    let server = Server::start(&dirs.data, &dirs.config);
    // The first retry is due 5 s after a refused attempt.
    let mails = sink.wait_for(5).await;
    let mut seen: Vec<String> = mails
        .iter()
        .map(|m| {
            let at = m.text.find("offline ").expect("the message in the mail");
            m.text[at..at + 9].to_owned()
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        (0..5).map(|i| format!("offline {i}")).collect::<Vec<_>>()
    );
    // Every mail is marked sent, so none goes twice.
    let outbox = client
        .get(server.url("/api/v1/email/outbox"))
        .bearer_auth(&s.agent_token)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let items = outbox["items"].as_array().unwrap();
    assert_eq!(items.len(), 5, "{outbox}");
    crate::harness::eventually(crate::harness::WAIT, "every mail marked sent", || async {
        let outbox = client
            .get(server.url("/api/v1/email/outbox"))
            .bearer_auth(&s.agent_token)
            .send()
            .await
            .ok()?
            .json::<Value>()
            .await
            .ok()?;
        outbox["items"]
            .as_array()?
            .iter()
            .all(|m| m["status"] == "sent")
            .then_some(())
    })
    .await;
    assert_eq!(sink.mails().len(), 5);
}
