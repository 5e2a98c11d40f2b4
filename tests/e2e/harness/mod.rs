//! The one harness every integration test uses: a real server on port 0
//! with a temporary data dir, plus helpers that speak its API.
#![allow(dead_code)]

pub mod browser;
pub mod tls;
pub mod ws;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use mychat::{App, Config};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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
    pub fn ok(&self) -> &Value {
        assert!(
            self.status.is_success(),
            "expected success, got {} {}",
            self.status,
            self.body
        );
        &self.body
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
    pub email: String,
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
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let mut config = test_config(dir.path());
        adjust(&mut config);
        Self::launch(dir, config).await
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
    pub async fn restart(mut self) -> TestServer {
        self.stop().await;
        let dir = self.dir.clone();
        let mut config = self.config.clone();
        config.http.listen = "127.0.0.1:0".parse().unwrap();
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
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            body,
            headers,
        }
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
            email: email.to_owned(),
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
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Fixtures that go through the library's own use cases where the public
/// route for them belongs to another test file.
pub mod fixtures {
    use super::*;
    use mychat::accounts::model::Role;
    use mychat::accounts::service::{NewAgent, create_agent};
    use mychat::ids::OrgId;
    use mychat::messages::service::NewMessage;
    use mychat::spaces::model::ChatSpace;
    use mychat::threads::service::{Sent, visitor_send};
    use mychat::visitors::model::{Visitor, VisitorMetadata};

    pub async fn space(server: &TestServer, owner: &Owner) -> ChatSpace {
        let org: OrgId = owner.org_id.parse().unwrap();
        mychat::spaces::service::create(&server.app_state, org, "Site", vec!["site.test".into()])
            .await
            .expect("space created")
    }

    /// Adds an agent with a password and logs it in; returns (agent id, token).
    pub async fn agent(
        server: &TestServer,
        owner: &Owner,
        name: &str,
        role: Role,
    ) -> (String, String) {
        let org: OrgId = owner.org_id.parse().unwrap();
        let email = format!("{}@{}.test", name.to_lowercase(), owner.org_id);
        let new = NewAgent::parse(&email, name, role, Some("agent password 1")).unwrap();
        let agent = create_agent(&server.app_state, org, new).await.unwrap();
        let login = server.login(&email, "agent password 1").await;
        (
            agent.id.to_string(),
            login.ok()["accessToken"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn visitor(server: &TestServer, space: &ChatSpace) -> Visitor {
        let visitor = Visitor {
            id: mychat::ids::VisitorId::new(),
            chat_space_id: space.id,
            number: 1,
            display_name: None,
            email: None,
            phone: None,
            external_id: None,
            metadata: VisitorMetadata::default(),
            created_at: chrono::Utc::now(),
        };
        let v = visitor.clone();
        server
            .app_state
            .store
            .write(move |tx| tx.put(&v))
            .await
            .unwrap();
        visitor
    }

    pub async fn visitor_says(server: &TestServer, visitor: &Visitor, text: &str) -> Sent {
        let new = NewMessage::parse(
            text,
            Some(&uuid::Uuid::new_v4().to_string()),
            None,
            false,
            Vec::new(),
        )
        .unwrap();
        visitor_send(&server.app_state, visitor, new)
            .await
            .expect("visitor message")
    }
}

impl TestServer {
    /// Stops (when still running) and starts again on the same data dir and
    /// the same address, so a page that loaded the widget from this server
    /// finds it again.
    pub async fn restart_same_port(mut self) -> TestServer {
        self.stop().await;
        let dir = self.dir.clone();
        let mut config = self.config.clone();
        config.http.listen = self.addr;
        drop(self);
        Self::launch(dir, config).await
    }
}
