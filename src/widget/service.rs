//! Widget use cases: what a visitor's browser may do. Configuration and
//! sessions are keyed by the space's widget key; everything else runs for
//! the visitor an [`crate::auth::VisitorAuth`] already verified.

use chrono::Utc;
use serde::Serialize;

use crate::auth::extract::check_origin;
use crate::auth::tokens;
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::ids::{AgentId, MessageId, SpaceId, ThreadId, VisitorId};
use crate::messages::model::Message;
use crate::messages::service::{self as messages, Audience};
use crate::spaces::model::{
    AttachmentPolicy, ChatSpace, IdentityVerification, Position, RequireVisitorData, Theme,
};
use crate::state::AppState;
use crate::store::{Page, Reader, id_key, tables};
use crate::threads::model::{Rating, Thread, ThreadStatus};
use crate::threads::service::{self as threads, ReadBy};
use crate::visitors::attributes::{Attributes, AttributesPatch};
use crate::visitors::model::{Visitor, VisitorMetadata};
use crate::visitors::service::VisitorPatch;

/// The subject agents see on a thread that came from the offline form.
/// Longest user agent kept; browsers' real ones are far shorter.
pub const MAX_USER_AGENT: usize = 500;

/// What the widget needs before it draws anything.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WidgetConfig {
    pub chat_space_id: SpaceId,
    pub title: String,
    pub welcome_message: String,
    pub accent_color: String,
    pub position: Position,
    pub theme: Theme,
    pub locale: String,
    /// Inside the opening hours right now.
    pub open: bool,
    pub agents_online: bool,
    /// Whether this appliance sends email (replies, transcripts).
    pub email: bool,
    pub offline_messages: bool,
    pub require_visitor_data: RequireVisitorData,
    pub attachments: AttachmentPolicy,
    /// Ask for a rating once the conversation has ended.
    pub csat: bool,
    /// `required`: only visitors verified through `/widget/identify` may send.
    pub identity_verification: IdentityVerification,
    /// "Usually replies within N min", from the space's recent answers;
    /// null until enough conversations were answered.
    pub reply_minutes: Option<u32>,
    /// A line under the title.
    pub description: String,
    /// The title and welcome message by locale; the widget shows the
    /// visitor's language's, else `title` and `welcomeMessage`.
    pub translations: std::collections::BTreeMap<String, crate::spaces::model::SpaceWords>,
    /// The team the header shows (at most 3): the space's `headerAgents`,
    /// or its agents, those online first.
    pub agents: Vec<HeaderAgent>,
    /// The newest messages of the calling visitor's current conversation
    /// (oldest first), when the call carries its session token; else empty.
    pub messages: Vec<crate::messages::model::Message>,
}

/// An agent as the widget's header names them.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderAgent {
    pub id: AgentId,
    pub name: String,
    pub online: bool,
    /// The picture's version: `/api/v1/widget/avatars/{id}?v=…`.
    pub avatar: Option<String>,
}

/// Who the header of a space's widget shows.
fn header_agents<R: Reader + ?Sized>(
    state: &AppState,
    read: &R,
    space: &ChatSpace,
) -> AppResult<Vec<HeaderAgent>> {
    let shown = |a: &crate::accounts::model::Agent| {
        crate::threads::assignment::may_be_default_assignee(a, space) && !a.display_name.is_empty()
    };
    let view = |a: crate::accounts::model::Agent| HeaderAgent {
        online: state.hub.is_online(a.organization_id, a.id) && !a.away,
        id: a.id,
        name: a.display_name,
        avatar: a.avatar,
    };
    let max = crate::spaces::model::MAX_HEADER_AGENTS;
    Ok(match &space.settings.header_agents {
        Some(ids) => {
            let mut out = Vec::new();
            for id in ids.iter().take(max) {
                if let Some(a) = read.agent(*id)?.filter(|a| shown(a)) {
                    out.push(view(a));
                }
            }
            out
        }
        None => {
            let mut all: Vec<HeaderAgent> = read
                .agents_of_org(space.organization_id)?
                .into_iter()
                .filter(|a| shown(a))
                .map(view)
                .collect();
            // Online first, then by name: a stable header.
            all.sort_by(|a, b| b.online.cmp(&a.online).then_with(|| a.name.cmp(&b.name)));
            all.truncate(max);
            all
        }
    })
}

