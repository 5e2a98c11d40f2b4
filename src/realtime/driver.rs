//! The one socket loop. Every socket kind (widget, agent) is a [`Session`]
//! — its frame handling and where its missed messages come from — and
//! [`drive`] does the rest: select over the client's frames, the hub
//! queue, pings and close requests (shutdown, revocation); flood control;
//! dead-peer detection; and, when the queue overflowed, `resync` and a
//! replay from storage. Sent message ids are tracked once ([`SentLog`]),
//! so neither a replay nor a live frame is ever sent twice.

use std::future::Future;

use axum::extract::ws::{Message as WsMessage, WebSocket};
use serde_json::json;

use crate::ids::{MemberId, MessageId};
use crate::integrations::model::AccessScope;
use crate::realtime::hub::{Connection, Delivery};
use crate::realtime::protocol::{self, frame};
use crate::realtime::{self as rt, FloodGuard, Liveness};
use crate::state::AppState;
use crate::store::{self, ReadTx};

/// Which message frames a socket has sent.
#[derive(Debug, Default)]
pub struct SentLog {
    /// Highest message id sent, so replays and live frames never repeat.
    last_sent: Option<MessageId>,
    /// Lowest id of the unbroken run of messages this socket has sent, up
    /// to `last_sent`: a resume skips that run instead of repeating it.
    sent_from: Option<MessageId>,
}

impl SentLog {
    /// Notes a message frame as sent.
    pub fn sent(&mut self, id: MessageId) {
        if self.sent_from.is_none_or(|f| id < f) {
            self.sent_from = Some(id);
        }
        if self.last_sent.is_none_or(|l| id > l) {
            self.last_sent = Some(id);
        }
    }

    /// Whether this socket already sent `id` (it lies in the unbroken run).
    pub fn already_sent(&self, id: MessageId) -> bool {
        self.sent_from.is_some_and(|f| id >= f) && self.last_sent.is_some_and(|l| id <= l)
    }

    /// Whether a live frame of `id` is older than what was sent already.
    fn is_stale(&self, id: MessageId) -> bool {
        self.last_sent.is_some_and(|l| id <= l)
    }

    /// Earlier messages of a newly joined source were never sent here: the
    /// unbroken run starts again with the next one.
    pub fn break_run(&mut self) {
        self.sent_from = None;
    }

    pub fn last_sent(&self) -> Option<MessageId> {
        self.last_sent
    }
}

/// Missed message frames from storage: `Ok(None)` when there are too many
/// to replay (the client must resync).
pub type Stored = store::Result<Option<Vec<(MessageId, String)>>>;

/// What a socket kind plugs into the driver.
pub trait Session: Send {
    /// Whether a socket that has sent no message yet replays from the
    /// start of what it shows after a lag (a visitor's thread), rather
    /// than nothing (an agent's spaces).
    const REPLAYS_FROM_START: bool;

    /// The socket kind in `/metrics`: `widget`, `agent` or `member`.
    const KIND: &'static str;

    fn state(&self) -> &AppState;
    fn log(&mut self) -> &mut SentLog;

    /// The message frames this socket shows after `after`, from storage.
    fn stored_after(&self, read: &ReadTx, after: Option<MessageId>) -> Stored;

    /// Whether a frame meant for those who may join a thread with these
    /// access scopes is for this socket (member sockets only).
    fn admits(&self, _scopes: &[AccessScope], _except: &[MemberId]) -> bool {
        false
    }

    /// Answers one client text frame with the frames to send back.
    fn handle(
        &mut self,
        text: &str,
        conn: &mut Connection,
    ) -> impl Future<Output = Vec<String>> + Send;
}

