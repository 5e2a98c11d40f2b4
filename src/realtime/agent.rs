//! `/ws/agent`: an agent's socket. The access token comes in
//! `Sec-WebSocket-Protocol: bearer, <token>` or in a first `auth` frame; it
//! is never logged.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde_json::json;

use crate::auth::Caller;
use crate::auth::extract::agent_and_expiry;
use crate::error::{AppError, AppResult};
use crate::extract::ClientIp;
use crate::ids::{MessageId, SpaceId, ThreadId};
use crate::messages::send::{self, NewMessage};
use crate::realtime::driver::{self, SentLog, Session, Stored};
use crate::realtime::hub::{Connection, Delivery, SharedAccess, Topic};
use crate::realtime::protocol::{self, AgentIn, frame};
use crate::realtime::{self as rt, presence, replay};
use crate::state::AppState;
use crate::store::{ReadTx, Reader};
use crate::threads::rules::visible_thread;
use crate::threads::service::{self as threads, ReadBy};

/// How long a socket may take to send its `auth` frame.
const AUTH_WITHIN: Duration = Duration::from_secs(10);

/// Only the appliance's own pages (or native apps, which send no Origin)
/// may open an agent socket.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin.split_once("://").is_some_and(|(_, rest)| {
        !host.is_empty() && rest.trim_end_matches('/').eq_ignore_ascii_case(host)
    })
}

/// The token from `Sec-WebSocket-Protocol: bearer, <token>`, if sent.
fn protocol_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::SEC_WEBSOCKET_PROTOCOL)?.to_str().ok()?;
    let mut parts = value.split(',').map(str::trim);
    (parts.next()? == "bearer").then_some(())?;
    parts.next().map(str::to_owned)
}

pub async fn upgrade(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> AppResult<Response> {
    let slot = rt::admit(&state, ip)?;
    if !same_origin(&headers) {
        return Err(AppError::Forbidden(
            "agent sockets are for this appliance's own pages".into(),
        ));
    }
    let token = protocol_token(&headers);
    let caller = match &token {
        Some(t) => Some(agent_and_expiry(&state, t)?),
        None => None,
    };
    let mut ws = ws.map_err(|e| AppError::validation(e.body_text()))?;
    if caller.is_some() {
        // The browser requires the server to pick one of the offered protocols.
        ws = ws.protocols(["bearer"]);
    }
    Ok(rt::configure(ws).on_upgrade(move |socket| slot.hold(run(state, socket, caller))))
}

async fn authenticate(state: &AppState, socket: &mut WebSocket) -> Option<(Caller, i64)> {
    let first = tokio::time::timeout(AUTH_WITHIN, socket.recv()).await;
    let Ok(Some(Ok(WsMessage::Text(text)))) = first else {
        rt::close(socket, rt::CLOSE_UNAUTHORIZED, "authenticate first").await;
        return None;
    };
    match protocol::parse::<AgentIn>(text.as_str()) {
        Ok(AgentIn::Auth { token }) => match agent_and_expiry(state, &token) {
            Ok(found) => Some(found),
            Err(_) => {
                rt::close(socket, rt::CLOSE_UNAUTHORIZED, "invalid token").await;
                None
            }
        },
        _ => {
            rt::close(socket, rt::CLOSE_UNAUTHORIZED, "authenticate first").await;
            None
        }
    }
}

struct AgentSocket {
    state: AppState,
    /// Re-read from storage before every action the socket takes.
    caller: Caller,
    /// What the agent sees now; the hub changes it when its spaces or
    /// teams change.
    access: SharedAccess,
    spaces: Vec<SpaceId>,
    /// Message frames sent, of the joined spaces.
    log: SentLog,
    last_typing: HashMap<ThreadId, Instant>,
}

/// The socket's task: an `async` block that stores the socket once (an
/// `async fn` keeps each argument twice in its future).
#[allow(clippy::manual_async_fn)]
fn run(
    state: AppState,
    mut socket: WebSocket,
    caller: Option<(Caller, i64)>,
) -> impl Future<Output = ()> + Send {
    async move {
        let (caller, expires_at) = match caller {
            Some(c) => c,
            None => match authenticate(&state, &mut socket).await {
                Some(c) => c,
                None => return,
            },
        };
        let mut conn = state.hub.connect();
        let access = conn.set_access(caller.access());
        conn.subscribe(Topic::Agent(caller.id()));
        conn.subscribe(Topic::Org(caller.org()));
        // A revocation or access change committed before the subscription
        // would otherwise be missed.
        let Ok(caller) = agent_from_token_again(&state, &caller) else {
            rt::close(&mut socket, rt::CLOSE_REVOKED, "session revoked").await;
            return;
        };
        *access.write().expect("access lock") = caller.access();
        // The socket lives as long as its access token: then the client
        // refreshes, reconnects and resumes.
        let closer = conn.closer();
        let left = expires_at - chrono::Utc::now().timestamp();
        let expiry = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(left.max(0) as u64)).await;
            closer.close(rt::CLOSE_REVOKED, "access token expired");
        });
        state.hub.set_away(caller.id(), caller.agent.away);
        let first_socket = state.hub.agent_online(caller.org(), caller.id());
        if first_socket {
            state
                .store
                .share_presence(caller.org().0, caller.id().0, true);
        }
        let mut me = AgentSocket {
            state: state.clone(),
            caller,
            access,
            spaces: Vec::new(),
            log: SentLog::default(),
            last_typing: HashMap::new(),
        };
        let ready = frame(
            "ready",
            json!({ "agent": me.caller.agent.view(true), "agentsOnline": presence::list(&state, me.caller.org()) }),
        );
        if first_socket {
            presence::announce(&state, me.caller.org());
        }
        if rt::send_text(&mut socket, &ready).await {
            driver::drive(&mut socket, &mut conn, &mut me).await;
        }
        expiry.abort();
        if state.hub.agent_offline(me.caller.org(), me.caller.id()) {
            state
                .store
                .share_presence(me.caller.org().0, me.caller.id().0, false);
            presence::announce(&state, me.caller.org());
        }
    }
}

