//! The integrator's routes (PRODUCT.md §4a): `/api-tokens`,
//! `/signing-keys`, `/members`, `/management/threads…`, `/dialogs…`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::Who;
use crate::auth::AdminAuth;
use crate::error::AppResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, ClientIp};
use crate::ids::{ApiTokenId, AttachmentId, MessageId, SigningKeyId, SpaceId, ThreadId};
use crate::integrations::auth::{AdminOrManagement, ManagementAuth, MemberAuth};
use crate::integrations::dialogs::{self, Which};
use crate::integrations::model::{AccessScope, ApiTokenView, Member, SigningKeyView, TokenScope};
use crate::integrations::objects::{self, NewObjectThread, ObjectPatch};
use crate::integrations::views::{self, Dialog, ObjectThread};
use crate::integrations::{credentials, members};
use crate::messages::model::Message;
use crate::messages::send::{self, NewMessage};
use crate::state::AppState;
use crate::store::{Page, ThreadCursor};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api-tokens", get(list_tokens).post(create_token))
        .route("/api-tokens/{id}", delete(delete_token))
        .route("/signing-keys", get(list_keys).post(create_key))
        .route("/signing-keys/{id}", delete(delete_key))
        .route("/members", get(list_members))
        .route("/members/{external_id}", get(show_member))
        .route("/management/threads", post(create_thread))
        .route("/management/threads/by-ref/{kind}/{id}", get(thread_by_ref))
        .route(
            "/management/threads/{id}",
            get(show_thread).patch(patch_thread).delete(delete_thread),
        )
        .route(
            "/management/threads/{id}/participants",
            post(add_participant),
        )
        .route(
            "/management/threads/{id}/participants/{external_id}",
            delete(remove_participant),
        )
        .route("/management/threads/{id}/messages", post(post_message))
        .merge(member_routes())
}

/// The member chat API, called from the platform's own pages (the embed):
/// cross-origin, with the member token as the only authority.
fn member_routes() -> Router<AppState> {
    Router::new()
        .route("/dialogs", get(list_dialogs))
        .route("/dialogs/by-object/{kind}/{id}", get(dialog_by_object))
        .route("/dialogs/{id}", get(show_dialog))
        .route("/dialogs/{id}/join", post(join))
        .route("/dialogs/{id}/leave", post(leave))
        .route(
            "/dialogs/{id}/messages",
            get(dialog_messages).post(send_dialog_message),
        )
        .route("/dialogs/{id}/read", post(read))
        .layer(crate::widget::cors::layer())
}

// API tokens.

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = integrations::CreateTokenBody, example = json!({"name": "CRM", "scopes": ["management", "agent"]}))]
#[serde(deny_unknown_fields)]
struct CreateTokenBody {
    name: String,
    scopes: Vec<String>,
}

/// A new token: the only time its secret is shown.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct CreatedToken {
    id: ApiTokenId,
    name: String,
    scopes: Vec<TokenScope>,
    token: String,
    created_at: DateTime<Utc>,
}

