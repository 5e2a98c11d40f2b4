//! The socket side of `mychat-load`: idle widget sockets and what each
//! costs the server in memory (`idle`), visitor → agent delivery latency
//! at a paced rate with durable commits (`deliver`), and one space watched
//! by many agent sockets (`fanout`).
//!
//! The clients are tokio-tungstenite sockets with small buffers, so one
//! process can hold tens of thousands of them. Every measured message
//! carries its send time in its content (`t=<µs since start>;`), so the
//! socket that receives it works out the latency without a shared table.
//! Sends are open loop: each visitor sends on its own clock whether or not
//! earlier messages were answered, so a slow server shows up as latency,
//! not as a lower send rate.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Args;
use clap::builder::RangedU64ValueParser;
use futures_util::{SinkExt, StreamExt, stream};
use hdrhistogram::Histogram;
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use mychat::config::{LimitsConfig, Registration};
use mychat::store::StoreStats;
use mychat::{App, AppState, Config};

type Fallible<T> = Result<T, String>;
type Socket = WebSocketStream<TcpStream>;

// ---------------------------------------------------------------- arguments

/// Where the server runs.
#[derive(Args, Clone)]
pub struct ServerArgs {
    /// A running server (registration open, limits raised) instead of one
    /// started here.
    #[arg(long)]
    url: Option<String>,
    /// With --url: the server's process id, to read its memory and CPU.
    #[arg(long, requires = "url")]
    pid: Option<u32>,
    /// Run the server as a separate process (the `mychat` binary next to
    /// this one) instead of in-process. `idle` always does.
    #[arg(long, conflicts_with = "url")]
    separate: bool,
    /// The `mychat` binary for a separate server.
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Where the temporary data dir is created (default: the system temp
    /// dir). It is removed afterwards.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// In-process server only: set TCP_NODELAY on its listening socket, so
    /// accepted sockets inherit it (Linux). `App::serve` does not set it on
    /// plain-HTTP connections; this measures the difference.
    #[arg(long, conflicts_with_all = ["url", "separate"])]
    nodelay: bool,
}

#[derive(Args)]
pub struct IdleArgs {
    /// Widget sockets to open and hold.
    #[arg(long, default_value_t = 10_000, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    sockets: usize,
    /// Loopback source addresses 127.0.0.1..127.0.0.K the client sockets
    /// are spread over, each with its own ~28k ephemeral ports (default:
    /// one per 10,000 sockets, leaving room for ports still in TIME_WAIT
    /// from an earlier run).
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(1..=254))]
    source_ips: Option<usize>,
    /// Session requests and socket handshakes in flight at once.
    #[arg(long, default_value_t = 256, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    concurrency: usize,
    /// Seconds every socket is held open while the server's memory is
    /// sampled; past 25 s the server pings each socket once.
    #[arg(long, default_value_t = 30)]
    hold: u64,
    /// Give up opening sockets after this many failures.
    #[arg(long, default_value_t = 100)]
    max_failures: usize,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
