//! Message use cases: appending (idempotent by `clientMsgId`), listing with
//! cursors in both directions, editing and deleting.

use chrono::{Duration, Utc};

use crate::accounts::model::Agent;
use crate::attachments::model::Attachment;
use crate::attachments::service as attachments;
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::ids::{AttachmentId, MessageId, ThreadId};
use crate::messages::model::{MAX_CLIENT_MSG_ID, MAX_CONTENT_CHARS, Message, SenderType};
use crate::state::AppState;
use crate::store::{Page, Reader, WriteTx};
use crate::threads::model::{LastMessage, ReadMarker, Thread};
use crate::visitors::model::Visitor;

const PREVIEW_CHARS: usize = 140;

/// Who is sending.
#[derive(Clone, Debug)]
pub enum Author {
    Visitor(Visitor),
    Agent(Agent),
    /// The appliance itself (e.g. "file expired").
    System,
    /// An integrator's backend, by API token name.
    Integration(String),
}

impl Author {
    pub fn sender_type(&self) -> SenderType {
        match self {
            Author::Visitor(_) => SenderType::Visitor,
            Author::Agent(_) => SenderType::Agent,
            Author::System => SenderType::System,
            Author::Integration(_) => SenderType::Integration,
        }
    }

    pub fn sender_id(&self) -> uuid::Uuid {
        match self {
            Author::Visitor(v) => v.id.0,
            Author::Agent(a) => a.id.0,
            Author::System | Author::Integration(_) => uuid::Uuid::nil(),
        }
    }

    fn name(&self) -> Option<String> {
        match self {
            Author::Visitor(v) => Some(v.label()),
            Author::Agent(a) => Some(a.display_name.clone()),
            Author::System => None,
            Author::Integration(n) => Some(n.clone()),
        }
    }
}

/// A message to send, validated.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub content: String,
    pub client_msg_id: Option<String>,
    pub reply_to_id: Option<MessageId>,
    pub internal: bool,
    pub attachments: Vec<AttachmentId>,
}

impl NewMessage {
    pub fn parse(
        content: &str,
        client_msg_id: Option<&str>,
        reply_to_id: Option<MessageId>,
        internal: bool,
        attachments: Vec<AttachmentId>,
    ) -> AppResult<NewMessage> {
        let content = content.trim_end();
        let content = content.trim_start_matches(['\n', '\r']);
        if content.chars().count() > MAX_CONTENT_CHARS {
            return Err(AppError::validation(format!(
                "content must have at most {MAX_CONTENT_CHARS} characters"
            )));
        }
        if content.trim().is_empty() && attachments.is_empty() {
            return Err(AppError::validation("content must not be empty"));
        }
        let client_msg_id = match client_msg_id {
            Some(c)
                if c.is_empty()
                    || c.len() > MAX_CLIENT_MSG_ID
                    || c.chars().any(|ch| ch.is_control()) =>
            {
                return Err(AppError::validation(format!(
                    "clientMsgId must have 1 to {MAX_CLIENT_MSG_ID} printable characters"
                )));
            }
            other => other.map(str::to_owned),
        };
        crate::validate::list_len("attachmentIds", &attachments, 10)?;
        Ok(NewMessage {
            content: content.to_owned(),
            client_msg_id,
            reply_to_id,
            internal,
            attachments,
        })
    }
}

/// The message a sender already stored under this key, if any: a retry
/// gets the original back and nothing is written.
pub fn existing<R: Reader + ?Sized>(
    read: &R,
    author: &Author,
    new: &NewMessage,
) -> AppResult<Option<Message>> {
    match &new.client_msg_id {
        Some(cid) => Ok(read.message_by_client_id(author.sender_id(), cid)?),
        None => Ok(None),
    }
}

