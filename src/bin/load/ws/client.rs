//! The load's clients: setup over REST as the widget and the agent app do
//! it, and WebSocket clients with small buffers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::{StreamExt, stream};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::{Fallible, Socket};

/// Setup over the API, as the widget and the agent app do it.
pub(super) struct Rest {
    client: reqwest::Client,
    base: String,
}

/// What every run needs: an owner, a space and its widget key.
pub(super) struct Space {
    pub(super) owner_token: String,
    /// The owner's login (its password is `PASSWORD`), for a fresh token
    /// when a run outlasts the first one.
    pub(super) owner_email: String,
    pub(super) id: String,
    pub(super) key: String,
}

pub(super) const PASSWORD: &str = "load test password 1";

impl Rest {
    pub(super) fn new(base: &str, connections: usize) -> Fallible<Rest> {
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

    pub(super) async fn space(&self) -> Fallible<Space> {
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
            owner_email: email,
            id: field(&space, "/id")?,
            key: field(&space, "/widgetKey")?,
        })
    }

    /// `n` agents' access tokens: the owner's, then agents created with a
    /// password and logged in.
    pub(super) async fn agent_tokens(&self, space: &Space, n: usize) -> Fallible<Vec<String>> {
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
    pub(super) async fn sessions(
        &self,
        key: &str,
        n: usize,
        concurrency: usize,
    ) -> Fallible<Vec<String>> {
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
pub(super) async fn connect(
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

pub(super) fn is_kind(text: &str, kind: &str) -> bool {
    text.contains(&format!("\"type\":\"{kind}\""))
}

/// Reads until a frame of `kind`; an `error` frame or a close fails.
pub(super) async fn expect(ws: &mut Socket, kind: &str) -> Fallible<String> {
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
