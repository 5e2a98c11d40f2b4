//! Message use cases: appending (idempotent by `clientMsgId`), listing with
//! cursors in both directions, editing and deleting.

use chrono::{Duration, Utc};

use crate::attachments::binding as attachments;
use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::ids::{AttachmentId, MessageId, ThreadId};
use crate::messages::model::{Author, Message, SenderType};
use crate::messages::send::NewMessage;
use crate::state::AppState;
use crate::store::{Page, Reader, WriteTx};
use crate::threads::rules::Access;

/// Which messages a reader may see.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Agents,
    Visitor,
}

/// The `before`/`after` a message list reads with, given its query: a
/// `cursor` (the `nextCursor` of the previous page) walks back like
/// `before`, the direction plain lists page in.
pub fn cursor_or(
    before: Option<MessageId>,
    after: Option<MessageId>,
    cursor: Option<MessageId>,
) -> AppResult<(Option<MessageId>, Option<MessageId>)> {
    match cursor {
        Some(_) if before.is_some() || after.is_some() => Err(AppError::validation(
            "give cursor, before or after, not several",
        )),
        Some(c) => Ok((Some(c), None)),
        None => Ok((before, after)),
    }
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
    caller: &Caller,
    id: MessageId,
    content: String,
) -> AppResult<Message> {
    let new = NewMessage::parse(&content, None, None, false, Vec::new())?;
    let window = Duration::seconds(state.config.limits.edit_window_secs as i64);
    let agent = caller.agent.clone();
    let access = caller.access();
    let message = state
        .write(move |tx| {
            let mut m = message_of_org(tx, agent.organization_id, &access, id)?;
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

/// Adds files to an agent's own message within the edit window: uploads
/// of the same agent for the message's thread, checked and bound in one
/// write, within the space's per-message count.
pub async fn attach(
    state: &AppState,
    caller: &Caller,
    id: MessageId,
    ids: Vec<AttachmentId>,
) -> AppResult<Message> {
    if ids.is_empty() {
        return Err(AppError::validation("attachmentIds must not be empty"));
    }
    crate::validate::list_len("attachmentIds", &ids, 10)?;
    let window = Duration::seconds(state.config.limits.edit_window_secs as i64);
    let agent = caller.agent.clone();
    let access = caller.access();
    let integration = caller.is_integration();
    state
        .write(move |tx| {
            let mut m = message_of_org(tx, agent.organization_id, &access, id)?;
            let own =
                !integration && m.sender_type == SenderType::Agent && m.sender_id == agent.id.0;
            if !own {
                return Err(AppError::Forbidden(
                    "only the author may add files to a message".into(),
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
                    "the message is too old to change",
                ));
            }
            let thread = tx
                .thread(m.thread_id)?
                .ok_or(AppError::NotFound("message"))?;
            let author = Author::Agent(agent.clone());
            let files = attachments::check_attachable(tx, &thread, &author, &ids)?;
            let space = tx
                .space(thread.chat_space_id)?
                .ok_or(AppError::NotFound("message"))?;
            let max = space.settings.attachments.max_count as usize;
            if m.attachments.len() + files.len() > max {
                return Err(AppError::validation(format!(
                    "a message may carry at most {max} attachments here"
                )));
            }
            m.attachments.extend(
                files
                    .iter()
                    .map(crate::attachments::model::Attachment::to_ref),
            );
            m.edited_at = Some(Utc::now());
            tx.put(&m)?;
            attachments::bind(tx, files, &m)?;
            refresh_preview(tx, &m)?;
            Ok(m.redacted())
        })
        .await
}

/// Soft-deletes a message: the author or an admin; shown as "deleted".
/// Its files are deleted once that is committed.
pub async fn delete(state: &AppState, caller: &Caller, id: MessageId) -> AppResult<Message> {
    let agent = caller.agent.clone();
    let access = caller.access();
    let message = attachments::write_then_remove(state, move |tx| {
        let mut m = message_of_org(tx, agent.organization_id, &access, id)?;
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
            m.preview()
        };
        tx.put(&thread)?;
    }
    tx.emit(Event::MessageChanged {
        message: m.clone().redacted(),
        thread,
    });
    Ok(())
}

/// A message of a thread of `org` that `access` sees; otherwise 404.
pub fn message_of_org<R: Reader + ?Sized>(
    read: &R,
    org: crate::ids::OrgId,
    access: &Access,
    id: MessageId,
) -> AppResult<Message> {
    let not_found = || AppError::NotFound("message");
    let m = read.message(id)?.ok_or_else(not_found)?;
    crate::threads::rules::visible_thread(read, org, access, m.thread_id)
        .map_err(|_| not_found())?;
    Ok(m)
}