/// How many recent messages the config carries.
pub const CONFIG_MESSAGES: usize = 20;

/// A thread as the visitor may see it: which one, and whether it is over.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThreadRef {
    pub id: ThreadId,
    pub status: ThreadStatus,
}

impl From<&Thread> for ThreadRef {
    fn from(t: &Thread) -> Self {
        ThreadRef {
            id: t.id,
            status: t.status,
        }
    }
}

/// The space a widget key names, if the calling origin may use it. An
/// unknown key is a 404 whatever the origin.
fn space_for_key<R: Reader + ?Sized>(
    read: &R,
    key: &str,
    origin: Option<&str>,
) -> AppResult<ChatSpace> {
    let space = read
        .space_by_key(key)?
        .ok_or(AppError::NotFound("chat space"))?;
    check_origin(&space, origin)?;
    Ok(space)
}

/// The widget's settings for a key; with the visitor's session token
/// (`session`), also its conversation's recent messages. A token that is
/// unknown or of another space only leaves the messages out: the config
/// is public, and a stale token must not keep the widget from drawing.
pub fn config(
    state: &AppState,
    key: &str,
    origin: Option<&str>,
    session: Option<&str>,
) -> AppResult<WidgetConfig> {
    let read = state.store.read()?;
    let space = space_for_key(&read, key, origin)?;
    let reply_minutes = crate::widget::reply_time::minutes(&read, space.id);
    let agents = header_agents(state, &read, &space)?;
    let visitor = match session {
        Some(token) => read
            .visitor_by_token_hash(&crate::auth::tokens::hash(token))?
            .filter(|v| v.chat_space_id == space.id),
        None => None,
    };
    let messages = match visitor {
        Some(v) => match current_thread(&read, v.id)? {
            Some(thread) => {
                messages::page(
                    &read,
                    thread.id,
                    None,
                    None,
                    CONFIG_MESSAGES,
                    Audience::Visitor,
                )?
                .items
            }
            None => Vec::new(),
        },
        None => Vec::new(),
    };
    let s = space.settings;
    Ok(WidgetConfig {
        reply_minutes,
        chat_space_id: space.id,
        open: s.is_open(Utc::now()),
        // Presence from the hub: agents with a live socket.
        agents_online: state.hub.any_agent_online(space.organization_id),
        email: state.config.email.enabled(),
        title: s.title,
        welcome_message: s.welcome_message,
        accent_color: s.accent_color,
        position: s.position,
        theme: s.theme,
        locale: s.locale,
        offline_messages: s.offline_messages,
        require_visitor_data: s.require_visitor_data,
        attachments: s.attachments,
        csat: s.csat,
        identity_verification: s.identity_verification,
        description: s.description,
        translations: s.translations,
        agents,
        messages,
    })
}

