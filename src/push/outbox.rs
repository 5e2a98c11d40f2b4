//! Turns committed events into pushes, inside the same transaction (the
//! store's outbox hook): one [`Push`] per device of each agent who should
//! hear about the event, due after the agent's quiet minutes.
//!
//! Who hears what, after `Agent.notify`:
//! - a new unassigned thread: every agent who may claim it
//!   ([`Access::may_claim`]) and wants threads it does not hold;
//! - a visitor's message: the agent holding the thread (also the first
//!   message of a thread automatic assignment gave it);
//! - a transfer: the agent it was handed to, unless it handed it to itself.
//!
//! Never the agent who caused the event, never internal notes, never an
//! agent of another organization, never a disabled agent.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::accounts::model::Agent;
use crate::events::Event;
use crate::ids::PushId;
use crate::messages::model::{Message, SenderType};
use crate::push::model::{Push, PushKind, Words, body_text};
use crate::push::pusher::Pusher;
use crate::state::AppState;
use crate::store::{self, OutboxHook, Reader, WriteTx};
use crate::threads::model::{Thread, ThreadStatus};
use crate::threads::rules::Access;

/// The hook, holding what it needs of the state (the writer thread has no
/// other way to it).
pub fn hook(state: &AppState) -> OutboxHook {
    let push: Arc<Pusher> = state.push.clone();
    let clock = state.clock.clone();
    Arc::new(move |tx: &mut WriteTx<'_>, events: &[Event]| {
        if !push.may_have_subscriptions() {
            return Ok(());
        }
        write_pushes(tx, events, clock.now())
    })
}

/// One event's pushes.
fn write_pushes(tx: &mut WriteTx<'_>, events: &[Event], now: DateTime<Utc>) -> store::Result<()> {
    for event in events {
        match event {
            Event::ThreadNew { thread }
                if thread.status == ThreadStatus::Unassigned && !thread.is_object_bound() =>
            {
                // The first message, emitted with the thread.
                let first = events.iter().find_map(|e| match e {
                    Event::MessageNew { message, thread: t }
                        if t.id == thread.id && !message.internal =>
                    {
                        Some(message)
                    }
                    _ => None,
                });
                let Some(space) = tx.space(thread.chat_space_id)? else {
                    continue;
                };
                for agent in tx.agents_of_org(space.organization_id)? {
                    let caused = first.is_some_and(|m| m.sender_id == agent.id.0);
                    if caused || !agent.notify.wants(false) || !Access::of(&agent).may_claim(thread)
                    {
                        continue;
                    }
                    queue(tx, &agent, thread, PushKind::NewThread, first, now)?;
                }
            }
            Event::ThreadNew { thread } if !thread.is_object_bound() => {
                // Given to an agent at once (the space's responsible agent,
                // round-robin): its holder hears of it like of a message
                // in a thread it holds, unless it started the thread.
                let Some(holder) = thread.assigned_agent_id else {
                    continue;
                };
                let first = events.iter().find_map(|e| match e {
                    Event::MessageNew { message, thread: t }
                        if t.id == thread.id
                            && !message.internal
                            && message.sender_type == SenderType::Visitor =>
                    {
                        Some(message)
                    }
                    _ => None,
                });
                if let Some(first) = first
                    && let Some(agent) = tx.agent(holder)?
                    && agent.notify.wants(true)
                {
                    queue(tx, &agent, thread, PushKind::Message, Some(first), now)?;
                }
            }
            Event::MessageNew { message, thread }
                if message.sender_type == SenderType::Visitor && !message.internal =>
            {
                // A thread's first message is told with the thread.
                let with_new_thread = events
                    .iter()
                    .any(|e| matches!(e, Event::ThreadNew { thread: t } if t.id == thread.id));
                if with_new_thread || !thread.status.is_open() {
                    continue;
                }
                let Some(holder) = thread.assigned_agent_id else {
                    continue;
                };
                if let Some(agent) = tx.agent(holder)?
                    && agent.notify.wants(true)
                {
                    queue(tx, &agent, thread, PushKind::Message, Some(message), now)?;
                }
            }
            Event::ThreadTransferred { thread, by } => {
                let Some(to) = thread.assigned_agent_id.filter(|to| to != by) else {
                    continue;
                };
                if let Some(agent) = tx.agent(to)?
                    && agent.notify.wants(true)
                {
                    let newest = match &thread.last_message {
                        Some(last) => tx.message(last.id)?,
                        None => None,
                    };
                    queue(
                        tx,
                        &agent,
                        thread,
                        PushKind::Transfer,
                        newest.as_ref().filter(|m| !m.internal),
                        now,
                    )?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// One push per device of `agent`, due after its quiet minutes.
fn queue(
    tx: &mut WriteTx<'_>,
    agent: &Agent,
    thread: &Thread,
    kind: PushKind,
    about: Option<&Message>,
    now: DateTime<Utc>,
) -> store::Result<()> {
    if agent.disabled {
        return Ok(());
    }
    let devices = tx.push_subscriptions_of(agent.id)?;
    if devices.is_empty() {
        return Ok(());
    }
    let who = tx
        .visitor(thread.visitor_id)?
        .map_or_else(|| "Visitor".to_owned(), |v| v.label());
    let view = match kind {
        PushKind::NewThread => "available",
        PushKind::Message | PushKind::Transfer => "mine",
    };
    let body = about.map(|m| body_text(&m.preview())).unwrap_or_default();
    let due_at = now + Duration::minutes(i64::from(agent.notify.quiet_minutes));
    for device in devices {
        tx.put(&Push {
            id: PushId::new(),
            agent_id: agent.id,
            endpoint: device.endpoint,
            thread_id: thread.id,
            kind,
            message_id: about.map(|m| m.id),
            title: Words::of(&device.locale).title(kind, &who),
            body: body.clone(),
            url: format!("/app/#/inbox/{view}/{}", thread.id),
            attempts: 0,
            due_at,
            created_at: now,
        })?;
    }
    Ok(())
}
