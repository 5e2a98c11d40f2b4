//! `/ws/member`: a member's socket (the integrator's user in the embed).
//! The member token comes in `Sec-WebSocket-Protocol: bearer, <token>` or
//! in a first `auth` frame; it is never logged. The socket closes when
//! the token expires (4001).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde_json::json;

use crate::error::{AppError, AppResult};
use crate::extract::ClientIp;
use crate::ids::{MemberId, MessageId, SpaceId, ThreadId};
use crate::integrations::auth::member_from_token;
use crate::integrations::dialogs::{self, MemberCtx};
use crate::integrations::model::{AccessScope, may_join};
use crate::integrations::views::Participant;
use crate::messages::send::{self, NewMessage, member_thread};
use crate::realtime::driver::{self, SentLog, Session, Stored};
use crate::realtime::hub::{Connection, Delivery, Topic};
use crate::realtime::protocol::{self, MemberIn, frame};
use crate::realtime::{self as rt, replay};
use crate::spaces::model::origin_allowed;
use crate::state::AppState;
use crate::store::{ReadTx, Reader};

/// How long a socket may take to send its `auth` frame.
const AUTH_WITHIN: Duration = Duration::from_secs(10);

/// The token from `Sec-WebSocket-Protocol: bearer, <token>`, if sent.
fn protocol_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::SEC_WEBSOCKET_PROTOCOL)?.to_str().ok()?;
    let mut parts = value.split(',').map(str::trim);
    (parts.next()? == "bearer").then_some(())?;
    parts.next().map(str::to_owned)
}

/// A browser's Origin must be an allowed domain of one of the
/// organization's spaces (native clients send none).
fn check_origin(state: &AppState, who: &MemberCtx, origin: Option<&str>) -> AppResult<()> {
    let Some(origin) = origin else {
        return Ok(());
    };
    let spaces = state
        .store
        .read()?
        .spaces_of_org(who.member.organization_id)?;
    if spaces
        .iter()
        .any(|s| origin_allowed(&s.allowed_domains, origin))
    {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "this site is not allowed to use this chat".into(),
        ))
    }
}

pub async fn upgrade(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> AppResult<Response> {
    let slot = rt::admit(&state, ip)?;
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let who = match protocol_token(&headers) {
        Some(t) => {
            let who = member_from_token(&state, &t).await?;
            check_origin(&state, &who, origin.as_deref())?;
            Some(who)
        }
        None => None,
    };
    let mut ws = ws.map_err(|e| AppError::validation(e.body_text()))?;
    if who.is_some() {
        // The browser requires the server to pick one of the offered protocols.
        ws = ws.protocols(["bearer"]);
    }
    Ok(rt::configure(ws).on_upgrade(move |socket| slot.hold(run(state, socket, who, origin))))
}

async fn authenticate(
    state: &AppState,
    socket: &mut WebSocket,
    origin: Option<&str>,
) -> Option<MemberCtx> {
    let first = tokio::time::timeout(AUTH_WITHIN, socket.recv()).await;
    let Ok(Some(Ok(WsMessage::Text(text)))) = first else {
        rt::close(socket, rt::CLOSE_UNAUTHORIZED, "authenticate first").await;
        return None;
    };
    let Ok(MemberIn::Auth { token }) = protocol::parse::<MemberIn>(text.as_str()) else {
        rt::close(socket, rt::CLOSE_UNAUTHORIZED, "authenticate first").await;
        return None;
    };
    match member_from_token(state, &token).await {
        Ok(who) if check_origin(state, &who, origin).is_ok() => Some(who),
        _ => {
            rt::close(socket, rt::CLOSE_UNAUTHORIZED, "invalid token").await;
            None
        }
    }
}

struct MemberSocket {
    state: AppState,
    who: MemberCtx,
    /// The organization's spaces, where its dialogs live.
    spaces: Vec<SpaceId>,
    log: SentLog,
    last_typing: HashMap<ThreadId, Instant>,
}

/// The socket's task: an `async` block that stores the socket once (an
/// `async fn` keeps each argument twice in its future).
#[allow(clippy::manual_async_fn)]
fn run(
    state: AppState,
    mut socket: WebSocket,
    who: Option<MemberCtx>,
    origin: Option<String>,
) -> impl Future<Output = ()> + Send {
    async move {
        let who = match who {
            Some(w) => w,
            None => match authenticate(&state, &mut socket, origin.as_deref()).await {
                Some(w) => w,
                None => return,
            },
        };
        let mut conn = state.hub.connect();
        // Subscribed before anything is read, so nothing falls in the gap.
        conn.subscribe(Topic::Member(who.member.id));
        conn.subscribe(Topic::Members(who.member.organization_id));
        conn.subscribe(Topic::SigningKey(who.key_id));
        // A key deleted before the subscription would otherwise be missed.
        let key_live = state
            .store
            .read()
            .and_then(|r| r.signing_key(who.key_id))
            .is_ok_and(|k| k.is_some());
        if !key_live {
            rt::close(&mut socket, rt::CLOSE_REVOKED, "signing key deleted").await;
            return;
        }
        let closer = conn.closer();
        let left = who.expires_at - chrono::Utc::now().timestamp();
        let expiry = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(left.max(0) as u64)).await;
            closer.close(rt::CLOSE_REVOKED, "member token expired");
        });
        let spaces = state
            .store
            .read()
            .and_then(|r| r.spaces_of_org(who.member.organization_id))
            .map(|s| s.into_iter().map(|s| s.id).collect())
            .unwrap_or_default();
        let mut me = MemberSocket {
            state: state.clone(),
            who,
            spaces,
            log: SentLog::default(),
            last_typing: HashMap::new(),
        };
        let ready = frame(
            "ready",
            json!({ "member": Participant::from(&me.who.member), "memberId": me.who.member.id }),
        );
        if rt::send_text(&mut socket, &ready).await {
            driver::drive(&mut socket, &mut conn, &mut me).await;
        }
        expiry.abort();
    }
}

