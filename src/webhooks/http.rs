//! `/webhooks` (admins): create, list, get, change, delete, rotate the
//! secret, the delivery log, retry a delivery, send a test event.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::audit::Who;
use crate::auth::AdminAuth;
use crate::error::{AppError, AppResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, ClientIp};
use crate::ids::{DeliveryId, WebhookId};
use crate::state::AppState;
use crate::store::Page;
use crate::webhooks::model::{Delivery, WebhookView};
use crate::webhooks::service::{self, WebhookPatch};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/{id}", get(show).patch(update).delete(remove))
        .route("/webhooks/{id}/rotate-secret", post(rotate))
        .route("/webhooks/{id}/test", post(test))
        .route("/webhooks/{id}/deliveries", get(deliveries))
        .route("/webhooks/{id}/deliveries/{delivery_id}/retry", post(retry))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = webhooks::CreateBody, example = json!({"url": "https://crm.example/hooks/mychat", "events": ["message.new", "thread.closed"], "description": "CRM"}))]
#[serde(deny_unknown_fields)]
struct CreateBody {
    url: String,
    events: Vec<String>,
    description: Option<String>,
}

/// A new webhook: the only time its secret is shown.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CreatedWebhook)]
struct Created {
    #[serde(flatten)]
    webhook: WebhookView,
    secret: String,
}

#[utoipa::path(
    post,
    path = "/webhooks",
    tag = "webhooks",
    request_body = CreateBody,
    responses((status = 201, description = "Created", body = Created), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn create(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminAuth(caller): AdminAuth,
    ApiJson(body): ApiJson<CreateBody>,
) -> AppResult<(StatusCode, Json<Created>)> {
    let events = service::parse_events(&body.events)?;
    let description = service::parse_description(body.description.as_deref())?;
    let url = service::check_url(&state, &body.url).await?;
    let (webhook, secret) = service::create(
        &state,
        caller.org(),
        url,
        events,
        description,
        &Who::caller(&caller, ip),
    )
    .await?;
    tracing::info!(org = %caller.org(), webhook = %webhook.id, agent = %caller.id(), "webhook created");
    Ok((
        StatusCode::CREATED,
        Json(Created {
            webhook: webhook.into(),
            secret,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/webhooks",
    tag = "webhooks",
    responses((status = 200, description = "OK", body = crate::openapi::WholeList<WebhookView>), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn list(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
) -> AppResult<Json<Page<WebhookView>>> {
    Ok(Json(Page {
        items: service::list(&state, caller.org())?
            .into_iter()
            .map(WebhookView::from)
            .collect(),
        next_cursor: None,
    }))
}

#[utoipa::path(
    get,
    path = "/webhooks/{id}",
    tag = "webhooks",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "OK", body = WebhookView), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn show(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    ApiPath(id): ApiPath<WebhookId>,
) -> AppResult<Json<WebhookView>> {
    Ok(Json(service::get(&state, caller.org(), id)?.into()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = webhooks::UpdateBody)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    url: Option<String>,
    events: Option<Vec<String>>,
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "crate::extract::present")]
    description: Option<Option<String>>,
}

#[utoipa::path(
    patch,
    path = "/webhooks/{id}",
    tag = "webhooks",
    params(("id" = uuid::Uuid, Path)),
    request_body = UpdateBody,
    responses((status = 200, description = "OK", body = WebhookView), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn update(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminAuth(caller): AdminAuth,
    ApiPath(id): ApiPath<WebhookId>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> AppResult<Json<WebhookView>> {
    let events = body
        .events
        .as_deref()
        .map(service::parse_events)
        .transpose()?;
    let description = body
        .description
        .map(|d| service::parse_description(d.as_deref()))
        .transpose()?;
    let url = match &body.url {
        Some(u) => Some(service::check_url(&state, u).await?),
        None => None,
    };
    let patch = WebhookPatch {
        url,
        events,
        enabled: body.enabled,
        description,
    };
    let w = service::update(&state, caller.org(), id, patch, &Who::caller(&caller, ip)).await?;
    tracing::info!(org = %caller.org(), webhook = %id, agent = %caller.id(), "webhook changed");
    Ok(Json(w.into()))
}

#[utoipa::path(
    delete,
    path = "/webhooks/{id}",
    tag = "webhooks",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 204, description = "Done"), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn remove(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminAuth(caller): AdminAuth,
    ApiPath(id): ApiPath<WebhookId>,
) -> AppResult<StatusCode> {
    service::delete(&state, caller.org(), id, &Who::caller(&caller, ip)).await?;
    tracing::info!(org = %caller.org(), webhook = %id, agent = %caller.id(), "webhook deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
struct Rotated {
    secret: String,
}

#[utoipa::path(
    post,
    path = "/webhooks/{id}/rotate-secret",
    tag = "webhooks",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "OK", body = Rotated), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn rotate(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminAuth(caller): AdminAuth,
    ApiPath(id): ApiPath<WebhookId>,
) -> AppResult<Json<Rotated>> {
    let secret = service::rotate(&state, caller.org(), id, &Who::caller(&caller, ip)).await?;
    tracing::info!(org = %caller.org(), webhook = %id, agent = %caller.id(), "webhook secret rotated");
    Ok(Json(Rotated { secret }))
}

#[utoipa::path(
    post,
    path = "/webhooks/{id}/test",
    tag = "webhooks",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 202, description = "Accepted", body = Delivery), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn test(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    ApiPath(id): ApiPath<WebhookId>,
) -> AppResult<(StatusCode, Json<Delivery>)> {
    let d = service::send_test(&state, caller.org(), id).await?;
    Ok((StatusCode::ACCEPTED, Json(d)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    cursor: Option<String>,
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/webhooks/{id}/deliveries",
    tag = "webhooks",
    params(("id" = uuid::Uuid, Path), DeliveriesQuery),
    responses((status = 200, description = "OK", body = Page<Delivery>), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn deliveries(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    ApiPath(id): ApiPath<WebhookId>,
    ApiQuery(q): ApiQuery<DeliveriesQuery>,
) -> AppResult<Json<Page<Delivery>>> {
    let cursor = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<DeliveryId>()
                .map_err(|_| AppError::validation("cursor is not one this server gave out"))
        })
        .transpose()?;
    let limit = crate::validate::limit(q.limit)?;
    let (items, next) = service::deliveries(&state, caller.org(), id, cursor, limit)?;
    Ok(Json(Page {
        items,
        next_cursor: next.map(|n| n.to_string()),
    }))
}

#[utoipa::path(
    post,
    path = "/webhooks/{id}/deliveries/{delivery_id}/retry",
    tag = "webhooks",
    params(("id" = uuid::Uuid, Path), ("delivery_id" = uuid::Uuid, Path)),
    responses((status = 202, description = "Accepted", body = Delivery), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn retry(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    ApiPath((id, delivery)): ApiPath<(WebhookId, DeliveryId)>,
) -> AppResult<(StatusCode, Json<Delivery>)> {
    let d = service::retry(&state, caller.org(), id, delivery).await?;
    Ok((StatusCode::ACCEPTED, Json(d)))
}
