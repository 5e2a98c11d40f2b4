//! The server under load: in-process, a `mychat serve` child, or one
//! already running at `--url`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::Args;
use tokio::net::TcpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use mychat::config::{LimitsConfig, Registration};
use mychat::{App, AppState, Config};

use super::Fallible;

/// Where the server runs.
#[derive(Args, Clone)]
pub(super) struct ServerArgs {
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
pub(super) struct Server {
    pub(super) addr: SocketAddr,
    /// `http://host:port`.
    pub(super) base: String,
    /// Whose memory and CPU to read; this process when in-process.
    pub(super) pid: Option<u32>,
    /// In-process only: the store's counters are in reach.
    pub(super) state: Option<AppState>,
    running: Running,
    _scratch: Option<Scratch>,
}

impl Server {
    pub(super) async fn start(args: &ServerArgs, separate: bool) -> Fallible<Server> {
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

    pub(super) fn where_(&self) -> &'static str {
        match self.running {
            Running::InProcess { .. } => "in-process",
            Running::Child(_) => "separate process",
            Running::Remote => "remote",
        }
    }

    /// The data dir of a server started here.
    pub(super) fn data_dir(&self) -> Option<PathBuf> {
        let scratch = &self._scratch.as_ref()?.0;
        Some(match self.running {
            Running::Child(_) => scratch.join("data"),
            _ => scratch.clone(),
        })
    }

    pub(super) fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    pub(super) async fn stop(self) {
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