/// Appends a message to `thread` inside a write and updates the thread's
/// counters, preview and the sender's read marker. The caller checks
/// idempotency ([`existing`]) and permissions first, and puts the thread.
pub fn append(
    tx: &mut WriteTx<'_>,
    thread: &mut Thread,
    author: &Author,
    new: &NewMessage,
) -> AppResult<Message> {
    if let Some(reply_to) = new.reply_to_id {
        let target = tx.message(reply_to)?;
        let visible = target.is_some_and(|m| {
            m.thread_id == thread.id
                && (author.sender_type() != SenderType::Visitor || m.visible_to_visitor())
        });
        if !visible {
            return Err(AppError::validation(
                "replyToId is not a message of this thread",
            ));
        }
    }
    let files = attachments::check_attachable(tx, thread, author, &new.attachments)?;
    let now = Utc::now();
    let message = Message {
        id: MessageId::new(),
        thread_id: thread.id,
        sender_type: author.sender_type(),
        sender_id: author.sender_id(),
        sender_name: author.name(),
        content: new.content.clone(),
        internal: new.internal,
        reply_to_id: new.reply_to_id,
        attachments: files.iter().map(Attachment::to_ref).collect(),
        client_msg_id: new.client_msg_id.clone(),
        created_at: now,
        edited_at: None,
        deleted_at: None,
    };
    tx.put(&message)?;
    attachments::bind(tx, files, &message)?;
    if !message.internal {
        match author {
            Author::Visitor(_) => thread.visitor_message_count += 1,
            _ => thread.agent_message_count += 1,
        }
        thread.last_message = Some(LastMessage {
            id: message.id,
            sender_type: message.sender_type,
            preview: preview(&message),
            created_at: now,
        });
        thread.last_activity_at = now;
        // Whoever writes has read everything before it.
        match author {
            Author::Visitor(_) => {
                thread.visitor_read = Some(ReadMarker {
                    up_to: message.id,
                    seen: thread.agent_message_count,
                    at: now,
                });
            }
            Author::Agent(a) => {
                thread.agent_reads.insert(
                    a.id,
                    ReadMarker {
                        up_to: message.id,
                        seen: thread.visitor_message_count,
                        at: now,
                    },
                );
            }
            _ => {}
        }
    }
    thread.updated_at = now;
    Ok(message)
}

/// Which messages a reader may see.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Agents,
    Visitor,
}

/// A page of a thread's messages, always oldest first. Without cursors, the
/// newest `limit`; `before` walks back (nextCursor is the oldest id), `after`
/// walks forward (nextCursor is the newest id).
pub fn page<R: Reader + ?Sized>(
    read: &R,
    thread: ThreadId,
    before: Option<MessageId>,
    after: Option<MessageId>,
    limit: usize,
    audience: Audience,
) -> AppResult<Page<Message>> {
    if before.is_some() && after.is_some() {
        return Err(AppError::validation(
            "give either before or after, not both",
        ));
    }
    let forward = after.is_some();
    let from = after.or(before);
    let mut items = Vec::with_capacity(limit);
    let mut cursor = from;
    let mut more = true;
    // Internal notes are skipped for visitors, so read until the page is full.
    'fill: while items.len() < limit {
        let want = (limit - items.len()).max(16);
        let batch = read.messages(thread, cursor, !forward, want)?;
        let short = batch.len() < want;
        let n = batch.len();
        for (i, m) in batch.into_iter().enumerate() {
            cursor = Some(m.id);
            if audience == Audience::Visitor && !m.visible_to_visitor() {
                continue;
            }
            items.push(m.redacted());
            if items.len() == limit {
                more = !(short && i + 1 == n);
                break 'fill;
            }
        }
        if short {
            more = false;
            break;
        }
    }
    let next_cursor = if more && items.len() == limit {
        items.last().map(|m| m.id.to_string())
    } else {
        None
    };
    if !forward {
        items.reverse();
    }
    Ok(Page { items, next_cursor })
}

