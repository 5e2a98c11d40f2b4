//! `/organization`, `/agents`, `/teams`: the admin side of accounts.
//!
//! Reading is open to every agent of the organization; changing needs an
//! admin, except that an agent may rename themselves. Every id in a path is
//! looked up within the caller's organization, so another tenant's object
//! is a 404. The rules themselves live in [`crate::accounts::people`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::accounts::model::{AgentView, NotifyPrefs, Organization, Role, Team};
use crate::accounts::people::{self, Actor, AgentChange};
use crate::accounts::service::{self, NewAgent};
use crate::audit::Who;
use crate::auth::{AdminAuth, AgentAuth};
use crate::error::{AppError, AppResult};
use crate::extract::ClientIp;
use crate::extract::{ApiJson, ApiPath};
use crate::ids::{AgentId, SpaceId, TeamId};
use crate::state::AppState;
use crate::store::Page;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/organization",
            get(get_organization).patch(patch_organization),
        )
        .route("/agents", get(list_agents).post(create_agent))
        .route(
            "/agents/{id}",
            get(get_agent).patch(patch_agent).delete(delete_agent),
        )
        .route("/agents/{id}/invite", post(invite_agent))
        .route("/teams", get(list_teams).post(create_team))
        .route(
            "/teams/{id}",
            get(get_team).patch(patch_team).delete(delete_team),
        )
}

/// An agent is online while it has a live socket.
fn online(state: &AppState, agent: &crate::accounts::model::Agent) -> bool {
    state.hub.is_online(agent.organization_id, agent.id)
}

/// Every list here is small and returned whole; the page shape keeps the
/// API the same as the paginated lists.
fn whole<T>(items: Vec<T>) -> Json<Page<T>> {
    Json(Page {
        items,
        next_cursor: None,
    })
}

// Organization.

