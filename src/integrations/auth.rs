//! Who may call the integrator's routes: admins (tokens and keys), API
//! tokens with the `management` scope, and members with a valid member
//! token.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::auth::AdminAuth;
use crate::auth::extract::{api_token, bearer, token_with_scope};
use crate::error::AppError;
use crate::ids::OrgId;
use crate::integrations::dialogs::MemberCtx;
use crate::integrations::identity::verify_member_token;
use crate::integrations::members;
use crate::integrations::model::{ApiToken, TokenScope};
use crate::state::AppState;

/// An API token with the `management` scope.
#[derive(Clone, Debug)]
pub struct ManagementAuth(pub ApiToken);

impl FromRequestParts<AppState> for ManagementAuth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        token_with_scope(state, parts, TokenScope::Management).map(ManagementAuth)
    }
}

/// An admin, or an API token with the `management` scope: the
/// organization either acts for.
#[derive(Clone, Copy, Debug)]
pub struct AdminOrManagement(pub OrgId);

impl FromRequestParts<AppState> for AdminOrManagement {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if api_token(parts).is_some() {
            let token = token_with_scope(state, parts, TokenScope::Management)?;
            return Ok(AdminOrManagement(token.organization_id));
        }
        let AdminAuth(caller) = AdminAuth::from_request_parts(parts, state).await?;
        Ok(AdminOrManagement(caller.org()))
    }
}

/// A member with a valid member token (created or updated on first sight).
#[derive(Clone, Debug)]
pub struct MemberAuth(pub MemberCtx);

/// Verifies a member token and loads (or creates) its member.
pub async fn member_from_token(state: &AppState, token: &str) -> Result<MemberCtx, AppError> {
    let identity = verify_member_token(state, token)?;
    let member = members::from_identity(state, &identity).await?;
    Ok(MemberCtx {
        member,
        scopes: identity.scopes,
        expires_at: identity.expires_at,
        key_id: identity.key_id,
    })
}

impl FromRequestParts<AppState> for MemberAuth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token =
            bearer(parts).ok_or_else(|| AppError::Unauthorized("missing member token".into()))?;
        member_from_token(state, token).await.map(MemberAuth)
    }
}
