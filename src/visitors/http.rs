//! `/visitors/:id`: the visitor panel of the agent app.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::audit::Who;
use crate::auth::{AdminAuth, AgentAuth};
use crate::error::AppResult;
use crate::extract::{ApiJson, ApiPath, ClientIp};
use crate::ids::VisitorId;
use crate::state::AppState;
use crate::store::Page;
use crate::threads::model::Thread;
use crate::visitors::gdpr::{self, Erased};
use crate::visitors::service::{self, VisitorPatch, VisitorView};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/visitors/{id}", get(show).patch(update).delete(erase))
        .route("/visitors/{id}/threads", get(threads))
        .route("/visitors/{id}/export", get(export))
}

/// Everything stored about the visitor (GDPR art. 15), as a download.
#[utoipa::path(
    get,
    path = "/visitors/{id}/export",
    tag = "visitors",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "OK", body = gdpr::Export), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn export(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    ApiPath(id): ApiPath<VisitorId>,
) -> AppResult<impl IntoResponse> {
    let export = gdpr::export(&state, caller.org(), id)?;
    tracing::info!(org = %caller.org(), visitor = %id, agent = %caller.id(), "visitor exported");
    let disposition = format!("attachment; filename=\"visitor-{id}.json\"");
    Ok(([(header::CONTENT_DISPOSITION, disposition)], Json(export)))
}

/// Erases the visitor and everything about it (GDPR art. 17).
#[utoipa::path(
    delete,
    path = "/visitors/{id}",
    tag = "visitors",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "OK", body = Erased), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn erase(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminAuth(caller): AdminAuth,
    ApiPath(id): ApiPath<VisitorId>,
) -> AppResult<Json<Erased>> {
    let erased = gdpr::erase(&state, caller.org(), id, &Who::caller(&caller, ip)).await?;
    tracing::info!(org = %caller.org(), visitor = %id, agent = %caller.id(), "visitor erased");
    Ok(Json(erased))
}

#[utoipa::path(
    get,
    path = "/visitors/{id}",
    tag = "visitors",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "OK", body = VisitorView), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn show(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<VisitorId>,
) -> AppResult<Json<VisitorView>> {
    Ok(Json(
        service::get(&state, caller.org(), &caller.access(), id)?.into(),
    ))
}

/// Each field: absent leaves it, `null` or `""` clears it.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = visitors::UpdateBody)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UpdateBody {
    #[serde(default, deserialize_with = "crate::extract::present")]
    display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::extract::present")]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::extract::present")]
    phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::extract::present")]
    external_id: Option<Option<String>>,
    /// Agents' notes about the contact.
    #[serde(default, deserialize_with = "crate::extract::present")]
    notes: Option<Option<String>>,
    /// Custom attributes to set; `null` as a value removes the key.
    attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

#[utoipa::path(
    patch,
    path = "/visitors/{id}",
    tag = "visitors",
    params(("id" = uuid::Uuid, Path)),
    request_body = UpdateBody,
    responses((status = 200, description = "OK", body = VisitorView), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn update(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<VisitorId>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> AppResult<Json<VisitorView>> {
    let patch = VisitorPatch::parse(
        body.display_name.as_ref().map(Option::as_deref),
        body.email.as_ref().map(Option::as_deref),
        body.phone.as_ref().map(Option::as_deref),
        body.external_id.as_ref().map(Option::as_deref),
    )?
    .with_notes_and_attributes(
        body.notes.as_ref().map(Option::as_deref),
        body.attributes.as_ref(),
    )?;
    let visitor = service::update(&state, caller.org(), caller.access(), id, patch).await?;
    tracing::info!(org = %caller.org(), visitor = %id, agent = %caller.id(), "visitor updated");
    Ok(Json(visitor.into()))
}

#[utoipa::path(
    get,
    path = "/visitors/{id}/threads",
    tag = "visitors",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "OK", body = crate::openapi::WholeList<Thread>), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn threads(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<VisitorId>,
) -> AppResult<Json<Page<Thread>>> {
    // A visitor has few threads; one page holds them all.
    Ok(Json(Page {
        items: service::threads(&state, caller.org(), &caller.access(), id)?,
        next_cursor: None,
    }))
}
