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
use crate::integrations::credentials::{self, TOKEN_PREFIX};
use crate::integrations::model::{ApiToken, TokenScope};
use crate::spaces::model::{ChatSpace, origin_allowed};
use crate::state::AppState;
use crate::store::Reader;
use crate::visitors::model::Visitor;

/// A verified, enabled agent — or the organization's backend acting
/// through an `agent`-scope API token, which stands in as an agent that
/// exists only for the request (named after the token, never stored).
#[derive(Clone, Debug)]
pub struct Caller {
    pub agent: Agent,
    pub token: Option<ApiToken>,
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
    /// What the caller may see (see [`Access`]).
    pub fn access(&self) -> crate::threads::rules::Access {
        match &self.token {
            Some(_) => crate::threads::rules::Access::everything(self.agent.id),
            None => crate::threads::rules::Access::of(&self.agent),
        }
    }
    /// Whether an API token, not a person, is calling.
    pub fn is_integration(&self) -> bool {
        self.token.is_some()
    }

    fn for_token(token: ApiToken) -> Caller {
        let agent = Agent {
            id: AgentId(token.id.0),
            organization_id: token.organization_id,
            email: String::new(),
            password_hash: String::new(),
            display_name: token.name.clone(),
            role: Role::Agent,
            team_ids: Vec::new(),
            space_ids: None,
            notify: Default::default(),
            last_seen_at: None,
            created_at: token.created_at,
            disabled: false,
            token_version: 0,
            away: false,
            max_concurrent: 0,
            avatar: None,
        };
        Caller {
            agent,
            token: Some(token),
        }
    }
}

/// An API token from `Authorization: Bearer mct_…` (`?api_token=` has
/// been moved there by [`api_token_from_query`]).
pub fn api_token(parts: &Parts) -> Option<String> {
    bearer(parts)
        .filter(|t| t.starts_with(TOKEN_PREFIX))
        .map(str::to_owned)
}

/// Middleware: an `api_token` query parameter (seed 001's CRM sends one)
/// becomes the `Authorization` header and leaves the query string, so no
/// route sees an unknown parameter and no log line ever holds the token.
pub async fn api_token_from_query(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let uri = request.uri().clone();
    if let Some(query) = uri.query()
        && query.split('&').any(|kv| kv.starts_with("api_token="))
    {
        let mut token = None;
        let rest: Vec<&str> = query
            .split('&')
            .filter(|kv| match kv.strip_prefix("api_token=") {
                Some(t) => {
                    token = Some(t.to_owned());
                    false
                }
                None => true,
            })
            .collect();
        let path = uri.path();
        let new_uri = if rest.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", rest.join("&"))
        };
        if let Ok(parsed) = new_uri.parse() {
            *request.uri_mut() = parsed;
        }
        if let Some(t) = token
            && !request.headers().contains_key(AUTHORIZATION)
            && let Ok(value) = axum::http::HeaderValue::from_str(&format!("Bearer {t}"))
        {
            request.headers_mut().insert(AUTHORIZATION, value);
        }
    }
    next.run(request).await
}

/// A verified API token holding `scope`: 401 without a valid token, 403
/// without the scope.
pub fn token_with_scope(
    state: &AppState,
    parts: &Parts,
    scope: TokenScope,
) -> Result<ApiToken, AppError> {
    let secret =
        api_token(parts).ok_or_else(|| AppError::Unauthorized("missing API token".into()))?;
    let token = credentials::verify_token(state, &secret)?;
    if !token.scopes.contains(&scope) {
        return Err(AppError::Forbidden(format!(
            "this API token lacks the {} scope",
            match scope {
                TokenScope::Management => "management",
                TokenScope::Agent => "agent",
            }
        )));
    }
    Ok(token)
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
    agent_and_expiry(state, token).map(|(caller, _)| caller)
}

/// The agent an access token names, and when the token expires (Unix
/// seconds): sockets close then.
pub fn agent_and_expiry(state: &AppState, token: &str) -> Result<(Caller, i64), AppError> {
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
    Ok((Caller { agent, token: None }, claims.exp))
}

impl FromRequestParts<AppState> for AgentAuth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if api_token(parts).is_some() {
            let token = token_with_scope(state, parts, TokenScope::Agent)?;
            return Ok(AgentAuth(Caller::for_token(token)));
        }
        let token =
            bearer(parts).ok_or_else(|| AppError::Unauthorized("missing access token".into()))?;
        agent_from_token(state, token).map(AgentAuth)
    }
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let AgentAuth(caller) = AgentAuth::from_request_parts(parts, state).await?;
        if caller.role() < Role::Admin || caller.is_integration() {
            return Err(AppError::Forbidden("this needs an admin".into()));
        }
        Ok(AdminAuth(caller))
    }
}

impl FromRequestParts<AppState> for OwnerAuth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let AgentAuth(caller) = AgentAuth::from_request_parts(parts, state).await?;
        if caller.role() < Role::Owner || caller.is_integration() {
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
