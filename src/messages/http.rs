//! Message routes for agents: history in both directions, send, edit, delete.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::auth::AgentAuth;
use crate::error::AppResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::ids::{AttachmentId, MessageId, ThreadId};
use crate::messages::model::Message;
use crate::messages::send::{self, NewMessage};
use crate::messages::service::{self, Audience};
use crate::state::AppState;
use crate::store::Page;
use crate::validate;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/threads/{id}/messages", get(list).post(send))
        .route("/messages/{id}", patch(edit).delete(remove))
        .route("/messages/{id}/attachments", post(attach))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListQuery {
    before: Option<MessageId>,
    after: Option<MessageId>,
    cursor: Option<MessageId>,
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/threads/{id}/messages",
    tag = "messages",
    params(("id" = uuid::Uuid, Path), ListQuery),
    responses((status = 200, description = "OK", body = Page<Message>), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn list(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<ThreadId>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> AppResult<Json<Page<Message>>> {
    let read = state.store.read()?;
    let thread = crate::threads::rules::visible_thread(&read, caller.org(), &caller.access(), id)?;
    let limit = validate::limit(q.limit)?;
    let (before, after) = service::cursor_or(q.before, q.after, q.cursor)?;
    Ok(Json(service::page(
        &read,
        thread.id,
        before,
        after,
        limit,
        Audience::Agents,
    )?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = messages::SendBody, example = json!({"content": "Hello! How can I help?", "clientMsgId": "c-7f3a", "internal": false}))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendBody {
    /// At most 5,000 characters; not blank unless files come with it.
    #[schema(max_length = 5000)]
    pub content: String,
    /// The sender's own id of the message (at most 100 bytes, no control
    /// characters): the same id again answers with the message it made.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    pub client_msg_id: Option<String>,
    pub reply_to_id: Option<MessageId>,
    #[schema(max_items = 10)]
    #[serde(default)]
    pub attachment_ids: Vec<AttachmentId>,
    #[serde(default)]
    pub internal: bool,
}

/// 201 with the new message; 200 with the original when the clientMsgId
/// was already used (a retry).
#[utoipa::path(
    post,
    path = "/threads/{id}/messages",
    tag = "messages",
    params(("id" = uuid::Uuid, Path)),
    request_body = SendBody,
    responses((status = 201, description = "Created", body = Message), (status = 200, description = "The same request again: what the first one made", body = Message), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn send(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<ThreadId>,
    ApiJson(body): ApiJson<SendBody>,
) -> AppResult<(StatusCode, Json<Message>)> {
    let new = NewMessage::parse(
        &body.content,
        body.client_msg_id.as_deref(),
        body.reply_to_id,
        body.internal,
        body.attachment_ids,
    )?;
    let sent = send::from_agent(&state, &caller, id, new).await?;
    let status = if sent.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(sent.message.redacted())))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = messages::EditBody)]
#[serde(deny_unknown_fields)]
struct EditBody {
    content: String,
}

#[utoipa::path(
    patch,
    path = "/messages/{id}",
    tag = "messages",
    params(("id" = uuid::Uuid, Path)),
    request_body = EditBody,
    responses((status = 200, description = "OK", body = Message), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn edit(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<MessageId>,
    ApiJson(body): ApiJson<EditBody>,
) -> AppResult<Json<Message>> {
    Ok(Json(
        service::edit(&state, &caller, id, body.content).await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/messages/{id}",
    tag = "messages",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "OK", body = Message), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn remove(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<MessageId>,
) -> AppResult<Json<Message>> {
    Ok(Json(service::delete(&state, &caller, id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = messages::AttachBody)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AttachBody {
    /// Files uploaded with `POST /attachments?threadId=` for this thread.
    attachment_ids: Vec<AttachmentId>,
}

/// Adds files to the caller's own message (within the edit window).
#[utoipa::path(
    post,
    path = "/messages/{id}/attachments",
    tag = "messages",
    params(("id" = uuid::Uuid, Path)),
    request_body = AttachBody,
    responses((status = 200, description = "OK", body = Message), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn attach(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<MessageId>,
    ApiJson(body): ApiJson<AttachBody>,
) -> AppResult<Json<Message>> {
    Ok(Json(
        service::attach(&state, &caller, id, body.attachment_ids).await?,
    ))
}