#[utoipa::path(
    post,
    path = "/api-tokens",
    tag = "integrations",
    request_body = CreateTokenBody,
    responses((status = 201, description = "Created", body = CreatedToken), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn create_token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminAuth(caller): AdminAuth,
    ApiJson(body): ApiJson<CreateTokenBody>,
) -> AppResult<(StatusCode, Json<CreatedToken>)> {
    let name = credentials::parse_name(&body.name)?;
    let scopes = credentials::parse_scopes(&body.scopes)?;
    let (token, secret) = credentials::create_token(
        &state,
        caller.org(),
        name,
        scopes,
        &Who::caller(&caller, ip),
    )
    .await?;
    tracing::info!(org = %caller.org(), token = %token.id, agent = %caller.id(), "API token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            id: token.id,
            name: token.name,
            scopes: token.scopes,
            token: secret,
            created_at: token.created_at,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/api-tokens",
    tag = "integrations",
    responses((status = 200, description = "OK", body = crate::openapi::WholeList<ApiTokenView>), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn list_tokens(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
) -> AppResult<Json<Page<ApiTokenView>>> {
    Ok(Json(Page {
        items: credentials::list_tokens(&state, caller.org())?
            .into_iter()
            .map(ApiTokenView::from)
            .collect(),
        next_cursor: None,
    }))
}

#[utoipa::path(
    delete,
    path = "/api-tokens/{id}",
    tag = "integrations",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 204, description = "Done"), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn delete_token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminAuth(caller): AdminAuth,
    ApiPath(id): ApiPath<ApiTokenId>,
) -> AppResult<StatusCode> {
    credentials::delete_token(&state, caller.org(), id, &Who::caller(&caller, ip)).await?;
    tracing::info!(org = %caller.org(), token = %id, agent = %caller.id(), "API token deleted");
    Ok(StatusCode::NO_CONTENT)
}

// Signing keys.

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = integrations::CreateKeyBody)]
#[serde(deny_unknown_fields)]
struct CreateKeyBody {
    name: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct CreatedKey {
    id: SigningKeyId,
    name: String,
    secret: String,
    created_at: DateTime<Utc>,
}

#[utoipa::path(
    post,
    path = "/signing-keys",
    tag = "integrations",
    request_body = CreateKeyBody,
    responses((status = 201, description = "Created", body = CreatedKey), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn create_key(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminAuth(caller): AdminAuth,
    ApiJson(body): ApiJson<CreateKeyBody>,
) -> AppResult<(StatusCode, Json<CreatedKey>)> {
    let name = credentials::parse_name(&body.name)?;
    let (key, secret) =
        credentials::create_key(&state, caller.org(), name, &Who::caller(&caller, ip)).await?;
    tracing::info!(org = %caller.org(), key = %key.id, agent = %caller.id(), "signing key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            id: key.id,
            name: key.name,
            secret,
            created_at: key.created_at,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/signing-keys",
    tag = "integrations",
    responses((status = 200, description = "OK", body = crate::openapi::WholeList<SigningKeyView>), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn list_keys(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
) -> AppResult<Json<Page<SigningKeyView>>> {
    Ok(Json(Page {
        items: credentials::list_keys(&state, caller.org())?
            .into_iter()
            .map(SigningKeyView::from)
            .collect(),
        next_cursor: None,
    }))
}

#[utoipa::path(
    delete,
    path = "/signing-keys/{id}",
    tag = "integrations",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 204, description = "Done"), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn delete_key(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminAuth(caller): AdminAuth,
    ApiPath(id): ApiPath<SigningKeyId>,
) -> AppResult<StatusCode> {
    credentials::delete_key(&state, caller.org(), id, &Who::caller(&caller, ip)).await?;
    tracing::info!(org = %caller.org(), key = %id, agent = %caller.id(), "signing key deleted");
    Ok(StatusCode::NO_CONTENT)
}

// Members.

#[utoipa::path(
    get,
    path = "/members",
    tag = "integrations",
    responses((status = 200, description = "OK", body = crate::openapi::WholeList<Member>), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn list_members(
    State(state): State<AppState>,
    AdminOrManagement(org): AdminOrManagement,
) -> AppResult<Json<Page<Member>>> {
    Ok(Json(Page {
        items: members::list(&state, org)?,
        next_cursor: None,
    }))
}

#[utoipa::path(
    get,
    path = "/members/{external_id}",
    tag = "integrations",
    params(("external_id" = String, Path)),
    responses((status = 200, description = "OK", body = Member), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn show_member(
    State(state): State<AppState>,
    AdminOrManagement(org): AdminOrManagement,
    ApiPath(external_id): ApiPath<String>,
) -> AppResult<Json<Member>> {
    Ok(Json(members::get(&state, org, &external_id)?))
}

// Object-bound threads (management scope).

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = integrations::RefBody)]
#[serde(deny_unknown_fields)]
struct RefBody {
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = integrations::CreateThreadBody, example = json!({"chatSpaceId": "01890000-0000-7000-8000-000000000001", "externalRef": {"type": "deal", "id": "D-1042"}, "subject": "Deal D-1042", "participants": ["user-17"], "accessScopes": [{"tenant": "acme", "scope1": ["sales"], "scope2": ["emea"]}]}))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateThreadBody {
    chat_space_id: SpaceId,
    external_ref: RefBody,
    subject: Option<String>,
    #[serde(default)]
    participants: Vec<String>,
    #[serde(default)]
    access_scopes: Vec<AccessScope>,
}

#[utoipa::path(
    post,
    path = "/management/threads",
    tag = "management",
    request_body = CreateThreadBody,
    responses((status = 201, description = "Created", body = ObjectThread), (status = 200, description = "The same request again: what the first one made", body = ObjectThread), crate::openapi::Errors),
    security(("management" = []))
)]
async fn create_thread(
    State(state): State<AppState>,
    ManagementAuth(token): ManagementAuth,
    ApiJson(body): ApiJson<CreateThreadBody>,
) -> AppResult<(StatusCode, Json<ObjectThread>)> {
    let new = NewObjectThread {
        chat_space_id: body.chat_space_id,
        external_ref: objects::parse_ref(&body.external_ref.kind, &body.external_ref.id)?,
        subject: objects::parse_subject(body.subject.as_deref())?,
        participants: objects::parse_participants(&body.participants)?,
        access_scopes: objects::parse_scopes(body.access_scopes)?,
    };
    let org = token.organization_id;
    let (thread, created) = objects::create(&state, org, new).await?;
    if created {
        tracing::info!(%org, thread = %thread.id, token = %token.id, "object thread created");
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(views::object_thread(&state.store.read()?, &thread)),
    ))
}

#[utoipa::path(
    get,
    path = "/management/threads/by-ref/{kind}/{id}",
    tag = "management",
    params(("kind" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "OK", body = ObjectThread), crate::openapi::Errors),
    security(("management" = []))
)]
async fn thread_by_ref(
    State(state): State<AppState>,
    ManagementAuth(token): ManagementAuth,
    ApiPath((kind, id)): ApiPath<(String, String)>,
) -> AppResult<Json<ObjectThread>> {
    let r = objects::parse_ref(&kind, &id)?;
    let thread = objects::get_by_ref(&state, token.organization_id, &r)?;
    Ok(Json(views::object_thread(&state.store.read()?, &thread)))
}

