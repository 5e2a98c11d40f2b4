//! `/chat-spaces`: create, list, read, change and delete spaces, rotate
//! their widget key, and hand out the embed snippet.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::audit::Who;
use crate::auth::{AdminAuth, AgentAuth};
use crate::error::AppResult;
use crate::extract::ClientIp;
use crate::extract::{ApiJson, ApiPath};
use crate::ids::SpaceId;
use crate::spaces::model::{ChatSpace, SpaceSettings};
use crate::spaces::service::{self, SpacePatch};
use crate::state::AppState;
use crate::store::Page;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/chat-spaces", get(list).post(create))
        .route("/chat-spaces/{id}", get(show).patch(update).delete(remove))
        .route("/chat-spaces/{id}/rotate-key", post(rotate_key))
        .route("/chat-spaces/{id}/embed", get(embed))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = spaces::CreateBody)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    name: String,
    #[serde(default)]
    allowed_domains: Vec<String>,
    /// A partial settings object, merged into the defaults.
    settings: Option<Map<String, Value>>,
}

#[utoipa::path(
    post,
    path = "/chat-spaces",
    tag = "chat-spaces",
    request_body = CreateBody,
    responses((status = 201, description = "Created", body = ChatSpace), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn create(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    ApiJson(body): ApiJson<CreateBody>,
) -> AppResult<(StatusCode, Json<ChatSpace>)> {
    let defaults = SpaceSettings::default();
    let settings = match &body.settings {
        Some(patch) => service::merge_settings(&defaults, patch)?,
        None => defaults,
    };
    let space = service::create_with(
        &state,
        caller.org(),
        &body.name,
        body.allowed_domains,
        settings,
    )
    .await?;
    tracing::info!(org = %caller.org(), space = %space.id, agent = %caller.id(), "chat space created");
    Ok((StatusCode::CREATED, Json(space)))
}

#[utoipa::path(
    get,
    path = "/chat-spaces",
    tag = "chat-spaces",
    responses((status = 200, description = "OK", body = crate::openapi::WholeList<ChatSpace>), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn list(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
) -> AppResult<Json<Page<ChatSpace>>> {
    // An organization has a handful of spaces; one page holds them all.
    let access = caller.access();
    let mut items = service::list(&state, caller.org())?;
    items.retain(|s| access.works_in(s.id));
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

#[utoipa::path(
    get,
    path = "/chat-spaces/{id}",
    tag = "chat-spaces",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "OK", body = ChatSpace), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn show(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<SpaceId>,
) -> AppResult<Json<ChatSpace>> {
    if !caller.access().works_in(id) {
        return Err(crate::error::AppError::NotFound("chat space"));
    }
    Ok(Json(service::get(&state, caller.org(), id)?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = spaces::UpdateBody)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UpdateBody {
    name: Option<String>,
    allowed_domains: Option<Vec<String>>,
    /// Only the settings named here change.
    settings: Option<Map<String, Value>>,
}

#[utoipa::path(
    patch,
    path = "/chat-spaces/{id}",
    tag = "chat-spaces",
    params(("id" = uuid::Uuid, Path)),
    request_body = UpdateBody,
    responses((status = 200, description = "OK", body = ChatSpace), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn update(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminAuth(caller): AdminAuth,
    ApiPath(id): ApiPath<SpaceId>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> AppResult<Json<ChatSpace>> {
    let patch = SpacePatch {
        name: body.name,
        allowed_domains: body.allowed_domains,
        settings: body.settings,
    };
    let space = service::update(&state, caller.org(), id, patch, &Who::caller(&caller, ip)).await?;
    tracing::info!(org = %caller.org(), space = %id, agent = %caller.id(), "chat space updated");
    if space.settings.assignment == crate::spaces::model::Assignment::RoundRobin {
        crate::threads::assignment::fill_quietly(&state, caller.org()).await;
    }
    Ok(Json(space))
}

#[utoipa::path(
    delete,
    path = "/chat-spaces/{id}",
    tag = "chat-spaces",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 204, description = "Done"), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn remove(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminAuth(caller): AdminAuth,
    ApiPath(id): ApiPath<SpaceId>,
) -> AppResult<StatusCode> {
    service::delete(&state, caller.org(), id, &Who::caller(&caller, ip)).await?;
    tracing::info!(org = %caller.org(), space = %id, agent = %caller.id(), "chat space deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct KeyReply {
    widget_key: String,
    snippet: String,
}

#[utoipa::path(
    post,
    path = "/chat-spaces/{id}/rotate-key",
    tag = "chat-spaces",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "OK", body = KeyReply), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn rotate_key(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminAuth(caller): AdminAuth,
    ApiPath(id): ApiPath<SpaceId>,
) -> AppResult<Json<KeyReply>> {
    let space = service::rotate_key(&state, caller.org(), id, &Who::caller(&caller, ip)).await?;
    tracing::info!(org = %caller.org(), space = %id, agent = %caller.id(), "widget key rotated");
    Ok(Json(key_reply(&state, space.widget_key)))
}

#[utoipa::path(
    get,
    path = "/chat-spaces/{id}/embed",
    tag = "chat-spaces",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "OK", body = KeyReply), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn embed(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<SpaceId>,
) -> AppResult<Json<KeyReply>> {
    if !caller.access().works_in(id) {
        return Err(crate::error::AppError::NotFound("chat space"));
    }
    let space = service::get(&state, caller.org(), id)?;
    Ok(Json(key_reply(&state, space.widget_key)))
}

fn key_reply(state: &AppState, widget_key: String) -> KeyReply {
    KeyReply {
        snippet: service::embed_snippet(state.base_url(), &widget_key),
        widget_key,
    }
}
