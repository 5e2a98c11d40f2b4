//! Attachment use cases: receiving an upload, binding uploads to the
//! message that carries them, the download guard, and retention.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use crate::accounts::model::Agent;
use crate::attachments::files::{self, Placed, TempFile};
use crate::attachments::model::{Attachment, AttachmentRef, Uploader, UploaderKind};
use crate::attachments::{policy, thumbs};
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::ids::{AttachmentId, MessageId, OrgId, SpaceId, ThreadId, VisitorId};
use crate::messages::model::Message;
use crate::messages::service::{self as messages, Author, NewMessage};
use crate::spaces::model::{AttachmentPolicy, ChatSpace};
use crate::state::AppState;
use crate::store::{Reader, WriteTx, id_key};
use crate::threads::model::Thread;

/// Where an upload goes and under whose name.
#[derive(Clone, Debug)]
pub struct Scope {
    pub organization_id: OrgId,
    pub chat_space_id: SpaceId,
    pub policy: AttachmentPolicy,
    pub uploader: Uploader,
    /// The thread an agent's upload is for.
    pub thread_id: Option<ThreadId>,
}

fn scope_of(
    space: &ChatSpace,
    uploader: Uploader,
    thread_id: Option<ThreadId>,
) -> AppResult<Scope> {
    if !space.settings.attachments.allowed {
        return Err(AppError::Forbidden(
            "this chat does not take attachments".into(),
        ));
    }
    Ok(Scope {
        organization_id: space.organization_id,
        chat_space_id: space.id,
        policy: space.settings.attachments.clone(),
        uploader,
        thread_id,
    })
}

/// Uploads whose content is being checked at once.
static CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// An agent's upload, for a thread (or a space, to start a conversation
/// with) of its organization.
pub fn agent_scope(
    state: &AppState,
    agent: &Agent,
    thread: Option<ThreadId>,
    space: Option<SpaceId>,
) -> AppResult<Scope> {
    let read = state.store.read()?;
    let uploader = Uploader {
        kind: UploaderKind::Agent,
        id: agent.id.0,
    };
    match (thread, space) {
        (Some(id), None) => {
            let thread = crate::threads::service::thread_of_org(&read, agent.organization_id, id)?;
            let space = read
                .space(thread.chat_space_id)?
                .ok_or(AppError::NotFound("thread"))?;
            scope_of(&space, uploader, Some(thread.id))
        }
        (None, Some(id)) => {
            let space = read
                .space(id)?
                .filter(|s| s.organization_id == agent.organization_id)
                .ok_or(AppError::NotFound("chat space"))?;
            scope_of(&space, uploader, None)
        }
        _ => Err(AppError::validation(
            "give the threadId (or, to start a conversation, the chatSpaceId) the file is for",
        )),
    }
}

/// A visitor's upload, into their space.
pub fn visitor_scope(space: &ChatSpace, visitor: VisitorId) -> AppResult<Scope> {
    let uploader = Uploader {
        kind: UploaderKind::Visitor,
        id: visitor.0,
    };
    scope_of(space, uploader, None)
}

/// Checks the rate limit and the name before any byte is read.
pub fn admit(state: &AppState, scope: &Scope, raw_name: &str) -> AppResult<(String, policy::Kind)> {
    state.limits.uploads.check(&scope.uploader.limit_key())?;
    let name = policy::sanitize_name(raw_name);
    let kind = policy::kind_of_name(&name)?;
    Ok((name, kind))
}