pub struct DeliverArgs {
    /// Visitor messages per second, all visitors together.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// How long the paced sending lasts.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Visitor sockets sharing the rate.
    #[arg(long, default_value_t = 500, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    visitors: usize,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
pub struct FanoutArgs {
    /// Agent sockets joined to the one space (distinct agents).
    #[arg(long, default_value_t = 50, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    agents: usize,
    /// Visitor messages per second, all visitors together.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    #[arg(long, default_value_t = 100, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    visitors: usize,
    #[command(flatten)]
    server: ServerArgs,
}

// ---------------------------------------------------------------- the server

/// Limits are per IP, per visitor and per socket; all load comes from a
/// few addresses, so they are raised out of the way.
const MANY: u32 = 1_000_000;

/// `limits.*` keys raised for load, as `MYCHAT_LIMITS__*` variables for a
/// separate server.
const RAISED_LIMITS: [&str; 6] = [
    "LOGIN_PER_IP_PER_MINUTE",
    "LOGIN_PER_ACCOUNT_PER_MINUTE",
    "SESSIONS_PER_IP_PER_MINUTE",
    "VISITOR_MESSAGES_PER_MINUTE",
    "WS_CONNECTS_PER_IP_PER_MINUTE",
    "WS_FRAMES_PER_SECOND",
];

fn in_process_config(dir: &Path) -> Config {
    Config {
        data_dir: dir.to_path_buf(),
        demo: false,
        registration: Registration::Open,
        limits: LimitsConfig {
            login_per_ip_per_minute: MANY,
            login_per_account_per_minute: MANY,
            sessions_per_ip_per_minute: MANY,
            visitor_messages_per_minute: MANY,
            ws_connects_per_ip_per_minute: MANY,
            ws_frames_per_second: MANY,
            ..LimitsConfig::default()
        },
        ..Config::default()
    }
}

/// A data dir of its own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(parent: Option<&Path>) -> Fallible<Scratch> {
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let dir = parent.join(format!("mychat-load-ws-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

enum Running {
    InProcess {
        stop: oneshot::Sender<()>,
        task: JoinHandle<std::io::Result<()>>,
    },
    Child(tokio::process::Child),
    Remote,
}

/// The server under load, wherever it runs.
struct Server {
    addr: SocketAddr,
    /// `http://host:port`.
    base: String,
    /// Whose memory and CPU to read; this process when in-process.
    pid: Option<u32>,
    /// In-process only: the store's counters are in reach.
    state: Option<AppState>,
    running: Running,
    _scratch: Option<Scratch>,
}

impl Server {
    async fn start(args: &ServerArgs, separate: bool) -> Fallible<Server> {
        if let Some(url) = &args.url {
            return Server::remote(url, args.pid).await;
        }
        let scratch = Scratch::new(args.data_dir.as_deref())?;
        if separate || args.separate {
            Server::child(args, scratch).await
        } else {
            Server::in_process(scratch, args.nodelay).await
        }
    }

    async fn remote(url: &str, pid: Option<u32>) -> Fallible<Server> {
        let base = url.trim_end_matches('/').to_owned();
        let Some(host) = base.strip_prefix("http://") else {
            return Err(format!("--url {url}: only http:// servers"));
        };
        let addr = tokio::net::lookup_host(host)
            .await
            .map_err(|e| format!("{host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host}: no address"))?;
        Ok(Server {
            addr,
            base,
            pid,
            state: None,
            running: Running::Remote,
            _scratch: None,
        })
    }

    async fn in_process(scratch: Scratch, nodelay: bool) -> Fallible<Server> {
        let app = App::build(in_process_config(&scratch.0))
            .await
            .map_err(|e| format!("building the app: {e}"))?;
        let state = app.state().clone();
        let listener = {
            let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
            socket.set_nodelay(nodelay).map_err(|e| e.to_string())?;
            socket
                .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .map_err(|e| format!("bind: {e}"))?;
            socket.listen(1024).map_err(|e| format!("listen: {e}"))?
        };
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.serve(listener, async {
            let _ = stopped.await;
        }));
        Ok(Server {
            addr,
            base: format!("http://{addr}"),
            pid: Some(std::process::id()),
            state: Some(state),
            running: Running::InProcess { stop, task },
            _scratch: Some(scratch),
        })
    }

    /// `mychat serve` on a free loopback port, with an empty config file
    /// (so /etc/mychat is not read) and the limits raised through the
    /// environment. It inherits this process's open-file limit.
    async fn child(args: &ServerArgs, scratch: Scratch) -> Fallible<Server> {
        let bin = match &args.server_bin {
            Some(b) => b.clone(),
            None => std::env::current_exe()
                .map_err(|e| e.to_string())?
                .with_file_name("mychat"),
        };
        if !bin.exists() {
            return Err(format!(
                "{}: not found; build it (cargo build --release --bin mychat) or pass --server-bin",
                bin.display()
            ));
        }
        let addr = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            probe.local_addr().map_err(|e| e.to_string())?
        };
        let config = scratch.0.join("config.toml");
        std::fs::write(&config, "").map_err(|e| e.to_string())?;
        let data = scratch.0.join("data");
        let mut command = tokio::process::Command::new(&bin);
        command
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .arg("--listen")
            .arg(addr.to_string())
            .env("MYCHAT_REGISTRATION", "open")
            .env("MYCHAT_DEMO", "false")
            .env("MYCHAT_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        for key in RAISED_LIMITS {
            command.env(format!("MYCHAT_LIMITS__{key}"), MANY.to_string());
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let base = format!("http://{addr}");
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        let up = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("the server exited at start: {status}"));
            }
            let ok = client
                .get(format!("{base}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                break;
            }
            if up.elapsed() > Duration::from_secs(30) {
                return Err("the server did not answer /healthz within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Server {
            addr,
            base,
            pid: child.id(),
            state: None,
            running: Running::Child(child),
            _scratch: Some(scratch),
        })
    }

    fn where_(&self) -> &'static str {
        match self.running {
            Running::InProcess { .. } => "in-process",
            Running::Child(_) => "separate process",
            Running::Remote => "remote",
        }
    }

    fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    async fn stop(self) {
        match self.running {
            Running::InProcess { stop, task } => {
                let _ = stop.send(());
                let _ = task.await;
            }
            Running::Child(mut child) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
            Running::Remote => {}
        }
    }
}

// ---------------------------------------------------------------- REST setup

/// Setup over the API, as the widget and the agent app do it.
struct Rest {
    client: reqwest::Client,
    base: String,
}

/// What every run needs: an owner, a space and its widget key.
struct Space {
    owner_token: String,
    id: String,
    key: String,
}

const PASSWORD: &str = "load test password 1";

