//! The real binary under a cgroup memory limit of 64 MiB: 5,000 idle
//! widget sockets (1,000 visitors with five each) plus traffic. The server
//! refuses new sockets (503) at its high-water mark, the limit less its
//! headroom (here half of it: the search indexer's writer and a password
//! hash must still fit), instead of being killed; `/metrics` shows the mark and the
//! refusals; once the sockets are gone it takes new ones again. The test
//! makes its own cgroup (v2, or v1's memory controller) and needs root.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt, stream};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::harness::eventually;
use crate::harness::tmpfs::privileged_missing;

const LIMIT: u64 = 64 * 1024 * 1024;
const VISITORS: usize = 1000;
const PER_VISITOR: usize = 5;

struct Cgroup {
    dir: PathBuf,
    v2: bool,
}

impl Cgroup {
    fn create(limit: u64) -> Option<Cgroup> {
        let name = format!("mychat-test-{}", uuid::Uuid::new_v4().simple());
        let made = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            let _ = std::fs::write("/sys/fs/cgroup/cgroup.subtree_control", "+memory");
            let dir = PathBuf::from("/sys/fs/cgroup").join(&name);
            std::fs::create_dir(&dir)
                .and_then(|()| std::fs::write(dir.join("memory.max"), limit.to_string()))
                .map(|()| {
                    let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                    Cgroup { dir, v2: true }
                })
        } else {
            let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
            let path = own
                .lines()
                .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_owned()))
                .unwrap_or_default();
            let dir = PathBuf::from(format!(
                "/sys/fs/cgroup/memory{}/{name}",
                path.trim_end_matches('/')
            ));
            std::fs::create_dir(&dir)
                .and_then(|()| std::fs::write(dir.join("memory.limit_in_bytes"), limit.to_string()))
                .map(|()| {
                    let _ =
                        std::fs::write(dir.join("memory.memsw.limit_in_bytes"), limit.to_string());
                    Cgroup { dir, v2: false }
                })
        };
        match made {
            Ok(cgroup) => Some(cgroup),
            Err(e) => {
                privileged_missing(&format!("creating a memory cgroup failed ({e})"));
                None
            }
        }
    }

    fn oom_kills(&self) -> u64 {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// `mychat serve` inside the cgroup (the shell moves itself in, then
/// becomes the server), with the limits a load from one address needs.
fn serve(cgroup: &Cgroup, data: &Path) -> (Server, String) {
    let script = r#"echo $$ > "$1" && { ulimit -n 20000 || true; } && exec "$2" serve --listen 127.0.0.1:0 --data-dir "$3""#;
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg(script)
        .arg("sh")
        .arg(cgroup.dir.join("cgroup.procs"))
        .arg(env!("CARGO_BIN_EXE_mychat"))
        .arg(data)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("MYCHAT_LOG", "warn")
        .env("MYCHAT_DEMO", "false")
        .env("MYCHAT_REGISTRATION", "open")
        .env("MYCHAT_LIMITS__WS_CONNECTS_PER_IP_PER_MINUTE", "1000000")
        .env("MYCHAT_LIMITS__SESSIONS_PER_IP_PER_MINUTE", "1000000")
        .env("MYCHAT_LIMITS__VISITOR_MESSAGES_PER_MINUTE", "1000000")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = sh.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("server printed its address").unwrap();
        if let Some(url) = line.strip_prefix("My-Chat is running at ") {
            break url.trim().trim_end_matches('/').to_owned();
        }
    };
    // Keep reading the banner so the pipe never fills.
    std::thread::spawn(move || for _ in lines {});
    (Server(child), base)
}

/// The server process, killed when the test ends (or fails).
struct Server(Child);

impl Server {
    fn alive(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// This process needs a descriptor per socket too.
fn raise_open_files() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let current = getrlimit(Resource::Nofile);
    let want = 20_000;
    if current.current.is_some_and(|c| c >= want) {
        return;
    }
    let hard = current.maximum.map_or(want, |m| m.max(want));
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(want),
            maximum: Some(hard),
        },
    );
}

type Socket = WebSocketStream<TcpStream>;

enum Upgrade {
    Open(Box<Socket>),
    Refused(u16),
}

async fn widget_socket(addr: &str, key: &str, token: &str) -> Upgrade {
    let url = format!("ws://{addr}/ws/widget?key={key}&token={token}");
    let stream = TcpStream::connect(addr).await.expect("connect");
    let config = WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0);
    match tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await {
        Ok((ws, _)) => Upgrade::Open(Box::new(ws)),
        Err(WsError::Http(response)) => Upgrade::Refused(response.status().as_u16()),
        Err(e) => panic!("the upgrade failed otherwise: {e}"),
    }
}

