//! HTTP/2 over TLS: the server offers `h2` and `http/1.1` by ALPN and
//! speaks whichever the client picked. The agent app and the API answer
//! over HTTP/2; the widget's socket opens over HTTP/1.1 (`Upgrade`) and
//! over HTTP/2 (extended `CONNECT`, RFC 8441) on the same listener.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http2::SendRequest;
use hyper::{Method, Request, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::harness::tls::{TestCa, TlsServer, client_for, init_logging};
use crate::harness::{SITE, WAIT};
use crate::tls::manual_config;

const DOMAIN: &str = "h2.mychat.test";

/// A server with a certificate for [`DOMAIN`] from a test CA, and the CA.
async fn https_server() -> (TlsServer, CertificateDer<'static>) {
    init_logging();
    let ca = TestCa::new("http2 test root");
    let dir = Arc::new(crate::harness::scratch::temp_dir());
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (chain, private) = ca.issue(&[DOMAIN]);
    std::fs::write(&cert, chain).unwrap();
    std::fs::write(&key, private).unwrap();
    let config = manual_config(&dir.path().join("data"), &cert, &key);
    (TlsServer::start(dir, config).await, ca.root_der())
}

/// A TLS connection to `addr` offering `alpn`, verified against `root`.
async fn tls(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
    alpn: &[&[u8]],
) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(mychat::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(DOMAIN.to_owned()).unwrap();
    connector.connect(name, tcp).await.expect("TLS handshake")
}

/// The protocol the server chose by ALPN.
fn negotiated(stream: &TlsStream<TcpStream>) -> Option<String> {
    let chosen = stream.get_ref().1.alpn_protocol()?;
    Some(String::from_utf8_lossy(chosen).into_owned())
}

/// One HTTP/2 connection (ALPN `h2`, as a browser offers it).
struct H2 {
    send: SendRequest<Full<Bytes>>,
    authority: String,
}

/// An answer read whole.
struct Answer {
    status: StatusCode,
    version: Version,
    content_type: String,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

impl H2 {
    async fn open(server: &TlsServer, root: &CertificateDer<'static>) -> H2 {
        let stream = tls(server.https_addr(), root, &[b"h2", b"http/1.1"]).await;
        assert_eq!(negotiated(&stream).as_deref(), Some("h2"));
        let (send, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .expect("HTTP/2 handshake");
        tokio::spawn(connection);
        H2 {
            send,
            authority: format!("{DOMAIN}:{}", server.https_addr().port()),
        }
    }

    fn request(&self, method: Method, path: &str) -> hyper::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("https://{}{path}", self.authority))
            .version(Version::HTTP_2)
    }

    async fn send(&mut self, request: Request<Full<Bytes>>) -> Answer {
        let response = tokio::time::timeout(WAIT, self.send.send_request(request))
            .await
            .expect("an answer in time")
            .expect("an answer");
        let (parts, body) = response.into_parts();
        Answer {
            status: parts.status,
            version: parts.version,
            content_type: parts
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
            body: body.collect().await.expect("the body").to_bytes(),
        }
    }

    async fn get(&mut self, path: &str, token: Option<&str>) -> Answer {
        let mut request = self.request(Method::GET, path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        self.send(request.body(Full::default()).unwrap()).await
    }

    async fn post(&mut self, path: &str, token: Option<&str>, body: Value) -> Answer {
        let mut request = self
            .request(Method::POST, path)
            .header("content-type", "application/json")
            .header("origin", SITE);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = Full::new(Bytes::from(body.to_string()));
        self.send(request.body(body).unwrap()).await
    }
}

/// An owner registered over HTTP/2, a space that allows the test site,
/// and a visitor's session in it: (owner's token, widget key, session token).
async fn owner_space_and_visitor(h2: &mut H2) -> (String, String, String) {
    let registered = h2
        .post(
            "/api/v1/auth/register",
            None,
            json!({
                "organizationName": "Acme",
                "displayName": "Ann",
                "email": "ann@acme.test",
                "password": "correct horse battery",
            }),
        )
        .await;
    assert_eq!(registered.status, 201, "{:?}", registered.body);
    let token = registered.json()["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let space = h2
        .post(
            "/api/v1/chat-spaces",
            Some(&token),
            json!({ "name": "Site", "allowedDomains": ["site.test"] }),
        )
        .await;
    assert_eq!(space.status, 201, "{:?}", space.body);
    let key = space.json()["widgetKey"].as_str().unwrap().to_owned();
    let session = h2
        .post("/api/v1/widget/session", None, json!({ "key": key }))
        .await;
    assert_eq!(session.status, 201, "{:?}", session.body);
    let visitor = session.json()["sessionToken"].as_str().unwrap().to_owned();
    (token, key, visitor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_is_negotiated_and_serves_the_agent_app_and_the_api() {
    let (server, root) = https_server().await;
    let mut h2 = H2::open(&server, &root).await;

    let app = h2.get("/app/", None).await;
    assert_eq!(app.status, 200);
    assert_eq!(app.version, Version::HTTP_2);
    assert!(
        app.content_type.starts_with("text/html"),
        "{}",
        app.content_type
    );
    assert!(String::from_utf8_lossy(&app.body).contains("<html"));

    // The API, on the same connection: a write, an authorized read, and a
    // refusal in the usual envelope.
    let (token, _, _) = owner_space_and_visitor(&mut h2).await;
    let spaces = h2.get("/api/v1/chat-spaces", Some(&token)).await;
    assert_eq!(spaces.status, 200);
    assert_eq!(spaces.version, Version::HTTP_2);
    assert!(
        spaces.body.windows(4).any(|w| w == b"Site"),
        "{:?}",
        spaces.body
    );
    let refused = h2.get("/api/v1/chat-spaces", Some("not-a-token")).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.json()["error"]["code"], "unauthorized");

    // A client that offers only HTTP/1.1 still gets it.
    let old = tls(server.https_addr(), &root, &[b"http/1.1"]).await;
    assert_eq!(negotiated(&old).as_deref(), Some("http/1.1"));
    let client = client_for(&[DOMAIN], &root);
    let health = client
        .get(format!(
            "https://{DOMAIN}:{}/healthz",
            server.https_addr().port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.version(), reqwest::Version::HTTP_11);
}

/// Reads text frames until one of type `kind`.
async fn expect_frame<S>(ws: &mut WebSocketStream<S>, kind: &str) -> Value
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let next = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} frame in time"));
        match next {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                if frame["type"] == kind {
                    return frame;
                }
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a {kind} frame, got {other:?}"),
        }
    }
}

/// A visitor's message over `ws` is acknowledged after its commit.
async fn visitor_sends<S>(ws: &mut WebSocketStream<S>, id: &str, content: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = json!({ "type": "visitor:send_message", "clientMsgId": id, "content": content });
    ws.send(Message::text(frame.to_string())).await.unwrap();
    let ack = expect_frame(ws, "message:ack").await;
    assert_eq!(ack["clientMsgId"], id);
    assert_eq!(ack["message"]["content"], content);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_widget_socket_opens_over_tls_by_upgrade_and_by_extended_connect() {
    let (server, root) = https_server().await;
    let mut h2 = H2::open(&server, &root).await;
    let (_, key, visitor) = owner_space_and_visitor(&mut h2).await;
    let query = format!("/ws/widget?key={key}&token={visitor}");

    // HTTP/1.1: GET with Upgrade, on a connection that chose http/1.1.
    let stream = tls(server.https_addr(), &root, &[b"h2", b"http/1.1"]).await;
    assert_eq!(negotiated(&stream).as_deref(), Some("h2"));
    drop(stream);
    let stream = tls(server.https_addr(), &root, &[b"http/1.1"]).await;
    let mut request = format!("wss://{DOMAIN}:{}{query}", server.https_addr().port())
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", SITE.parse().unwrap());
    let (mut upgraded, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("the socket upgrades over HTTP/1.1");
    assert_eq!(response.status(), 101);
    expect_frame(&mut upgraded, "hello").await;
    visitor_sends(&mut upgraded, "over-h1", "Hello over HTTP/1.1").await;

    // HTTP/2: CONNECT with :protocol websocket, on the connection the API
    // calls above used (the server announced extended CONNECT in its
    // settings, which arrived before their answers).
    let mut connect = h2
        .request(Method::CONNECT, &query)
        .header("sec-websocket-version", "13")
        .header("origin", SITE)
        .body(Full::default())
        .unwrap();
    connect
        .extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let response = tokio::time::timeout(WAIT, h2.send.send_request(connect))
        .await
        .expect("an answer in time")
        .expect("the CONNECT is answered");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), Version::HTTP_2);
    let stream = hyper::upgrade::on(response)
        .await
        .expect("the stream is handed over");
    let mut over_h2 =
        WebSocketStream::from_raw_socket(TokioIo::new(stream), Role::Client, None).await;
    expect_frame(&mut over_h2, "hello").await;
    visitor_sends(&mut over_h2, "over-h2", "Hello over HTTP/2").await;
    over_h2
        .send(Message::text(json!({ "type": "ping" }).to_string()))
        .await
        .unwrap();
    expect_frame(&mut over_h2, "pong").await;

    // Both sockets are the same visitor's: each hears the other's message.
    visitor_sends(&mut over_h2, "again", "Both ways").await;
    loop {
        let echoed = expect_frame(&mut upgraded, "visitor:message").await;
        if echoed["message"]["content"] == "Both ways" {
            break;
        }
    }

    // A refused socket is refused over HTTP/2 as over HTTP/1.1: an HTTP
    // status, nothing opened.
    let mut wrong_site = h2
        .request(Method::CONNECT, &query)
        .header("sec-websocket-version", "13")
        .header("origin", "https://elsewhere.test")
        .body(Full::default())
        .unwrap();
    wrong_site
        .extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let refused = h2.send(wrong_site).await;
    assert_eq!(refused.status, 403);
    assert!(refused.json()["error"]["code"].is_string());
}