#[utoipa::path(
    get,
    path = "/management/threads/{id}",
    tag = "management",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "OK", body = ObjectThread), crate::openapi::Errors),
    security(("management" = []))
)]
async fn show_thread(
    State(state): State<AppState>,
    ManagementAuth(token): ManagementAuth,
    ApiPath(id): ApiPath<ThreadId>,
) -> AppResult<Json<ObjectThread>> {
    let read = state.store.read()?;
    let thread = objects::object_thread_in(&read, token.organization_id, id)?;
    Ok(Json(views::object_thread(&read, &thread)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = integrations::PatchThreadBody)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PatchThreadBody {
    /// Absent: unchanged; null: none.
    #[serde(default, deserialize_with = "crate::extract::present")]
    subject: Option<Option<String>>,
    access_scopes: Option<Vec<AccessScope>>,
}

#[utoipa::path(
    patch,
    path = "/management/threads/{id}",
    tag = "management",
    params(("id" = uuid::Uuid, Path)),
    request_body = PatchThreadBody,
    responses((status = 200, description = "OK", body = ObjectThread), crate::openapi::Errors),
    security(("management" = []))
)]
async fn patch_thread(
    State(state): State<AppState>,
    ManagementAuth(token): ManagementAuth,
    ApiPath(id): ApiPath<ThreadId>,
    ApiJson(body): ApiJson<PatchThreadBody>,
) -> AppResult<Json<ObjectThread>> {
    let patch = ObjectPatch {
        subject: body
            .subject
            .map(|s| objects::parse_subject(s.as_deref()))
            .transpose()?,
        access_scopes: body.access_scopes.map(objects::parse_scopes).transpose()?,
    };
    let thread = objects::patch(&state, token.organization_id, id, patch).await?;
    Ok(Json(views::object_thread(&state.store.read()?, &thread)))
}