#[utoipa::path(
    get,
    path = "/organization",
    tag = "organization",
    responses((status = 200, description = "OK", body = Organization), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn get_organization(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
) -> AppResult<Json<Organization>> {
    Ok(Json(people::organization(&state, caller.org())?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = accounts::admin::NameBody)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NameBody {
    name: String,
}

#[utoipa::path(
    patch,
    path = "/organization",
    tag = "organization",
    request_body = NameBody,
    responses((status = 200, description = "OK", body = Organization), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn patch_organization(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminAuth(caller): AdminAuth,
    ApiJson(body): ApiJson<NameBody>,
) -> AppResult<Json<Organization>> {
    let org =
        people::rename_organization(&state, caller.org(), &body.name, &Who::caller(&caller, ip))
            .await?;
    tracing::info!(org = %org.id, actor = %caller.id(), "organization renamed");
    Ok(Json(org))
}

// Agents.

#[utoipa::path(
    get,
    path = "/agents",
    tag = "organization",
    responses((status = 200, description = "OK", body = crate::openapi::WholeList<AgentView>), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn list_agents(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
) -> AppResult<Json<Page<AgentView>>> {
    let agents = people::agents(&state, caller.org())?;
    Ok(whole(
        agents.iter().map(|a| a.view(online(&state, a))).collect(),
    ))
}

#[utoipa::path(
    get,
    path = "/agents/{id}",
    tag = "organization",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "OK", body = AgentView), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn get_agent(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<AgentId>,
) -> AppResult<Json<AgentView>> {
    let agent = people::agent(&state, caller.org(), id)?;
    Ok(Json(agent.view(online(&state, &agent))))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = accounts::admin::CreateAgentBody)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateAgentBody {
    email: String,
    display_name: String,
    role: Role,
    /// Without one, the answer carries an invite link instead.
    password: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct CreatedAgent {
    agent: AgentView,
    /// Shown only in this answer: only the token's hash is stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    invite_url: Option<String>,
}

#[utoipa::path(
    post,
    path = "/agents",
    tag = "organization",
    request_body = CreateAgentBody,
    responses((status = 201, description = "Created", body = CreatedAgent), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn create_agent(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminAuth(caller): AdminAuth,
    ApiJson(body): ApiJson<CreateAgentBody>,
) -> AppResult<(StatusCode, Json<CreatedAgent>)> {
    if body.role == Role::Owner && caller.role() < Role::Owner {
        return Err(AppError::Forbidden(
            "only the owner can create an owner".into(),
        ));
    }
    let new = NewAgent::parse(
        &body.email,
        &body.display_name,
        body.role,
        body.password.as_deref(),
    )?;
    let invite = new.password.is_none();
    let agent =
        service::create_agent_as(&state, caller.org(), new, Some(&Who::caller(&caller, ip)))
            .await?;
    tracing::info!(org = %agent.organization_id, actor = %caller.id(), agent = %agent.id, "agent created");
    // If this second write fails the agent still exists, and
    // `POST /agents/:id/invite` issues the link again.
    let invite_url = if invite {
        let token = service::create_invite(&state, agent.id).await?;
        Some(people::invite_url(&state, &token))
    } else {
        None
    };
    Ok((
        StatusCode::CREATED,
        Json(CreatedAgent {
            agent: agent.view(online(&state, &agent)),
            invite_url,
        }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = accounts::admin::PatchAgentBody)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PatchAgentBody {
    display_name: Option<String>,
    role: Option<Role>,
    team_ids: Option<Vec<TeamId>>,
    /// `null`: every space.
    #[serde(default, deserialize_with = "crate::extract::present")]
    space_ids: Option<Option<Vec<SpaceId>>>,
    disabled: Option<bool>,
    notify: Option<NotifyPrefs>,
    away: Option<bool>,
    /// Most open threads automatic assignment gives the agent; 0: no limit.
    max_concurrent: Option<u32>,
}

/// Open to every agent because an agent may rename themselves;
/// [`people::apply_change`] refuses everything else a non-admin asks for.
#[utoipa::path(
    patch,
    path = "/agents/{id}",
    tag = "organization",
    params(("id" = uuid::Uuid, Path)),
    request_body = PatchAgentBody,
    responses((status = 200, description = "OK", body = AgentView), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn patch_agent(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<AgentId>,
    ApiJson(body): ApiJson<PatchAgentBody>,
) -> AppResult<Json<AgentView>> {
    let change = AgentChange::parse(
        body.display_name.as_deref(),
        body.role,
        body.team_ids,
        body.space_ids,
        body.disabled,
        body.notify,
        body.away,
    )?
    .with_max_concurrent(body.max_concurrent)?;
    let agent = people::update_agent(
        &state,
        Actor::from(&caller),
        id,
        change,
        &Who::caller(&caller, ip),
    )
    .await?;
    if body.away == Some(false) || body.max_concurrent.is_some() {
        // Back from away, or room for more: threads waiting for an agent
        // may go to this one now.
        crate::threads::assignment::fill_quietly(&state, agent.organization_id).await;
    }
    Ok(Json(agent.view(online(&state, &agent))))
}

#[utoipa::path(
    delete,
    path = "/agents/{id}",
    tag = "organization",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 204, description = "Done"), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn delete_agent(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminAuth(caller): AdminAuth,
    ApiPath(id): ApiPath<AgentId>,
) -> AppResult<StatusCode> {
    people::disable_agent(&state, Actor::from(&caller), id, &Who::caller(&caller, ip)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct InviteLink {
    invite_url: String,
}

#[utoipa::path(
    post,
    path = "/agents/{id}/invite",
    tag = "organization",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 201, description = "Created", body = InviteLink), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn invite_agent(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    ApiPath(id): ApiPath<AgentId>,
) -> AppResult<(StatusCode, Json<InviteLink>)> {
    let token = people::reissue_invite(&state, Actor::from(&caller), id).await?;
    Ok((
        StatusCode::CREATED,
        Json(InviteLink {
            invite_url: people::invite_url(&state, &token),
        }),
    ))
}

// Teams.

#[utoipa::path(
    get,
    path = "/teams",
    tag = "organization",
    responses((status = 200, description = "OK", body = crate::openapi::WholeList<Team>), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn list_teams(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
) -> AppResult<Json<Page<Team>>> {
    Ok(whole(people::teams(&state, caller.org())?))
}

#[utoipa::path(
    get,
    path = "/teams/{id}",
    tag = "organization",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "OK", body = Team), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn get_team(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<TeamId>,
) -> AppResult<Json<Team>> {
    Ok(Json(people::team(&state, caller.org(), id)?))
}

#[utoipa::path(
    post,
    path = "/teams",
    tag = "organization",
    request_body = NameBody,
    responses((status = 201, description = "Created", body = Team), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn create_team(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminAuth(caller): AdminAuth,
    ApiJson(body): ApiJson<NameBody>,
) -> AppResult<(StatusCode, Json<Team>)> {
    let team =
        people::create_team(&state, caller.org(), &body.name, &Who::caller(&caller, ip)).await?;
    tracing::info!(org = %team.organization_id, actor = %caller.id(), team = %team.id, "team created");
    Ok((StatusCode::CREATED, Json(team)))
}

#[utoipa::path(
    patch,
    path = "/teams/{id}",
    tag = "organization",
    params(("id" = uuid::Uuid, Path)),
    request_body = NameBody,
    responses((status = 200, description = "OK", body = Team), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn patch_team(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminAuth(caller): AdminAuth,
    ApiPath(id): ApiPath<TeamId>,
    ApiJson(body): ApiJson<NameBody>,
) -> AppResult<Json<Team>> {
    Ok(Json(
        people::rename_team(
            &state,
            caller.org(),
            id,
            &body.name,
            &Who::caller(&caller, ip),
        )
        .await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/teams/{id}",
    tag = "organization",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 204, description = "Done"), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn delete_team(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminAuth(caller): AdminAuth,
    ApiPath(id): ApiPath<TeamId>,
) -> AppResult<StatusCode> {
    people::delete_team(&state, caller.org(), id, &Who::caller(&caller, ip)).await?;
    tracing::info!(org = %caller.org(), actor = %caller.id(), team = %id, "team deleted");
    Ok(StatusCode::NO_CONTENT)
}
