//! `/labels`: every agent reads the organization's labels; admins write them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde::Deserialize;

use crate::audit::Who;
use crate::auth::{AdminAuth, AgentAuth};
use crate::error::AppResult;
use crate::extract::{ApiJson, ApiPath, ClientIp};
use crate::ids::LabelId;
use crate::labels::model::Label;
use crate::labels::service;
use crate::state::AppState;
use crate::store::Page;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/labels", get(list).post(create))
        .route("/labels/{id}", patch(update).delete(remove))
}

#[utoipa::path(
    get,
    path = "/labels",
    tag = "labels",
    responses((status = 200, description = "OK", body = crate::openapi::WholeList<Label>), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn list(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
) -> AppResult<Json<Page<Label>>> {
    // Few per organization: the app loads them all once.
    Ok(Json(Page {
        items: service::list(&state, caller.org())?,
        next_cursor: None,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = labels::CreateBody)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    name: String,
    color: String,
}

#[utoipa::path(
    post,
    path = "/labels",
    tag = "labels",
    request_body = CreateBody,
    responses((status = 201, description = "Created", body = Label), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn create(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminAuth(caller): AdminAuth,
    ApiJson(body): ApiJson<CreateBody>,
) -> AppResult<(StatusCode, Json<Label>)> {
    let who = Who::caller(&caller, ip);
    let label = service::create(&state, caller.org(), &body.name, &body.color, &who).await?;
    Ok((StatusCode::CREATED, Json(label)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = labels::PatchBody)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PatchBody {
    name: Option<String>,
    color: Option<String>,
}

#[utoipa::path(
    patch,
    path = "/labels/{id}",
    tag = "labels",
    params(("id" = uuid::Uuid, Path)),
    request_body = PatchBody,
    responses((status = 200, description = "OK", body = Label), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn update(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminAuth(caller): AdminAuth,
    ApiPath(id): ApiPath<LabelId>,
    ApiJson(body): ApiJson<PatchBody>,
) -> AppResult<Json<Label>> {
    let who = Who::caller(&caller, ip);
    let label = service::update(
        &state,
        caller.org(),
        id,
        body.name.as_deref(),
        body.color.as_deref(),
        &who,
    )
    .await?;
    Ok(Json(label))
}

#[utoipa::path(
    delete,
    path = "/labels/{id}",
    tag = "labels",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 204, description = "Done"), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn remove(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminAuth(caller): AdminAuth,
    ApiPath(id): ApiPath<LabelId>,
) -> AppResult<StatusCode> {
    service::delete(&state, caller.org(), id, &Who::caller(&caller, ip)).await?;
    Ok(StatusCode::NO_CONTENT)
}
