//! A small WebSocket client for the real-time tests: connect with the
//! headers a browser would send, read JSON frames with a timeout, and tell
//! a refused upgrade (an HTTP status) from a close (a close code); and the
//! widget's and the agent app's sockets opened with it.

use std::fmt::Display;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Error as WsError;
pub use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{FROM_SITE, WAIT};

/// What the server said instead of upgrading.
#[derive(Debug)]
pub enum Refused {
    /// An HTTP answer other than 101, with its JSON body (Null if none).
    Status(u16, Value),
    /// Anything else (connection refused, a bad handshake).
    Other(String),
}

impl Refused {
    pub fn status(&self) -> u16 {
        match self {
            Refused::Status(s, _) => *s,
            Refused::Other(e) => panic!("expected an HTTP refusal, got {e}"),
        }
    }
}

/// One thing read from a socket.
#[derive(Debug)]
pub enum Frame {
    Json(Value),
    /// A text frame that is not JSON (the server never sends one).
    Text(String),
    /// A close frame: code and reason (None when the frame had no code).
    Close(Option<(u16, String)>),
    /// The stream ended or failed without a close frame.
    Gone(String),
}

impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Frame::Json(v) => write!(f, "the JSON frame {v}"),
            Frame::Text(t) => write!(f, "the text frame {t:?}"),
            Frame::Close(Some((code, reason))) => write!(f, "a close frame {code} {reason:?}"),
            Frame::Close(None) => write!(f, "a close frame without a code"),
            Frame::Gone(why) => write!(f, "no frame: {why}"),
        }
    }
}

pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The subprotocol the server picked, if any.
    pub protocol: Option<String>,
}

/// Opens `url` (ws://…) with extra request headers.
pub async fn connect(url: &str, headers: &[(&str, &str)]) -> Result<Ws, Refused> {
    let mut request = url
        .into_client_request()
        .map_err(|e| Refused::Other(e.to_string()))?;
    for (name, value) in headers {
        request.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request)).await {
        Err(_) => Err(Refused::Other("handshake timed out".into())),
        Ok(Ok((stream, response))) => Ok(Ws {
            stream,
            protocol: response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }),
        Ok(Err(WsError::Http(response))) => {
            let body = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err(Refused::Status(response.status().as_u16(), body))
        }
        Ok(Err(e)) => Err(Refused::Other(e.to_string())),
    }
}

/// The `type` of a JSON frame ("" when it has none).
pub fn kind(frame: &Value) -> &str {
    frame["type"].as_str().unwrap_or("")
}

impl Ws {
    pub async fn send(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Message::text(text.to_owned()))
            .await
            .expect("frame sent");
    }

    /// Sends without failing when the server has already gone.
    pub async fn try_send_text(&mut self, text: &str) -> bool {
        self.stream
            .send(Message::text(text.to_owned()))
            .await
            .is_ok()
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.stream
            .send(Message::binary(bytes))
            .await
            .expect("frame sent");
    }

    /// The next data or close frame; control frames are skipped.
    pub async fn next(&mut self) -> Frame {
        let read = async {
            loop {
                match self.stream.next().await {
                    None => return Frame::Gone("stream ended".into()),
                    Some(Err(e)) => return Frame::Gone(e.to_string()),
                    Some(Ok(Message::Text(t))) => {
                        return match serde_json::from_str(t.as_str()) {
                            Ok(v) => Frame::Json(v),
                            Err(_) => Frame::Text(t.as_str().to_owned()),
                        };
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return Frame::Close(
                            frame.map(|f| (u16::from(f.code), f.reason.as_str().to_owned())),
                        );
                    }
                    Some(Ok(Message::Binary(_))) => return Frame::Text("<binary>".into()),
                    Some(Ok(_)) => continue,
                }
            }
        };
        match tokio::time::timeout(WAIT, read).await {
            Ok(frame) => frame,
            Err(_) => panic!("no frame within {WAIT:?}"),
        }
    }

    /// The next raw message, control frames included (None: the stream ended).
    pub async fn raw(&mut self, within: Duration) -> Option<Message> {
        match tokio::time::timeout(within, self.stream.next()).await {
            Ok(Some(Ok(m))) => Some(m),
            Ok(_) => None,
            Err(_) => panic!("no message within {within:?}"),
        }
    }

    /// The next frame, which must be JSON.
    pub async fn json(&mut self) -> Value {
        match self.next().await {
            Frame::Json(v) => v,
            other => panic!("expected a JSON frame, got {other}"),
        }
    }

    /// The next frame, which must be of this type.
    pub async fn expect(&mut self, expected: &str) -> Value {
        let frame = self.json().await;
        assert_eq!(kind(&frame), expected, "unexpected frame {frame}");
        frame
    }

    /// Reads until a frame satisfies `pred`; returns it and the frames
    /// read before it.
    pub async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let frame = self.json().await;
            if pred(&frame) {
                return (frame, before);
            }
            before.push(frame);
        }
    }

    /// Reads until a frame of this type; returns it and the frames before it.
    pub async fn wait_for(&mut self, expected: &str) -> (Value, Vec<Value>) {
        self.until(|f| kind(f) == expected).await
    }

    /// Reads until the server closes; returns the close code and reason and
    /// the JSON frames before it.
    pub async fn closed(&mut self) -> (u16, String, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            match self.next().await {
                Frame::Json(v) => before.push(v),
                Frame::Close(Some((code, reason))) => {
                    // Reading on sends our answering close and sees the end.
                    let _ = tokio::time::timeout(WAIT, self.stream.next()).await;
                    return (code, reason, before);
                }
                other => panic!("expected a close frame, got {other} after {before:?}"),
            }
        }
    }

    /// Closes from the client side, politely.
    pub async fn close(mut self) {
        let _ = self
            .stream
            .close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            }))
            .await;
        // Drain until the server's answer, so the close completes.
        let _ = tokio::time::timeout(WAIT, async {
            while let Some(Ok(_)) = self.stream.next().await {}
        })
        .await;
    }

    /// Drops the TCP connection without a close handshake.
    pub fn abort(self) {
        drop(self);
    }
}

/// The widget socket's URL on `host` (`127.0.0.1:<port>`) for a widget key
/// and a visitor's session token.
pub fn widget_url(host: impl Display, key: &str, token: &str) -> String {
    let mut url = reqwest::Url::parse(&format!("ws://{host}/ws/widget")).unwrap();
    url.query_pairs_mut()
        .append_pair("key", key)
        .append_pair("token", token);
    url.to_string()
}

/// The agent socket's URL on `host`.
pub fn agent_url(host: impl Display) -> String {
    format!("ws://{host}/ws/agent")
}

/// A widget socket from the allowed site, and its `hello`.
pub async fn widget(host: impl Display, key: &str, token: &str) -> (Ws, Value) {
    let mut ws = connect(&widget_url(host, key, token), FROM_SITE)
        .await
        .expect("widget socket opens");
    let hello = ws.expect("hello").await;
    (ws, hello)
}

/// Opens an agent socket that authenticates through
/// `Sec-WebSocket-Protocol: bearer, <token>`, with more request headers.
pub async fn connect_agent(
    host: impl Display,
    token: &str,
    headers: &[(&str, &str)],
) -> Result<Ws, Refused> {
    let protocol = format!("bearer, {token}");
    let mut headers = headers.to_vec();
    headers.push(("sec-websocket-protocol", protocol.as_str()));
    connect(&agent_url(host), &headers).await
}