impl Rest {
    fn new(base: &str, connections: usize) -> Fallible<Rest> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(connections)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Rest {
            client,
            base: base.to_owned(),
        })
    }

    /// A POST that must answer `want`; waits out rate limits.
    async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: Value,
        want: u16,
    ) -> Fallible<Value> {
        for _ in 0..10 {
            let mut request = self
                .client
                .post(format!("{}/api/v1{path}", self.base))
                .json(&body);
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            let response = request.send().await.map_err(|e| format!("{path}: {e}"))?;
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            let text = response.text().await.map_err(|e| format!("{path}: {e}"))?;
            if status.as_u16() != want {
                return Err(format!("{path}: expected {want}, got {status}: {text}"));
            }
            return serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"));
        }
        Err(format!(
            "{path}: still rate limited; raise the server's limits"
        ))
    }

    async fn space(&self) -> Fallible<Space> {
        let email = format!("owner-{}@load.test", uuid::Uuid::new_v4().simple());
        let body = json!({
            "organizationName": "Load test",
            "displayName": "Load owner",
            "email": email,
            "password": PASSWORD,
        });
        let reply = self.post("/auth/register", None, body, 201).await?;
        let owner_token = field(&reply, "/accessToken")?;
        let body = json!({"name": "Load test", "allowedDomains": []});
        let space = self
            .post("/chat-spaces", Some(&owner_token), body, 201)
            .await?;
        Ok(Space {
            owner_token,
            id: field(&space, "/id")?,
            key: field(&space, "/widgetKey")?,
        })
    }

    /// `n` agents' access tokens: the owner's, then agents created with a
    /// password and logged in.
    async fn agent_tokens(&self, space: &Space, n: usize) -> Fallible<Vec<String>> {
        let mut tokens = vec![space.owner_token.clone()];
        for i in 1..n {
            let email = format!("agent-{i}-{}@load.test", uuid::Uuid::new_v4().simple());
            let body = json!({
                "email": email,
                "displayName": format!("Load agent {i}"),
                "role": "agent",
                "password": PASSWORD,
            });
            self.post("/agents", Some(&space.owner_token), body, 201)
                .await?;
            let body = json!({"email": email, "password": PASSWORD});
            let session = self.post("/auth/login", None, body, 200).await?;
            tokens.push(field(&session, "/accessToken")?);
        }
        Ok(tokens)
    }

    /// `n` new widget sessions, `concurrency` at a time (each a durable
    /// write; the store folds concurrent ones into shared commits).
    async fn sessions(&self, key: &str, n: usize, concurrency: usize) -> Fallible<Vec<String>> {
        let results: Vec<Fallible<String>> = stream::iter(0..n)
            .map(|_| async move {
                let reply = self
                    .post("/widget/session", None, json!({"key": key}), 201)
                    .await?;
                field(&reply, "/sessionToken")
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        results.into_iter().collect()
    }
}

fn field(value: &Value, pointer: &str) -> Fallible<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("no {pointer} in {value}"))
}

// ---------------------------------------------------------------- sockets

/// Small client buffers: the client holds as many sockets as the server.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1024 * 1024)
}

/// How long one connect and handshake may take.
const HANDSHAKE_WITHIN: Duration = Duration::from_secs(15);

/// A client socket from `source` (any port) to the server, upgraded.
async fn connect(
    server: SocketAddr,
    source: Option<Ipv4Addr>,
    url: &str,
    bearer: Option<&str>,
) -> Fallible<Socket> {
    let open = async {
        let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
        if let Some(ip) = source {
            socket
                .bind(SocketAddr::new(IpAddr::V4(ip), 0))
                .map_err(|e| format!("bind {ip}: {e}"))?;
        }
        let stream = socket
            .connect(server)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut request = url.into_client_request().map_err(|e| e.to_string())?;
        if let Some(token) = bearer {
            let value =
                HeaderValue::from_str(&format!("bearer, {token}")).map_err(|e| e.to_string())?;
            request
                .headers_mut()
                .insert("sec-websocket-protocol", value);
        }
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(client_config()))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
        Ok(ws)
    };
    tokio::time::timeout(HANDSHAKE_WITHIN, open)
        .await
        .map_err(|_| "connect and handshake timed out".to_owned())?
}

fn is_kind(text: &str, kind: &str) -> bool {
    text.contains(&format!("\"type\":\"{kind}\""))
}

/// Reads until a frame of `kind`; an `error` frame or a close fails.
async fn expect(ws: &mut Socket, kind: &str) -> Fallible<String> {
    let wait = async {
        while let Some(frame) = ws.next().await {
            match frame.map_err(|e| format!("waiting for {kind}: {e}"))? {
                Message::Text(text) if is_kind(&text, kind) => return Ok(text.to_string()),
                Message::Text(text) if is_kind(&text, "error") => {
                    return Err(format!("waiting for {kind}: {text}"));
                }
                Message::Close(close) => {
                    return Err(format!("waiting for {kind}: closed {close:?}"));
                }
                _ => {}
            }
        }
        Err(format!("waiting for {kind}: the socket ended"))
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .map_err(|_| format!("no {kind} within 30 s"))?
}

/// The open-file limit of this process (soft, hard), from /proc.
fn open_file_limit() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut numbers = line
        .split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok());
    Some((numbers.next()?, numbers.next()?))
}

// ---------------------------------------------------------------- /proc

#[derive(Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Memory {
    rss_kib: u64,
    anon_kib: u64,
}

/// A process's resident memory, from /proc/<pid>/status.
fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some(Memory {
        rss_kib: kib("VmRSS:")?,
        anon_kib: kib("RssAnon:").unwrap_or(0),
    })
}

/// Nanoseconds of CPU a process used, ended threads included (utime and
/// stime from /proc/<pid>/stat, in clock ticks of 10 ms: USER_HZ is 100
/// on Linux).
fn cpu_nanos(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: state is the
    // first, utime the 12th, stime the 13th.
    let mut fields = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) * 10_000_000)
}

/// The store's writer thread (it names itself so): nanoseconds on a CPU
/// and waiting for one. In-process servers only.
fn writer_sched() -> Option<(u64, u64)> {
    let mut found = None;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let Ok(task) = task else { continue };
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != "mychat-writer" {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        let mut fields = stat.split_whitespace().map(|f| f.parse::<u64>().ok());
        found = Some((fields.next()??, fields.next()??));
    }
    found
}