/// Receives a file: streams it to a temporary file (refusing it with 413
/// the moment it passes the space's size limit), checks its content
/// against its name, makes a thumbnail of images, moves the files into
/// place and only then commits the metadata. On any failure no file is left.
pub async fn upload<S, B>(
    state: &AppState,
    scope: Scope,
    name: String,
    kind: policy::Kind,
    body: S,
) -> AppResult<Attachment>
where
    S: Stream<Item = AppResult<B>>,
    B: AsRef<[u8]>,
{
    let root = files::root(&state.config.data_dir);
    let mut tmp = TempFile::create(&root).await.map_err(io_error)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let max = scope.policy.max_size_bytes;
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        let chunk = chunk.as_ref();
        size += chunk.len() as u64;
        if size > max {
            return Err(AppError::TooLarge(format!(
                "files may be at most {max} bytes here"
            )));
        }
        hasher.update(chunk);
        tmp.write(chunk).await.map_err(io_error)?;
    }
    tmp.finish().await.map_err(io_error)?;
    let sha256 = hex::encode(hasher.finalize());

    let key = files::new_key();
    // Checking reads the whole file and may decode an image: a few at a
    // time, so a burst of uploads cannot exhaust memory.
    let permit = CHECKS
        .acquire()
        .await
        .map_err(|_| AppError::Unavailable("shutting down".into()))?;
    let (placed, thumbnail) = {
        let root = root.clone();
        let key = key.clone();
        tokio::task::spawn_blocking(move || -> AppResult<_> {
            let bytes = std::fs::read(tmp.path()).map_err(io_error)?;
            policy::verify(kind, &bytes)?;
            let thumbnail = thumbs::make(kind, &bytes)?;
            drop(bytes);
            let mut placed = Placed::default();
            tmp.place(&root, &key, &mut placed).map_err(io_error)?;
            if let Some(t) = &thumbnail {
                files::place_bytes(&root, &files::thumbnail_key(&key), &t.bytes, &mut placed)
                    .map_err(io_error)?;
            }
            Ok((placed, thumbnail))
        })
        .await
        .map_err(|e| AppError::Internal(format!("upload check: {e}")))??
    };
    drop(permit);

    let attachment = Attachment {
        id: AttachmentId::new(),
        organization_id: scope.organization_id,
        chat_space_id: scope.chat_space_id,
        uploader: scope.uploader,
        thread_id: scope.thread_id,
        message_id: None,
        original_name: name,
        mime_type: kind.mime().to_owned(),
        size_bytes: size,
        thumbnail_key: thumbnail.as_ref().map(|_| files::thumbnail_key(&key)),
        storage_key: key,
        width: thumbnail.as_ref().map(|t| t.width),
        height: thumbnail.as_ref().map(|t| t.height),
        sha256,
        created_at: Utc::now(),
        expired_at: None,
        deleted_at: None,
    };
    // The commit runs to its end even if the client goes away meanwhile, so
    // the files are kept exactly when the metadata is.
    let state2 = state.clone();
    let record = attachment.clone();
    tokio::spawn(async move {
        let committed = state2.write(move |tx| Ok(tx.put(&record)?)).await;
        if committed.is_ok() {
            placed.keep();
        }
        committed
    })
    .await
    .map_err(|e| AppError::Internal(format!("upload commit: {e}")))??;
    tracing::info!(attachment = %attachment.id, size, "attachment stored");
    Ok(attachment)
}

fn io_error(e: std::io::Error) -> AppError {
    AppError::Internal(format!("attachment storage: {e}"))
}

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
        Author::System | Author::Integration(_) => None,
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
        files::remove(root, keys).await;
        Ok(value)
    })
    .await
    .map_err(|e| AppError::Internal(format!("write task: {e}")))?
}

/// Who asks to download.
#[derive(Clone, Debug)]
pub enum Viewer {
    Agent(OrgId),
    Visitor(VisitorId),
}

/// The attachment `viewer` may download: an agent of its organization, or
/// the visitor of the thread it is on (internal notes excepted), or the
/// visitor who uploaded it while no message carries it. Everything else,
/// expired and deleted files included, is a 404.
pub fn visible(state: &AppState, viewer: &Viewer, id: AttachmentId) -> AppResult<Attachment> {
    let not_found = || AppError::NotFound("attachment");
    let read = state.store.read()?;
    let a = read
        .attachment(id)?
        .filter(Attachment::is_live)
        .ok_or_else(not_found)?;
    let allowed = match viewer {
        Viewer::Agent(org) => a.organization_id == *org,
        Viewer::Visitor(visitor) => match a.message_id {
            None => a.uploader.kind == UploaderKind::Visitor && a.uploader.id == visitor.0,
            Some(m) => {
                let message = read.message(m)?.filter(|m| m.visible_to_visitor());
                let thread = match &message {
                    Some(m) => read.thread(m.thread_id)?,
                    None => None,
                };
                thread.is_some_and(|t| t.visitor_id == *visitor)
            }
        },
    };
    if !allowed {
        return Err(not_found());
    }
    Ok(a)
}

/// Where an attachment's file (or thumbnail) is on disk.
pub fn path_of(state: &AppState, key: &str) -> AppResult<std::path::PathBuf> {
    files::path_of(&files::root(&state.config.data_dir), key)
        .ok_or_else(|| AppError::Internal("attachment with a bad storage key".into()))
}

/// How long an upload may wait for the message that carries it.
pub const PENDING_TTL_HOURS: i64 = 24;
/// How long a partial upload may sit in the temp folder.
const TMP_TTL: StdDuration = StdDuration::from_secs(3600);
/// Attachments handled per write.
const BATCH: usize = 200;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Files removed because their space's retention passed.
    pub expired: usize,
    /// Uploads no message took within [`PENDING_TTL_HOURS`].
    pub abandoned: usize,
}

