//! Turns committed events into webhook deliveries, inside the same
//! transaction (the store's outbox hook): an event that commits has its
//! deliveries, one that does not has none. Payloads are Standard Webhooks
//! bodies `{type, timestamp, data}`; internal notes are never sent.

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Utc;
use serde::Serialize;
use serde_json::{Value, json};

use crate::events::Event;
use crate::ids::{AgentId, DeliveryId, OrgId, SpaceId, ThreadId, VisitorId};
use crate::integrations::views::{Participant, participants};
use crate::messages::model::Message;
use crate::store::{self, Reader, WriteTx};
use crate::threads::model::{ExternalRef, Thread, ThreadStatus};
use crate::webhooks::model::{Delivery, DeliveryStatus, Webhook};

/// Whether any database this process opened may hold a webhook. Set when
/// one is opened with webhooks and before a webhook is created; never
/// cleared, so it only ever lets the hook skip work when there is surely
/// nothing to deliver.
static ANY_WEBHOOK: AtomicBool = AtomicBool::new(false);

/// Notes that webhooks may exist (see [`ANY_WEBHOOK`]).
pub fn webhooks_may_exist() {
    ANY_WEBHOOK.store(true, Ordering::Release);
}

/// A thread as webhooks carry it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HookThread<'a> {
    id: ThreadId,
    chat_space_id: SpaceId,
    status: ThreadStatus,
    subject: &'a Option<String>,
    external_ref: &'a Option<ExternalRef>,
    /// Absent on object-bound threads, which have members instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    visitor_id: Option<VisitorId>,
    assigned_agent_id: Option<AgentId>,
    created_at: chrono::DateTime<Utc>,
    updated_at: chrono::DateTime<Utc>,
    closed_at: Option<chrono::DateTime<Utc>>,
}

fn hook_thread(t: &Thread) -> HookThread<'_> {
    HookThread {
        id: t.id,
        chat_space_id: t.chat_space_id,
        status: t.status,
        subject: &t.subject,
        external_ref: &t.external_ref,
        visitor_id: (!t.is_object_bound()).then_some(t.visitor_id),
        assigned_agent_id: t.assigned_agent_id,
        created_at: t.created_at,
        updated_at: t.updated_at,
        closed_at: t.closed_at,
    }
}

fn participant_ids<R: Reader + ?Sized>(read: &R, t: &Thread) -> Vec<String> {
    participants(read, t)
        .into_iter()
        .map(|p| p.external_id)
        .collect()
}

/// The webhook event an event is, with its data; None for what webhooks
/// do not carry (internal notes, edits, reads, revocations).
fn describe<'e, R: Reader + ?Sized>(
    read: &R,
    event: &'e Event,
) -> Option<(&'static str, &'e Thread, Value)> {
    match event {
        Event::ThreadNew { thread } => Some((
            "thread.created",
            thread,
            json!({ "thread": hook_thread(thread), "participants": participant_ids(read, thread) }),
        )),
        Event::ThreadUpdated { thread } => {
            let kind = if thread.status.is_open() {
                "thread.updated"
            } else {
                "thread.closed"
            };
            Some((kind, thread, json!({ "thread": hook_thread(thread) })))
        }
        Event::MessageNew { message, thread } if !message.internal => Some((
            "message.new",
            thread,
            json!({
                "thread": hook_thread(thread),
                "message": message_json(message),
                "participants": participant_ids(read, thread),
            }),
        )),
        Event::ParticipantJoined { thread, member } => Some((
            "participant.joined",
            thread,
            json!({ "thread": hook_thread(thread), "participant": Participant::from(member) }),
        )),
        Event::ParticipantLeft { thread, member } => Some((
            "participant.left",
            thread,
            json!({ "thread": hook_thread(thread), "participant": Participant::from(member) }),
        )),
        Event::OfflineMessage { thread, message } => {
            let visitor = read.visitor(thread.visitor_id).ok().flatten();
            Some((
                "visitor.offline_message",
                thread,
                json!({
                    "thread": hook_thread(thread),
                    "message": message_json(message),
                    "visitor": visitor.map(|v| json!({
                        "id": v.id, "displayName": v.display_name, "email": v.email,
                    })),
                }),
            ))
        }
        _ => None,
    }
}

fn message_json(m: &Message) -> Value {
    serde_json::to_value(m.clone().redacted()).unwrap_or(Value::Null)
}

/// The body every attempt of a delivery sends.
pub fn body(kind: &str, data: Value) -> String {
    json!({ "type": kind, "timestamp": Utc::now().to_rfc3339(), "data": data }).to_string()
}

/// A new pending delivery of `payload` to `webhook`, due now.
pub fn delivery(webhook: &Webhook, kind: &str, payload: String) -> Delivery {
    let now = Utc::now();
    Delivery {
        id: DeliveryId::new(),
        webhook_id: webhook.id,
        organization_id: webhook.organization_id,
        event_type: kind.to_owned(),
        payload,
        status: DeliveryStatus::Pending,
        attempts: Vec::new(),
        next_attempt_at: Some(now),
        created_at: now,
    }
}

/// The outbox hook: one delivery per enabled webhook of the event's
/// organization that asked for its type.
pub fn write_deliveries(tx: &mut WriteTx<'_>, events: &[Event]) -> store::Result<()> {
    // The common case, on the message path: no webhook anywhere.
    if !ANY_WEBHOOK.load(Ordering::Acquire) {
        return Ok(());
    }
    for event in events {
        let Some((kind, thread, data)) = describe(tx, event) else {
            continue;
        };
        let Some(org) = org_of(tx, thread)? else {
            continue;
        };
        let hooks: Vec<Webhook> = tx
            .webhooks_of_org(org)?
            .into_iter()
            .filter(|w| w.enabled && w.events.iter().any(|e| e == kind))
            .collect();
        if hooks.is_empty() {
            continue;
        }
        let payload = body(kind, data);
        for w in &hooks {
            tx.put(&delivery(w, kind, payload.clone()))?;
        }
    }
    Ok(())
}

fn org_of(tx: &WriteTx<'_>, thread: &Thread) -> store::Result<Option<OrgId>> {
    Ok(tx.space(thread.chat_space_id)?.map(|s| s.organization_id))
}
