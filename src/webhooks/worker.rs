//! The delivery worker: sends due deliveries at least once, one at a time
//! per webhook (in order while the endpoint answers; a delivery waiting for
//! its retry does not hold back later ones), never more than one request in
//! flight per endpoint, so a slow or dead endpoint delays no other. Retries
//! follow the Standard Webhooks schedule; a webhook failing for
//! `webhooks.disable_after_hours` is disabled. The message path never waits
//! on any of this: it only wrote the outbox row.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::ids::WebhookId;
use crate::state::AppState;
use crate::store::Reader;
use crate::tasks::Tasks;
use crate::webhooks::model::{Attempt, Delivery, DeliveryStatus, RETRY_AFTER_SECS, Webhook};
use crate::webhooks::{service, target};

/// Longest wait for an endpoint's answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Most of a response body read (and thrown away).
const MAX_RESPONSE: usize = 4096;
/// Deliveries one webhook's task takes on before the next scan.
const PER_HOOK: usize = 100;
/// Pages of 1,000 due rows one scan may read.
const MAX_PAGES: usize = 50;
/// How often due deliveries are looked for without being woken.
const POLL: Duration = Duration::from_millis(500);

/// The client for addresses API users give (webhooks, push endpoints): no
/// redirects, no proxy, the SSRF guard on every connection, 10 s.
pub fn client(allow_private: bool, user_agent: &'static str) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would resolve the target itself, past the guard.
        .no_proxy()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .dns_resolver(Arc::new(target::GuardedResolver { allow_private }))
        .user_agent(user_agent)
        .build()
        .expect("the guarded client builds")
}

pub fn start(state: &AppState, tasks: &mut Tasks) {
    let state = state.clone();
    let client = client(
        state.config.webhooks.allow_private_targets,
        concat!("My-Chat-Webhooks/", env!("CARGO_PKG_VERSION")),
    );
    let busy: Arc<Mutex<HashSet<WebhookId>>> = Arc::default();
    tasks.spawn("webhooks", move |mut stop| async move {
        loop {
            let serving = busy.lock().expect("busy lock").clone();
            // With several nodes, the one that runs the jobs delivers.
            let by_hook = if state.store.leads() {
                due_by_hook(&state, &serving)
            } else {
                BTreeMap::new()
            };
            for (hook, mut list) in by_hook {
                if !busy.lock().expect("busy lock").insert(hook) {
                    continue;
                }
                list.sort_by_key(|d| d.id);
                let (state, client, busy) = (state.clone(), client.clone(), busy.clone());
                tokio::spawn(async move {
                    for d in list {
                        deliver(&state, &client, d).await;
                    }
                    busy.lock().expect("busy lock").remove(&hook);
                    state.webhooks_due.notify_one();
                });
            }
            tokio::select! {
                _ = stop.requested() => break,
                _ = state.webhooks_due.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    });
}

/// Due deliveries of the webhooks not being served now, oldest first, at
/// most [`PER_HOOK`] each. The scan goes past the rows of busy webhooks, so
/// one endpoint's backlog never hides another's deliveries.
fn due_by_hook(state: &AppState, busy: &HashSet<WebhookId>) -> BTreeMap<WebhookId, Vec<Delivery>> {
    let mut by_hook: BTreeMap<WebhookId, Vec<Delivery>> = BTreeMap::new();
    let Ok(read) = state.store.read() else {
        return by_hook;
    };
    let now = state.clock.now();
    let mut after = None;
    for _ in 0..MAX_PAGES {
        let Ok((page, next)) = read.deliveries_due(now, after, 1000) else {
            break;
        };
        for d in page {
            if busy.contains(&d.webhook_id) {
                continue;
            }
            let list = by_hook.entry(d.webhook_id).or_default();
            if list.len() < PER_HOOK {
                list.push(d);
            }
        }
        match next {
            Some(k) => after = Some(k),
            None => break,
        }
    }
    by_hook
}

/// One attempt at one delivery, and its record.
async fn deliver(state: &AppState, client: &reqwest::Client, d: Delivery) {
    // The list was read before this task began: another may have sent it
    // meanwhile, or an attempt moved it later.
    let now = state.clock.now();
    let Ok(read) = state.store.read() else { return };
    let Ok(Some(d)) = read.delivery(d.id) else {
        return;
    };
    if d.status != DeliveryStatus::Pending || d.next_attempt_at.is_none_or(|at| at > now) {
        return;
    }
    // Deleted meanwhile: its deliveries went with it.
    let Ok(Some(webhook)) = read.webhook(d.webhook_id) else {
        return;
    };
    drop(read);
    if !webhook.enabled {
        record(
            state,
            &d,
            None,
            Some("the webhook is disabled".into()),
            0,
            true,
        )
        .await;
        return;
    }
    if state.store.is_shared() && !lease(state, &d).await {
        return;
    }
    let started = Instant::now();
    let (code, error) = match send(state, client, &webhook, &d).await {
        Ok(code) => (Some(code), None),
        Err(e) => (None, Some(e)),
    };
    let ms = started.elapsed().as_millis() as u64;
    record(state, &d, code, error, ms, false).await;
}

async fn send(
    state: &AppState,
    client: &reqwest::Client,
    webhook: &Webhook,
    d: &Delivery,
) -> Result<u16, String> {
    let url = target::parse_url(&webhook.url).map_err(|e| e.to_string())?;
    // IP literals never reach the resolver: the same rule, here.
    if !state.config.webhooks.allow_private_targets
        && let Some(host) = url.host_str()
        && let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
        && target::is_private(ip)
    {
        return Err("the webhook points at a private address".into());
    }
    let now = state.clock.now();
    let id = d.message_id();
    let ts = now.timestamp();
    let signature = service::signature_header(webhook, now, &id, ts, &d.payload);
    let mut resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(d.payload.clone())
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                "timed out".to_owned()
            } else if e.is_connect() {
                "could not connect".to_owned()
            } else {
                "request failed".to_owned()
            }
        })?;
    let code = resp.status().as_u16();
    let mut read = 0;
    while read < MAX_RESPONSE {
        match resp.chunk().await {
            Ok(Some(c)) => read += c.len(),
            _ => break,
        }
    }
    Ok(code)
}

