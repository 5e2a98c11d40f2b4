//! `/ws/widget?key=&token=`: a visitor's socket.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use crate::auth::extract::{check_origin, visitor_from_token};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiQuery, ClientIp};
use crate::ids::{MessageId, OrgId, SpaceId, VisitorId};
use crate::messages::send::{self, NewMessage};
use crate::realtime::driver::{self, SentLog, Session, Stored};
use crate::realtime::hub::Connection;
use crate::realtime::hub::{Delivery, Topic};
use crate::realtime::protocol::{self, WidgetIn, frame};
use crate::realtime::{self as rt, dispatch, replay};
use crate::spaces::model::ChatSpace;
use crate::state::AppState;
use crate::store::{ReadTx, Reader};
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
    let mut slot = rt::admit(&state, ip)?;
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
    slot.for_visitor(auth.visitor.id)?;
    let ws = ws.map_err(|e| AppError::validation(e.body_text()))?;
    let visitor = auth.visitor.id;
    // Boxed: the record is needed once, for `hello`, and whatever the
    // callback captures stays in the socket's task for its whole life.
    let space = Box::new(space);
    Ok(rt::configure(ws).on_upgrade(move |socket| slot.hold(run(state, socket, visitor, space))))
}

/// What a widget socket keeps while it lives: ids, not records. Thousands
/// of mostly idle sockets each holding a copy of their space and visitor
/// would cost more than the socket itself; a frame that needs the space
/// reads it as it is now, as the widget's REST side does.
struct WidgetSocket {
    state: AppState,
    visitor: VisitorId,
    space: SpaceId,
    organization: OrgId,
    log: SentLog,
    last_typing: Option<Instant>,
}

/// The socket's task. An `async` block rather than an `async fn`: an
/// `async fn` keeps each argument twice in its future (as the argument and
/// as the local it becomes), and the socket is the largest thing here.
#[allow(clippy::manual_async_fn)]
fn run(
    state: AppState,
    mut socket: WebSocket,
    visitor: VisitorId,
    space: Box<ChatSpace>,
) -> impl Future<Output = ()> + Send {
    async move {
        let mut conn = state.hub.connect();
        // Subscribed before anything is read, so nothing falls in the gap.
        conn.subscribe(Topic::Visitor(visitor));
        conn.subscribe(Topic::SpaceWidgets(space.id));
        let Some(mut me) = open(&state, &mut socket, visitor, space).await else {
            return;
        };
        me.presence(true, None, None);
        driver::drive(&mut socket, &mut conn, &mut me).await;
        me.presence(false, None, None);
    }
}

impl Session for WidgetSocket {
    const REPLAYS_FROM_START: bool = true;
    const KIND: &'static str = "widget";

    fn state(&self) -> &AppState {
        &self.state
    }

    fn log(&mut self) -> &mut SentLog {
        &mut self.log
    }

    fn stored_after(&self, read: &ReadTx, after: Option<MessageId>) -> Stored {
        replay::for_visitor(read, self.visitor, after)
    }

    async fn handle(&mut self, text: &str, _conn: &mut Connection) -> Vec<String> {
        self.answer(text).await
    }
}

/// Checks the space once more and greets: `Some` once `hello` went out.
/// The space's record is dropped here, before the socket settles down.
async fn open(
    state: &AppState,
    socket: &mut WebSocket,
    visitor: VisitorId,
    space: Box<ChatSpace>,
) -> Option<WidgetSocket> {
    // A deletion or key rotation committed before the subscription would
    // otherwise be missed.
    let current = state.store.read().and_then(|r| r.space(space.id));
    if !matches!(current, Ok(Some(s)) if s.widget_key == space.widget_key) {
        rt::close(socket, rt::CLOSE_REVOKED, "chat space closed").await;
        return None;
    }
    let me = WidgetSocket {
        state: state.clone(),
        visitor,
        space: space.id,
        organization: space.organization_id,
        log: SentLog::default(),
        last_typing: None,
    };
    let hello = me.hello(&space);
    drop(space);
    rt::send_text(socket, &hello).await.then_some(me)
}

impl WidgetSocket {
    fn hello(&self, space: &ChatSpace) -> String {
        let read = self.state.store.read();
        let thread = read
            .as_ref()
            .ok()
            .and_then(|r| {
                widget::current_thread(r, self.visitor)
                    .ok()
                    .flatten()
                    .map(|t| (r, t))
            })
            .map(|(r, t)| dispatch::widget_thread(r, &t));
        frame(
            "hello",
            json!({
                "visitorId": self.visitor,
                "thread": thread,
                "agentsOnline": self.state.hub.any_agent_online(self.organization),
                "open": space.settings.is_open(Utc::now()),
            }),
        )
    }

    fn presence(&self, online: bool, url: Option<&str>, title: Option<&str>) {
        let text = frame(
            "visitor:presence",
            json!({ "visitorId": self.visitor, "online": online, "url": url, "title": title }),
        );
        self.state
            .hub
            .publish(Topic::Space(self.space), Delivery::frame(text));
    }

    /// Handles one client frame; returns the frames to answer with.
    async fn answer(&mut self, text: &str) -> Vec<String> {
        let parsed: WidgetIn = match protocol::parse(text) {
            Ok(f) => f,
            Err((code, message)) => return vec![protocol::error(code, &message)],
        };
        match parsed {
            WidgetIn::Ping {} => vec![frame("pong", json!({}))],
            WidgetIn::Resume { after } => driver::replay(self, after),
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
                match widget::read(&self.state, self.visitor, up_to).await {
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
        let space = self
            .state
            .store
            .read()?
            .space(self.space)?
            .ok_or(AppError::NotFound("chat space"))?;
        let sent = send::from_visitor(&self.state, self.visitor, &space, new).await?;
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
        let Ok(Some(thread)) = crate::threads::rules::open_thread_of(&read, self.visitor) else {
            return;
        };
        let text = frame(
            "visitor:typing",
            json!({ "threadId": thread.id, "visitorId": self.visitor, "isTyping": is_typing }),
        );
        self.state.hub.publish(
            Topic::Space(self.space),
            Delivery::about(text, &std::sync::Arc::new(thread)),
        );
    }

    async fn page(&mut self, url: String, title: Option<String>) -> AppResult<()> {
        widget::record_page(&self.state, self.visitor, &url, title.as_deref()).await?;
        self.presence(true, Some(&url), title.as_deref());
        Ok(())
    }
}
