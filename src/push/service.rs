//! The agent's side of Web Push: the server's public key, subscribing a
//! device, unsubscribing it, and forgetting every device at logout.

use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::push::model::{MAX_PER_AGENT, PushSubscription};
use crate::push::subscription::NewSubscription;
use crate::state::AppState;
use crate::store::{self, Reader, WriteTx};

fn disabled() -> AppError {
    AppError::conflict("push_disabled", "Web Push is turned off on this server")
}

/// People get notifications; an API token has no device.
fn person(caller: &Caller) -> AppResult<()> {
    if caller.is_integration() {
        return Err(AppError::Forbidden(
            "an API token cannot receive notifications".into(),
        ));
    }
    Ok(())
}

/// The public key browsers subscribe with (`applicationServerKey`).
pub fn vapid_key(state: &AppState) -> AppResult<String> {
    Ok(state
        .push
        .keys()
        .ok_or_else(disabled)?
        .public_key()
        .to_owned())
}

/// Stores the caller's subscription for one device. An endpoint belongs to
/// one agent at a time: subscribing it again moves it to the caller. Its
/// address must be public unless `push.allow_private_endpoints`. Returns
/// the subscription and whether it is new for this agent.
pub async fn subscribe(
    state: &AppState,
    caller: &Caller,
    new: NewSubscription,
) -> AppResult<(PushSubscription, bool)> {
    person(caller)?;
    if state.push.keys().is_none() {
        return Err(disabled());
    }
    let allow_private = state.config.push.allow_private_endpoints;
    crate::webhooks::target::check_reachable(&new.endpoint, allow_private)
        .await
        .map_err(|_| {
            AppError::validation(
                "endpoint must resolve to a public address (not loopback, private or link-local)",
            )
        })?;
    let sub = PushSubscription {
        endpoint: new.endpoint.to_string(),
        agent_id: caller.id(),
        organization_id: caller.org(),
        p256dh: new.p256dh,
        auth: new.auth,
        locale: new.locale,
        created_at: state.clock.now(),
    };
    state.push.note_subscribed();
    let stored = sub.clone();
    let fresh = state
        .write(move |tx| {
            let before = tx.push_subscription(&stored.endpoint)?;
            let fresh = before
                .as_ref()
                .is_none_or(|b| b.agent_id != stored.agent_id);
            let mut sub = stored.clone();
            if let Some(b) = before.filter(|_| !fresh) {
                sub.created_at = b.created_at;
            }
            tx.put(&sub)?;
            // A new device beyond the limit replaces the oldest.
            let mut all = tx.push_subscriptions_of(sub.agent_id)?;
            if all.len() > MAX_PER_AGENT {
                all.sort_by_key(|s| s.created_at);
                for old in &all[..all.len() - MAX_PER_AGENT] {
                    tx.delete::<PushSubscription>(&PushSubscription::key_of(&old.endpoint))?;
                }
            }
            Ok(fresh)
        })
        .await?;
    tracing::debug!(agent = %caller.id(), fresh, "push subscription stored");
    Ok((sub, fresh))
}

/// Removes the caller's subscription of `endpoint`; another agent's, or
/// none, is a 404.
pub async fn unsubscribe(state: &AppState, caller: &Caller, endpoint: String) -> AppResult<()> {
    let agent = caller.id();
    state
        .write(move |tx| {
            tx.push_subscription(&endpoint)?
                .filter(|s| s.agent_id == agent)
                .ok_or(AppError::NotFound("push subscription"))?;
            tx.delete::<PushSubscription>(&PushSubscription::key_of(&endpoint))?;
            Ok(())
        })
        .await
}

/// Removes every device of `agent`, in the caller's write (logout).
pub fn forget_agent(tx: &mut WriteTx<'_>, agent: crate::ids::AgentId) -> store::Result<()> {
    for sub in tx.push_subscriptions_of(agent)? {
        tx.delete::<PushSubscription>(&PushSubscription::key_of(&sub.endpoint))?;
    }
    Ok(())
}
