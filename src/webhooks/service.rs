//! Webhook use cases for admins: create (secret shown once), list, get,
//! change, delete, rotate the secret, the delivery log, retrying one
//! delivery, and a test event. Also the Standard Webhooks signature.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{Duration, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::audit::{self, Who, target};
use crate::error::{AppError, AppResult};
use crate::ids::{DeliveryId, OrgId, WebhookId};
use crate::state::AppState;
use crate::store::Reader;
use crate::webhooks::model::{
    Delivery, DeliveryStatus, EVENTS, MAX_DESCRIPTION, ROTATION_OVERLAP_HOURS, TEST_EVENT, Webhook,
};
use crate::webhooks::outbox;
use crate::webhooks::target;

const SECRET_PREFIX: &str = "whsec_";

/// `whsec_` + base64 of 32 random bytes; the HMAC key is those bytes.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let key = STANDARD
        .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
        .unwrap_or_default();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: the current secret's signature, and the
/// previous one's while a rotation's overlap lasts.
pub fn signature_header(
    webhook: &Webhook,
    now: chrono::DateTime<Utc>,
    id: &str,
    timestamp: i64,
    body: &str,
) -> String {
    let mut header = sign(&webhook.secret, id, timestamp, body);
    if let Some((old, until)) = &webhook.previous_secret
        && now < *until
    {
        header.push(' ');
        header.push_str(&sign(old, id, timestamp, body));
    }
    header
}

pub fn parse_events(events: &[String]) -> AppResult<Vec<String>> {
    if events.is_empty() {
        return Err(AppError::validation("events must name at least one event"));
    }
    crate::validate::list_len("events", events, EVENTS.len())?;
    let mut out: Vec<String> = Vec::new();
    for e in events {
        if !EVENTS.contains(&e.as_str()) {
            return Err(AppError::validation(format!(
                "unknown event {e:?}; known: {}",
                EVENTS.join(", ")
            )));
        }
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    Ok(out)
}

pub fn parse_description(d: Option<&str>) -> AppResult<Option<String>> {
    match d.map(str::trim) {
        None | Some("") => Ok(None),
        Some(d) => {
            crate::validate::bounded("description", d, MAX_DESCRIPTION)?;
            Ok(Some(d.to_owned()))
        }
    }
}

/// A URL a webhook may point at, checked now (its addresses too).
pub async fn check_url(state: &AppState, raw: &str) -> AppResult<String> {
    let url = target::parse_url(raw)?;
    target::check_reachable(&url, state.config.webhooks.allow_private_targets).await?;
    Ok(url.to_string())
}

pub async fn create(
    state: &AppState,
    org: OrgId,
    url: String,
    events: Vec<String>,
    description: Option<String>,
    who: &Who,
) -> AppResult<(Webhook, String)> {
    let now = Utc::now();
    let secret = new_secret();
    let webhook = Webhook {
        id: WebhookId::new(),
        organization_id: org,
        url,
        description,
        events,
        enabled: true,
        secret: secret.clone(),
        previous_secret: None,
        failing_since: None,
        disabled_reason: None,
        created_at: now,
        updated_at: now,
    };
    let (record, who) = (webhook.clone(), who.clone());
    outbox::webhooks_may_exist();
    state
        .write(move |tx| {
            tx.put(&record)?;
            audit::record(
                tx,
                org,
                &who,
                "webhook.create",
                target("webhook", record.id),
            )?;
            Ok(())
        })
        .await?;
    Ok((webhook, secret))
}

pub fn list(state: &AppState, org: OrgId) -> AppResult<Vec<Webhook>> {
    let mut hooks = state.store.read()?.webhooks_of_org(org)?;
    hooks.sort_by_key(|w| w.id);
    Ok(hooks)
}

fn webhook_in<R: Reader + ?Sized>(read: &R, org: OrgId, id: WebhookId) -> AppResult<Webhook> {
    read.webhook(id)?
        .filter(|w| w.organization_id == org)
        .ok_or(AppError::NotFound("webhook"))
}

pub fn get(state: &AppState, org: OrgId, id: WebhookId) -> AppResult<Webhook> {
    webhook_in(&state.store.read()?, org, id)
}

#[derive(Clone, Debug, Default)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub description: Option<Option<String>>,
}