/// A session call, its fields already validated.
#[derive(Clone, Debug, Default)]
pub struct SessionRequest {
    pub key: String,
    pub session_token: Option<String>,
    pub locale: Option<String>,
    pub referrer: Option<String>,
    pub url: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<std::net::IpAddr>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[schema(as = WidgetSession)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub session_token: String,
    pub visitor_id: VisitorId,
    pub resumed: bool,
}

/// Resumes the visitor a token names in this space, or creates a new
/// visitor with a fresh token. Only creation is rate limited, so a page
/// reload never locks a known visitor out.
pub async fn open_session(
    state: &AppState,
    req: SessionRequest,
    origin: Option<&str>,
) -> AppResult<Session> {
    let (space, visitor) = {
        let read = state.store.read()?;
        let space = space_for_key(&read, &req.key, origin)?;
        let visitor = match &req.session_token {
            Some(token) => read.visitor_by_token_hash(&tokens::hash(token))?,
            None => None,
        };
        // A token of another space is no session here.
        let visitor = visitor.filter(|v| v.chat_space_id == space.id);
        (space, visitor)
    };
    if let (Some(visitor), Some(token)) = (visitor, &req.session_token)
        && touch(state, visitor.id, &req).await?
    {
        return Ok(Session {
            session_token: token.clone(),
            visitor_id: visitor.id,
            resumed: true,
        });
    }
    match req.ip {
        Some(ip) => state.limits.sessions_per_ip.check_ip(ip)?,
        None => state.limits.sessions_per_ip.check("")?,
    }
    create_visitor(state, space.id, req).await
}

/// Records a returning visitor's visit. False when the visitor vanished
/// since the token was looked up.
async fn touch(state: &AppState, id: VisitorId, req: &SessionRequest) -> AppResult<bool> {
    let req = req.clone();
    let found = state
        .write(move |tx| {
            let Some(mut v) = tx.visitor(id)? else {
                return Ok(false);
            };
            let m = &mut v.metadata;
            m.last_seen_at = Some(Utc::now());
            if req.url.is_some() {
                m.current_url = req.url.clone();
            }
            if req.locale.is_some() {
                m.locale = req.locale.clone();
            }
            if req.user_agent.is_some() {
                m.user_agent = req.user_agent.clone();
            }
            if req.ip.is_some() {
                m.ip = req.ip.map(|ip| ip.to_string());
            }
            tx.put(&v)?;
            Ok(true)
        })
        .await?;
    Ok(found)
}

async fn create_visitor(
    state: &AppState,
    space: SpaceId,
    req: SessionRequest,
) -> AppResult<Session> {
    let token = tokens::generate();
    let hash = tokens::hash(&token);
    let visitor_id = state
        .write(move |tx| {
            let now = Utc::now();
            let visitor = Visitor {
                id: VisitorId::new(),
                chat_space_id: space,
                number: tx.next_counter(&format!("visitors:{space}"))?,
                display_name: None,
                email: None,
                phone: None,
                external_id: None,
                verified: false,
                attributes: Default::default(),
                metadata: VisitorMetadata {
                    current_url: req.url.clone(),
                    current_title: None,
                    referrer: req.referrer.clone(),
                    user_agent: req.user_agent.clone(),
                    locale: req.locale.clone(),
                    ip: req.ip.map(|ip| ip.to_string()),
                    first_seen_at: Some(now),
                    last_seen_at: Some(now),
                },
                created_at: now,
                email_opt_out: false,
                notes: None,
            };
            tx.put(&visitor)?;
            // Only the hash is stored: the token lives in the browser alone.
            tx.put_raw(
                tables::IDX_VISITOR_TOKEN,
                &hash,
                &id_key(visitor.id.as_u128()),
            )?;
            Ok(visitor.id)
        })
        .await?;
    Ok(Session {
        session_token: token,
        visitor_id,
        resumed: false,
    })
}

/// The thread the widget shows: the open one, else the most recent.
pub fn current_thread<R: Reader + ?Sized>(
    read: &R,
    visitor: VisitorId,
) -> AppResult<Option<Thread>> {
    // Newest first, and at most one is open.
    let threads = read.threads_of_visitor(visitor)?;
    let open = threads.iter().position(|t| t.status.is_open());
    Ok(match open {
        Some(i) => threads.into_iter().nth(i),
        None => threads.into_iter().next(),
    })
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessagesPage {
    pub items: Vec<Message>,
    pub next_cursor: Option<String>,
    pub thread: Option<ThreadRef>,
}

/// The visitor's current thread's messages, without internal notes.
pub fn messages(
    state: &AppState,
    visitor: VisitorId,
    after: Option<MessageId>,
    limit: usize,
) -> AppResult<MessagesPage> {
    let read = state.store.read()?;
    let Some(thread) = current_thread(&read, visitor)? else {
        return Ok(MessagesPage {
            items: Vec::new(),
            next_cursor: None,
            thread: None,
        });
    };
    let Page { items, next_cursor } =
        messages::page(&read, thread.id, None, after, limit, Audience::Visitor)?;
    Ok(MessagesPage {
        items,
        next_cursor,
        thread: Some(ThreadRef::from(&thread)),
    })
}

/// A messages page of one of the visitor's own threads (an earlier
/// conversation); any other thread is not found.
pub fn thread_messages(
    state: &AppState,
    visitor: VisitorId,
    thread: ThreadId,
    after: Option<MessageId>,
    limit: usize,
) -> AppResult<MessagesPage> {
    let read = state.store.read()?;
    let thread = read
        .thread(thread)?
        .filter(|t| t.visitor_id == visitor)
        .ok_or(AppError::NotFound("thread"))?;
    let Page { items, next_cursor } =
        messages::page(&read, thread.id, None, after, limit, Audience::Visitor)?;
    Ok(MessagesPage {
        items,
        next_cursor,
        thread: Some(ThreadRef::from(&thread)),
    })
}

/// How many of a visitor's conversations the widget lists.
pub const PAST_THREADS: usize = 20;
/// How much of a conversation's first message its entry shows.
const PREVIEW_CHARS: usize = 80;

/// One of the visitor's conversations, as their widget lists it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VisitorThread {
    pub id: ThreadId,
    pub status: ThreadStatus,
    pub created_at: chrono::DateTime<Utc>,
    pub closed_at: Option<chrono::DateTime<Utc>>,
    /// The start of the first message the visitor can see.
    pub preview: String,
}

/// The visitor's own conversations, newest first (at most
/// [`PAST_THREADS`]); nothing of anyone else's.
pub fn threads(state: &AppState, visitor: VisitorId) -> AppResult<Vec<VisitorThread>> {
    let read = state.store.read()?;
    let mut out = Vec::new();
    for t in read
        .threads_of_visitor(visitor)?
        .into_iter()
        .take(PAST_THREADS)
    {
        let first = messages::page(&read, t.id, None, None, 5, Audience::Visitor)?.items;
        let preview = first
            .iter()
            .find(|m| m.deleted_at.is_none() && !m.content.trim().is_empty())
            .map(|m| m.content.chars().take(PREVIEW_CHARS).collect())
            .unwrap_or_default();
        out.push(VisitorThread {
            id: t.id,
            status: t.status,
            created_at: t.created_at,
            closed_at: t.closed_at,
            preview,
        });
    }
    Ok(out)
}

/// The visitor's own fields, as the widget may see them.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicVisitor {
    pub visitor_id: VisitorId,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Verified through an identity token; `externalId` is then the site's
    /// user id and the name and email are the token's. The three fields
    /// below are left out while unset, so the answer to an anonymous
    /// visitor is what it always was.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(skip_serializing_if = "Attributes::is_empty")]
    #[schema(schema_with = crate::openapi::schemas::attributes_schema)]
    pub attributes: Attributes,
}