/// Edits an agent's own message within the edit window.
pub async fn edit(
    state: &AppState,
    agent: &Agent,
    id: MessageId,
    content: String,
) -> AppResult<Message> {
    let new = NewMessage::parse(&content, None, None, false, Vec::new())?;
    let window = Duration::seconds(state.config.limits.edit_window_secs as i64);
    let agent = agent.clone();
    let message = state
        .write(move |tx| {
            let mut m = message_of_org(tx, agent.organization_id, id)?;
            if m.sender_type != SenderType::Agent || m.sender_id != agent.id.0 {
                return Err(AppError::Forbidden(
                    "only the author may edit a message".into(),
                ));
            }
            if m.deleted_at.is_some() {
                return Err(AppError::conflict(
                    "message_deleted",
                    "the message was deleted",
                ));
            }
            if Utc::now() - m.created_at > window {
                return Err(AppError::conflict(
                    "edit_window_passed",
                    "the message is too old to edit",
                ));
            }
            m.content = new.content.clone();
            m.edited_at = Some(Utc::now());
            tx.put(&m)?;
            refresh_preview(tx, &m)?;
            Ok(m)
        })
        .await?;
    Ok(message)
}

/// Soft-deletes a message: the author or an admin; shown as "deleted".
/// Its files are deleted once that is committed.
pub async fn delete(state: &AppState, agent: &Agent, id: MessageId) -> AppResult<Message> {
    let agent = agent.clone();
    let message = attachments::write_then_remove(state, move |tx| {
        let mut m = message_of_org(tx, agent.organization_id, id)?;
        let own = m.sender_type == SenderType::Agent && m.sender_id == agent.id.0;
        if !own && agent.role < crate::accounts::model::Role::Admin {
            return Err(AppError::Forbidden(
                "only the author or an admin may delete a message".into(),
            ));
        }
        let mut files = Vec::new();
        if m.deleted_at.is_none() {
            m.deleted_at = Some(Utc::now());
            tx.put(&m)?;
            files = attachments::delete_of_message(tx, &m)?;
            refresh_preview(tx, &m)?;
        }
        Ok((m.redacted(), files))
    })
    .await?;
    Ok(message)
}

/// A list's one-line preview: the text, or the file names of a message
/// that only carries files.
fn preview(m: &Message) -> String {
    if m.content.trim().is_empty() && !m.attachments.is_empty() {
        let names: Vec<&str> = m.attachments.iter().map(|a| a.name.as_str()).collect();
        format!("📎 {}", names.join(", "))
            .chars()
            .take(PREVIEW_CHARS)
            .collect()
    } else {
        m.content.chars().take(PREVIEW_CHARS).collect()
    }
}

/// Keeps the thread's preview true after a message changes, and tells live
/// clients about the change.
fn refresh_preview(tx: &mut WriteTx<'_>, m: &Message) -> AppResult<()> {
    let Some(mut thread) = tx.thread(m.thread_id)? else {
        return Ok(());
    };
    if let Some(last) = thread.last_message.as_mut().filter(|l| l.id == m.id) {
        last.preview = if m.deleted_at.is_some() {
            String::new()
        } else {
            preview(m)
        };
        tx.put(&thread)?;
    }
    tx.emit(Event::MessageChanged {
        message: m.clone().redacted(),
        thread,
    });
    Ok(())
}

/// A message whose thread belongs to a space of `org`; otherwise 404.
pub fn message_of_org<R: Reader + ?Sized>(
    read: &R,
    org: crate::ids::OrgId,
    id: MessageId,
) -> AppResult<Message> {
    let not_found = || AppError::NotFound("message");
    let m = read.message(id)?.ok_or_else(not_found)?;
    let thread = read.thread(m.thread_id)?.ok_or_else(not_found)?;
    let space = read.space(thread.chat_space_id)?.ok_or_else(not_found)?;
    if space.organization_id != org {
        return Err(not_found());
    }
    Ok(m)
}