// ---------------------------------------------------------------- idle

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IdleReport {
    server: &'static str,
    requested: usize,
    opened: usize,
    failed: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
    source_ips: usize,
    open_file_limit: Option<(u64, u64)>,
    sessions_per_sec: f64,
    open_seconds: f64,
    /// Server memory with the sessions made and no socket open.
    before: Option<Memory>,
    /// With every socket open, right away and at the end of the hold.
    open: Option<Memory>,
    held: Option<Memory>,
    /// Highest resident memory seen while holding.
    held_max_kib: Option<u64>,
    /// (held − before) / opened.
    kib_per_socket: Option<f64>,
    anon_kib_per_socket: Option<f64>,
    /// What the second half of the sockets added, per socket (both sampled
    /// right after opening).
    second_half_kib_per_socket: Option<f64>,
    /// Sockets the server closed or lost while held.
    dropped: u64,
    hold_seconds: u64,
    /// Server memory a few seconds after every socket closed.
    after_close: Option<Memory>,
    client_kib_per_socket: Option<f64>,
}

pub async fn idle(args: &IdleArgs, json: bool) -> Fallible<()> {
    let limit = open_file_limit();
    if let Some((soft, hard)) = limit {
        let need = args.sockets as u64 + 200;
        if soft < need {
            eprintln!(
                "warning: open files limit {soft} (hard {hard}) < {need} for {} sockets; \
                 this process and the server each hold one descriptor per socket. \
                 Raise it first: ulimit -n {need} (above the hard limit needs root with CAP_SYS_RESOURCE)",
                args.sockets
            );
        }
    }
    let server = Server::start(&args.server, true).await?;
    let result = idle_run(args, &server, limit).await;
    server.stop().await;
    let report = result?;
    if json {
        println!("{}", serde_json::to_string(&report).expect("serializes"));
    } else {
        print_idle(&report);
    }
    Ok(())
}

async fn idle_run(
    args: &IdleArgs,
    server: &Server,
    open_file_limit: Option<(u64, u64)>,
) -> Fallible<IdleReport> {
    let pid = server.pid;
    let n = args.sockets;
    let source_ips = args.source_ips.unwrap_or(n.div_ceil(10_000)).max(1);
    let loopback = server.addr.ip().is_loopback();
    if source_ips > 1 && !loopback {
        return Err("--source-ips needs a loopback server".into());
    }
    let (space, tokens, sessions_per_sec) = {
        let rest = Rest::new(&server.base, args.concurrency)?;
        let space = rest.space().await?;
        eprintln!("creating {n} widget sessions...");
        let began = Instant::now();
        let tokens = rest.sessions(&space.key, n, args.concurrency).await?;
        let rate = n as f64 / began.elapsed().as_secs_f64();
        eprintln!("  {rate:.0} sessions/s");
        (space, tokens, rate)
        // The client and its pooled connections go here.
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = pid.and_then(memory);
    let client_before = memory(std::process::id());

    eprintln!("opening {n} widget sockets from {source_ips} source address(es)...");
    let url_of =
        |token: &str| server.ws_url(&format!("/ws/widget?key={}&token={token}", space.key));
    let (stop_tx, stop_rx) = watch::channel(false);
    let dropped = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let give_up = Arc::new(AtomicBool::new(false));
    let began = Instant::now();
    let mut holders = Vec::with_capacity(n);
    let mut first_error = None;
    let mut failed = 0;
    // In two halves, so the second half's cost is measured on its own: the
    // first sockets also reuse memory the allocator kept from setup.
    let mut half = None;
    for range in [0..n / 2, n / 2..n] {
        let attempts: Vec<Fallible<JoinHandle<()>>> = stream::iter(range.map(|i| (i, &tokens[i])))
            .map(|(i, token)| {
                let url = url_of(token);
                let source = loopback.then(|| Ipv4Addr::new(127, 0, 0, 1 + (i % source_ips) as u8));
                let (stop, dropped, failures, give_up) = (
                    stop_rx.clone(),
                    dropped.clone(),
                    failures.clone(),
                    give_up.clone(),
                );
                let max_failures = args.max_failures as u64;
                async move {
                    if give_up.load(Ordering::Relaxed) {
                        return Err(SKIPPED.to_owned());
                    }
                    let opened = async {
                        let mut ws = connect(server.addr, source, &url, None).await?;
                        expect(&mut ws, "hello").await?;
                        Ok(ws)
                    }
                    .await;
                    match opened {
                        Ok(ws) => Ok(tokio::spawn(hold(ws, stop, dropped))),
                        Err(e) => {
                            if failures.fetch_add(1, Ordering::Relaxed) + 1 >= max_failures {
                                give_up.store(true, Ordering::Relaxed);
                            }
                            Err(e)
                        }
                    }
                }
            })
            .buffer_unordered(args.concurrency)
            .collect()
            .await;
        for attempt in attempts {
            match attempt {
                Ok(h) => holders.push(h),
                Err(e) => {
                    failed += 1;
                    if first_error.is_none() || first_error.as_deref() == Some(SKIPPED) {
                        first_error = Some(e);
                    }
                }
            }
        }
        if half.is_none() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            half = Some((holders.len(), pid.and_then(memory)));
        }
    }
    let open_seconds = began.elapsed().as_secs_f64();
    let opened = holders.len();
    eprintln!("  {opened} open, {failed} failed in {open_seconds:.1} s");

    tokio::time::sleep(Duration::from_secs(1)).await;
    let open = pid.and_then(memory);
    let client_open = memory(std::process::id());
    let second_half_kib_per_socket = match (half, open) {
        (Some((at, Some(h))), Some(o)) if opened > at => {
            Some((o.rss_kib as f64 - h.rss_kib as f64) / (opened - at) as f64)
        }
        _ => None,
    };
    let mut held_max = open.map(|m| m.rss_kib);
    let mut held = open;
    eprintln!("holding for {} s...", args.hold);
    for _ in 0..args.hold {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(m) = pid.and_then(memory) {
            held_max = held_max.max(Some(m.rss_kib));
            held = Some(m);
        }
    }
    let dropped_now = dropped.load(Ordering::Relaxed);

    let _ = stop_tx.send(true);
    for h in holders {
        let _ = h.await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after_close = pid.and_then(memory);

    let per = |f: fn(&Memory) -> u64| match (before, held) {
        (Some(b), Some(h)) if opened > 0 => Some((f(&h) as f64 - f(&b) as f64) / opened as f64),
        _ => None,
    };
    let client_per = match (client_before, client_open) {
        (Some(b), Some(o)) if opened > 0 => {
            Some((o.rss_kib as f64 - b.rss_kib as f64) / opened as f64)
        }
        _ => None,
    };
    Ok(IdleReport {
        server: server.where_(),
        requested: n,
        opened,
        failed,
        first_error,
        source_ips,
        open_file_limit,
        sessions_per_sec,
        open_seconds,
        before,
        open,
        held,
        held_max_kib: held_max,
        kib_per_socket: per(|m| m.rss_kib),
        second_half_kib_per_socket,
        anon_kib_per_socket: per(|m| m.anon_kib),
        dropped: dropped_now,
        hold_seconds: args.hold,
        after_close,
        client_kib_per_socket: client_per,
    })
}

const SKIPPED: &str = "skipped after too many failures";

/// Keeps a socket open (reading answers the server's pings) until told
/// to stop; counts it when the server ends it first.
async fn hold(mut ws: Socket, mut stop: watch::Receiver<bool>, dropped: Arc<AtomicU64>) {
    loop {
        tokio::select! {
            _ = stop.changed() => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                return;
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Some(Ok(_)) => {}
            }
        }
    }
}

