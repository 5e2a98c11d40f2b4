//! `/auth/*`: register, login, refresh, logout, me, password, invites.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::accounts::model::Role;
use crate::accounts::service::{self, NewAgent, Session};
use crate::auth::AgentAuth;
use crate::error::{AppError, AppResult};
use crate::extract::{ApiJson, ClientIp};
use crate::state::AppState;
use crate::store::Reader;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/auth/me", get(me))
        .route("/auth/password", post(change_password))
        .route("/auth/accept-invite", post(accept_invite))
        .route("/auth/registration", get(registration))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = accounts::RegisterBody, example = json!({"organizationName": "Acme", "displayName": "Ann Owner", "email": "ann@acme.example", "password": "correct horse battery"}))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RegisterBody {
    organization_name: String,
    display_name: String,
    email: String,
    password: String,
}

#[utoipa::path(
    post,
    path = "/auth/register",
    tag = "auth",
    request_body = RegisterBody,
    responses((status = 201, description = "Created", body = Session), crate::openapi::Errors)
)]
async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<RegisterBody>,
) -> AppResult<(StatusCode, Json<Session>)> {
    state.limits.login_per_ip.check_ip(ip)?;
    crate::auth::limits::check_login_shared(&state.store, &state.config.limits, None, ip)?;
    if !service::registration_open(&state)? {
        return Err(AppError::Forbidden("registration is closed".into()));
    }
    let owner = NewAgent::parse(
        &body.email,
        &body.display_name,
        Role::Owner,
        Some(&body.password),
    )?;
    let (org, agent) =
        service::create_organization(&state, &body.organization_name, owner, false).await?;
    tracing::info!(org = %org.id, agent = %agent.id, "organization registered");
    let session = service::issue_session(&state, &agent, Some(org)).await?;
    Ok((StatusCode::CREATED, Json(session)))
}

/// Whether the sign-up form should be offered.
#[utoipa::path(
    get,
    path = "/auth/registration",
    tag = "auth",
    responses((status = 200, description = "OK", body = Registration), crate::openapi::Errors)
)]
async fn registration(State(state): State<AppState>) -> AppResult<Json<Registration>> {
    Ok(Json(Registration {
        open: service::registration_open(&state)?,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Registration {
    /// Anyone may create an organization (`POST /api/v1/auth/register`).
    open: bool,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = accounts::LoginBody, example = json!({"email": "ann@acme.example", "password": "correct horse battery"}))]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: String,
}

#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    request_body = LoginBody,
    responses((status = 200, description = "OK", body = Session), crate::openapi::Errors)
)]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<LoginBody>,
) -> AppResult<Json<Session>> {
    crate::validate::bounded("password", &body.password, crate::auth::password::MAX_LEN)?;
    crate::validate::bounded("email", &body.email, 254)?;
    state.limits.check_login(&body.email, ip)?;
    crate::auth::limits::check_login_shared(
        &state.store,
        &state.config.limits,
        Some(&body.email),
        ip,
    )?;
    let agent = service::login(
        &state,
        &body.email,
        &body.password,
        &crate::audit::Who::anonymous(ip),
    )
    .await?;
    tracing::info!(agent = %agent.id, "login");
    let org = state.store.read()?.org(agent.organization_id)?;
    Ok(Json(service::issue_session(&state, &agent, org).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = accounts::RefreshBody)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "auth",
    request_body = RefreshBody,
    responses((status = 200, description = "OK", body = Session), crate::openapi::Errors)
)]
async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> AppResult<Json<Session>> {
    Ok(Json(service::refresh(&state, &body.refresh_token).await?))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LogoutBody {
    refresh_token: Option<String>,
}

#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    responses((status = 204, description = "Done"), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn logout(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    body: axum::body::Bytes,
) -> AppResult<StatusCode> {
    // The body is optional: `{}` or nothing logs out just the same.
    let token = if body.is_empty() {
        None
    } else {
        serde_json::from_slice::<LogoutBody>(&body)
            .map_err(|e| AppError::Validation {
                code: "invalid_json",
                message: e.to_string(),
            })?
            .refresh_token
    };
    service::logout(&state, caller.id(), token.as_deref()).await?;
    tracing::info!(agent = %caller.id(), "logout");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/auth/me",
    tag = "auth",
    responses((status = 200, description = "OK", body = Me), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn me(State(state): State<AppState>, AgentAuth(caller): AgentAuth) -> AppResult<Json<Me>> {
    let organization = state.store.read()?.org(caller.org())?;
    Ok(Json(Me {
        agent: caller.agent.view(true),
        organization,
        features: Features {
            email: state.config.email.enabled(),
        },
    }))
}

/// The signed-in agent, its organization and what the appliance can do.
#[derive(Serialize, utoipa::ToSchema)]
struct Me {
    agent: crate::accounts::model::AgentView,
    organization: Option<crate::accounts::model::Organization>,
    features: Features,
}

/// What the appliance can do, so the app shows only controls that work.
#[derive(Serialize, utoipa::ToSchema)]
struct Features {
    /// Mail is configured: transcripts, notifications and offline replies.
    email: bool,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = accounts::PasswordBody)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PasswordBody {
    current_password: String,
    new_password: String,
}

/// Changes the caller's password; every other session ends, this one gets
/// fresh tokens.
#[utoipa::path(
    post,
    path = "/auth/password",
    tag = "auth",
    request_body = PasswordBody,
    responses((status = 200, description = "OK", body = Session), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn change_password(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiJson(body): ApiJson<PasswordBody>,
) -> AppResult<Json<Session>> {
    crate::validate::bounded(
        "currentPassword",
        &body.current_password,
        crate::auth::password::MAX_LEN,
    )?;
    let agent = service::change_password(
        &state,
        &caller.agent,
        &body.current_password,
        &body.new_password,
    )
    .await?;
    Ok(Json(service::issue_session(&state, &agent, None).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = accounts::AcceptInviteBody)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AcceptInviteBody {
    token: String,
    password: String,
}

#[utoipa::path(
    post,
    path = "/auth/accept-invite",
    tag = "auth",
    request_body = AcceptInviteBody,
    responses((status = 200, description = "OK", body = Session), crate::openapi::Errors)
)]
async fn accept_invite(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<AcceptInviteBody>,
) -> AppResult<Json<Session>> {
    state.limits.login_per_ip.check_ip(ip)?;
    crate::auth::limits::check_login_shared(&state.store, &state.config.limits, None, ip)?;
    let agent = service::accept_invite(&state, &body.token, &body.password).await?;
    let org = state.store.read()?.org(agent.organization_id)?;
    Ok(Json(service::issue_session(&state, &agent, org).await?))
}
