//! The `push` task: sends due pushes at least once. Before sending, each is
//! checked again against the present — the thread still open and still the
//! agent's to hear about, not read or answered meanwhile (what the quiet
//! minutes wait for), the device still subscribed — and dropped if not.
//! Then it is encrypted for the device (RFC 8291, aes128gcm), signed with
//! the VAPID key (RFC 8292) and posted with a TTL and `Urgency: high`.
//! A push service's 404/410 removes the subscription; 429, 5xx and network
//! failures are retried with backoff and dropped after a few attempts.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;

use crate::ids::{MessageId, ThreadId};
use crate::messages::model::SenderType;
use crate::push::model::{
    MAX_ATTEMPTS, Push, PushKind, PushSubscription, RETRY_AFTER_SECS, TTL_SECS,
};
use crate::state::AppState;
use crate::store::{ReadTx, Reader};
use crate::tasks::Tasks;
use crate::threads::rules::Access;
use crate::webhooks::target;

/// Longest wait for a push service's answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How often due pushes are looked for without being woken.
const POLL: Duration = Duration::from_secs(1);
/// Pushes taken on per scan.
const BATCH: usize = 200;
/// Pushes in flight at once.
const IN_FLIGHT: usize = 8;

fn client(allow_private: bool) -> reqwest::Client {
    crate::webhooks::worker::client(
        allow_private,
        concat!("My-Chat-Push/", env!("CARGO_PKG_VERSION")),
    )
}

