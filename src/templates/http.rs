//! `/templates`: every agent reads the canned responses; admins write them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::auth::{AdminAuth, AgentAuth};
use crate::error::AppResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::ids::{SpaceId, TemplateId};
use crate::state::AppState;
use crate::store::Page;
use crate::templates::model::Template;
use crate::templates::service::{self, NewTemplate, TemplatePatch};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/templates", get(list).post(create))
        .route("/templates/{id}", get(show).patch(update).delete(remove))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListQuery {
    chat_space_id: Option<SpaceId>,
}

#[utoipa::path(
    get,
    path = "/templates",
    tag = "templates",
    params(ListQuery),
    responses((status = 200, description = "OK", body = crate::openapi::WholeList<Template>), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn list(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> AppResult<Json<Page<Template>>> {
    // The agent app loads them all once to complete `/` shortcuts.
    let access = caller.access();
    if query.chat_space_id.is_some_and(|s| !access.works_in(s)) {
        return Err(crate::error::AppError::NotFound("chat space"));
    }
    let mut items = service::list(&state, caller.org(), query.chat_space_id)?;
    items.retain(|t| t.chat_space_id.is_none_or(|s| access.works_in(s)));
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

#[utoipa::path(
    get,
    path = "/templates/{id}",
    tag = "templates",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "OK", body = Template), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn show(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<TemplateId>,
) -> AppResult<Json<Template>> {
    let template = service::get(&state, caller.org(), id)?;
    if template
        .chat_space_id
        .is_some_and(|s| !caller.access().works_in(s))
    {
        return Err(crate::error::AppError::NotFound("template"));
    }
    Ok(Json(template))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = templates::CreateBody)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    shortcut: String,
    title: String,
    body: String,
    chat_space_id: Option<SpaceId>,
}

#[utoipa::path(
    post,
    path = "/templates",
    tag = "templates",
    request_body = CreateBody,
    responses((status = 201, description = "Created", body = Template), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn create(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    ApiJson(body): ApiJson<CreateBody>,
) -> AppResult<(StatusCode, Json<Template>)> {
    let new = NewTemplate::parse(&body.shortcut, &body.title, &body.body, body.chat_space_id)?;
    let template = service::create(&state, caller.org(), new).await?;
    tracing::info!(org = %caller.org(), template = %template.id, "template created");
    Ok((StatusCode::CREATED, Json(template)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = templates::UpdateBody)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UpdateBody {
    shortcut: Option<String>,
    title: Option<String>,
    body: Option<String>,
    /// Absent: unchanged; null: organization-wide; an id: that space only.
    #[serde(default, deserialize_with = "crate::extract::present")]
    chat_space_id: Option<Option<SpaceId>>,
}

#[utoipa::path(
    patch,
    path = "/templates/{id}",
    tag = "templates",
    params(("id" = uuid::Uuid, Path)),
    request_body = UpdateBody,
    responses((status = 200, description = "OK", body = Template), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn update(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    ApiPath(id): ApiPath<TemplateId>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> AppResult<Json<Template>> {
    let patch = TemplatePatch {
        shortcut: body
            .shortcut
            .as_deref()
            .map(service::parse_shortcut)
            .transpose()?,
        title: body
            .title
            .as_deref()
            .map(service::parse_title)
            .transpose()?,
        body: body.body.as_deref().map(service::parse_body).transpose()?,
        chat_space_id: body.chat_space_id,
    };
    let template = service::update(&state, caller.org(), id, patch).await?;
    tracing::info!(org = %caller.org(), template = %id, "template updated");
    Ok(Json(template))
}

#[utoipa::path(
    delete,
    path = "/templates/{id}",
    tag = "templates",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 204, description = "Done"), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn remove(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    ApiPath(id): ApiPath<TemplateId>,
) -> AppResult<StatusCode> {
    service::delete(&state, caller.org(), id).await?;
    tracing::info!(org = %caller.org(), template = %id, "template deleted");
    Ok(StatusCode::NO_CONTENT)
}
