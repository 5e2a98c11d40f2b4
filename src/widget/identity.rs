//! Verified visitors: the site's backend signs an identity token (`sub`,
//! `name?`, `email?`) with one of the organization's signing keys, the
//! widget hands it to `POST /widget/identify`, and the visitor becomes the
//! site's user `sub`. The same user on another device continues the
//! visitor already verified as `sub`; another user on the same browser
//! never sees the previous one's conversations.

use chrono::Utc;

use crate::auth::tokens;
use crate::error::{AppError, AppResult};
use crate::ids::VisitorId;
use crate::integrations::identity::{VisitorIdentity, verify_visitor_token};
use crate::spaces::model::{ChatSpace, IdentityVerification};
use crate::state::AppState;
use crate::store::{Reader, WriteTx, id_key, tables};
use crate::visitors::model::Visitor;

/// The outcome of an identify call: the visitor the widget now is, and a
/// new session token when that is another visitor than the caller.
#[derive(Clone, Debug)]
pub struct Identified {
    pub visitor: Visitor,
    pub session_token: Option<String>,
}

/// 403 `identity_required` unless the space lets `visitor` send.
pub fn check_may_send(space: &ChatSpace, visitor: &Visitor) -> AppResult<()> {
    if space.settings.identity_verification == IdentityVerification::Required && !visitor.verified {
        return Err(AppError::ForbiddenCode {
            code: "identity_required",
            message: "this chat is for signed-in users: sign in on the site to write".into(),
        });
    }
    Ok(())
}

/// Verifies `token` for the space and links the calling visitor to it, or
/// switches to the visitor already verified as the same user. A token that
/// fails in any way changes nothing.
pub async fn identify(
    state: &AppState,
    space: &ChatSpace,
    caller: VisitorId,
    token: &str,
) -> AppResult<Identified> {
    if space.settings.identity_verification == IdentityVerification::Off {
        return Err(AppError::conflict(
            "identity_off",
            "this chat does not take identity tokens",
        ));
    }
    let who = verify_visitor_token(state, token)?;
    if who.org != space.organization_id {
        // A key of another organization proves nothing here.
        return Err(AppError::UnauthorizedCode {
            code: "identity_invalid",
            message: "invalid identity token".into(),
        });
    }
    // Made outside the write, which may run more than once.
    let new_token = tokens::generate();
    let new_visitor_id = VisitorId::new();
    let space_id = space.id;
    state
        .write(move |tx| {
            let current = tx.visitor(caller)?.ok_or_else(session_gone)?;
            let known = tx.verified_visitor(space_id, &who.external_id)?;
            let (mut visitor, switch) = match known {
                Some(v) if v.id == current.id => (v, false),
                Some(v) => (v, true),
                // Someone else was signed in on this browser: start afresh.
                None if current.verified => (fresh_visitor(tx, &current, new_visitor_id)?, true),
                None => (current, false),
            };
            apply_identity(&mut visitor, &who);
            tx.put(&visitor)?;
            let session_token = if switch {
                // Only the hash is stored, as for every visitor session.
                tx.put_raw(
                    tables::IDX_VISITOR_TOKEN,
                    &tokens::hash(&new_token),
                    &id_key(visitor.id.as_u128()),
                )?;
                Some(new_token.clone())
            } else {
                None
            };
            Ok(Identified {
                visitor,
                session_token,
            })
        })
        .await
}

fn session_gone() -> AppError {
    AppError::Unauthorized("invalid visitor session".into())
}

/// The token's user on the visitor: verified, with the token's name and
/// email where it carries them.
fn apply_identity(v: &mut Visitor, who: &VisitorIdentity) {
    v.external_id = Some(who.external_id.clone());
    v.verified = true;
    if let Some(name) = &who.name {
        v.display_name = Some(name.clone());
    }
    if let Some(email) = &who.email {
        v.email = Some(email.clone());
    }
    v.metadata.last_seen_at = Some(Utc::now());
}

/// A new visitor on the same browser: the page it is on, nothing of the
/// previous person's.
fn fresh_visitor(tx: &mut WriteTx<'_>, current: &Visitor, id: VisitorId) -> AppResult<Visitor> {
    let space = current.chat_space_id;
    let now = Utc::now();
    let mut metadata = current.metadata.clone();
    metadata.first_seen_at = Some(now);
    metadata.last_seen_at = Some(now);
    Ok(Visitor {
        id,
        chat_space_id: space,
        number: tx.next_counter(&format!("visitors:{space}"))?,
        display_name: None,
        email: None,
        phone: None,
        external_id: None,
        verified: false,
        attributes: Default::default(),
        metadata,
        created_at: now,
        email_opt_out: false,
        notes: None,
    })
}