/// Replays storage after `after`, skipping what the socket already sent,
/// and counts what it replays as sent: the frames, then `resumed` (or
/// `resync` when there were too many).
pub fn replay<S: Session>(session: &mut S, after: Option<MessageId>) -> Vec<String> {
    let result = match session.state().store.read() {
        Ok(read) => session.stored_after(&read, after),
        Err(e) => Err(e),
    };
    let log = session.log();
    let (out, replayed) = rt::replay_reply(result, |id| log.already_sent(id));
    for id in replayed {
        log.sent(id);
    }
    out
}

/// Runs a socket until either side ends it.
pub async fn drive<S: Session>(socket: &mut WebSocket, conn: &mut Connection, session: &mut S) {
    let state = session.state().clone();
    let _open = state.metrics.socket_opened(S::KIND);
    // Every text frame to the client goes through here, to be counted.
    let send_text = async |socket: &mut WebSocket, text: &str| {
        state.metrics.frame(S::KIND, "out");
        rt::send_text(socket, text).await
    };
    let mut flood = FloodGuard::new(session.state().config.limits.ws_frames_per_second);
    let mut alive = Liveness::default();
    let mut ping = tokio::time::interval(rt::PING_EVERY);
    ping.reset();
    loop {
        if let Some((code, reason)) = conn.close_requested() {
            rt::close(socket, code, reason).await;
            return;
        }
        tokio::select! {
            delivery = conn.next() => {
                // None: woken for a close or a lag, checked around this
                // select.
                if let Some(delivery) = delivery {
                    match delivery {
                        Delivery::Frame { text, message, .. } => {
                            if message.is_some_and(|m| session.log().is_stale(m)) {
                                continue;
                            }
                            if !send_text(socket, &text).await {
                                return;
                            }
                            if let Some(m) = message {
                                session.log().sent(m);
                            }
                        }
                        Delivery::Scoped { text, scopes, except } => {
                            if session.admits(&scopes, &except)
                                && !send_text(socket, &text).await
                            {
                                return;
                            }
                        }
                        Delivery::Close(code, reason) => {
                            rt::close(socket, code, reason).await;
                            return;
                        }
                    }
                }
            }
            incoming = socket.recv() => {
                let text = match incoming {
                    None | Some(Ok(WsMessage::Close(_))) => return,
                    Some(Err(e)) => {
                        let (code, reason) = rt::close_for_error(&e);
                        rt::close(socket, code, reason).await;
                        return;
                    }
                    Some(Ok(WsMessage::Text(t))) => t,
                    Some(Ok(WsMessage::Binary(_))) => {
                        alive.heard();
                        let _ = send_text(socket, &protocol::error("unsupported", "binary frames are not supported")).await;
                        continue;
                    }
                    Some(Ok(_)) => {
                        alive.heard();
                        continue;
                    }
                };
                alive.heard();
                state.metrics.frame(S::KIND, "in");
                match flood.check() {
                    Ok(()) => {}
                    Err(true) => {
                        let _ = send_text(socket, &protocol::error("rate_limited", "too many frames; slow down")).await;
                        continue;
                    }
                    Err(false) => {
                        rt::close(socket, rt::CLOSE_POLICY, "too many frames").await;
                        return;
                    }
                }
                // Boxed: the handling of a frame (a send and its durable
                // write) is large and rare; inline it would make every
                // idle socket's task as large as the busiest path.
                let replies = Box::pin(session.handle(text.as_str(), conn)).await;
                for reply in replies {
                    if !send_text(socket, &reply).await {
                        return;
                    }
                }
            }
            _ = ping.tick() => {
                if alive.is_dead() {
                    return;
                }
                if socket.send(WsMessage::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
        if conn.take_lagged() {
            // Deliveries were dropped: start over from storage.
            state.metrics.resync(S::KIND);
            conn.discard_queued();
            let mut frames = vec![frame("resync", json!({}))];
            let from = session.log().last_sent();
            if from.is_some() || S::REPLAYS_FROM_START {
                frames.extend(replay(session, from));
            }
            for f in frames {
                if !send_text(socket, &f).await {
                    return;
                }
            }
        }
    }
}