pub async fn update(
    state: &AppState,
    org: OrgId,
    id: WebhookId,
    patch: WebhookPatch,
    who: &Who,
) -> AppResult<Webhook> {
    let who = who.clone();
    state
        .write(move |tx| {
            let mut w = webhook_in(tx, org, id)?;
            if let Some(u) = &patch.url {
                w.url = u.clone();
            }
            if let Some(e) = &patch.events {
                w.events = e.clone();
            }
            if let Some(d) = &patch.description {
                w.description = d.clone();
            }
            if let Some(enabled) = patch.enabled {
                w.enabled = enabled;
                if enabled {
                    // Enabled again by an admin: a fresh start.
                    w.disabled_reason = None;
                    w.failing_since = None;
                }
            }
            w.updated_at = Utc::now();
            tx.put(&w)?;
            audit::record(tx, org, &who, "webhook.update", target("webhook", id))?;
            Ok(w)
        })
        .await
}

pub async fn delete(state: &AppState, org: OrgId, id: WebhookId, who: &Who) -> AppResult<()> {
    let who = who.clone();
    state
        .write(move |tx| {
            let w = webhook_in(tx, org, id)?;
            tx.delete::<Webhook>(&crate::store::Record::key(&w))?;
            // Its pending deliveries go with it.
            for d in tx.deliveries_of(id, None, usize::MAX)? {
                tx.delete::<Delivery>(&crate::store::Record::key(&d))?;
            }
            audit::record(tx, org, &who, "webhook.delete", target("webhook", id))?;
            Ok(())
        })
        .await
}

/// A new secret; the old one still signs for a day, so receivers can
/// switch without missing a delivery.
pub async fn rotate(state: &AppState, org: OrgId, id: WebhookId, who: &Who) -> AppResult<String> {
    let who = who.clone();
    let secret = new_secret();
    let new = secret.clone();
    state
        .write(move |tx| {
            let mut w = webhook_in(tx, org, id)?;
            let until = Utc::now() + Duration::hours(ROTATION_OVERLAP_HOURS);
            w.previous_secret = Some((std::mem::replace(&mut w.secret, new.clone()), until));
            w.updated_at = Utc::now();
            tx.put(&w)?;
            audit::record(
                tx,
                org,
                &who,
                "webhook.rotate_secret",
                target("webhook", id),
            )?;
            Ok(())
        })
        .await?;
    state.webhooks_due.notify_one();
    Ok(secret)
}

/// A page of a webhook's deliveries, newest first.
pub fn deliveries(
    state: &AppState,
    org: OrgId,
    id: WebhookId,
    cursor: Option<DeliveryId>,
    limit: usize,
) -> AppResult<(Vec<Delivery>, Option<DeliveryId>)> {
    let read = state.store.read()?;
    webhook_in(&read, org, id)?;
    let items = read.deliveries_of(id, cursor, limit)?;
    let next = (items.len() == limit)
        .then(|| items.last().map(|d| d.id))
        .flatten();
    Ok((items, next))
}

/// Tries one delivery again now (a failed one too).
pub async fn retry(
    state: &AppState,
    org: OrgId,
    id: WebhookId,
    delivery: DeliveryId,
) -> AppResult<Delivery> {
    let now = state.clock.now();
    let d = state
        .write(move |tx| {
            webhook_in(tx, org, id)?;
            let mut d = tx
                .delivery(delivery)?
                .filter(|d| d.webhook_id == id)
                .ok_or(AppError::NotFound("delivery"))?;
            d.status = DeliveryStatus::Pending;
            d.next_attempt_at = Some(now);
            tx.put(&d)?;
            Ok(d)
        })
        .await?;
    state.webhooks_due.notify_one();
    Ok(d)
}

/// Queues a `webhook.test` delivery.
pub async fn send_test(state: &AppState, org: OrgId, id: WebhookId) -> AppResult<Delivery> {
    let d = state
        .write(move |tx| {
            let w = webhook_in(tx, org, id)?;
            let body = outbox::body(
                TEST_EVENT,
                serde_json::json!({ "webhookId": w.id, "message": "This is a test event from My-Chat." }),
            );
            let d = outbox::delivery(&w, TEST_EVENT, body);
            tx.put(&d)?;
            Ok(d)
        })
        .await?;
    state.webhooks_due.notify_one();
    Ok(d)
}

/// Drops delivered and failed deliveries older than `days` (their payloads
/// hold message content); pending ones stay until they end.
pub async fn prune(state: &AppState, days: u32) -> AppResult<usize> {
    let cutoff = Utc::now() - Duration::days(i64::from(days));
    let old = state
        .store
        .read()?
        .finished_deliveries_before(cutoff, 5000)?;
    if old.is_empty() {
        return Ok(0);
    }
    state
        .write(move |tx| {
            for d in &old {
                tx.delete::<Delivery>(&crate::store::Record::key(d))?;
            }
            Ok(old.len())
        })
        .await
}
