//! Member tokens: JWTs the integrator's backend signs with a signing key
//! (HS256 only, `kid` = the key's id). Verified strictly: the algorithm,
//! the key, the signature, `exp` (required, at most 24 h after `iat`),
//! and the size and shape of every claim. Anything else is a 401.

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::error::{AppError, AppResult};
use crate::ids::{OrgId, SigningKeyId};
use crate::integrations::model::{
    MAX_EXTERNAL_ID, MAX_NAME, MAX_SCOPE_VALUE, MAX_SCOPE_VALUES, MemberScopes,
};
use crate::state::AppState;
use crate::store::Reader;

/// Clock skew allowed between the integrator's backend and this server.
pub const LEEWAY_SECS: i64 = 60;
/// Longest life of a member token.
pub const MAX_LIFETIME_SECS: i64 = 24 * 3600;
/// Longest token accepted at all.
const MAX_TOKEN_LEN: usize = 8 * 1024;

#[derive(Debug, Deserialize)]
struct RawClaims {
    sub: String,
    name: String,
    #[serde(default)]
    email: Option<String>,
    exp: i64,
    iat: i64,
    tenant: String,
    scope1: Vec<String>,
    scope2: Vec<String>,
}

/// Who a valid member token names, in which organization.
#[derive(Clone, Debug)]
pub struct MemberIdentity {
    pub org: OrgId,
    pub external_id: String,
    pub name: String,
    pub email: Option<String>,
    pub scopes: MemberScopes,
    /// When the token expires (Unix seconds): sockets close then.
    pub expires_at: i64,
    /// The key that signed it: deleting the key ends its sockets.
    pub key_id: SigningKeyId,
}

fn unauthorized() -> AppError {
    AppError::Unauthorized("invalid member token".into())
}

/// Verifies a member token; every failure is the same 401.
pub fn verify_member_token(state: &AppState, token: &str) -> AppResult<MemberIdentity> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(unauthorized());
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| unauthorized())?;
    if header.alg != Algorithm::HS256 {
        return Err(unauthorized());
    }
    let kid: SigningKeyId = header
        .kid
        .as_deref()
        .and_then(|k| k.parse().ok())
        .ok_or_else(unauthorized)?;
    let key = state
        .store
        .read()?
        .signing_key(kid)?
        .ok_or_else(unauthorized)?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "iat", "sub"]);
    validation.leeway = LEEWAY_SECS as u64;
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<RawClaims>(
        token,
        &DecodingKey::from_secret(key.secret.as_bytes()),
        &validation,
    )
    .map_err(|_| unauthorized())?;
    let c = data.claims;
    let now = Utc::now().timestamp();
    let lifetime_ok = c.exp > c.iat
        && c.exp - c.iat <= MAX_LIFETIME_SECS
        && c.iat <= now + LEEWAY_SECS
        && c.exp <= now + MAX_LIFETIME_SECS + LEEWAY_SECS;
    let printable = |s: &str, max: usize| {
        !s.trim().is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
    };
    let values_ok = |v: &[String]| {
        v.len() <= MAX_SCOPE_VALUES && v.iter().all(|s| printable(s, MAX_SCOPE_VALUE))
    };
    let email_ok = c
        .email
        .as_deref()
        .is_none_or(|e| e.len() <= 254 && crate::validate::email(e).is_ok());
    if !lifetime_ok
        || !printable(&c.sub, MAX_EXTERNAL_ID)
        || !printable(&c.name, MAX_NAME)
        || !printable(&c.tenant, MAX_SCOPE_VALUE)
        || !values_ok(&c.scope1)
        || !values_ok(&c.scope2)
        || !email_ok
    {
        return Err(unauthorized());
    }
    Ok(MemberIdentity {
        org: key.organization_id,
        external_id: c.sub,
        name: c.name.trim().to_owned(),
        email: c.email.map(|e| e.trim().to_lowercase()),
        scopes: MemberScopes {
            tenant: c.tenant,
            scope1: c.scope1,
            scope2: c.scope2,
        },
        expires_at: c.exp,
        key_id: key.id,
    })
}
