//! The one harness every test uses: a real server on port 0 with a
//! temporary data dir, helpers that speak its API (`fixtures`), its
//! sockets (`ws`), a real browser (`browser`) and HTTPS (`tls`), and the
//! one way to wait for something (`WAIT`, `eventually`).

pub mod browser;
pub mod fixtures;
pub mod postgres;
pub mod scratch;
pub mod smtp;
pub mod tls;
pub mod tmpfs;
pub mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mychat::{App, Config};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long anything a test expects may take (a frame, a page element, a
/// state): long enough for a slow CI machine; every wait ends as soon as
/// it can.
pub const WAIT: Duration = Duration::from_secs(30);

/// The site test spaces allow (`site.test` among their allowed domains),
/// as the `Origin` of the widget's calls.
pub const SITE: &str = "https://site.test";

/// The request headers of the widget's calls on the allowed site.
pub const FROM_SITE: &[(&str, &str)] = &[("origin", SITE)];

/// Polls `check` every 100 ms until it gives a value; fails after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A port free on 127.0.0.1 for TCP and UDP, at the time of asking.
///
/// Ports come from below the kernel's ephemeral range (where outgoing
/// connections of every test, and of anything else on the machine, take
/// theirs), each handed out once per test process, so a port chosen here
/// is still free when the server binds it a moment later.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const LOW: u16 = 20_000;
    const HIGH: u16 = 32_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        LOW + rand::random_range(0..HIGH - LOW),
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOW + n.wrapping_sub(LOW) % (HIGH - LOW);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
}

/// Sends a request; its body as text.
pub async fn text(request: reqwest::RequestBuilder) -> String {
    let resp = request.send().await.expect("request sent");
    resp.text().await.expect("a body")
}

/// The `field` of every item of a list page (`{"items": [...]}`).
/// A page's messages without the conversation's history lines (claimed,
/// closed, …: internal system messages with an `event`).
pub fn spoken(page: &Value) -> Vec<Value> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|m| m.get("event").is_none())
        .cloned()
        .collect()
}

pub fn pluck<'a>(page: &'a Value, field: &str) -> Vec<&'a str> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            item[field]
                .as_str()
                .unwrap_or_else(|| panic!("no {field} in {item}"))
        })
        .collect()
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub base: String,
    pub dir: Arc<tempfile::TempDir>,
    pub config: Config,
    pub client: reqwest::Client,
    pub app_state: mychat::AppState,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

/// A response: status and JSON body (Null when the body is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    /// Reads a whole response.
    pub async fn read(resp: reqwest::Response) -> Reply {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        }
    }

    pub fn ok(&self) -> &Value {
        assert!(
            self.status.is_success(),
            "expected success, got {} {}",
            self.status,
            self.body
        );
        &self.body
    }

    /// Asserts `201 Created`; the body.
    pub fn created(&self) -> &Value {
        assert_eq!(self.status, StatusCode::CREATED, "{}", self.body);
        &self.body
    }

    /// The seconds `Retry-After` asks for.
    pub fn retry_after(&self) -> u64 {
        self.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Asserts the status and the error envelope's shape.
    pub fn err(&self, status: u16) -> &str {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        self.body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error envelope in {}", self.body))
    }
}

/// A registered owner and their tokens.
#[derive(Clone, Debug)]
pub struct Owner {
    pub token: String,
    pub refresh: String,
    pub agent_id: String,
    pub org_id: String,
}

pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        demo: false,
        registration: mychat::config::Registration::Open,
        ..Config::default()
    };
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.limits.login_per_ip_per_minute = 1000;
    config.limits.login_per_account_per_minute = 1000;
    config.limits.sessions_per_ip_per_minute = 1000;
    config.limits.visitor_messages_per_minute = 10_000;
    config
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = Arc::new(scratch::temp_dir());
        let mut config = test_config(dir.path());
        if postgres::suite_on_postgres() {
            config.store.backend = mychat::config::StoreBackend::Postgres;
            config.store.url = postgres::fresh_database().await;
        }
        adjust(&mut config);
        Self::launch(dir, config).await
    }

    /// `nodes` servers over one new PostgreSQL database, each with its own
    /// data dir: a cluster behind an imagined load balancer.
    pub async fn cluster(nodes: usize, adjust: impl Fn(&mut Config)) -> Vec<TestServer> {
        let url = postgres::fresh_database().await;
        let mut servers = Vec::with_capacity(nodes);
        for _ in 0..nodes {
            let dir = Arc::new(scratch::temp_dir());
            let mut config = test_config(dir.path());
            config.store.backend = mychat::config::StoreBackend::Postgres;
            config.store.url = url.clone();
            adjust(&mut config);
            servers.push(Self::launch(dir, config).await);
        }
        servers
    }

    async fn launch(dir: Arc<tempfile::TempDir>, config: Config) -> TestServer {
        let listener = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .expect("bind");
        let addr = listener.local_addr().unwrap();
        let app = App::build(config.clone()).await.expect("app builds");
        let app_state = app.state().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(app.serve(listener, async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            base: format!("http://{addr}"),
            dir,
            config,
            client: reqwest::Client::new(),
            app_state,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    /// A server with one organization, Acme, and its owner ann@acme.test.
    pub async fn with_owner() -> (TestServer, Owner) {
        let server = TestServer::start().await;
        let owner = server.register("Acme", "ann@acme.test").await;
        (server, owner)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Stops the server gracefully and waits until it has let go of the data dir.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.expect("server task").expect("server ran");
        }
    }

    /// Stops and starts again on the same data dir (on a new port).
    pub async fn restart(self) -> TestServer {
        self.restart_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// Stops (when still running) and starts again on the same data dir and
    /// the same address, so a page that loaded the widget from this server
    /// finds it again.
    pub async fn restart_same_port(self) -> TestServer {
        let addr = self.addr;
        self.restart_on(addr).await
    }

    async fn restart_on(mut self, listen: SocketAddr) -> TestServer {
        self.stop().await;
        let dir = self.dir.clone();
        let mut config = self.config.clone();
        config.http.listen = listen;
        drop(self);
        Self::launch(dir, config).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.call_with(method, path, token, body, &[]).await
    }

    /// A call with extra request headers.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.client.request(method, self.url(path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Reply::read(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Registers a new organization; returns its owner.
    pub async fn register(&self, org: &str, email: &str) -> Owner {
        let r = self
            .call(
                Method::POST,
                "/api/v1/auth/register",
                None,
                Some(json!({
                    "organizationName": org,
                    "displayName": format!("{org} owner"),
                    "email": email,
                    "password": "correct horse battery",
                })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "register: {}", r.body);
        Owner {
            token: r.body["accessToken"].as_str().unwrap().to_owned(),
            refresh: r.body["refreshToken"].as_str().unwrap().to_owned(),
            agent_id: r.body["agent"]["id"].as_str().unwrap().to_owned(),
            org_id: r.body["organization"]["id"].as_str().unwrap().to_owned(),
        }
    }

    /// Logs in; returns the whole login body.
    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await
    }

    /// Stores a record as it is (a test's shortcut past the use cases).
    pub async fn put<R>(&self, record: &R)
    where
        R: mychat::store::Record + Clone + Send + 'static,
    {
        let record = record.clone();
        self.app_state
            .write(move |tx| Ok(tx.put(&record)?))
            .await
            .expect("record stored");
    }

    /// Waits until everything committed so far is in the search index
    /// (the indexer answers after its next index commit).
    pub async fn searchable(&self) {
        self.app_state.search.flush().await;
    }

    /// Every message of a thread as agents see it, oldest first.
    /// Every message of a thread, oldest first, without its history lines.
    pub async fn all_messages(&self, token: &str, thread: &str) -> Vec<Value> {
        let mut out: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/threads/{thread}/messages?limit=200&before={c}"),
                None => format!("/api/v1/threads/{thread}/messages?limit=200"),
            };
            let page = self.get(&path, token).await;
            let body = page.ok();
            let mut items = body["items"].as_array().expect("items").clone();
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
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // The test's runtime ends with the test, and with it the server's
        // tasks, before a graceful stop: its database connections end now.
        if self.config.store.backend == mychat::config::StoreBackend::Postgres {
            self.app_state.store.abandon();
        }
        // The data dir goes once the server has ended: a server still
        // writing into it would keep it from being removed whole. Its
        // task ends with the test's runtime; its search indexer may be
        // writing a last commit after that, so the removal is tried again
        // until it is whole. (What a test process leaves at its exit, the
        // next one removes: `scratch`.)
        if let Some(handle) = self.handle.take() {
            let mut dir = self.dir.clone();
            std::thread::spawn(move || {
                let _ = futures_executor::block_on(handle);
                for _ in 0..100 {
                    // Only the last holder removes it (a test may keep
                    // the dir, and this server's own field goes next).
                    match Arc::try_unwrap(dir) {
                        Ok(only) if std::fs::remove_dir_all(only.path()).is_ok() => return,
                        Ok(only) => dir = Arc::new(only),
                        Err(shared) => dir = shared,
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
        }
    }
}
