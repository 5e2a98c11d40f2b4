//! A visitor's data on request (GDPR art. 15 and 17): everything stored
//! about one visitor as one JSON document, and its erasure — the visitor,
//! its threads, their messages and files, its unsent uploads and its
//! search entries — in one write, audit-logged, its sockets closed.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::attachments::model::{Attachment, AttachmentView, Uploader, UploaderKind};
use crate::audit::{self, Who};
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::ids::{OrgId, VisitorId};
use crate::messages::model::Message;
use crate::state::AppState;
use crate::store::{Reader, Record, WriteTx, id_key};
use crate::threads::model::Thread;
use crate::visitors::model::Visitor;

/// Everything stored about a visitor.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Export {
    pub exported_at: DateTime<Utc>,
    /// The profile: names, contact data, external id, custom attributes,
    /// the browser's metadata (pages, referrer, address, user agent).
    pub visitor: Visitor,
    /// Every conversation, with its ratings and read markers.
    pub threads: Vec<Thread>,
    /// Every message of those conversations, internal notes included,
    /// deleted ones as they are kept (their text is gone).
    pub messages: Vec<Message>,
    /// Every file: sent with a message or uploaded and never sent.
    pub files: Vec<AttachmentView>,
}

fn uploader(id: VisitorId) -> Uploader {
    Uploader {
        kind: UploaderKind::Visitor,
        id: id.0,
    }
}

/// The visitor, when it belongs to a space of `org`; otherwise 404.
fn of_org<R: Reader + ?Sized>(read: &R, org: OrgId, id: VisitorId) -> AppResult<Visitor> {
    let not_found = || AppError::NotFound("visitor");
    let visitor = read.visitor(id)?.ok_or_else(not_found)?;
    match read.space(visitor.chat_space_id)? {
        Some(space) if space.organization_id == org => Ok(visitor),
        _ => Err(not_found()),
    }
}

pub fn export(state: &AppState, org: OrgId, id: VisitorId) -> AppResult<Export> {
    let read = state.store.read()?;
    let visitor = of_org(&read, org, id)?;
    let threads = read.threads_of_visitor(id)?;
    let mut messages = Vec::new();
    let mut files = Vec::new();
    for thread in &threads {
        for m in read.messages(thread.id, None, false, usize::MAX)? {
            for a in &m.attachments {
                if let Some(file) = read.attachment(a.id)? {
                    files.push(file.view());
                }
            }
            messages.push(m);
        }
    }
    files.extend(
        read.pending_uploads_of(&uploader(id))?
            .iter()
            .map(Attachment::view),
    );
    Ok(Export {
        exported_at: Utc::now(),
        visitor,
        threads,
        messages,
        files,
    })
}

/// What an erasure removed.
#[derive(Clone, Copy, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Erased {
    pub threads: usize,
    pub messages: usize,
    /// Stored files removed (thumbnails count as files).
    pub files: usize,
}

/// Erases the visitor and everything about it in one write; its files go
/// once that write is committed, its search entries before this returns.
pub async fn erase(state: &AppState, org: OrgId, id: VisitorId, who: &Who) -> AppResult<Erased> {
    let who = who.clone();
    let erased = crate::attachments::binding::write_then_remove(state, move |tx| {
        let visitor = of_org(tx, org, id)?;
        erase_in(tx, org, &visitor, &who)
    })
    .await?;
    // The commit queued the removal of its search entries: wait for it, so
    // the answer means nothing of the visitor can be found any more.
    state.search.flush().await;
    Ok(erased)
}

fn erase_in(
    tx: &mut WriteTx<'_>,
    org: OrgId,
    visitor: &Visitor,
    who: &Who,
) -> AppResult<(Erased, Vec<String>)> {
    let mut files = Vec::new();
    let mut erased = Erased {
        threads: 0,
        messages: 0,
        files: 0,
    };
    let threads = tx.threads_of_visitor(visitor.id)?;
    for thread in &threads {
        erased.messages += tx.messages(thread.id, None, false, usize::MAX)?.len();
        files.extend(crate::threads::service::erase(tx, thread)?);
        erased.threads += 1;
    }
    for pending in tx.pending_uploads_of(&uploader(visitor.id))? {
        if let Some(gone) = tx.delete::<Attachment>(&pending.key())? {
            files.extend(gone.file_keys());
        }
    }
    erased.files = files.len();
    let ids: Vec<_> = threads.iter().map(|t| t.id).collect();
    crate::reports::outbox::forget(tx, &ids)?;
    tx.delete::<Visitor>(&id_key(visitor.id.as_u128()))?;
    tx.emit(Event::VisitorErased {
        visitor: visitor.id,
        space: visitor.chat_space_id,
        threads: ids,
    });
    audit::record(
        tx,
        org,
        who,
        "visitor.erase",
        audit::target("visitor", visitor.id),
    )?;
    Ok((erased, files))
}