async fn post(client: &reqwest::Client, url: String, token: Option<&str>, body: Value) -> Value {
    let mut request = client.post(url).json(&body);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics")) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_sockets_under_a_64_mib_limit_are_refused_before_memory_runs_out() {
    let Some(cgroup) = Cgroup::create(LIMIT) else {
        return;
    };
    raise_open_files();
    let data = crate::harness::scratch::temp_dir();
    let (mut server, base) = serve(&cgroup, data.path());
    let addr = base.trim_start_matches("http://").to_owned();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let api = |path: &str| format!("{base}/api/v1{path}");

    let owner = post(
        &client,
        api("/auth/register"),
        None,
        json!({"organizationName": "Memory Co", "displayName": "Owner",
               "email": "owner@memory.test", "password": "memory password 1"}),
    )
    .await;
    let token = owner["accessToken"].as_str().unwrap().to_owned();
    let space = post(
        &client,
        api("/chat-spaces"),
        Some(&token),
        json!({"name": "Memory", "allowedDomains": []}),
    )
    .await;
    let key = space["widgetKey"].as_str().unwrap().to_owned();
    let sessions: Vec<String> = stream::iter(0..VISITORS)
        .map(|_| {
            let (client, url, key) = (client.clone(), api("/widget/session"), key.clone());
            async move {
                let s = post(&client, url, None, json!({"key": key})).await;
                s["sessionToken"].as_str().unwrap().to_owned()
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;

    // 5,000 upgrades, 64 at a time: each opens or is refused with 503.
    let upgrades: Vec<(usize, Upgrade)> = stream::iter(0..VISITORS * PER_VISITOR)
        .map(|i| {
            let (addr, key, token) = (addr.clone(), key.clone(), sessions[i % VISITORS].clone());
            async move { (i % VISITORS, widget_socket(&addr, &key, &token).await) }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut open: Vec<(usize, Box<Socket>)> = Vec::new();
    let mut refused = 0u64;
    for (visitor, upgrade) in upgrades {
        match upgrade {
            Upgrade::Open(ws) => open.push((visitor, ws)),
            Upgrade::Refused(503) => refused += 1,
            Upgrade::Refused(other) => panic!("refused with {other}, not 503"),
        }
    }
    eprintln!(
        "memory test: {} sockets open, {refused} refused",
        open.len()
    );

    // Traffic over the open sockets: 200 visitors send, each is answered.
    let mut seen = std::collections::HashSet::new();
    let mut sent = 0;
    for (visitor, ws) in open.iter_mut() {
        if sent == 200 || !seen.insert(*visitor) {
            continue;
        }
        sent += 1;
        let cmid = format!("m-{visitor}");
        let frame = json!({"type": "visitor:send_message", "clientMsgId": cmid, "content": "hello under pressure"});
        ws.send(Message::text(frame.to_string())).await.unwrap();
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), ws.next())
                .await
                .expect("an answer")
                .expect("a frame")
                .expect("a good frame");
            if let Message::Text(text) = frame {
                let v: Value = serde_json::from_str(&text).unwrap();
                if v["clientMsgId"] == cmid.as_str() {
                    assert_eq!(v["type"], "message:ack", "{v}");
                    break;
                }
            }
        }
    }

    // Alive, healthy, never killed; the metrics tell what happened.
    assert!(server.alive(), "the server died");
    assert_eq!(cgroup.oom_kills(), 0);
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(metric(&text, "mychat_memory_high_bytes"), LIMIT / 2);
    assert!(metric(&text, "mychat_memory_anon_bytes") < LIMIT);
    assert_eq!(
        metric(&text, "mychat_sockets_refused_total{reason=\"memory\"}"),
        refused
    );
    assert_eq!(metric(&text, "mychat_sockets"), open.len() as u64);
    assert!(
        refused > 0,
        "5,000 sockets fit under the mark: the limit no longer tests the refusal"
    );

    // Once the sockets are gone, new ones are taken again.
    drop(open);
    eventually(
        Duration::from_secs(60),
        "a new socket after the load",
        || {
            let (addr, key, token) = (addr.clone(), key.clone(), sessions[0].clone());
            async move {
                match widget_socket(&addr, &key, &token).await {
                    Upgrade::Open(_) => Some(()),
                    Upgrade::Refused(_) => None,
                }
            }
        },
    )
    .await;
    assert!(server.alive(), "the server died");
    assert_eq!(cgroup.oom_kills(), 0);
    drop(server);
}
