//! Chat space use cases.

use chrono::Utc;

use crate::auth::tokens;
use crate::error::{AppError, AppResult};
use crate::ids::{OrgId, SpaceId};
use crate::spaces::model::{ChatSpace, SpaceSettings};
use crate::state::AppState;
use crate::store::Reader;

pub const MAX_NAME: usize = 100;
pub const MAX_DOMAINS: usize = 50;

/// Checks one allowed-domain entry: `host`, `host:port` or `*.suffix`.
pub fn parse_domain(entry: &str) -> AppResult<String> {
    let e = entry.trim().to_ascii_lowercase();
    let bad = || {
        AppError::validation(format!(
            "allowedDomains: {entry:?} is not a host, host:port or *.domain"
        ))
    };
    let (host, port) = match e.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (e.as_str(), None),
    };
    if let Some(p) = port
        && p.parse::<u16>().is_err()
    {
        return Err(bad());
    }
    let host = host.strip_prefix("*.").unwrap_or(host);
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !valid {
        return Err(bad());
    }
    Ok(e)
}

pub fn parse_domains(entries: &[String]) -> AppResult<Vec<String>> {
    crate::validate::list_len("allowedDomains", entries, MAX_DOMAINS)?;
    let mut out: Vec<String> = Vec::with_capacity(entries.len());
    for e in entries {
        let d = parse_domain(e)?;
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

/// Creates a chat space with default settings.
pub async fn create(
    state: &AppState,
    org: OrgId,
    name: &str,
    domains: Vec<String>,
) -> AppResult<ChatSpace> {
    let space = ChatSpace {
        id: SpaceId::new(),
        organization_id: org,
        name: crate::validate::name("name", name, MAX_NAME)?,
        widget_key: tokens::public_key(),
        allowed_domains: parse_domains(&domains)?,
        settings: SpaceSettings::default(),
        created_at: Utc::now(),
    };
    let s = space.clone();
    state
        .store
        .write(move |tx| {
            if tx.org(org)?.is_none() {
                return Err(AppError::NotFound("organization").into());
            }
            tx.put(&s)
        })
        .await?;
    Ok(space)
}

/// A space of the caller's organization; another organization's is a 404.
pub fn get(state: &AppState, org: OrgId, id: SpaceId) -> AppResult<ChatSpace> {
    state
        .store
        .read()?
        .space(id)?
        .filter(|s| s.organization_id == org)
        .ok_or(AppError::NotFound("chat space"))
}