#[utoipa::path(
    delete,
    path = "/management/threads/{id}",
    tag = "management",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 204, description = "Done"), crate::openapi::Errors),
    security(("management" = []))
)]
async fn delete_thread(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ManagementAuth(token): ManagementAuth,
    ApiPath(id): ApiPath<ThreadId>,
) -> AppResult<StatusCode> {
    objects::delete(&state, token.organization_id, id, &Who::token(&token, ip)).await?;
    tracing::info!(org = %token.organization_id, thread = %id, token = %token.id, "object thread deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = integrations::ParticipantBody)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ParticipantBody {
    external_id: String,
    name: Option<String>,
}

#[utoipa::path(
    post,
    path = "/management/threads/{id}/participants",
    tag = "management",
    params(("id" = uuid::Uuid, Path)),
    request_body = ParticipantBody,
    responses((status = 200, description = "OK", body = ObjectThread), crate::openapi::Errors),
    security(("management" = []))
)]
async fn add_participant(
    State(state): State<AppState>,
    ManagementAuth(token): ManagementAuth,
    ApiPath(id): ApiPath<ThreadId>,
    ApiJson(body): ApiJson<ParticipantBody>,
) -> AppResult<Json<ObjectThread>> {
    let external_id = members::parse_external_id(&body.external_id)?;
    let name = body.name.as_deref().map(members::check_name).transpose()?;
    let thread =
        objects::add_participant(&state, token.organization_id, id, external_id, name).await?;
    Ok(Json(views::object_thread(&state.store.read()?, &thread)))
}

#[utoipa::path(
    delete,
    path = "/management/threads/{id}/participants/{external_id}",
    tag = "management",
    params(("id" = uuid::Uuid, Path), ("external_id" = String, Path)),
    responses((status = 200, description = "OK", body = ObjectThread), crate::openapi::Errors),
    security(("management" = []))
)]
async fn remove_participant(
    State(state): State<AppState>,
    ManagementAuth(token): ManagementAuth,
    ApiPath((id, external_id)): ApiPath<(ThreadId, String)>,
) -> AppResult<Json<ObjectThread>> {
    let thread =
        objects::remove_participant(&state, token.organization_id, id, external_id).await?;
    Ok(Json(views::object_thread(&state.store.read()?, &thread)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = integrations::BackendMessageBody)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BackendMessageBody {
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
    client_msg_id: Option<String>,
}

#[utoipa::path(
    post,
    path = "/management/threads/{id}/messages",
    tag = "management",
    params(("id" = uuid::Uuid, Path)),
    request_body = BackendMessageBody,
    responses((status = 201, description = "Created", body = Message), (status = 200, description = "The same request again: what the first one made", body = Message), crate::openapi::Errors),
    security(("management" = []))
)]
async fn post_message(
    State(state): State<AppState>,
    ManagementAuth(token): ManagementAuth,
    ApiPath(id): ApiPath<ThreadId>,
    ApiJson(body): ApiJson<BackendMessageBody>,
) -> AppResult<(StatusCode, Json<Message>)> {
    let new = NewMessage::parse(
        &body.content,
        body.client_msg_id.as_deref(),
        None,
        false,
        Vec::new(),
    )?;
    let sent = send::from_backend(&state, token.organization_id, token.id, id, new).await?;
    let status = if sent.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(sent.message.redacted())))
}

// The member chat API.

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DialogsQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/dialogs",
    tag = "dialogs",
    params(DialogsQuery),
    responses((status = 200, description = "OK", body = Page<Dialog>), crate::openapi::Errors),
    security(("member" = []))
)]
async fn list_dialogs(
    State(state): State<AppState>,
    MemberAuth(who): MemberAuth,
    ApiQuery(q): ApiQuery<DialogsQuery>,
) -> AppResult<Json<Page<Dialog>>> {
    let which = Which::parse(q.kind.as_deref().unwrap_or("participating"))?;
    let cursor = match q.cursor.as_deref() {
        Some(c) => Some(ThreadCursor::parse(c).ok_or_else(|| {
            crate::error::AppError::validation("cursor is not one this server gave out")
        })?),
        None => None,
    };
    let limit = crate::validate::limit(q.limit)?;
    Ok(Json(dialogs::list(&state, &who, which, cursor, limit)?))
}

#[utoipa::path(
    get,
    path = "/dialogs/by-object/{kind}/{id}",
    tag = "dialogs",
    params(("kind" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "OK", body = Dialog), crate::openapi::Errors),
    security(("member" = []))
)]
async fn dialog_by_object(
    State(state): State<AppState>,
    MemberAuth(who): MemberAuth,
    ApiPath((kind, id)): ApiPath<(String, String)>,
) -> AppResult<Json<Dialog>> {
    let r = objects::parse_ref(&kind, &id)?;
    Ok(Json(dialogs::by_object(&state, &who, &r)?))
}