fn print_idle(r: &IdleReport) {
    let mib = |m: Option<Memory>| {
        m.map_or("–".to_owned(), |m| {
            format!("{:.1} MiB", m.rss_kib as f64 / 1024.0)
        })
    };
    println!(
        "idle ({}): {} of {} widget sockets open ({} failed) from {} source address(es) in {:.1} s",
        r.server, r.opened, r.requested, r.failed, r.source_ips, r.open_seconds
    );
    if let Some((soft, hard)) = r.open_file_limit {
        println!("  open files  limit {soft} (hard {hard})");
    }
    println!(
        "  sessions    {:.0}/s created over REST",
        r.sessions_per_sec
    );
    println!(
        "  server RSS  before {}  open {}  after {} s held {}  (max {})",
        mib(r.before),
        mib(r.open),
        r.hold_seconds,
        mib(r.held),
        r.held_max_kib.map_or("–".to_owned(), |k| format!(
            "{:.1} MiB",
            k as f64 / 1024.0
        ))
    );
    if let (Some(k), Some(a)) = (r.kib_per_socket, r.anon_kib_per_socket) {
        println!("  per socket  {k:.2} KiB RSS ({a:.2} KiB anonymous)");
    }
    if let Some(k) = r.second_half_kib_per_socket {
        println!("  2nd half    {k:.2} KiB RSS per socket");
    }
    println!("  dropped     {} while held", r.dropped);
    println!("  after close {}", mib(r.after_close));
    if let Some(c) = r.client_kib_per_socket {
        println!("  client      {c:.2} KiB RSS per socket");
    }
    if let Some(e) = &r.first_error {
        println!("  first error {e}");
    }
}

// ---------------------------------------------------------------- deliver and fanout

/// Where send stamps count from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_micros() -> u64 {
    epoch().elapsed().as_micros() as u64
}

const MESSAGE_ID: &str = "\"clientMsgId\":\"v";

/// A measured message's `v<visitor>-<seq>` client id as one number.
fn message_key(text: &str) -> Option<u64> {
    let at = text.find(MESSAGE_ID)? + MESSAGE_ID.len();
    let rest = &text[at..];
    let (visitor, rest) = rest.split_once('-')?;
    let seq = &rest[..rest.find('"')?];
    Some((visitor.parse::<u64>().ok()? << 32) | seq.parse::<u64>().ok()?)
}

const STAMP: &str = "\"content\":\"t=";

/// The send time a frame's message content carries.
fn stamp(text: &str) -> Option<u64> {
    let at = text.find(STAMP)? + STAMP.len();
    let rest = &text[at..];
    rest[..rest.find(';')?].parse().ok()
}

