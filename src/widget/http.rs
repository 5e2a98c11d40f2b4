//! Widget routes under `/widget`: public, keyed by the widget key or the
//! visitor's session token, Origin-checked, and answered with CORS headers.

use axum::extract::State;
use axum::http::header::{ORIGIN, USER_AGENT};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::{Deserialize, Deserializer, Serialize};

use crate::auth::VisitorAuth;
use crate::error::AppResult;
use crate::extract::{ApiJson, ApiQuery, ClientIp};
use crate::ids::{AttachmentId, MessageId, ThreadId};
use crate::messages::model::Message;
use crate::messages::send::{self, NewMessage, OfflineMessage};
use crate::state::AppState;
use crate::validate;
use crate::visitors::attributes::AttributesPatch;
use crate::visitors::service::{MAX_DISPLAY_NAME, VisitorPatch};
use crate::widget::service::{
    self, MAX_USER_AGENT, MessagesPage, NewRating, PublicVisitor, Session, SessionRequest,
    ThreadRef, WidgetConfig,
};
use crate::widget::{cors, identity};

/// Longest page URL or referrer kept.
const MAX_URL: usize = 2000;
/// Longest locale tag (BCP 47 tags are far shorter in practice).
const MAX_LOCALE: usize = 35;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/widget/config", get(config))
        .route("/widget/session", post(session))
        .route("/widget/messages", get(list).post(send))
        .route("/widget/threads", get(threads))
        .route("/widget/visitor", patch(update_visitor))
        .route("/widget/identify", post(identify))
        .route("/widget/offline", post(offline))
        .route("/widget/close", post(close))
        .route("/widget/read", post(read))
        .route("/widget/rating", post(rate))
        .route(
            "/widget/transcript",
            post(crate::email::http::widget_transcript),
        )
        // `layer`, not `route_layer`: preflights must reach the middleware
        // even though no route accepts OPTIONS.
        .layer(cors::layer())
}

fn origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(ORIGIN).and_then(|v| v.to_str().ok())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ConfigQuery {
    key: String,
}

#[utoipa::path(
    get,
    path = "/widget/config",
    tag = "widget",
    params(ConfigQuery),
    responses((status = 200, description = "OK", body = WidgetConfig), crate::openapi::Errors)
)]
async fn config(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<ConfigQuery>,
) -> AppResult<Json<WidgetConfig>> {
    // The visitor's session token, when the widget has one.
    let session = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    Ok(Json(service::config(
        &state,
        &q.key,
        origin(&headers),
        session,
    )?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = widget::SessionBody, example = json!({"key": "wk_3f9c…", "locale": "en"}))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SessionBody {
    key: String,
    session_token: Option<String>,
    locale: Option<String>,
    referrer: Option<String>,
    url: Option<String>,
}

/// 201 with a new visitor's token (the only time it is ever sent), or 200
/// echoing the token of a resumed session.
#[utoipa::path(
    post,
    path = "/widget/session",
    tag = "widget",
    request_body = SessionBody,
    responses((status = 201, description = "Created", body = Session), (status = 200, description = "The same request again: what the first one made", body = Session), crate::openapi::Errors)
)]
async fn session(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SessionBody>,
) -> AppResult<(StatusCode, Json<Session>)> {
    // Browsers send a user agent that is ASCII; anything else is noise.
    let user_agent = headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.trim().chars().take(MAX_USER_AGENT).collect::<String>())
        .filter(|ua| !ua.is_empty());
    let req = SessionRequest {
        key: body.key,
        session_token: body.session_token.filter(|t| !t.is_empty()),
        locale: validate::optional_name("locale", body.locale.as_deref(), MAX_LOCALE)?,
        referrer: validate::optional_name("referrer", body.referrer.as_deref(), MAX_URL)?,
        url: validate::optional_name("url", body.url.as_deref(), MAX_URL)?,
        user_agent,
        ip: Some(ip),
    };
    let session = service::open_session(&state, req, origin(&headers)).await?;
    let status = if session.resumed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(session)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListQuery {
    after: Option<MessageId>,
    /// The previous page's `nextCursor`: the widget reads forward only.
    cursor: Option<MessageId>,
    limit: Option<usize>,
    /// One of the visitor's earlier conversations instead of the current.
    thread_id: Option<ThreadId>,
}

