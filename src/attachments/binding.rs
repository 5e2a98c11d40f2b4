//! Attachments on the send and delete paths: which uploads a new message
//! may carry, binding them to it in the message's own write, and removing
//! files only after the write that dropped their metadata is committed.

use std::collections::HashSet;

use chrono::Utc;

use crate::attachments::files;
use crate::attachments::model::{Attachment, Uploader, UploaderKind};
use crate::error::{AppError, AppResult};
use crate::ids::AttachmentId;
use crate::messages::model::{Author, Message};
use crate::state::AppState;
use crate::store::{Reader, WriteTx};
use crate::threads::model::Thread;

/// The uploader a message author stands for, if it can attach files.
fn uploader_of(author: &Author) -> Option<Uploader> {
    match author {
        Author::Visitor(v) => Some(Uploader {
            kind: UploaderKind::Visitor,
            id: v.id.0,
        }),
        Author::Agent(a) => Some(Uploader {
            kind: UploaderKind::Agent,
            id: a.id.0,
        }),
        Author::Member(m) => Some(Uploader {
            kind: UploaderKind::Member,
            id: m.id.0,
        }),
        Author::System | Author::Integration { .. } | Author::Backend { .. } => None,
    }
}

/// Checks, without writing, that `ids` may go on a new message by `author`
/// in `thread`: each exists, was uploaded by the author into the thread's
/// space (and, for agents, for this thread), is on no message yet, and
/// there are no more than the space allows.
pub fn check_attachable<R: Reader + ?Sized>(
    read: &R,
    thread: &Thread,
    author: &Author,
    ids: &[AttachmentId],
) -> AppResult<Vec<Attachment>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let Some(uploader) = uploader_of(author) else {
        return Err(AppError::validation(
            "only visitors and agents can attach files",
        ));
    };
    let space = read
        .space(thread.chat_space_id)?
        .ok_or(AppError::NotFound("thread"))?;
    let max = space.settings.attachments.max_count as usize;
    if ids.len() > max {
        return Err(AppError::validation(format!(
            "a message may carry at most {max} attachments here"
        )));
    }
    let mut seen = HashSet::new();
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        if !seen.insert(*id) {
            return Err(AppError::validation("attachmentIds lists a file twice"));
        }
        let a = read
            .attachment(*id)?
            .filter(|a| {
                a.is_live()
                    && a.uploader == uploader
                    && a.chat_space_id == thread.chat_space_id
                    && a.thread_id.is_none_or(|t| t == thread.id)
            })
            .ok_or(AppError::NotFound("attachment"))?;
        if a.message_id.is_some() {
            return Err(AppError::conflict(
                "attachment_already_attached",
                format!("attachment {id} is already on a message"),
            ));
        }
        found.push(a);
    }
    Ok(found)
}

/// Binds checked attachments to the message that carries them, in the
/// message's write.
pub fn bind(tx: &mut WriteTx<'_>, found: Vec<Attachment>, message: &Message) -> AppResult<()> {
    for mut a in found {
        a.message_id = Some(message.id);
        a.thread_id = Some(message.thread_id);
        tx.put(&a)?;
    }
    Ok(())
}

/// Marks a message's attachments deleted inside its delete write; returns
/// the storage keys to remove once that write is committed.
pub fn delete_of_message(tx: &mut WriteTx<'_>, message: &Message) -> AppResult<Vec<String>> {
    let mut keys = Vec::new();
    for r in &message.attachments {
        if let Some(mut a) = tx.attachment(r.id)?
            && a.is_live()
        {
            a.deleted_at = Some(Utc::now());
            keys.extend(a.file_keys());
            tx.put(&a)?;
        }
    }
    Ok(keys)
}

/// Runs a write that makes stored files garbage (it returns their keys)
/// and deletes them after the commit. The whole runs to its end even if
/// the caller goes away, so no file outlives its metadata by accident.
pub async fn write_then_remove<T, F>(state: &AppState, op: F) -> AppResult<T>
where
    T: Send + 'static,
    F: FnMut(&mut WriteTx<'_>) -> AppResult<(T, Vec<String>)> + Send + 'static,
{
    let state = state.clone();
    let root = files::root(&state.config.data_dir);
    tokio::spawn(async move {
        let (value, keys) = state.write(op).await?;
        if state.store.is_shared() && !keys.is_empty() {
            let (store, keys) = (state.store.clone(), keys.clone());
            let gone = tokio::task::spawn_blocking(move || store.delete_blobs(&keys)).await;
            if !matches!(gone, Ok(Ok(()))) {
                tracing::warn!("could not delete attachment files from the database");
            }
        }
        files::remove(root, keys).await;
        Ok(value)
    })
    .await
    .map_err(|e| AppError::Internal(format!("write task: {e}")))?
}
