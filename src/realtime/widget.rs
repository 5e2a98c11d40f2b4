//! `/ws/widget?key=&token=`: a visitor's socket.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use crate::auth::extract::{check_origin, visitor_from_token};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiQuery, ClientIp};
use crate::ids::MessageId;
use crate::messages::model::NewMessage;
use crate::messages::send;
use crate::realtime::hub::{Delivery, Topic};
use crate::realtime::protocol::{self, WidgetIn, frame};
use crate::realtime::{self as rt, FloodGuard, Liveness, dispatch, replay};
use crate::spaces::model::ChatSpace;
use crate::state::AppState;
use crate::store::Reader;
use crate::visitors::model::Visitor;
use crate::widget::service as widget;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WidgetQuery {
    key: String,
    token: String,
}

/// Everything is checked before the upgrade: a refused socket never opens.
pub async fn upgrade(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<WidgetQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> AppResult<Response> {
    if rt::closing(&state) {
        return Err(AppError::Unavailable(
            "restarting, reconnect shortly".into(),
        ));
    }
    state.limits.ws_connects_per_ip.check(&ip.to_string())?;
    let space = state
        .store
        .read()?
        .space_by_key(&q.key)?
        .ok_or(AppError::NotFound("chat space"))?;
    let origin = headers
        .get(axum::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    check_origin(&space, origin)?;
    let auth = visitor_from_token(&state, &q.token)?;
    if auth.space.id != space.id {
        return Err(AppError::Unauthorized("invalid visitor session".into()));
    }
    let ws = ws.map_err(|e| AppError::validation(e.body_text()))?;
    Ok(rt::configure(ws).on_upgrade(move |socket| run(state, socket, auth.visitor, space)))
}

struct WidgetSocket {
    state: AppState,
    visitor: Visitor,
    space: ChatSpace,
    /// Highest message id sent, so replays and live frames never repeat.
    last_sent: Option<MessageId>,
    /// Lowest id of the unbroken run of messages this socket has sent, up
    /// to `last_sent`: a resume skips that run instead of repeating it.
    sent_from: Option<MessageId>,
    last_typing: Option<Instant>,
}

async fn run(state: AppState, mut socket: WebSocket, visitor: Visitor, space: ChatSpace) {
    let mut conn = state.hub.connect();
    // Subscribed before anything is read, so nothing falls in the gap.
    conn.subscribe(Topic::Visitor(visitor.id));
    conn.subscribe(Topic::SpaceWidgets(space.id));
    let mut me = WidgetSocket {
        state: state.clone(),
        visitor,
        space,
        last_sent: None,
        sent_from: None,
        last_typing: None,
    };
    if !rt::send_text(&mut socket, &me.hello()).await {
        return;
    }
    me.presence(true, None, None);
    let mut flood = FloodGuard::new(state.config.limits.ws_frames_per_second);
    let mut alive = Liveness::default();
    let mut ping = tokio::time::interval(rt::PING_EVERY);
    ping.reset();
    loop {
        if let Some((code, reason)) = conn.close_requested() {
            rt::close(&mut socket, code, reason).await;
            break;
        }
        tokio::select! {
            delivery = conn.deliveries.recv() => {
                let Some(delivery) = delivery else { break };
                match delivery {
                    Delivery::Frame { text, message, .. } => {
                        if message.is_some_and(|m| me.last_sent.is_some_and(|l| m <= l)) {
                            continue;
                        }
                        if !rt::send_text(&mut socket, &text).await {
                            break;
                        }
                        if let Some(m) = message {
                            me.sent(m);
                        }
                    }
                    Delivery::Close(code, reason) => {
                        rt::close(&mut socket, code, reason).await;
                        break;
                    }
                }
            }
            _ = conn.wake.notified() => {}
            incoming = socket.recv() => {
                let text = match incoming {
                    None | Some(Ok(WsMessage::Close(_))) => break,
                    Some(Err(e)) => {
                        let (code, reason) = rt::close_for_error(&e);
                        rt::close(&mut socket, code, reason).await;
                        break;
                    }
                    Some(Ok(WsMessage::Text(t))) => t,
                    Some(Ok(WsMessage::Binary(_))) => {
                        alive.heard();
                        let _ = rt::send_text(&mut socket, &protocol::error("unsupported", "binary frames are not supported")).await;
                        continue;
                    }
                    Some(Ok(_)) => {
                        alive.heard();
                        continue;
                    }
                };
                alive.heard();
                match flood.check() {
                    Ok(()) => {}
                    Err(true) => {
                        let _ = rt::send_text(&mut socket, &protocol::error("rate_limited", "too many frames; slow down")).await;
                        continue;
                    }
                    Err(false) => {
                        rt::close(&mut socket, rt::CLOSE_POLICY, "too many frames").await;
                        break;
                    }
                }
                let replies = me.handle(text.as_str()).await;
                let mut ok = true;
                for reply in replies {
                    if !rt::send_text(&mut socket, &reply).await {
                        ok = false;
                        break;
                    }
                }
                if !ok {
                    break;
                }
            }
            _ = ping.tick() => {
                if alive.is_dead() {
                    break;
                }
                if socket.send(WsMessage::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
        if conn.take_lagged() {
            // Deliveries were dropped: start over from storage.
            conn.discard_queued();
            let mut frames = vec![frame("resync", json!({}))];
            frames.extend(me.replay(me.last_sent));
            let mut ok = true;
            for f in frames {
                ok &= rt::send_text(&mut socket, &f).await;
            }
            if !ok {
                break;
            }
        }
    }
    me.presence(false, None, None);
}

impl WidgetSocket {
    fn hello(&self) -> String {
        let read = self.state.store.read();
        let thread = read
            .as_ref()
            .ok()
            .and_then(|r| {
                widget::current_thread(r, self.visitor.id)
                    .ok()
                    .flatten()
                    .map(|t| (r, t))
            })
            .map(|(r, t)| dispatch::widget_thread(r, &t));
        frame(
            "hello",
            json!({
                "visitorId": self.visitor.id,
                "thread": thread,
                "agentsOnline": self.state.hub.any_agent_online(self.space.organization_id),
                "open": self.space.settings.is_open(Utc::now()),
            }),
        )
    }

    fn presence(&self, online: bool, url: Option<&str>, title: Option<&str>) {
        let text = frame(
            "visitor:presence",
            json!({ "visitorId": self.visitor.id, "online": online, "url": url, "title": title }),
        );
        self.state
            .hub
            .publish(Topic::Space(self.space.id), Delivery::frame(text));
    }

    /// Notes a message frame as sent.
    fn sent(&mut self, id: MessageId) {
        if self.sent_from.is_none_or(|f| id < f) {
            self.sent_from = Some(id);
        }
        if self.last_sent.is_none_or(|l| id > l) {
            self.last_sent = Some(id);
        }
    }

    /// Whether this socket already sent `id` (it lies in the unbroken run).
    fn already_sent(&self, id: MessageId) -> bool {
        self.sent_from.is_some_and(|f| id >= f) && self.last_sent.is_some_and(|l| id <= l)
    }

    /// Replays storage after `after`, skipping what this socket already
    /// sent, and updates what was sent. Everything after `after` has then
    /// been sent, so the run stays unbroken.
    fn replay(&mut self, after: Option<MessageId>) -> Vec<String> {
        let Ok(read) = self.state.store.read() else {
            return vec![protocol::error("unavailable", "try again")];
        };
        let result = replay::for_visitor(&read, self.visitor.id, after);
        let (out, replayed) = rt::replay_reply(result, |id| self.already_sent(id));
        for id in replayed {
            self.sent(id);
        }
        out
    }

    /// Handles one client frame; returns the frames to answer with.
    async fn handle(&mut self, text: &str) -> Vec<String> {
        let parsed: WidgetIn = match protocol::parse(text) {
            Ok(f) => f,
            Err((code, message)) => return vec![protocol::error(code, &message)],
        };
        match parsed {
            WidgetIn::Ping {} => vec![frame("pong", json!({}))],
            WidgetIn::Resume { after } => self.replay(after),
            WidgetIn::SendMessage {
                client_msg_id,
                content,
                attachment_ids,
                reply_to_id,
            } => {
                let result = self
                    .send(&client_msg_id, &content, attachment_ids, reply_to_id)
                    .await;
                match result {
                    Ok(message) => vec![frame(
                        "message:ack",
                        json!({ "clientMsgId": client_msg_id, "message": message }),
                    )],
                    Err(e) => vec![frame(
                        "error",
                        json!({ "code": e.code(), "message": e.public_message(), "clientMsgId": client_msg_id }),
                    )],
                }
            }
            WidgetIn::Typing { is_typing } => {
                self.typing(is_typing);
                Vec::new()
            }
            WidgetIn::Read { up_to } => {
                match widget::read(&self.state, self.visitor.id, up_to).await {
                    Ok(()) => Vec::new(),
                    Err(e) => vec![protocol::error(e.code(), &e.public_message())],
                }
            }
            WidgetIn::Page { url, title } => match self.page(url, title).await {
                Ok(()) => Vec::new(),
                Err(e) => vec![protocol::error(e.code(), &e.public_message())],
            },
        }
    }

    async fn send(
        &mut self,
        client_msg_id: &str,
        content: &str,
        attachments: Vec<crate::ids::AttachmentId>,
        reply_to: Option<MessageId>,
    ) -> AppResult<crate::messages::model::Message> {
        let new = NewMessage::parse(content, Some(client_msg_id), reply_to, false, attachments)?;
        let sent = send::from_visitor(&self.state, self.visitor.id, &self.space, new).await?;
        Ok(sent.message)
    }

    /// Typing is throttled to one "typing" a second; "stopped" always passes.
    fn typing(&mut self, is_typing: bool) {
        if is_typing
            && self
                .last_typing
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.last_typing = is_typing.then(Instant::now);
        let Ok(read) = self.state.store.read() else {
            return;
        };
        let Ok(Some(thread)) = crate::threads::rules::open_thread_of(&read, self.visitor.id) else {
            return;
        };
        let text = frame(
            "visitor:typing",
            json!({ "threadId": thread.id, "visitorId": self.visitor.id, "isTyping": is_typing }),
        );
        self.state
            .hub
            .publish(Topic::Space(self.space.id), Delivery::frame(text));
    }

    async fn page(&mut self, url: String, title: Option<String>) -> AppResult<()> {
        crate::validate::bounded("url", &url, 2000)?;
        if let Some(t) = &title {
            crate::validate::bounded("title", t, 300)?;
        }
        let id = self.visitor.id;
        let (u, t) = (url.clone(), title.clone());
        self.state
            .write(move |tx| {
                let Some(mut v) = tx.visitor(id)? else {
                    return Ok(());
                };
                v.metadata.current_url = Some(u.clone());
                v.metadata.current_title = t.clone();
                v.metadata.last_seen_at = Some(Utc::now());
                Ok(tx.put(&v)?)
            })
            .await?;
        self.presence(true, Some(&url), title.as_deref());
        Ok(())
    }
}