/// Re-reads the agent: disabled or revoked since the token was checked?
fn agent_from_token_again(state: &AppState, caller: &Caller) -> AppResult<Caller> {
    let agent = state
        .store
        .read()?
        .agent(caller.id())?
        .ok_or_else(|| AppError::Unauthorized("gone".into()))?;
    if agent.disabled || agent.token_version != caller.agent.token_version {
        return Err(AppError::Unauthorized("revoked".into()));
    }
    Ok(Caller { agent, token: None })
}

impl Session for AgentSocket {
    const REPLAYS_FROM_START: bool = false;
    const KIND: &'static str = "agent";

    fn state(&self) -> &AppState {
        &self.state
    }

    fn log(&mut self) -> &mut SentLog {
        &mut self.log
    }

    /// The joined spaces' messages after `after` that this agent is routed.
    fn stored_after(&self, read: &ReadTx, after: Option<MessageId>) -> Stored {
        let Some(after) = after else {
            return Ok(Some(Vec::new()));
        };
        let access = self.access.read().expect("access lock").clone();
        let spaces: Vec<SpaceId> = self
            .spaces
            .iter()
            .copied()
            .filter(|s| access.works_in(*s))
            .collect();
        replay::for_agent(read, &spaces, after, &|t| access.sees(t))
    }

    async fn handle(&mut self, text: &str, conn: &mut Connection) -> Vec<String> {
        self.answer(text, conn).await
    }
}