impl Session for MemberSocket {
    const REPLAYS_FROM_START: bool = false;
    const KIND: &'static str = "member";

    fn state(&self) -> &AppState {
        &self.state
    }

    fn log(&mut self) -> &mut SentLog {
        &mut self.log
    }

    fn stored_after(&self, read: &ReadTx, after: Option<MessageId>) -> Stored {
        match after {
            Some(after) => replay::for_member(read, &self.spaces, self.who.member.id, after),
            None => Ok(Some(Vec::new())),
        }
    }

    /// Threads that became available: for this member when its scopes
    /// let it join and it is not already in.
    fn admits(&self, scopes: &[AccessScope], except: &[MemberId]) -> bool {
        !except.contains(&self.who.member.id) && may_join(scopes, &self.who.scopes)
    }

    async fn handle(&mut self, text: &str, _conn: &mut Connection) -> Vec<String> {
        let parsed: MemberIn = match protocol::parse(text) {
            Ok(f) => f,
            Err((code, message)) => return vec![protocol::error(code, &message)],
        };
        let result = match parsed {
            MemberIn::Auth { .. } => Ok(vec![protocol::error(
                "already_authenticated",
                "this socket is authenticated",
            )]),
            MemberIn::Ping {} => Ok(vec![frame("pong", json!({}))]),
            MemberIn::Resume { after } => Ok(driver::replay(self, after)),
            MemberIn::SendMessage {
                dialog_id,
                client_msg_id,
                content,
                reply_to_id,
                attachment_ids,
            } => {
                let sent = async {
                    let new = NewMessage::parse(
                        &content,
                        Some(&client_msg_id),
                        reply_to_id,
                        false,
                        attachment_ids,
                    )?;
                    send::from_member(
                        &self.state,
                        &self.who.member,
                        dialog_id,
                        &self.who.scopes,
                        new,
                    )
                    .await
                }
                .await;
                return match sent {
                    Ok(s) => vec![frame(
                        "message:ack",
                        json!({ "clientMsgId": client_msg_id, "dialogId": dialog_id, "message": s.message.redacted() }),
                    )],
                    Err(e) => vec![frame(
                        "error",
                        json!({ "code": e.code(), "message": e.public_message(), "clientMsgId": client_msg_id }),
                    )],
                };
            }
            MemberIn::Typing {
                dialog_id,
                is_typing,
            } => self.typing(dialog_id, is_typing),
            MemberIn::Read { dialog_id, up_to } => {
                dialogs::mark_read(&self.state, &self.who, dialog_id, up_to)
                    .await
                    .map(|()| Vec::new())
            }
        };
        result.unwrap_or_else(|e| vec![protocol::error(e.code(), &e.public_message())])
    }
}

impl MemberSocket {
    /// Tells the dialog's other participants and the space's agents;
    /// "typing" is throttled to one a second, "stopped" always passes.
    fn typing(&mut self, dialog: ThreadId, is_typing: bool) -> AppResult<Vec<String>> {
        let now = Instant::now();
        if is_typing
            && self
                .last_typing
                .get(&dialog)
                .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(1))
        {
            return Ok(Vec::new());
        }
        let thread = member_thread(
            &self.state.store.read()?,
            &self.who.member,
            &self.who.scopes,
            dialog,
        )?;
        let me = self.who.member.id;
        if !thread.has_member(me) {
            return Err(AppError::Forbidden(
                "join the conversation before writing".into(),
            ));
        }
        if is_typing {
            self.last_typing.insert(dialog, now);
        } else {
            self.last_typing.remove(&dialog);
        }
        let text = frame(
            "typing",
            json!({ "dialogId": dialog, "participant": Participant::from(&self.who.member), "isTyping": is_typing }),
        );
        for m in thread.membership.iter().flat_map(|ms| &ms.members) {
            if *m != me {
                self.state
                    .hub
                    .publish(Topic::Member(*m), Delivery::frame(text.clone()));
            }
        }
        let to_agents = frame(
            "member:typing",
            json!({ "threadId": dialog, "participant": Participant::from(&self.who.member), "isTyping": is_typing }),
        );
        self.state.hub.publish(
            Topic::Space(thread.chat_space_id),
            Delivery::about(to_agents, &std::sync::Arc::new(thread)),
        );
        Ok(Vec::new())
    }
}
