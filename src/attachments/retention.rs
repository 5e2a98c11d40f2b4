//! The retention job: files past their space's `retentionDays`, uploads no
//! message carried, stale partial uploads.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};

use crate::attachments::binding::write_then_remove;
use crate::attachments::files;
use crate::attachments::model::{Attachment, AttachmentRef};
use crate::error::AppResult;
use crate::events::Event;
use crate::ids::{AttachmentId, MessageId, ThreadId};
use crate::messages::send;
use crate::state::AppState;
use crate::store::{Reader, WriteTx, id_key};
use crate::threads::model::Thread;

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
            send::system_note(tx, &mut thread, &format!("{label}: {}", names.join(", ")))?;
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