impl AgentSocket {
    async fn answer(&mut self, text: &str, conn: &mut Connection) -> Vec<String> {
        let parsed: AgentIn = match protocol::parse(text) {
            Ok(f) => f,
            Err((code, message)) => return vec![protocol::error(code, &message)],
        };
        // Spaces, teams and role as they are now, not as they were at connect.
        match agent_from_token_again(&self.state, &self.caller) {
            Ok(fresh) => self.caller = fresh,
            Err(e) => {
                conn.closer().close(rt::CLOSE_REVOKED, "session revoked");
                return vec![protocol::error(e.code(), &e.public_message())];
            }
        }
        let result = match parsed {
            AgentIn::Auth { .. } => Ok(vec![protocol::error(
                "already_authenticated",
                "this socket is authenticated",
            )]),
            AgentIn::Heartbeat {} => Ok(vec![frame("heartbeat", json!({}))]),
            AgentIn::JoinSpace { chat_space_id } => {
                let joined = self.join(chat_space_id, conn);
                if joined.is_ok() {
                    // Threads that waited for someone to come online are
                    // handed out now that this socket hears about them.
                    crate::threads::assignment::fill_quietly(&self.state, self.caller.org()).await;
                }
                joined
            }
            AgentIn::LeaveSpace { chat_space_id } => {
                conn.unsubscribe(Topic::Space(chat_space_id));
                self.spaces.retain(|s| *s != chat_space_id);
                Ok(vec![frame("left", json!({ "chatSpaceId": chat_space_id }))])
            }
            AgentIn::Resume { after } => Ok(driver::replay(self, after)),
            AgentIn::SendMessage {
                thread_id,
                client_msg_id,
                content,
                internal,
                attachment_ids,
                reply_to_id,
            } => {
                let sent = async {
                    let new = NewMessage::parse(
                        &content,
                        Some(&client_msg_id),
                        reply_to_id,
                        internal,
                        attachment_ids,
                    )?;
                    send::from_agent(&self.state, &self.caller, thread_id, new).await
                }
                .await;
                return match sent {
                    Ok(s) => vec![frame(
                        "message:ack",
                        json!({ "clientMsgId": client_msg_id, "message": s.message.redacted() }),
                    )],
                    Err(e) => vec![frame(
                        "error",
                        json!({ "code": e.code(), "message": e.public_message(), "clientMsgId": client_msg_id }),
                    )],
                };
            }
            AgentIn::Typing {
                thread_id,
                is_typing,
            } => self.typing(thread_id, is_typing),
            AgentIn::Read { thread_id, up_to } => self.read(thread_id, up_to).await,
        };
        result.unwrap_or_else(|e| vec![protocol::error(e.code(), &e.public_message())])
    }

    fn join(&mut self, space: SpaceId, conn: &mut Connection) -> AppResult<Vec<String>> {
        if !self.caller.access().works_in(space) {
            return Err(AppError::NotFound("chat space"));
        }
        crate::spaces::service::get(&self.state, self.caller.org(), space)?;
        conn.subscribe(Topic::Space(space));
        if !self.spaces.contains(&space) {
            self.spaces.push(space);
            self.log.break_run();
        }
        Ok(vec![frame("joined", json!({ "chatSpaceId": space }))])
    }

    fn typing(&mut self, thread_id: ThreadId, is_typing: bool) -> AppResult<Vec<String>> {
        let now = Instant::now();
        if is_typing
            && self
                .last_typing
                .get(&thread_id)
                .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(1))
        {
            return Ok(Vec::new());
        }
        let thread = visible_thread(
            &self.state.store.read()?,
            self.caller.org(),
            &self.caller.access(),
            thread_id,
        )?;
        if is_typing {
            self.last_typing.insert(thread_id, now);
        } else {
            self.last_typing.remove(&thread_id);
        }
        let name = &self.caller.agent.display_name;
        let to_visitor = frame(
            "agent:typing",
            json!({ "isTyping": is_typing, "agentName": name }),
        );
        self.state.hub.publish(
            Topic::Visitor(thread.visitor_id),
            Delivery::frame(to_visitor),
        );
        let to_agents = frame(
            "agent:typing",
            json!({ "threadId": thread.id, "agentId": self.caller.id(), "agentName": name, "isTyping": is_typing }),
        );
        self.state.hub.publish(
            Topic::Space(thread.chat_space_id),
            Delivery::about(to_agents, &std::sync::Arc::new(thread)),
        );
        Ok(Vec::new())
    }

    async fn read(&mut self, thread_id: ThreadId, up_to: MessageId) -> AppResult<Vec<String>> {
        visible_thread(
            &self.state.store.read()?,
            self.caller.org(),
            &self.caller.access(),
            thread_id,
        )?;
        threads::mark_read(
            &self.state,
            thread_id,
            ReadBy::Agent(self.caller.id()),
            up_to,
        )
        .await?;
        Ok(Vec::new())
    }
}
