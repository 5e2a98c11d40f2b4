//! Real time: the hub, the protocol, and the widget and agent sockets.
//!
//! Every socket is one task that owns its WebSocket and its hub
//! [`hub::Connection`]: it reads client frames, writes queued deliveries,
//! pings, and on lag replays from storage. Nothing a socket does can block
//! another socket or the writer.

pub mod agent;
pub mod dispatch;
pub mod driver;
pub mod hub;
pub mod member;
pub mod presence;
pub mod protocol;
pub mod replay;
pub mod slots;
pub mod widget;

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::routing::{MethodFilter, on};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// How often an idle socket is pinged.
pub const PING_EVERY: Duration = Duration::from_secs(25);
/// A socket silent for this long is dead.
pub const DEAD_AFTER: Duration = Duration::from_secs(60);
/// Close codes.
pub const CLOSE_GOING_AWAY_RECONNECT: u16 = 1012;
pub const CLOSE_POLICY: u16 = 1008;
pub const CLOSE_TOO_BIG: u16 = 1009;
/// A session ended by revocation, an expired member token or a deleted
/// signing key: authenticate again, then `resume`.
pub const CLOSE_REVOKED: u16 = 4001;
pub const CLOSE_UNAUTHORIZED: u16 = 4401;

/// Each socket is a `GET` with `Upgrade: websocket` over HTTP/1.1, or an
/// extended `CONNECT` with `:protocol websocket` over HTTP/2 (RFC 8441):
/// a browser whose connection to the server negotiated h2 opens its
/// sockets on that connection, and the server announces it may.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ws/widget", on(SOCKET, widget::upgrade))
        .route("/ws/agent", on(SOCKET, agent::upgrade))
        .route("/ws/member", on(SOCKET, member::upgrade))
}

const SOCKET: MethodFilter = MethodFilter::GET.or(MethodFilter::CONNECT);

/// Bytes of a socket's read buffer, resident on every socket.
pub const READ_BUFFER: usize = 256;

/// Buffers sized for many mostly idle sockets: the library's defaults
/// reserve 128 KiB per connection. The read buffer is allocated and
/// zero-filled up front, so it is resident on every socket; client frames
/// are small (a ping, typing, a page view), and a larger one still
/// arrives whole: the buffer grows to the frame's length, read
/// [`READ_BUFFER`] bytes per system call (docs/BENCHMARKS.md, WebSockets).
pub fn configure(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(protocol::MAX_FRAME)
        .max_frame_size(protocol::MAX_FRAME)
}

/// Per-connection flood control: a burst, then a steady rate. Too many
/// refused frames close the socket.
pub struct FloodGuard {
    limiter: DefaultDirectRateLimiter,
    refused: u32,
}

impl FloodGuard {
    pub fn new(per_second: u32) -> FloodGuard {
        let rate = NonZeroU32::new(per_second.max(1)).expect("non-zero");
        let burst = NonZeroU32::new(per_second.max(1) * 2).expect("non-zero");
        FloodGuard {
            limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            refused: 0,
        }
    }

    /// Ok to handle the frame; Err(true) to refuse it; Err(false) to close.
    pub fn check(&mut self) -> Result<(), bool> {
        if self.limiter.check().is_ok() {
            return Ok(());
        }
        self.refused += 1;
        Err(self.refused < 100)
    }
}

/// Liveness of the peer.
pub struct Liveness {
    last_heard: Instant,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            last_heard: Instant::now(),
        }
    }
}

impl Liveness {
    pub fn heard(&mut self) {
        self.last_heard = Instant::now();
    }

    pub fn is_dead(&self) -> bool {
        self.last_heard.elapsed() > DEAD_AFTER
    }
}

pub async fn send_text(socket: &mut WebSocket, text: &str) -> bool {
    socket.send(WsMessage::Text(text.into())).await.is_ok()
}

/// How long a closing socket waits for the peer's answering close.
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Sends a close frame and completes the closing handshake: reads (and
/// drops) whatever the peer still sends until its own close, for at most
/// [`CLOSE_WAIT`]. Dropping a socket with unread input makes the kernel
/// reset the connection, and a reset throws away the close frame and
/// everything still queued for the peer (a flooding client would never
/// learn why it was cut off).
///
/// Boxed: a socket closes once, and an unboxed close (its timer
/// included) would sit in every idle socket's task for its whole life.
pub fn close<'a>(
    socket: &'a mut WebSocket,
    code: u16,
    reason: &'static str,
) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
    Box::pin(closing_handshake(socket, code, reason))
}

async fn closing_handshake(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let sent = socket
        .send(WsMessage::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
    if sent.is_err() {
        return;
    }
    let drain = async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, WsMessage::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_WAIT, drain).await;
}

/// The close a read error deserves: oversized frames get 1009.
pub fn close_for_error(error: &axum::Error) -> (u16, &'static str) {
    let text = error.to_string().to_lowercase();
    if text.contains("too long")
        || text.contains("too big")
        || text.contains("capacity")
        || text.contains("size")
    {
        (CLOSE_TOO_BIG, "frame too large")
    } else {
        (1002, "protocol error")
    }
}

/// Whether a hub-side shutdown is under way; new sockets are refused.
pub fn closing(state: &AppState) -> bool {
    state.hub.is_closing()
}

/// What every socket upgrade checks first: the appliance is not shutting
/// down (503), the address has connects left (429), and there is room
/// under `limits.max_sockets` (503). The socket holds the slot while it
/// lives ([`slots::Slot::hold`]).
pub fn admit(state: &AppState, ip: std::net::IpAddr) -> AppResult<slots::Slot> {
    if closing(state) {
        return Err(AppError::Unavailable(
            "restarting, reconnect shortly".into(),
        ));
    }
    state.limits.ws_connects_per_ip.check_ip(ip)?;
    state.sockets.acquire()
}

/// The answer to a replay: the frames not already sent, then `resumed`;
/// `resync` when there were too many. Returns the ids it replayed, which
/// the socket then counts as sent.
pub fn replay_reply(
    result: crate::store::Result<Option<Vec<(crate::ids::MessageId, String)>>>,
    already_sent: impl Fn(crate::ids::MessageId) -> bool,
) -> (Vec<String>, Vec<crate::ids::MessageId>) {
    use serde_json::json;
    match result {
        Ok(Some(frames)) => {
            let mut out = Vec::with_capacity(frames.len() + 1);
            let mut replayed = Vec::new();
            for (id, text) in frames {
                if !already_sent(id) {
                    replayed.push(id);
                    out.push(text);
                }
            }
            out.push(protocol::frame(
                "resumed",
                json!({ "count": replayed.len() }),
            ));
            (out, replayed)
        }
        Ok(None) => (
            vec![protocol::frame(
                "resync",
                json!({ "reason": "too many missed messages" }),
            )],
            Vec::new(),
        ),
        Err(_) => (
            vec![protocol::error("unavailable", "try again")],
            Vec::new(),
        ),
    }
}