impl From<Visitor> for PublicVisitor {
    fn from(v: Visitor) -> Self {
        PublicVisitor {
            visitor_id: v.id,
            display_name: v.display_name,
            email: v.email,
            phone: v.phone,
            external_id: v.external_id.filter(|_| v.verified),
            verified: v.verified,
            attributes: v.attributes,
        }
    }
}

fn session_gone() -> AppError {
    AppError::Unauthorized("invalid visitor session".into())
}

/// The visitor names themselves and the site sets custom attributes. The
/// external id is the integrator's and never comes from the widget. A
/// verified visitor's name and email are the identity token's: changing one
/// that is set is a 409 `identity_verified` (sending the same value again,
/// or filling one the token left empty, is fine). Nothing is changed when
/// any part is refused.
pub async fn update_visitor(
    state: &AppState,
    id: VisitorId,
    patch: VisitorPatch,
    attributes: Option<AttributesPatch>,
) -> AppResult<PublicVisitor> {
    let visitor = state
        .write(move |tx| {
            // Re-read inside the write so concurrent page/last-seen updates survive.
            let mut v = tx.visitor(id)?.ok_or_else(session_gone)?;
            if v.verified {
                let changes = |now: &Option<String>, new: &Option<Option<String>>| {
                    now.is_some() && new.as_ref().is_some_and(|n| n != now)
                };
                if changes(&v.display_name, &patch.display_name) || changes(&v.email, &patch.email)
                {
                    return Err(AppError::conflict(
                        "identity_verified",
                        "a verified visitor's name and email come from the site",
                    ));
                }
            }
            if let Some(a) = &attributes {
                v.attributes = a.apply(&v.attributes)?;
            }
            if let Some(x) = &patch.display_name {
                v.display_name = x.clone();
            }
            if let Some(x) = &patch.email {
                v.email = x.clone();
            }
            if let Some(x) = &patch.phone {
                v.phone = x.clone();
            }
            tx.put(&v)?;
            Ok(v)
        })
        .await?;
    state.search.visitor_changed(visitor.id);
    Ok(visitor.into())
}

