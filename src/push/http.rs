//! `/push/*`: the VAPID public key and the agent's device subscriptions.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::AgentAuth;
use crate::error::AppResult;
use crate::extract::ApiJson;
use crate::push::service;
use crate::push::subscription::NewSubscription;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/push/vapid-key", get(vapid_key))
        .route("/push/subscriptions", post(subscribe).delete(unsubscribe))
}

#[utoipa::path(
    get,
    path = "/push/vapid-key",
    tag = "push",
    responses((status = 200, description = "OK", body = VapidKey), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn vapid_key(State(state): State<AppState>, _: AgentAuth) -> AppResult<Json<VapidKey>> {
    Ok(Json(VapidKey {
        public_key: service::vapid_key(&state)?,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct VapidKey {
    /// The appliance's VAPID public key, for `PushManager.subscribe`.
    public_key: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = push::Keys)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Keys {
    p256dh: String,
    auth: String,
}

/// `PushSubscription.toJSON()`, plus the app's language.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = push::SubscribeBody)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SubscribeBody {
    endpoint: String,
    keys: Keys,
    /// Browsers send it (usually null); the push service's own business.
    #[serde(default)]
    #[allow(dead_code)]
    expiration_time: Option<f64>,
    locale: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Subscribed {
    endpoint: String,
    locale: String,
    created_at: DateTime<Utc>,
}

/// 201 for a new device, 200 when it was already the caller's.
#[utoipa::path(
    post,
    path = "/push/subscriptions",
    tag = "push",
    request_body = SubscribeBody,
    responses((status = 201, description = "Created", body = Subscribed), (status = 200, description = "The same request again: what the first one made", body = Subscribed), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn subscribe(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiJson(body): ApiJson<SubscribeBody>,
) -> AppResult<(StatusCode, Json<Subscribed>)> {
    let new = NewSubscription::parse(
        &body.endpoint,
        &body.keys.p256dh,
        &body.keys.auth,
        body.locale.as_deref(),
        state.config.push.allow_private_endpoints,
    )?;
    let (sub, fresh) = service::subscribe(&state, &caller, new).await?;
    let status = if fresh {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let reply = Subscribed {
        endpoint: sub.endpoint,
        locale: sub.locale,
        created_at: sub.created_at,
    };
    Ok((status, Json(reply)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = push::UnsubscribeBody)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UnsubscribeBody {
    endpoint: String,
}

#[utoipa::path(
    delete,
    path = "/push/subscriptions",
    tag = "push",
    request_body = UnsubscribeBody,
    responses((status = 204, description = "Done"), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn unsubscribe(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiJson(body): ApiJson<UnsubscribeBody>,
) -> AppResult<StatusCode> {
    // Stored as parsed, so the same URL written differently still matches.
    let endpoint = reqwest::Url::parse(&body.endpoint).map_or(body.endpoint, |u| u.to_string());
    service::unsubscribe(&state, &caller, endpoint).await?;
    Ok(StatusCode::NO_CONTENT)
}
