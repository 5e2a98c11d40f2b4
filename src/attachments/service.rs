//! Attachment use cases: receiving an upload, binding uploads to the
//! message that carries them, the download guard, and retention.

use chrono::Utc;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use crate::attachments::files::{self, Placed, TempFile};
use crate::attachments::model::{Attachment, Uploader, UploaderKind};
use crate::attachments::{policy, thumbs};
use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::ids::{AttachmentId, MemberId, OrgId, SpaceId, ThreadId, VisitorId};
use crate::spaces::model::{AttachmentPolicy, ChatSpace};
use crate::state::AppState;
use crate::store::Reader;
use crate::threads::rules::Access;

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
    caller: &Caller,
    thread: Option<ThreadId>,
    space: Option<SpaceId>,
) -> AppResult<Scope> {
    let agent = &caller.agent;
    let access = caller.access();
    let read = state.store.read()?;
    let uploader = Uploader {
        kind: UploaderKind::Agent,
        id: agent.id.0,
    };
    match (thread, space) {
        (Some(id), None) => {
            let thread =
                crate::threads::rules::visible_thread(&read, agent.organization_id, &access, id)?;
            let space = read
                .space(thread.chat_space_id)?
                .ok_or(AppError::NotFound("thread"))?;
            scope_of(&space, uploader, Some(thread.id))
        }
        (None, Some(id)) => {
            let space = read
                .space(id)?
                .filter(|s| s.organization_id == agent.organization_id && access.works_in(s.id))
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

/// A member's upload, for an object-bound thread it takes part in (the
/// caller checked that).
pub fn member_scope(space: &ChatSpace, member: MemberId, thread: ThreadId) -> AppResult<Scope> {
    let uploader = Uploader {
        kind: UploaderKind::Member,
        id: member.0,
    };
    scope_of(space, uploader, Some(thread))
}

/// Checks the limits, the disk and the name before any byte is read: the
/// uploader's rate, the unsent uploads it already holds, and the free-disk
/// floor.
pub fn admit(state: &AppState, scope: &Scope, raw_name: &str) -> AppResult<(String, policy::Kind)> {
    state.limits.uploads.check(&scope.uploader.limit_key())?;
    check_pending(&state.store.read()?, state, &scope.uploader)?;
    check_free_disk(state)?;
    let name = policy::sanitize_name(raw_name);
    let kind = policy::kind_of_name(&name)?;
    Ok((name, kind))
}

/// 429 when `uploader` already holds `limits.max_pending_uploads` uploads
/// no message carries.
fn check_pending(read: &impl Reader, state: &AppState, uploader: &Uploader) -> AppResult<()> {
    let max = state.config.limits.max_pending_uploads as usize;
    if read.pending_uploads(uploader, max + 1)? >= max {
        return Err(AppError::TooMany {
            code: "too_many_pending_uploads",
            message: format!("at most {max} uploads may wait to be sent; send or remove one first"),
        });
    }
    Ok(())
}

/// 507 while the data dir's file system is below `limits.min_free_disk_mb`.
fn check_free_disk(state: &AppState) -> AppResult<()> {
    let floor = state
        .config
        .limits
        .min_free_disk_mb
        .saturating_mul(1024 * 1024);
    let free = files::free_bytes(&state.config.data_dir).map_err(io_error)?;
    if free < floor {
        tracing::warn!(
            free,
            floor,
            "upload refused: disk below its free-space floor"
        );
        return Err(AppError::InsufficientStorage(
            "the server is low on disk space; try again later".into(),
        ));
    }
    Ok(())
}

/// The hourly byte budgets an upload spends as it arrives: its sender's
/// address and its chat space.
struct Budget<'a> {
    state: &'a AppState,
    ip: String,
    space: String,
    /// Whole KiB already spent.
    spent_kib: u64,
}

impl Budget<'_> {
    /// Spends what `size` bytes received so far take beyond what is spent.
    fn spend_up_to(&mut self, size: u64) -> AppResult<()> {
        let due = size.div_ceil(1024);
        let kib = u32::try_from(due - self.spent_kib).unwrap_or(u32::MAX);
        if kib == 0 {
            return Ok(());
        }
        let limits = &self.state.limits;
        limits.upload_bytes_per_ip.spend(&self.ip, kib)?;
        limits.upload_bytes_per_space.spend(&self.space, kib)?;
        self.spent_kib = due;
        Ok(())
    }
}

/// Receives a file from the client at `ip`: streams it to a temporary
/// file (refusing it with 413 the moment it passes the space's size limit,
/// and with 429 the moment it passes the address's or the space's hourly
/// byte budget), checks its content against its name, makes a thumbnail of
/// images, moves the files into place and only then commits the metadata.
/// On any failure no file is left.
pub async fn upload<S, B>(
    state: &AppState,
    scope: Scope,
    ip: std::net::IpAddr,
    name: String,
    kind: policy::Kind,
    body: S,
) -> AppResult<Attachment>
where
    S: Stream<Item = AppResult<B>>,
    B: AsRef<[u8]>,
{
    let mut budget = Budget {
        state,
        ip: crate::net::limit_key(ip),
        space: scope.chat_space_id.to_string(),
        spent_kib: 0,
    };
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
        budget.spend_up_to(size)?;
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
        let store = state.store.clone();
        tokio::task::spawn_blocking(move || -> AppResult<_> {
            let bytes = std::fs::read(tmp.path()).map_err(io_error)?;
            policy::verify(kind, &bytes)?;
            let thumbnail = thumbs::make(kind, &bytes)?;
            // Nodes sharing a database serve each other's files: the
            // bytes go there too, before the metadata names them.
            store.put_blob(&key, &bytes)?;
            drop(bytes);
            let mut placed = Placed::default();
            tmp.place(&root, &key, &mut placed).map_err(io_error)?;
            if let Some(t) = &thumbnail {
                let thumb_key = files::thumbnail_key(&key);
                store.put_blob(&thumb_key, &t.bytes)?;
                files::place_bytes(&root, &thumb_key, &t.bytes, &mut placed).map_err(io_error)?;
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
        let s = state2.clone();
        let committed = state2
            .write(move |tx| {
                // Checked again where it cannot race another upload.
                check_pending(tx, &s, &record.uploader)?;
                Ok(tx.put(&record)?)
            })
            .await;
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

/// Who asks to download.
#[derive(Clone, Debug)]
pub enum Viewer {
    Agent(OrgId, Access),
    Visitor(VisitorId),
    Member(MemberId),
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
        Viewer::Agent(org, access) => {
            a.organization_id == *org
                && match a.message_id {
                    None => access.all || a.uploader.id == access.agent.0,
                    Some(m) => match read.message(m)? {
                        Some(m) => {
                            crate::threads::rules::visible_thread(&read, *org, access, m.thread_id)
                                .is_ok()
                        }
                        None => false,
                    },
                }
        }
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
        Viewer::Member(member) => match a.message_id {
            None => a.uploader.kind == UploaderKind::Member && a.uploader.id == member.0,
            Some(m) => {
                let message = read.message(m)?.filter(|m| m.visible_to_visitor());
                let thread = match &message {
                    Some(m) => read.thread(m.thread_id)?,
                    None => None,
                };
                thread.is_some_and(|t| t.has_member(*member))
            }
        },
    };
    if !allowed {
        return Err(not_found());
    }
    Ok(a)
}

/// Where an attachment's file (or thumbnail) is on disk. With a database
/// shared by several nodes, a file another node stored is fetched from it
/// into this node's data dir first (keys never change, so a copy never
/// goes stale).
pub async fn path_of(state: &AppState, key: &str) -> AppResult<std::path::PathBuf> {
    let root = files::root(&state.config.data_dir);
    let path = files::path_of(&root, key)
        .ok_or_else(|| AppError::Internal("attachment with a bad storage key".into()))?;
    if !state.store.is_shared() || tokio::fs::try_exists(&path).await.unwrap_or(false) {
        return Ok(path);
    }
    let (store, key) = (state.store.clone(), key.to_owned());
    tokio::task::spawn_blocking(move || -> AppResult<()> {
        if let Some(bytes) = store.get_blob(&key)? {
            let mut placed = Placed::default();
            files::place_bytes(&root, &key, &bytes, &mut placed).map_err(io_error)?;
            placed.keep();
        }
        Ok(())
    })
    .await
    .map_err(|e| AppError::Internal(format!("attachment fetch: {e}")))??;
    Ok(path)
}
