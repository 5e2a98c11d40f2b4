//! Turns committed events into mails, inside the same transaction (the
//! store's outbox hook): a message that commits has its mails, one that
//! does not has none. Only reasons are written here; whether a mail is
//! still needed is decided when it is due (`worker.rs`).

use chrono::{Duration, Utc};

use crate::accounts::model::Agent;
use crate::config::EmailConfig;
use crate::email::model::{Mail, MailKind};
use crate::events::Event;
use crate::ids::{MessageId, OrgId};
use crate::messages::model::{Message, SenderType};
use crate::store::{self, Reader, WriteTx};
use crate::threads::model::Thread;
use crate::threads::rules::Access;

/// The agents who hear about a visitor's message in `thread`: its holder,
/// or while nobody holds it everyone who may take it — each as far as
/// their notification preferences say.
pub fn agents_to_tell<R: Reader + ?Sized>(
    read: &R,
    org: OrgId,
    thread: &Thread,
) -> store::Result<Vec<Agent>> {
    Ok(read
        .agents_of_org(org)?
        .into_iter()
        .filter(|a| !a.disabled && !a.password_hash.is_empty())
        .filter(|a| match thread.assigned_agent_id {
            Some(holder) => holder == a.id && a.notify.wants(true),
            None => Access::of(a).may_claim(thread) && a.notify.wants(false),
        })
        .collect())
}

/// Whether an agent or the organization's backend wrote it to the visitor.
pub fn is_reply(m: &Message) -> bool {
    m.visible_to_visitor()
        && m.deleted_at.is_none()
        && matches!(m.sender_type, SenderType::Agent | SenderType::Integration)
}

/// Writes the mails `events` call for. `config` is the appliance's
/// `[email]`; the hook runs only when email is on.
pub fn write_mails(
    tx: &mut WriteTx<'_>,
    events: &[Event],
    config: &EmailConfig,
) -> store::Result<()> {
    let now = Utc::now();
    let offline: Vec<MessageId> = events
        .iter()
        .filter_map(|e| match e {
            Event::OfflineMessage { message, .. } => Some(message.id),
            _ => None,
        })
        .collect();
    for event in events {
        match event {
            Event::OfflineMessage { thread, message } => {
                let Some(org) = org_of(tx, thread)? else {
                    continue;
                };
                for agent in agents_to_tell(tx, org, thread)? {
                    let due = now + Duration::minutes(agent.notify.quiet_minutes.into());
                    let kind = MailKind::Offline {
                        agent: agent.id,
                        thread: thread.id,
                        message: message.id,
                    };
                    tx.put(&Mail::new(Some(org), kind, due))?;
                }
            }
            Event::MessageNew { message, thread }
                if message.sender_type == SenderType::Visitor
                    && !thread.is_object_bound()
                    && !offline.contains(&message.id) =>
            {
                let Some(org) = org_of(tx, thread)? else {
                    continue;
                };
                for agent in agents_to_tell(tx, org, thread)? {
                    let kind = MailKind::Unanswered {
                        agent: agent.id,
                        thread: thread.id,
                        message: message.id,
                    };
                    if waiting(tx, &kind)? {
                        // The earlier unanswered message already speaks for it.
                        continue;
                    }
                    let minutes = config.unanswered_minutes.max(agent.notify.quiet_minutes);
                    let due = now + Duration::minutes(minutes.into());
                    tx.put(&Mail::new(Some(org), kind, due))?;
                }
            }
            Event::MessageNew { message, thread }
                if is_reply(message) && !thread.is_object_bound() =>
            {
                let Some(visitor) = tx.visitor(thread.visitor_id)? else {
                    continue;
                };
                if visitor.email.is_none() || visitor.email_opt_out {
                    continue;
                }
                let kind = MailKind::Replies {
                    visitor: visitor.id,
                    thread: thread.id,
                };
                if waiting(tx, &kind)? {
                    continue;
                }
                let Some(org) = org_of(tx, thread)? else {
                    continue;
                };
                let due = now + Duration::minutes(config.visitor_delay_minutes.into());
                tx.put(&Mail::new(Some(org), kind, due))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether a mail for this reason is already waiting.
fn waiting(tx: &WriteTx<'_>, kind: &MailKind) -> store::Result<bool> {
    match kind.pending_key() {
        Some(key) => Ok(tx.pending_mail(&key)?.is_some()),
        None => Ok(false),
    }
}

fn org_of(tx: &WriteTx<'_>, thread: &Thread) -> store::Result<Option<OrgId>> {
    Ok(tx.space(thread.chat_space_id)?.map(|s| s.organization_id))
}
