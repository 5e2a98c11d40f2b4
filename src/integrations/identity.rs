//! Member tokens and visitor identity tokens: JWTs the integrator's backend
//! signs with a signing key (HS256 only, `kid` = the key's id). Both go
//! through [`verify_signed`]: the algorithm, the key, the signature, `exp`
//! (required, at most 24 h after `iat`); then each kind checks the size and
//! shape of its own claims. Anything else is a 401.

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{AppError, AppResult};
use crate::ids::{OrgId, SigningKeyId};
use crate::integrations::model::{
    MAX_EXTERNAL_ID, MAX_NAME, MAX_SCOPE_VALUE, MAX_SCOPE_VALUES, MemberScopes, SigningKey,
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

/// What every signed token carries besides its own claims.
pub trait SignedClaims: DeserializeOwned {
    fn iat(&self) -> i64;
    fn exp(&self) -> i64;
}

/// Checks what member and visitor identity tokens share: HS256 only, a
/// `kid` naming a live signing key, the signature, `exp` and `iat`
/// present and a lifetime of at most [`MAX_LIFETIME_SECS`]. `Ok(None)` on
/// any failure of the token, so callers answer every one the same way;
/// `Err` only when storage fails.
pub fn verify_signed<C: SignedClaims>(
    state: &AppState,
    token: &str,
) -> AppResult<Option<(C, SigningKey)>> {
    if token.len() > MAX_TOKEN_LEN {
        return Ok(None);
    }
    let Ok(header) = jsonwebtoken::decode_header(token) else {
        return Ok(None);
    };
    if header.alg != Algorithm::HS256 {
        return Ok(None);
    }
    let Some(kid) = header
        .kid
        .as_deref()
        .and_then(|k| k.parse::<SigningKeyId>().ok())
    else {
        return Ok(None);
    };
    let Some(key) = state.store.read()?.signing_key(kid)? else {
        return Ok(None);
    };
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "iat", "sub"]);
    validation.leeway = LEEWAY_SECS as u64;
    validation.validate_aud = false;
    let Ok(data) = jsonwebtoken::decode::<C>(
        token,
        &DecodingKey::from_secret(key.secret.as_bytes()),
        &validation,
    ) else {
        return Ok(None);
    };
    let (iat, exp) = (data.claims.iat(), data.claims.exp());
    let now = Utc::now().timestamp();
    let lifetime_ok = exp > iat
        && exp - iat <= MAX_LIFETIME_SECS
        && iat <= now + LEEWAY_SECS
        && exp <= now + MAX_LIFETIME_SECS + LEEWAY_SECS;
    Ok(lifetime_ok.then_some((data.claims, key)))
}

/// Text a claim may hold: not blank, at most `max` characters, no controls.
pub fn printable(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

/// An optional `email` claim: absent, or a valid address.
pub fn email_claim_ok(email: Option<&str>) -> bool {
    email.is_none_or(|e| e.len() <= 254 && crate::validate::email(e).is_ok())
}

impl SignedClaims for RawClaims {
    fn iat(&self) -> i64 {
        self.iat
    }
    fn exp(&self) -> i64 {
        self.exp
    }
}

/// Verifies a member token; every failure is the same 401.
pub fn verify_member_token(state: &AppState, token: &str) -> AppResult<MemberIdentity> {
    let (c, key) = verify_signed::<RawClaims>(state, token)?.ok_or_else(unauthorized)?;
    let values_ok = |v: &[String]| {
        v.len() <= MAX_SCOPE_VALUES && v.iter().all(|s| printable(s, MAX_SCOPE_VALUE))
    };
    if !printable(&c.sub, MAX_EXTERNAL_ID)
        || !printable(&c.name, MAX_NAME)
        || !printable(&c.tenant, MAX_SCOPE_VALUE)
        || !values_ok(&c.scope1)
        || !values_ok(&c.scope2)
        || !email_claim_ok(c.email.as_deref())
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

#[derive(Debug, Deserialize)]
struct VisitorClaims {
    sub: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    exp: i64,
    iat: i64,
}

impl SignedClaims for VisitorClaims {
    fn iat(&self) -> i64 {
        self.iat
    }
    fn exp(&self) -> i64 {
        self.exp
    }
}

/// Who a valid visitor identity token names, in which organization.
#[derive(Clone, Debug)]
pub struct VisitorIdentity {
    pub org: OrgId,
    pub external_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// Verifies a visitor identity token (`sub`, `name?`, `email?`). Every
/// failure is the same 401 `identity_invalid`.
pub fn verify_visitor_token(state: &AppState, token: &str) -> AppResult<VisitorIdentity> {
    let invalid = || AppError::UnauthorizedCode {
        code: "identity_invalid",
        message: "invalid identity token".into(),
    };
    let (c, key) = verify_signed::<VisitorClaims>(state, token)?.ok_or_else(invalid)?;
    if !printable(&c.sub, MAX_EXTERNAL_ID)
        || !c.name.as_deref().is_none_or(|n| printable(n, MAX_NAME))
        || !email_claim_ok(c.email.as_deref())
    {
        return Err(invalid());
    }
    Ok(VisitorIdentity {
        org: key.organization_id,
        external_id: c.sub,
        name: c.name.map(|n| n.trim().to_owned()),
        email: c.email.map(|e| e.trim().to_lowercase()),
    })
}