pub fn start(state: &AppState, tasks: &mut Tasks) {
    if state.push.keys().is_none() {
        return;
    }
    let state = state.clone();
    let client = client(state.config.push.allow_private_endpoints);
    tasks.spawn("push", move |mut stop| async move {
        loop {
            // With several nodes, the one that runs the jobs sends.
            let due = if state.store.leads() {
                state
                    .store
                    .read()
                    .and_then(|r| r.pushes_due(state.clock.now(), BATCH))
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            let more = due.len() == BATCH;
            futures_util::stream::iter(due)
                .for_each_concurrent(IN_FLIGHT, |p| deliver(&state, &client, p))
                .await;
            let wait = if more { Duration::ZERO } else { POLL };
            tokio::select! {
                _ = stop.requested() => break,
                _ = state.push.due.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    });
}

/// What becomes of one push.
enum Outcome {
    Sent,
    /// The device is gone (404/410): its subscription goes too.
    Gone,
    /// Worth another try later.
    Retry(String),
    /// Refused for good, or no longer wanted.
    Drop(String),
}

async fn deliver(state: &AppState, client: &reqwest::Client, p: Push) {
    let now = state.clock.now();
    let checked = state
        .store
        .read()
        .map_err(|e| e.to_string())
        .and_then(|read| check(&read, &p, now));
    let outcome = match checked {
        Ok(None) => return,
        Ok(Some(Err(why))) => {
            state.push.skipped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(push = %p.id, why, "push no longer wanted");
            return finish(state, &p, Outcome::Drop(why)).await;
        }
        Ok(Some(Ok(sub))) => send(state, client, &sub, &p).await,
        Err(e) => Outcome::Retry(e),
    };
    let last_try = p.attempts + 1 >= MAX_ATTEMPTS;
    let counter = match &outcome {
        Outcome::Sent => Some(&state.push.sent),
        Outcome::Gone | Outcome::Drop(_) => Some(&state.push.failed),
        Outcome::Retry(_) if last_try => Some(&state.push.failed),
        Outcome::Retry(_) => None,
    };
    if let Some(counter) = counter {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    finish(state, &p, outcome).await;
}

/// The push's device, when it is still due and still wanted; `Err` with
/// why it is not; None when another scan already took care of it.
fn check(
    read: &ReadTx,
    p: &Push,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Result<PushSubscription, String>>, String> {
    let e = |e: crate::store::Error| e.to_string();
    match read.push(p.id).map_err(e)? {
        Some(current) if current.due_at <= now => {}
        _ => return Ok(None),
    }
    let wanted = || -> Result<Result<PushSubscription, String>, crate::store::Error> {
        let no = |why: &str| Ok(Err(why.to_owned()));
        let Some(sub) = read
            .push_subscription(&p.endpoint)?
            .filter(|s| s.agent_id == p.agent_id)
        else {
            return no("the device unsubscribed");
        };
        let Some(agent) = read.agent(p.agent_id)?.filter(|a| !a.disabled) else {
            return no("the agent is gone or disabled");
        };
        let Some(thread) = read.thread(p.thread_id)?.filter(|t| t.status.is_open()) else {
            return no("the thread is gone or ended");
        };
        let holds = thread.assigned_agent_id == Some(agent.id);
        let still_for_agent = match p.kind {
            PushKind::NewThread => {
                thread.assigned_agent_id.is_none() && Access::of(&agent).may_claim(&thread)
            }
            PushKind::Message | PushKind::Transfer => holds,
        };
        if !still_for_agent || !agent.notify.wants(holds) {
            return no("the thread is no longer the agent's to hear about");
        }
        if let Some(m) = p.message_id {
            let read_up_to = thread.agent_reads.get(&agent.id).map(|r| r.up_to);
            if read_up_to.is_some_and(|r| r >= m) {
                return no("the agent read it");
            }
            if p.kind != PushKind::Transfer && answered(read, thread.id, m)? {
                return no("the visitor was answered");
            }
        }
        Ok(Ok(sub))
    };
    wanted().map(Some).map_err(e)
}

/// Whether anyone but the visitor wrote to the visitor after message `m`.
fn answered(read: &ReadTx, thread: ThreadId, m: MessageId) -> crate::store::Result<bool> {
    let later = read.messages(thread, Some(m), false, 500)?;
    Ok(later.iter().any(|l| {
        !l.internal
            && l.deleted_at.is_none()
            && matches!(
                l.sender_type,
                SenderType::Agent | SenderType::Integration | SenderType::Member
            )
    }))
}

async fn send(
    state: &AppState,
    client: &reqwest::Client,
    sub: &PushSubscription,
    p: &Push,
) -> Outcome {
    let Some(keys) = state.push.keys() else {
        return Outcome::Retry("Web Push is off".into());
    };
    let Ok(url) = reqwest::Url::parse(&sub.endpoint) else {
        return Outcome::Drop("the endpoint is not a URL".into());
    };
    // IP literals never reach the resolver: the same rule, here.
    if !state.config.push.allow_private_endpoints
        && let Some(host) = url.host_str()
        && let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
        && target::is_private(ip)
    {
        return Outcome::Drop("the endpoint points at a private address".into());
    }
    let Some((public, secret)) = sub.keys() else {
        return Outcome::Drop("the subscription's keys are unusable".into());
    };
    let auth = web_push_native::Auth::from(secret);
    let body = match web_push_native::encrypt(p.payload().into_bytes(), &public, &auth) {
        Ok(body) => body,
        Err(e) => return Outcome::Drop(format!("encryption failed: {e}")),
    };
    let subject = match state.config.push.subject.as_str() {
        "" => state.base_url().to_owned(),
        s => s.to_owned(),
    };
    let authorization = match keys.authorization(&url, &subject) {
        Ok(a) => a,
        Err(e) => return Outcome::Drop(e),
    };
    let sent = client
        .post(url)
        .header("authorization", authorization)
        .header("ttl", TTL_SECS.to_string())
        .header("urgency", "high")
        .header("content-encoding", "aes128gcm")
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await;
    match sent {
        Ok(resp) => match resp.status().as_u16() {
            200..=299 => Outcome::Sent,
            404 | 410 => Outcome::Gone,
            429 | 500..=599 => {
                Outcome::Retry(format!("the push service answered {}", resp.status()))
            }
            code => Outcome::Drop(format!("the push service refused it ({code})")),
        },
        Err(e) if e.is_timeout() => Outcome::Retry("timed out".into()),
        Err(e) if e.is_connect() => Outcome::Retry("could not connect".into()),
        Err(_) => Outcome::Retry("request failed".into()),
    }
}

/// Records what became of a push: removed, or moved to its next attempt.
async fn finish(state: &AppState, p: &Push, outcome: Outcome) {
    let now = state.clock.now();
    let (id, endpoint, agent) = (p.id, p.endpoint.clone(), p.agent_id);
    let retry_at = match &outcome {
        Outcome::Retry(why) if p.attempts + 1 < MAX_ATTEMPTS => {
            tracing::debug!(push = %id, why, attempt = p.attempts + 1, "push will be retried");
            let wait = RETRY_AFTER_SECS[(p.attempts as usize).min(RETRY_AFTER_SECS.len() - 1)];
            Some(now + chrono::Duration::seconds(wait))
        }
        Outcome::Retry(why) | Outcome::Drop(why) => {
            tracing::info!(push = %id, agent = %agent, why, "push dropped");
            None
        }
        Outcome::Gone => {
            tracing::info!(agent = %agent, "push subscription expired; removed");
            None
        }
        Outcome::Sent => None,
    };
    let gone = matches!(outcome, Outcome::Gone);
    let result = state
        .write(move |tx| {
            let Some(mut current) = tx.push(id)? else {
                return Ok(());
            };
            if gone
                && tx
                    .push_subscription(&endpoint)?
                    .is_some_and(|s| s.agent_id == agent)
            {
                tx.delete::<PushSubscription>(&PushSubscription::key_of(&endpoint))?;
            }
            match retry_at {
                Some(at) => {
                    current.attempts += 1;
                    current.due_at = at;
                    tx.put(&current)?;
                }
                None => {
                    tx.delete::<Push>(&crate::store::id_key(id.as_u128()))?;
                }
            }
            Ok(())
        })
        .await;
    if let Err(e) = result {
        tracing::warn!(push = %id, error = %e, "could not record a push");
    }
}