#[utoipa::path(
    get,
    path = "/dialogs/{id}",
    tag = "dialogs",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "OK", body = Dialog), crate::openapi::Errors),
    security(("member" = []))
)]
async fn show_dialog(
    State(state): State<AppState>,
    MemberAuth(who): MemberAuth,
    ApiPath(id): ApiPath<ThreadId>,
) -> AppResult<Json<Dialog>> {
    Ok(Json(dialogs::get(&state, &who, id)?))
}

#[utoipa::path(
    post,
    path = "/dialogs/{id}/join",
    tag = "dialogs",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "OK", body = Dialog), crate::openapi::Errors),
    security(("member" = []))
)]
async fn join(
    State(state): State<AppState>,
    MemberAuth(who): MemberAuth,
    ApiPath(id): ApiPath<ThreadId>,
) -> AppResult<Json<Dialog>> {
    Ok(Json(dialogs::join(&state, &who, id).await?))
}

#[utoipa::path(
    post,
    path = "/dialogs/{id}/leave",
    tag = "dialogs",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 204, description = "Done"), crate::openapi::Errors),
    security(("member" = []))
)]
async fn leave(
    State(state): State<AppState>,
    MemberAuth(who): MemberAuth,
    ApiPath(id): ApiPath<ThreadId>,
) -> AppResult<StatusCode> {
    dialogs::leave(&state, &who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct MessagesQuery {
    before: Option<MessageId>,
    after: Option<MessageId>,
    cursor: Option<MessageId>,
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/dialogs/{id}/messages",
    tag = "dialogs",
    params(("id" = uuid::Uuid, Path), MessagesQuery),
    responses((status = 200, description = "OK", body = Page<Message>), crate::openapi::Errors),
    security(("member" = []))
)]
async fn dialog_messages(
    State(state): State<AppState>,
    MemberAuth(who): MemberAuth,
    ApiPath(id): ApiPath<ThreadId>,
    ApiQuery(q): ApiQuery<MessagesQuery>,
) -> AppResult<Json<Page<Message>>> {
    let limit = crate::validate::limit(q.limit)?;
    let (before, after) = crate::messages::service::cursor_or(q.before, q.after, q.cursor)?;
    Ok(Json(dialogs::messages(
        &state, &who, id, before, after, limit,
    )?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = integrations::MemberSendBody)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MemberSendBody {
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

#[utoipa::path(
    post,
    path = "/dialogs/{id}/messages",
    tag = "dialogs",
    params(("id" = uuid::Uuid, Path)),
    request_body = MemberSendBody,
    responses((status = 201, description = "Created", body = Message), (status = 200, description = "The same request again: what the first one made", body = Message), crate::openapi::Errors),
    security(("member" = []))
)]
async fn send_dialog_message(
    State(state): State<AppState>,
    MemberAuth(who): MemberAuth,
    ApiPath(id): ApiPath<ThreadId>,
    ApiJson(body): ApiJson<MemberSendBody>,
) -> AppResult<(StatusCode, Json<Message>)> {
    let new = NewMessage::parse(
        &body.content,
        Some(&body.client_msg_id),
        body.reply_to_id,
        false,
        body.attachment_ids,
    )?;
    let sent = send::from_member(&state, &who.member, id, &who.scopes, new).await?;
    let status = if sent.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(sent.message.redacted())))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = integrations::ReadBody)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ReadBody {
    up_to: MessageId,
}

#[utoipa::path(
    post,
    path = "/dialogs/{id}/read",
    tag = "dialogs",
    params(("id" = uuid::Uuid, Path)),
    request_body = ReadBody,
    responses((status = 204, description = "Done"), crate::openapi::Errors),
    security(("member" = []))
)]
async fn read(
    State(state): State<AppState>,
    MemberAuth(who): MemberAuth,
    ApiPath(id): ApiPath<ThreadId>,
    ApiJson(body): ApiJson<ReadBody>,
) -> AppResult<StatusCode> {
    dialogs::mark_read(&state, &who, id, body.up_to).await?;
    Ok(StatusCode::NO_CONTENT)
}