/// The retention job: removes the files of attachments older than their
/// space's `retentionDays`, says so in each thread (an internal system
/// note, and the message's attachment marked expired), drops uploads no
/// message carried within a day, and clears stale partial uploads.
pub async fn run_retention(state: &AppState) -> AppResult<RetentionReport> {
    let now = Utc::now();
    let mut report = RetentionReport::default();
    let spaces = state.store.read()?.all_spaces()?;
    for space in spaces {
        let cutoff = now - Duration::days(i64::from(space.settings.retention_days));
        loop {
            let ids = state
                .store
                .read()?
                .attachments_bound_before(space.id, cutoff, BATCH)?;
            if ids.is_empty() {
                break;
            }
            let full = ids.len() == BATCH;
            let n = write_then_remove(state, move |tx| expire_batch(tx, &ids, cutoff)).await?;
            report.expired += n;
            if !full || n == 0 {
                break;
            }
        }
    }
    let stale = now - Duration::hours(PENDING_TTL_HOURS);
    loop {
        let ids = state
            .store
            .read()?
            .attachments_pending_before(stale, BATCH)?;
        if ids.is_empty() {
            break;
        }
        let full = ids.len() == BATCH;
        let n = write_then_remove(state, move |tx| {
            let (mut n, mut keys) = (0, Vec::new());
            for id in &ids {
                // Checked again: it may have been sent since the scan.
                if let Some(a) = tx.attachment(*id)?
                    && a.message_id.is_none()
                    && a.created_at < stale
                {
                    keys.extend(a.file_keys());
                    tx.delete::<Attachment>(&id_key(id.as_u128()))?;
                    n += 1;
                }
            }
            Ok((n, keys))
        })
        .await?;
        report.abandoned += n;
        if !full || n == 0 {
            break;
        }
    }
    files::sweep_tmp(files::root(&state.config.data_dir), TMP_TTL).await;
    if report != RetentionReport::default() {
        tracing::info!(
            expired = report.expired,
            abandoned = report.abandoned,
            "attachment retention"
        );
    }
    Ok(report)
}

/// One write of the retention job: expires the attachments of `ids` that
/// are still kept and older than `cutoff`, and tells their threads.
fn expire_batch(
    tx: &mut WriteTx<'_>,
    ids: &[AttachmentId],
    cutoff: chrono::DateTime<Utc>,
) -> AppResult<(usize, Vec<String>)> {
    let now = Utc::now();
    let mut keys = Vec::new();
    let mut expired = 0;
    // Grouped by message, so one note names all of a message's files.
    let mut by_message: BTreeMap<MessageId, Vec<Attachment>> = BTreeMap::new();
    for id in ids {
        if let Some(a) = tx.attachment(*id)?
            && a.is_live()
            && a.created_at < cutoff
            && let Some(m) = a.message_id
        {
            by_message.entry(m).or_default().push(a);
        }
    }
    let mut threads: BTreeMap<ThreadId, Thread> = BTreeMap::new();
    for (message_id, gone) in by_message {
        for a in &gone {
            let mut a = a.clone();
            a.expired_at = Some(now);
            keys.extend(a.file_keys());
            tx.put(&a)?;
            expired += 1;
        }
        let Some(mut message) = tx.message(message_id)? else {
            continue;
        };
        let names = mark_expired(&mut message.attachments, &gone);
        tx.put(&message)?;
        let mut thread = match threads.remove(&message.thread_id) {
            Some(t) => t,
            None => match tx.thread(message.thread_id)? {
                Some(t) => t,
                None => continue,
            },
        };
        tx.emit(Event::MessageChanged {
            message: message.clone().redacted(),
            thread: thread.clone(),
        });
        if message.deleted_at.is_none() {
            let label = if names.len() == 1 {
                "File expired"
            } else {
                "Files expired"
            };
            // An internal note: it informs agents without counting as a
            // reply or reviving an old thread; visitors see the file chip
            // turn "expired" through the message change.
            let note = NewMessage::parse(
                &format!("{label}: {}", names.join(", ")),
                None,
                None,
                true,
                Vec::new(),
            )?;
            let notice = messages::append(tx, &mut thread, &Author::System, &note)?;
            tx.emit(Event::MessageNew {
                message: notice,
                thread: thread.clone(),
            });
        }
        threads.insert(thread.id, thread);
    }
    for thread in threads.values() {
        tx.put(thread)?;
    }
    Ok((expired, keys))
}

/// Marks the refs of `gone` expired; returns their names.
fn mark_expired(refs: &mut [AttachmentRef], gone: &[Attachment]) -> Vec<String> {
    let mut names = Vec::new();
    for r in refs.iter_mut() {
        if gone.iter().any(|a| a.id == r.id) {
            r.expired = true;
            r.thumbnail = false;
            names.push(r.name.clone());
        }
    }
    names
}
