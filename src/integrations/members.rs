//! Members: the integrator's users, created or updated the first time a
//! valid member token or a management call names them.

use chrono::{Duration, Utc};

use crate::error::{AppError, AppResult};
use crate::ids::{MemberId, OrgId};
use crate::integrations::identity::MemberIdentity;
use crate::integrations::model::{MAX_EXTERNAL_ID, MAX_NAME, Member};
use crate::state::AppState;
use crate::store::{Reader, WriteTx};

/// `lastSeenAt` is written at most this often.
const SEEN_EVERY: Duration = Duration::minutes(5);

/// Checks an external id from a management call: what a member token's
/// `sub` may be.
pub fn parse_external_id(id: &str) -> AppResult<String> {
    if id.trim().is_empty()
        || id.chars().count() > MAX_EXTERNAL_ID
        || id.chars().any(char::is_control)
    {
        return Err(AppError::validation(format!(
            "externalId must have 1 to {MAX_EXTERNAL_ID} printable characters"
        )));
    }
    Ok(id.to_owned())
}

/// The member with this external id, created when new; inside a write.
/// `name`/`email` update it when given.
pub fn upsert_in(
    tx: &mut WriteTx<'_>,
    org: OrgId,
    external_id: &str,
    name: Option<&str>,
    email: Option<Option<&str>>,
) -> AppResult<Member> {
    let now = Utc::now();
    match tx.member_by_external(org, external_id)? {
        Some(mut m) => {
            let mut changed = false;
            if let Some(n) = name
                && n != m.name
            {
                m.name = n.to_owned();
                changed = true;
            }
            if let Some(e) = email
                && e.map(str::to_owned) != m.email
            {
                m.email = e.map(str::to_owned);
                changed = true;
            }
            if changed {
                tx.put(&m)?;
            }
            Ok(m)
        }
        None => {
            let m = Member {
                id: MemberId::new(),
                organization_id: org,
                external_id: external_id.to_owned(),
                name: name.unwrap_or(external_id).to_owned(),
                email: email.flatten().map(str::to_owned),
                created_at: now,
                last_seen_at: None,
            };
            tx.put(&m)?;
            Ok(m)
        }
    }
}

/// The member a verified token names: created on first sight, kept in
/// step with the token's name and email, and its `lastSeenAt` noted. Only
/// writes when something changed.
pub async fn from_identity(state: &AppState, who: &MemberIdentity) -> AppResult<Member> {
    let now = Utc::now();
    if let Some(m) = state
        .store
        .read()?
        .member_by_external(who.org, &who.external_id)?
        && m.name == who.name
        && m.email == who.email
        && m.last_seen_at.is_some_and(|t| now - t < SEEN_EVERY)
    {
        return Ok(m);
    }
    let who = who.clone();
    state
        .write(move |tx| {
            let mut m = upsert_in(
                tx,
                who.org,
                &who.external_id,
                Some(&who.name),
                Some(who.email.as_deref()),
            )?;
            m.last_seen_at = Some(now);
            tx.put(&m)?;
            Ok(m)
        })
        .await
}

pub fn list(state: &AppState, org: OrgId) -> AppResult<Vec<Member>> {
    let mut members = state.store.read()?.members_of_org(org)?;
    members.sort_by_key(|m| m.id);
    Ok(members)
}

pub fn get(state: &AppState, org: OrgId, external_id: &str) -> AppResult<Member> {
    state
        .store
        .read()?
        .member_by_external(org, external_id)?
        .ok_or(AppError::NotFound("member"))
}

pub fn check_name(name: &str) -> AppResult<String> {
    crate::validate::name("name", name, MAX_NAME)
}