fn histogram() -> Histogram<u64> {
    // Microseconds, up to ten minutes, three significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

#[derive(Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Latency {
            p50: ms(0.50),
            p90: ms(0.90),
            p99: ms(0.99),
            p999: ms(0.999),
            max: h.max() as f64 / 1000.0,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TrafficReport {
    mode: &'static str,
    server: &'static str,
    agents: usize,
    visitors: usize,
    target_rate: f64,
    seconds: f64,
    sent: u64,
    acknowledged: u64,
    errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
    /// Messages sent per second over the paced part.
    send_rate: f64,
    /// `visitor:message` frames the agent sockets received, together.
    delivered: u64,
    /// acknowledged × agents.
    expected: u64,
    resyncs: u64,
    /// Deliveries per second, from the first send to the last delivery.
    deliveries_per_sec: f64,
    /// Send → agent socket receive, over every delivery.
    delivery_ms: Latency,
    /// Send → the last agent socket's receive, per message that reached
    /// every agent.
    all_agents_ms: Latency,
    /// Send → `message:ack` on the visitor's socket (durable commit).
    ack_ms: Latency,
    #[serde(skip_serializing_if = "Option::is_none")]
    store: Option<StoreDelta>,
    /// CPU cores busy on average: the server's, or with an in-process
    /// server the whole process's (server and clients).
    #[serde(skip_serializing_if = "Option::is_none")]
    server_cores: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_cores: Option<f64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StoreDelta {
    commits: u64,
    writes: u64,
    mean_batch: f64,
    /// Share of the wall time the writer spent in transactions (running
    /// the writes, committing, fsync).
    writer_busy: f64,
    /// Share of the wall time the writer thread ran on a CPU, and waited
    /// for one (a loaded machine).
    #[serde(skip_serializing_if = "Option::is_none")]
    writer_on_cpu: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    writer_run_queue: Option<f64>,
}

/// The store's counters and the writer's scheduling at one moment.
struct StoreMark {
    stats: StoreStats,
    sched: Option<(u64, u64)>,
}

impl StoreMark {
    fn take(state: &AppState) -> StoreMark {
        StoreMark {
            stats: state.store.stats(),
            sched: writer_sched(),
        }
    }
}

impl StoreDelta {
    fn between(before: &StoreMark, after: &StoreMark, wall: f64) -> StoreDelta {
        let (b, a) = (&before.stats, &after.stats);
        let commits = a.commits - b.commits;
        let writes = a.writes - b.writes;
        let sched = match (before.sched, after.sched) {
            (Some(b), Some(a)) => Some((
                a.0.saturating_sub(b.0) as f64 / 1e9 / wall,
                a.1.saturating_sub(b.1) as f64 / 1e9 / wall,
            )),
            _ => None,
        };
        StoreDelta {
            commits,
            writes,
            mean_batch: writes as f64 / commits.max(1) as f64,
            writer_busy: (a.commit_seconds - b.commit_seconds) / wall,
            writer_on_cpu: sched.map(|s| s.0),
            writer_run_queue: sched.map(|s| s.1),
        }
    }
}

pub async fn deliver(args: &DeliverArgs, json: bool) -> Fallible<()> {
    let shape = Shape {
        mode: "deliver",
        agents: 1,
        visitors: args.visitors,
        rate: args.rate,
        seconds: args.seconds,
    };
    traffic(&args.server, &shape, json).await
}

pub async fn fanout(args: &FanoutArgs, json: bool) -> Fallible<()> {
    let shape = Shape {
        mode: "fanout",
        agents: args.agents,
        visitors: args.visitors,
        rate: args.rate,
        seconds: args.seconds,
    };
    traffic(&args.server, &shape, json).await
}

struct Shape {
    mode: &'static str,
    agents: usize,
    visitors: usize,
    rate: f64,
    seconds: f64,
}

async fn traffic(args: &ServerArgs, shape: &Shape, json: bool) -> Fallible<()> {
    if !(shape.rate > 0.0 && shape.seconds > 0.0) {
        return Err("--rate and --seconds must be positive".into());
    }
    let server = Server::start(args, false).await?;
    let result = traffic_run(&server, shape).await;
    server.stop().await;
    let report = result?;
    if json {
        println!("{}", serde_json::to_string(&report).expect("serializes"));
    } else {
        print_traffic(&report);
    }
    Ok(())
}

/// What one agent socket saw.
struct AgentTally {
    latency: Histogram<u64>,
    resyncs: u64,
    /// (message, µs from send to here) of every delivery.
    seen: Vec<(u64, u64)>,
}

/// What one visitor socket saw.
struct VisitorTally {
    ack: Histogram<u64>,
    first_error: Option<String>,
}

/// Counters the drain watches.
#[derive(Default)]
struct Progress {
    sent: AtomicU64,
    acked: AtomicU64,
    errors: AtomicU64,
    delivered: AtomicU64,
    /// µs stamp of the latest delivery.
    last_delivery: AtomicU64,
}

async fn traffic_run(server: &Server, shape: &Shape) -> Fallible<TrafficReport> {
    let _ = epoch();
    let rest = Rest::new(&server.base, 64)?;
    let space = rest.space().await?;
    let tokens = rest.agent_tokens(&space, shape.agents).await?;
    let progress = Arc::new(Progress::default());
    let (stop_tx, stop_rx) = watch::channel(false);

    // Agents first, so nothing a visitor does is missed.
    let mut agents = Vec::with_capacity(shape.agents);
    for token in &tokens {
        let mut ws = connect(server.addr, None, &server.ws_url("/ws/agent"), Some(token)).await?;
        expect(&mut ws, "ready").await?;
        let join = json!({"type": "agent:join_space", "chatSpaceId": space.id}).to_string();
        ws.send(Message::text(join))
            .await
            .map_err(|e| e.to_string())?;
        expect(&mut ws, "joined").await?;
        agents.push(tokio::spawn(agent_reader(
            ws,
            stop_rx.clone(),
            progress.clone(),
        )));
    }

    // Visitors: a session each, a socket each, and a first message that
    // opens the visitor's thread (not measured).
    eprintln!(
        "{}: {} agent socket(s) joined; opening {} visitors...",
        shape.mode, shape.agents, shape.visitors
    );
    let sessions = rest.sessions(&space.key, shape.visitors, 64).await?;
    drop(rest);
    let opened: Vec<Fallible<Socket>> = stream::iter(sessions.iter().enumerate())
        .map(|(i, token)| {
            let url = server.ws_url(&format!("/ws/widget?key={}&token={token}", space.key));
            async move {
                let mut ws = connect(server.addr, None, &url, None).await?;
                expect(&mut ws, "hello").await?;
                let first = json!({
                    "type": "visitor:send_message",
                    "clientMsgId": format!("warm-{i}"),
                    "content": "Hello, I have a question about my order.",
                });
                ws.send(Message::text(first.to_string()))
                    .await
                    .map_err(|e| e.to_string())?;
                expect(&mut ws, "message:ack").await?;
                Ok(ws)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let visitors: Vec<Socket> = opened.into_iter().collect::<Fallible<_>>()?;
    // Let the warm-up deliveries reach the agents.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let stats_before = server.state.as_ref().map(StoreMark::take);
    let client_pid = std::process::id();
    let separate = server.pid.filter(|&p| p != client_pid);
    let cpu_before = (
        server.pid.and_then(cpu_nanos),
        separate.and(cpu_nanos(client_pid)),
    );

    let n = visitors.len();
    let period = Duration::from_secs_f64(n as f64 / shape.rate);
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let deadline = start + Duration::from_secs_f64(shape.seconds);
    let start_micros = now_micros() + 100_000;
    eprintln!(
        "{}: sending {:.0} messages/s for {} s ({:.1} per visitor per second)...",
        shape.mode,
        shape.rate,
        shape.seconds,
        shape.rate / n as f64
    );
    let mut writers = Vec::with_capacity(n);
    let mut readers = Vec::with_capacity(n);
    for (i, ws) in visitors.into_iter().enumerate() {
        let (sink, stream) = ws.split();
        // Visitors take turns across one period, so sends are even.
        let first = start + period.mul_f64(i as f64 / n as f64);
        writers.push(tokio::spawn(visitor_writer(
            sink,
            i,
            first,
            period,
            deadline,
            progress.clone(),
        )));
        readers.push(tokio::spawn(visitor_reader(
            stream,
            stop_rx.clone(),
            progress.clone(),
        )));
    }
    // The sending halves stay until the readers are done with the sockets.
    let mut sinks = Vec::with_capacity(n);
    for w in writers {
        sinks.push(w.await.map_err(|e| e.to_string())?);
    }
    let sent = progress.sent.load(Ordering::SeqCst);
    let send_seconds = start.elapsed().as_secs_f64();

    // Drain: every message answered and delivered to every agent, or give up.
    let drain_began = Instant::now();
    loop {
        let answered =
            progress.acked.load(Ordering::SeqCst) + progress.errors.load(Ordering::SeqCst);
        let acked = progress.acked.load(Ordering::SeqCst);
        let delivered = progress.delivered.load(Ordering::SeqCst);
        if answered >= sent && delivered >= acked * shape.agents as u64 {
            break;
        }
        if drain_began.elapsed() > Duration::from_secs(15) {
            eprintln!("drain: gave up after 15 s");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last = progress.last_delivery.load(Ordering::SeqCst);
    let window = last.saturating_sub(start_micros).max(1) as f64 / 1e6;
    let wall = start.elapsed().as_secs_f64();
    let store = match (&server.state, &stats_before) {
        (Some(state), Some(before)) => {
            Some(StoreDelta::between(before, &StoreMark::take(state), wall))
        }
        _ => None,
    };
    let cores = |before: Option<u64>, pid: Option<u32>| {
        let after = pid.and_then(cpu_nanos)?;
        Some(after.saturating_sub(before?) as f64 / 1e9 / wall)
    };
    let server_cores = cores(cpu_before.0, server.pid);
    let client_cores = cores(cpu_before.1, separate.map(|_| client_pid));

    let _ = stop_tx.send(true);
    let mut ack = histogram();
    let mut first_error = None;
    for r in readers {
        let t = r.await.map_err(|e| e.to_string())?;
        ack.add(&t.ack).expect("same bounds");
        if first_error.is_none() {
            first_error = t.first_error;
        }
    }
    let mut latency = histogram();
    let mut resyncs = 0;
    // Per message: how many agents got it, and when the last one did.
    let mut reach: std::collections::HashMap<u64, (usize, u64)> = Default::default();
    for a in agents {
        let t = a.await.map_err(|e| e.to_string())?;
        latency.add(&t.latency).expect("same bounds");
        resyncs += t.resyncs;
        for (id, took) in t.seen {
            let r = reach.entry(id).or_default();
            r.0 += 1;
            r.1 = r.1.max(took);
        }
    }
    let mut all_agents = histogram();
    for (count, slowest) in reach.into_values() {
        if count >= shape.agents {
            all_agents.saturating_record(slowest);
        }
    }
    drop(sinks);
    let acknowledged = progress.acked.load(Ordering::SeqCst);
    let delivered = progress.delivered.load(Ordering::SeqCst);
    Ok(TrafficReport {
        mode: shape.mode,
        server: server.where_(),
        agents: shape.agents,
        visitors: n,
        target_rate: shape.rate,
        seconds: shape.seconds,
        sent,
        acknowledged,
        errors: progress.errors.load(Ordering::SeqCst),
        first_error,
        send_rate: sent as f64 / send_seconds,
        delivered,
        expected: acknowledged * shape.agents as u64,
        resyncs,
        deliveries_per_sec: delivered as f64 / window,
        delivery_ms: Latency::of(&latency),
        all_agents_ms: Latency::of(&all_agents),
        ack_ms: Latency::of(&ack),
        store,
        server_cores,
        client_cores,
    })
}

type Sink = futures_util::stream::SplitSink<Socket, Message>;
type Source = futures_util::stream::SplitStream<Socket>;

/// Sends one stamped message per tick until the deadline.
async fn visitor_writer(
    mut sink: Sink,
    visitor: usize,
    first: tokio::time::Instant,
    period: Duration,
    deadline: tokio::time::Instant,
    progress: Arc<Progress>,
) -> Sink {
    let mut ticks = tokio::time::interval_at(first, period);
    // Late ticks are sent at once, so the aggregate rate holds.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut seq = 0u64;
    loop {
        if tokio::time::timeout_at(deadline, ticks.tick())
            .await
            .is_err()
        {
            break;
        }
        seq += 1;
        let frame = json!({
            "type": "visitor:send_message",
            "clientMsgId": format!("v{visitor}-{seq}"),
            "content": format!("t={}; visitor {visitor} asks question {seq}", now_micros()),
        });
        if sink.send(Message::text(frame.to_string())).await.is_err() {
            progress.errors.fetch_add(1, Ordering::SeqCst);
            break;
        }
        progress.sent.fetch_add(1, Ordering::SeqCst);
    }
    sink
}

/// Times each `message:ack` of a stamped message; counts errors.
async fn visitor_reader(
    mut stream: Source,
    mut stop: watch::Receiver<bool>,
    progress: Arc<Progress>,
) -> VisitorTally {
    let mut tally = VisitorTally {
        ack: histogram(),
        first_error: None,
    };
    loop {
        let frame = tokio::select! {
            _ = stop.changed() => return tally,
            frame = stream.next() => frame,
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                tally.first_error.get_or_insert_with(|| e.to_string());
                return tally;
            }
            None => return tally,
        };
        if is_kind(&text, "message:ack") {
            if let Some(sent) = stamp(&text) {
                tally
                    .ack
                    .saturating_record(now_micros().saturating_sub(sent));
                progress.acked.fetch_add(1, Ordering::SeqCst);
            }
        } else if is_kind(&text, "error") {
            progress.errors.fetch_add(1, Ordering::SeqCst);
            tally.first_error.get_or_insert_with(|| text.to_string());
        }
    }
}

/// Times each `visitor:message` of a stamped message.
async fn agent_reader(
    mut ws: Socket,
    mut stop: watch::Receiver<bool>,
    progress: Arc<Progress>,
) -> AgentTally {
    let mut tally = AgentTally {
        latency: histogram(),
        resyncs: 0,
        seen: Vec::new(),
    };
    loop {
        let frame = tokio::select! {
            _ = stop.changed() => return tally,
            frame = ws.next() => frame,
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return tally,
        };
        if is_kind(&text, "visitor:message") {
            if let Some(sent) = stamp(&text) {
                let now = now_micros();
                let took = now.saturating_sub(sent);
                tally.latency.saturating_record(took);
                if let Some(id) = message_key(&text) {
                    tally.seen.push((id, took));
                }
                progress.delivered.fetch_add(1, Ordering::SeqCst);
                progress.last_delivery.fetch_max(now, Ordering::SeqCst);
            }
        } else if is_kind(&text, "resync") {
            tally.resyncs += 1;
        }
    }
}

fn print_traffic(r: &TrafficReport) {
    println!(
        "{} ({}): {} agent socket(s), {} visitors, target {:.0} messages/s for {} s",
        r.mode, r.server, r.agents, r.visitors, r.target_rate, r.seconds
    );
    println!(
        "  sent        {} ({:.0}/s), {} acknowledged, {} errors",
        r.sent, r.send_rate, r.acknowledged, r.errors
    );
    println!(
        "  delivered   {} of {} to agents ({:.0} deliveries/s), {} resyncs",
        r.delivered, r.expected, r.deliveries_per_sec, r.resyncs
    );
    let l = &r.delivery_ms;
    println!(
        "  send→agent  p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2} ms",
        l.p50, l.p90, l.p99, l.p999, l.max
    );
    if r.agents > 1 {
        let l = &r.all_agents_ms;
        println!(
            "  →all agents p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2} ms",
            l.p50, l.p90, l.p99, l.p999, l.max
        );
    }
    let a = &r.ack_ms;
    println!(
        "  send→ack    p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2} ms",
        a.p50, a.p90, a.p99, a.p999, a.max
    );
    if let Some(s) = &r.store {
        println!(
            "  store       {} commits for {} writes, mean batch {:.1}, writer busy {:.0}%",
            s.commits,
            s.writes,
            s.mean_batch,
            s.writer_busy * 100.0
        );
        if let (Some(on), Some(queued)) = (s.writer_on_cpu, s.writer_run_queue) {
            println!(
                "  writer      on a CPU {:.0}%, waiting for a CPU {:.0}% of the time",
                on * 100.0,
                queued * 100.0
            );
        }
    }
    match (r.server_cores, r.client_cores) {
        (Some(s), Some(c)) => println!("  cpu         server {s:.2} cores, client {c:.2} cores"),
        (Some(s), None) => println!("  cpu         {s:.2} cores (server and clients, one process)"),
        _ => {}
    }
    if let Some(e) = &r.first_error {
        println!("  first error {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_read_back_from_frames() {
        let frame = r#"{"message":{"clientMsgId":"v1-2","content":"t=12345; visitor 1"},"type":"visitor:message"}"#;
        assert_eq!(stamp(frame), Some(12345));
        assert_eq!(message_key(frame), Some((1 << 32) | 2));
        assert!(is_kind(frame, "visitor:message"));
        assert_eq!(stamp(r#"{"message":{"content":"hello"}}"#), None);
    }
}