#[utoipa::path(
    get,
    path = "/widget/messages",
    tag = "widget",
    params(ListQuery),
    responses((status = 200, description = "OK", body = MessagesPage), crate::openapi::Errors),
    security(("visitor" = []))
)]
async fn list(
    State(state): State<AppState>,
    auth: VisitorAuth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> AppResult<Json<MessagesPage>> {
    let limit = validate::limit(q.limit)?;
    if q.after.is_some() && q.cursor.is_some() {
        return Err(crate::error::AppError::validation(
            "give cursor or after, not both",
        ));
    }
    let after = q.after.or(q.cursor);
    Ok(Json(match q.thread_id {
        Some(thread) => service::thread_messages(&state, auth.visitor.id, thread, after, limit)?,
        None => service::messages(&state, auth.visitor.id, after, limit)?,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct ThreadsReply {
    items: Vec<service::VisitorThread>,
}

/// The visitor's own conversations, newest first.
#[utoipa::path(
    get,
    path = "/widget/threads",
    tag = "widget",
    responses((status = 200, description = "The visitor's own conversations, newest first (`items`)", body = ThreadsReply), crate::openapi::Errors),
    security(("visitor" = []))
)]
async fn threads(
    State(state): State<AppState>,
    auth: VisitorAuth,
) -> AppResult<Json<ThreadsReply>> {
    Ok(Json(ThreadsReply {
        items: service::threads(&state, auth.visitor.id)?,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = widget::SendBody)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SendBody {
    /// At most 5,000 characters; not blank unless files come with it.
    #[schema(max_length = 5000)]
    content: String,
    /// The sender's own id of the message (at most 100 bytes, no control
    /// characters): the same id again answers with the message it made.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    client_msg_id: String,
    reply_to_id: Option<MessageId>,
    #[schema(max_items = 10)]
    #[serde(default)]
    attachment_ids: Vec<AttachmentId>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct SendReply {
    message: Message,
    thread: ThreadRef,
}

/// 201 with the new message; 200 with the original when the clientMsgId
/// was already used (a retry after a lost answer).
#[utoipa::path(
    post,
    path = "/widget/messages",
    tag = "widget",
    request_body = SendBody,
    responses((status = 201, description = "Created", body = SendReply), (status = 200, description = "The same request again: what the first one made", body = SendReply), crate::openapi::Errors),
    security(("visitor" = []))
)]
async fn send(
    State(state): State<AppState>,
    auth: VisitorAuth,
    ApiJson(body): ApiJson<SendBody>,
) -> AppResult<(StatusCode, Json<SendReply>)> {
    let new = NewMessage::parse(
        &body.content,
        Some(&body.client_msg_id),
        body.reply_to_id,
        false,
        body.attachment_ids,
    )?;
    let sent = send::from_visitor(&state, auth.visitor.id, &auth.space, new).await?;
    let status = if sent.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let reply = SendReply {
        thread: ThreadRef::from(&sent.thread),
        message: sent.message.redacted(),
    };
    Ok((status, Json(reply)))
}

/// `null` and absent differ: absent leaves a field, `null` clears it.
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = widget::VisitorBody)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VisitorBody {
    #[serde(default, deserialize_with = "double_option")]
    display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    phone: Option<Option<String>>,
    attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

#[utoipa::path(
    patch,
    path = "/widget/visitor",
    tag = "widget",
    request_body = VisitorBody,
    responses((status = 200, description = "OK", body = PublicVisitor), crate::openapi::Errors),
    security(("visitor" = []))
)]
async fn update_visitor(
    State(state): State<AppState>,
    auth: VisitorAuth,
    ApiJson(body): ApiJson<VisitorBody>,
) -> AppResult<Json<PublicVisitor>> {
    let patch = VisitorPatch::parse(
        body.display_name.as_ref().map(Option::as_deref),
        body.email.as_ref().map(Option::as_deref),
        body.phone.as_ref().map(Option::as_deref),
        None,
    )?;
    let attributes = body
        .attributes
        .as_ref()
        .map(AttributesPatch::parse)
        .transpose()?;
    Ok(Json(
        service::update_visitor(&state, auth.visitor.id, patch, attributes).await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = widget::IdentifyBody)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IdentifyBody {
    token: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct IdentifyReply {
    visitor: PublicVisitor,
    /// Set when the widget must switch to another visitor's session (the
    /// same user's from another device, or a fresh one for a new user).
    session_token: Option<String>,
}

/// 200 with the verified visitor; 401 `identity_invalid` for any bad
/// token, 409 `identity_off` when the space does not take them.
#[utoipa::path(
    post,
    path = "/widget/identify",
    tag = "widget",
    request_body = IdentifyBody,
    responses((status = 200, description = "OK", body = IdentifyReply), crate::openapi::Errors),
    security(("visitor" = []))
)]
async fn identify(
    State(state): State<AppState>,
    auth: VisitorAuth,
    ApiJson(body): ApiJson<IdentifyBody>,
) -> AppResult<Json<IdentifyReply>> {
    let done = identity::identify(&state, &auth.space, auth.visitor.id, &body.token).await?;
    Ok(Json(IdentifyReply {
        visitor: done.visitor.into(),
        session_token: done.session_token,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = widget::OfflineBody)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OfflineBody {
    name: Option<String>,
    email: String,
    content: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ThreadReply {
    thread: Option<ThreadRef>,
}

#[utoipa::path(
    post,
    path = "/widget/offline",
    tag = "widget",
    request_body = OfflineBody,
    responses((status = 201, description = "Created", body = ThreadReply), crate::openapi::Errors),
    security(("visitor" = []))
)]
async fn offline(
    State(state): State<AppState>,
    auth: VisitorAuth,
    ApiJson(body): ApiJson<OfflineBody>,
) -> AppResult<(StatusCode, Json<ThreadReply>)> {
    let form = OfflineMessage {
        name: validate::optional_name("name", body.name.as_deref(), MAX_DISPLAY_NAME)?,
        email: validate::email(&body.email)?,
        message: NewMessage::parse(&body.content, None, None, false, Vec::new())?,
    };
    let thread = send::offline_from_visitor(&state, auth.visitor.id, &auth.space, form)
        .await?
        .thread;
    let reply = ThreadReply {
        thread: Some(ThreadRef::from(&thread)),
    };
    Ok((StatusCode::CREATED, Json(reply)))
}

#[utoipa::path(
    post,
    path = "/widget/close",
    tag = "widget",
    responses((status = 200, description = "OK", body = ThreadReply), crate::openapi::Errors),
    security(("visitor" = []))
)]
async fn close(State(state): State<AppState>, auth: VisitorAuth) -> AppResult<Json<ThreadReply>> {
    let thread = service::close(&state, auth.visitor.id).await?;
    Ok(Json(ThreadReply { thread }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = widget::ReadBody)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReadBody {
    up_to: MessageId,
}

#[utoipa::path(
    post,
    path = "/widget/read",
    tag = "widget",
    request_body = ReadBody,
    responses((status = 204, description = "Done"), crate::openapi::Errors),
    security(("visitor" = []))
)]
async fn read(
    State(state): State<AppState>,
    auth: VisitorAuth,
    ApiJson(body): ApiJson<ReadBody>,
) -> AppResult<StatusCode> {
    service::read(&state, auth.visitor.id, body.up_to).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = widget::RatingBody)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RatingBody {
    thread_id: ThreadId,
    #[serde(alias = "rating")]
    score: i64,
    comment: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct RatingReply {
    thread_id: ThreadId,
    rating: Option<crate::threads::model::Rating>,
}

/// 201 with the stored rating.
#[utoipa::path(
    post,
    path = "/widget/rating",
    tag = "widget",
    request_body = RatingBody,
    responses((status = 201, description = "Created", body = RatingReply), crate::openapi::Errors),
    security(("visitor" = []))
)]
async fn rate(
    State(state): State<AppState>,
    auth: VisitorAuth,
    ApiJson(body): ApiJson<RatingBody>,
) -> AppResult<(StatusCode, Json<RatingReply>)> {
    let rating = NewRating::parse(body.score, body.comment.as_deref())?;
    let thread = service::rate(&state, auth.visitor.id, body.thread_id, rating).await?;
    let reply = RatingReply {
        thread_id: thread.id,
        rating: thread.rating,
    };
    Ok((StatusCode::CREATED, Json(reply)))
}