/// Notes an attempt: delivered on a 2xx; otherwise the next try, or failed
/// after the last. A webhook failing too long is disabled.
/// How long a node that took a delivery has to send it before another
/// node may (should the first die while sending).
const LEASE_SECS: i64 = 60;

/// With several nodes over one database, every node runs this worker: the
/// node that moves the delivery's next attempt past now sends it, the
/// others see it is not due and leave it (a serializable commit has one
/// winner).
async fn lease(state: &AppState, d: &Delivery) -> bool {
    let now = state.clock.now();
    let id = d.id;
    let taken = state
        .write(move |tx| {
            let Some(mut d) = tx.delivery(id)? else {
                return Ok(false);
            };
            if d.status != DeliveryStatus::Pending || d.next_attempt_at.is_none_or(|at| at > now) {
                return Ok(false);
            }
            d.next_attempt_at = Some(now + chrono::Duration::seconds(LEASE_SECS));
            tx.put(&d)?;
            Ok(true)
        })
        .await;
    taken.unwrap_or(false)
}

async fn record(
    state: &AppState,
    d: &Delivery,
    code: Option<u16>,
    error: Option<String>,
    ms: u64,
    give_up: bool,
) {
    let now = state.clock.now();
    let disable_after = chrono::Duration::hours(state.config.webhooks.disable_after_hours as i64);
    let (id, hook) = (d.id, d.webhook_id);
    let ok = code.is_some_and(|c| (200..300).contains(&c));
    let result = state
        .write(move |tx| {
            let Some(mut d) = tx.delivery(id)? else {
                return Ok(());
            };
            if !give_up {
                d.attempts.push(Attempt {
                    at: now,
                    response_code: code,
                    error: error.clone(),
                    duration_ms: ms,
                });
            }
            let retries = d.attempts.len().saturating_sub(1);
            if ok {
                d.status = DeliveryStatus::Delivered;
                d.next_attempt_at = None;
            } else if give_up || retries >= RETRY_AFTER_SECS.len() {
                d.status = DeliveryStatus::Failed;
                d.next_attempt_at = None;
            } else {
                d.next_attempt_at =
                    Some(now + chrono::Duration::seconds(RETRY_AFTER_SECS[retries]));
            }
            tx.put(&d)?;
            if give_up {
                return Ok(());
            }
            if let Some(mut w) = tx.webhook(hook)? {
                if ok {
                    if w.failing_since.take().is_some() {
                        tx.put(&w)?;
                    }
                } else {
                    let since = *w.failing_since.get_or_insert(now);
                    if now - since >= disable_after && w.enabled {
                        w.enabled = false;
                        w.disabled_reason = Some(format!(
                            "disabled at {}: every delivery failed since {}",
                            now.to_rfc3339(),
                            since.to_rfc3339()
                        ));
                        tracing::warn!(webhook = %w.id, "webhook disabled after failing too long");
                    }
                    w.updated_at = Utc::now();
                    tx.put(&w)?;
                }
            }
            Ok(())
        })
        .await;
    if let Err(e) = result {
        tracing::warn!(delivery = %id, error = %e, "could not record a webhook attempt");
    }
}
