//! Permissions as types. A handler that takes [`AdminAuth`] cannot be reached
//! by a plain agent; one that takes [`VisitorAuth`] only by a visitor with a
//! live session of an allowed origin. Every extractor loads the caller from
//! the store, so disabling an agent or bumping its token version takes
//! effect on the next request.

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, ORIGIN};
use axum::http::request::Parts;

use crate::accounts::model::{Agent, Role};
use crate::error::AppError;
use crate::ids::{AgentId, OrgId};
use crate::spaces::model::{ChatSpace, origin_allowed};
use crate::state::AppState;
use crate::store::Reader;
use crate::visitors::model::Visitor;

/// A verified, enabled agent.
#[derive(Clone, Debug)]
pub struct Caller {
    pub agent: Agent,
}

impl Caller {
    pub fn id(&self) -> AgentId {
        self.agent.id
    }
    pub fn org(&self) -> OrgId {
        self.agent.organization_id
    }
    pub fn role(&self) -> Role {
        self.agent.role
    }
    pub fn is_admin(&self) -> bool {
        self.agent.role >= Role::Admin
    }
}

/// Any agent of an organization.
#[derive(Clone, Debug)]
pub struct AgentAuth(pub Caller);
/// An agent with role admin or owner.
#[derive(Clone, Debug)]
pub struct AdminAuth(pub Caller);
/// The organization's owner.
#[derive(Clone, Debug)]
pub struct OwnerAuth(pub Caller);

pub fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Verifies an access token and loads its agent; used by REST and sockets.
pub fn agent_from_token(state: &AppState, token: &str) -> Result<Caller, AppError> {
    let unauthorized = || AppError::Unauthorized("invalid or expired access token".into());
    let claims = state.jwt.verify(token).ok_or_else(unauthorized)?;
    let agent = state
        .store
        .read()?
        .agent(claims.sub)?
        .ok_or_else(unauthorized)?;
    if agent.disabled || agent.token_version != claims.ver || agent.organization_id != claims.org {
        return Err(unauthorized());
    }
    Ok(Caller { agent })
}

impl FromRequestParts<AppState> for AgentAuth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token =
            bearer(parts).ok_or_else(|| AppError::Unauthorized("missing access token".into()))?;
        agent_from_token(state, token).map(AgentAuth)
    }
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let AgentAuth(caller) = AgentAuth::from_request_parts(parts, state).await?;
        if caller.role() < Role::Admin {
            return Err(AppError::Forbidden("this needs an admin".into()));
        }
        Ok(AdminAuth(caller))
    }
}

impl FromRequestParts<AppState> for OwnerAuth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let AgentAuth(caller) = AgentAuth::from_request_parts(parts, state).await?;
        if caller.role() < Role::Owner {
            return Err(AppError::Forbidden("this needs the owner".into()));
        }
        Ok(OwnerAuth(caller))
    }
}

/// A visitor with a live session token, calling from an allowed origin.
#[derive(Clone, Debug)]
pub struct VisitorAuth {
    pub visitor: Visitor,
    pub space: ChatSpace,
}

/// The request's `Origin`, if any.
pub fn origin(parts: &Parts) -> Option<&str> {
    parts.headers.get(ORIGIN).and_then(|v| v.to_str().ok())
}

/// Browsers always send `Origin` on the widget's cross-site calls; when one
/// is present it must be an allowed domain of the space.
pub fn check_origin(space: &ChatSpace, origin: Option<&str>) -> Result<(), AppError> {
    match origin {
        Some(o) if !origin_allowed(&space.allowed_domains, o) => Err(AppError::Forbidden(
            "this site is not allowed to use this chat".into(),
        )),
        _ => Ok(()),
    }
}

pub fn visitor_from_token(state: &AppState, token: &str) -> Result<VisitorAuth, AppError> {
    let unauthorized = || AppError::Unauthorized("invalid visitor session".into());
    let read = state.store.read()?;
    let visitor = read
        .visitor_by_token_hash(&crate::auth::tokens::hash(token))?
        .ok_or_else(unauthorized)?;
    let space = read
        .space(visitor.chat_space_id)?
        .ok_or_else(unauthorized)?;
    Ok(VisitorAuth { visitor, space })
}

impl FromRequestParts<AppState> for VisitorAuth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token = bearer(parts)
            .ok_or_else(|| AppError::Unauthorized("missing visitor session".into()))?;
        let auth = visitor_from_token(state, token)?;
        check_origin(&auth.space, origin(parts))?;
        Ok(auth)
    }
}
