//! API tokens and signing keys: created with their secret shown once,
//! listed without it, deleted (refused at once afterwards).

use chrono::{Duration, Utc};
use sha2::{Digest, Sha256};

use crate::audit::{self, Who, target};
use crate::auth::tokens;
use crate::error::{AppError, AppResult};
use crate::ids::{ApiTokenId, OrgId, SigningKeyId};
use crate::integrations::model::{ApiToken, MAX_NAME, SigningKey, TokenScope};
use crate::state::AppState;
use crate::store::Reader;

/// What every API token starts with, so a leaked one is recognisable.
pub const TOKEN_PREFIX: &str = "mct_";
/// Tokens are looked up by hash; `lastUsedAt` is written at most this often.
const LAST_USED_EVERY: Duration = Duration::seconds(60);

/// Hex sha256 of a token: how it is stored and looked up.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn name_taken(what: &str) -> AppError {
    AppError::conflict("name_taken", format!("{what} with this name exists"))
}

pub fn parse_name(name: &str) -> AppResult<String> {
    crate::validate::name("name", name, MAX_NAME)
}

pub fn parse_scopes(scopes: &[String]) -> AppResult<Vec<TokenScope>> {
    if scopes.is_empty() {
        return Err(AppError::validation(
            "scopes must list management and/or agent",
        ));
    }
    crate::validate::list_len("scopes", scopes, 2)?;
    let mut out = Vec::new();
    for s in scopes {
        let scope = TokenScope::parse(s).ok_or_else(|| {
            AppError::validation(format!("unknown scope {s:?}: use management or agent"))
        })?;
        if !out.contains(&scope) {
            out.push(scope);
        }
    }
    out.sort();
    Ok(out)
}

/// Creates a token; returns it with its secret, which is never shown again.
pub async fn create_token(
    state: &AppState,
    org: OrgId,
    name: String,
    scopes: Vec<TokenScope>,
    who: &Who,
) -> AppResult<(ApiToken, String)> {
    let secret = format!("{TOKEN_PREFIX}{}", tokens::generate());
    let token = ApiToken {
        id: ApiTokenId::new(),
        organization_id: org,
        name,
        hash: token_hash(&secret),
        scopes,
        created_at: Utc::now(),
        last_used_at: None,
    };
    let (record, who) = (token.clone(), who.clone());
    state
        .write(move |tx| {
            if tx
                .api_tokens_of_org(org)?
                .iter()
                .any(|t| t.name == record.name)
            {
                return Err(name_taken("an API token"));
            }
            tx.put(&record)?;
            audit::record(
                tx,
                org,
                &who,
                "api_token.create",
                target("api_token", record.id),
            )?;
            Ok(())
        })
        .await?;
    Ok((token, secret))
}

pub fn list_tokens(state: &AppState, org: OrgId) -> AppResult<Vec<ApiToken>> {
    let mut tokens = state.store.read()?.api_tokens_of_org(org)?;
    tokens.sort_by_key(|t| t.id);
    Ok(tokens)
}

pub async fn delete_token(
    state: &AppState,
    org: OrgId,
    id: ApiTokenId,
    who: &Who,
) -> AppResult<()> {
    let who = who.clone();
    state
        .write(move |tx| {
            let token = tx
                .api_token(id)?
                .filter(|t| t.organization_id == org)
                .ok_or(AppError::NotFound("API token"))?;
            tx.delete::<ApiToken>(&crate::store::Record::key(&token))?;
            audit::record(tx, org, &who, "api_token.delete", target("api_token", id))?;
            Ok(())
        })
        .await
}

/// The live token behind a secret; 401 for anything else.
pub fn verify_token(state: &AppState, secret: &str) -> AppResult<ApiToken> {
    let unauthorized = || AppError::Unauthorized("invalid API token".into());
    if !secret.starts_with(TOKEN_PREFIX) || secret.len() > 200 {
        return Err(unauthorized());
    }
    let token = state
        .store
        .read()?
        .api_token_by_hash(&token_hash(secret))?
        .ok_or_else(unauthorized)?;
    note_use(state, &token);
    Ok(token)
}

/// Records `lastUsedAt` without making the request wait for a commit.
fn note_use(state: &AppState, token: &ApiToken) {
    let now = Utc::now();
    if token
        .last_used_at
        .is_some_and(|t| now - t < LAST_USED_EVERY)
    {
        return;
    }
    let (state, id) = (state.clone(), token.id);
    tokio::spawn(async move {
        let _ = state
            .write(move |tx| {
                // Deleted meanwhile: nothing to note.
                if let Some(mut t) = tx.api_token(id)? {
                    t.last_used_at = Some(now);
                    tx.put(&t)?;
                }
                Ok(())
            })
            .await;
    });
}

/// Creates a signing key; returns it with its secret (shown once). The
/// HMAC key of member and visitor identity tokens is the secret's bytes.
pub async fn create_key(
    state: &AppState,
    org: OrgId,
    name: String,
    who: &Who,
) -> AppResult<(SigningKey, String)> {
    let secret = tokens::generate();
    let key = SigningKey {
        id: SigningKeyId::new(),
        organization_id: org,
        name,
        secret: secret.clone(),
        created_at: Utc::now(),
    };
    let (record, who) = (key.clone(), who.clone());
    state
        .write(move |tx| {
            if tx
                .signing_keys_of_org(org)?
                .iter()
                .any(|k| k.name == record.name)
            {
                return Err(name_taken("a signing key"));
            }
            tx.put(&record)?;
            audit::record(
                tx,
                org,
                &who,
                "signing_key.create",
                target("signing_key", record.id),
            )?;
            Ok(())
        })
        .await?;
    Ok((key, secret))
}

pub fn list_keys(state: &AppState, org: OrgId) -> AppResult<Vec<SigningKey>> {
    let mut keys = state.store.read()?.signing_keys_of_org(org)?;
    keys.sort_by_key(|k| k.id);
    Ok(keys)
}

pub async fn delete_key(
    state: &AppState,
    org: OrgId,
    id: SigningKeyId,
    who: &Who,
) -> AppResult<()> {
    let who = who.clone();
    state
        .write(move |tx| {
            let key = tx
                .signing_key(id)?
                .filter(|k| k.organization_id == org)
                .ok_or(AppError::NotFound("signing key"))?;
            tx.delete::<SigningKey>(&crate::store::Record::key(&key))?;
            tx.emit(crate::events::Event::SigningKeyRevoked { key: id });
            audit::record(
                tx,
                org,
                &who,
                "signing_key.delete",
                target("signing_key", id),
            )?;
            Ok(())
        })
        .await
}