/// A rating as the widget sends it, checked: a score of 1–5 and a comment
/// of at most [`Rating::MAX_COMMENT`] characters (blank is none).
#[derive(Clone, Debug, PartialEq)]
pub struct NewRating {
    pub score: u8,
    pub comment: Option<String>,
}

impl NewRating {
    pub fn parse(score: i64, comment: Option<&str>) -> AppResult<NewRating> {
        let score = u8::try_from(score)
            .ok()
            .filter(|s| (Rating::MIN..=Rating::MAX).contains(s))
            .ok_or_else(|| AppError::validation("score must be a whole number from 1 to 5"))?;
        let comment = comment.map(str::trim).filter(|c| !c.is_empty());
        if comment.is_some_and(|c| c.chars().count() > Rating::MAX_COMMENT) {
            return Err(AppError::validation(format!(
                "comment must have at most {} characters",
                Rating::MAX_COMMENT
            )));
        }
        Ok(NewRating {
            score,
            comment: comment.map(str::to_owned),
        })
    }
}

/// The visitor rates one of its own ended conversations, once. Another
/// visitor's thread is a 404; an open one, a second rating, or a space
/// that does not ask for ratings is a 409. Agents see it live.
pub async fn rate(
    state: &AppState,
    visitor: VisitorId,
    thread: ThreadId,
    rating: NewRating,
) -> AppResult<Thread> {
    let now = state.clock.now();
    state
        .write(move |tx| {
            let mut t = tx
                .thread(thread)?
                .filter(|t| t.visitor_id == visitor && !t.is_object_bound())
                .ok_or(AppError::NotFound("thread"))?;
            let space = tx
                .space(t.chat_space_id)?
                .ok_or(AppError::NotFound("thread"))?;
            if !space.settings.csat {
                return Err(AppError::conflict(
                    "ratings_disabled",
                    "this chat does not ask for ratings",
                ));
            }
            if t.status.is_open() {
                return Err(AppError::conflict(
                    "thread_open",
                    "a conversation can be rated once it has ended",
                ));
            }
            if t.rating.is_some() {
                return Err(AppError::conflict(
                    "already_rated",
                    "this conversation has already been rated",
                ));
            }
            t.rating = Some(Rating {
                score: rating.score,
                comment: rating.comment.clone(),
                at: now,
            });
            t.updated_at = now;
            tx.put(&t)?;
            tx.emit(Event::ThreadUpdated { thread: t.clone() });
            Ok(t)
        })
        .await
}

pub async fn close(state: &AppState, visitor: VisitorId) -> AppResult<Option<ThreadRef>> {
    let closed = threads::visitor_close(state, visitor).await?;
    Ok(closed.as_ref().map(ThreadRef::from))
}

/// Moves the visitor's read marker. The message must be one the visitor can
/// see in one of their own threads; anything else is a 404, so a visitor
/// learns nothing about other threads or internal notes.
pub async fn read(state: &AppState, visitor: VisitorId, up_to: MessageId) -> AppResult<()> {
    let not_found = || AppError::NotFound("message");
    let thread = {
        let read = state.store.read()?;
        let m = read
            .message(up_to)?
            .filter(Message::visible_to_visitor)
            .ok_or_else(not_found)?;
        read.thread(m.thread_id)?
            .filter(|t| t.visitor_id == visitor)
            .ok_or_else(not_found)?
    };
    threads::mark_read(state, thread.id, ReadBy::Visitor, up_to).await?;
    Ok(())
}

/// The page the visitor is on now (`visitor:page`), for the agents'
/// visitor panel.
pub async fn record_page(
    state: &AppState,
    visitor: VisitorId,
    url: &str,
    title: Option<&str>,
) -> AppResult<()> {
    crate::validate::bounded("url", url, 2000)?;
    if let Some(t) = title {
        crate::validate::bounded("title", t, 300)?;
    }
    let (url, title) = (url.to_owned(), title.map(str::to_owned));
    state
        .write(move |tx| {
            let Some(mut v) = tx.visitor(visitor)? else {
                return Ok(());
            };
            v.metadata.current_url = Some(url.clone());
            v.metadata.current_title = title.clone();
            v.metadata.last_seen_at = Some(Utc::now());
            Ok(tx.put(&v)?)
        })
        .await
}
