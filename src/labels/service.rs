//! Label use cases: the organization's list (every agent reads it, admins
//! change it) and the check a thread's labels pass.

use chrono::Utc;

use crate::audit::{self, Who, target};
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::ids::{LabelId, OrgId};
use crate::labels::model::{Label, MAX_NAME, MAX_PER_ORG, MAX_PER_THREAD};
use crate::state::AppState;
use crate::store::{Reader, Record, WriteTx};
use crate::threads::model::{Thread, ThreadStatus};

/// The organization's labels, by name.
pub fn list(state: &AppState, org: OrgId) -> AppResult<Vec<Label>> {
    let mut labels = state.store.read()?.labels_of_org(org)?;
    labels.sort_by_key(|l| l.name.to_lowercase());
    Ok(labels)
}

/// A label of `org`; anyone else's is a 404.
pub fn owned<R: Reader + ?Sized>(read: &R, org: OrgId, id: LabelId) -> AppResult<Label> {
    read.label(id)?
        .filter(|l| l.organization_id == org)
        .ok_or(AppError::NotFound("label"))
}

fn parse_name(name: &str) -> AppResult<String> {
    crate::validate::name("name", name, MAX_NAME)
}

fn parse_color(color: &str) -> AppResult<String> {
    let c = color.trim().to_ascii_lowercase();
    if !crate::validate::is_hex_color(&c) {
        return Err(AppError::validation("color must look like #rrggbb"));
    }
    Ok(c)
}

/// Refuses a name another label of the organization already has.
fn ensure_unique<R: Reader + ?Sized>(
    read: &R,
    org: OrgId,
    name: &str,
    except: Option<LabelId>,
) -> AppResult<()> {
    let taken = read
        .labels_of_org(org)?
        .iter()
        .any(|l| Some(l.id) != except && l.name.to_lowercase() == name.to_lowercase());
    if taken {
        return Err(AppError::conflict(
            "label_exists",
            "a label with this name already exists",
        ));
    }
    Ok(())
}

pub async fn create(
    state: &AppState,
    org: OrgId,
    name: &str,
    color: &str,
    who: &Who,
) -> AppResult<Label> {
    let label = Label {
        id: LabelId::new(),
        organization_id: org,
        name: parse_name(name)?,
        color: parse_color(color)?,
        created_at: Utc::now(),
    };
    let who = who.clone();
    let l = label.clone();
    state
        .write(move |tx| {
            ensure_unique(tx, org, &l.name, None)?;
            if tx.labels_of_org(org)?.len() >= MAX_PER_ORG {
                return Err(AppError::conflict(
                    "too_many_labels",
                    format!("an organization may have at most {MAX_PER_ORG} labels"),
                ));
            }
            tx.put(&l)?;
            tx.emit(Event::LabelsChanged { org });
            audit::record(tx, org, &who, "label.create", target("label", l.id))?;
            Ok(())
        })
        .await?;
    Ok(label)
}

pub async fn update(
    state: &AppState,
    org: OrgId,
    id: LabelId,
    name: Option<&str>,
    color: Option<&str>,
    who: &Who,
) -> AppResult<Label> {
    let name = name.map(parse_name).transpose()?;
    let color = color.map(parse_color).transpose()?;
    let who = who.clone();
    state
        .write(move |tx| {
            let mut label = owned(tx, org, id)?;
            if let Some(n) = &name {
                ensure_unique(tx, org, n, Some(id))?;
                label.name = n.clone();
            }
            if let Some(c) = &color {
                label.color = c.clone();
            }
            tx.put(&label)?;
            tx.emit(Event::LabelsChanged { org });
            audit::record(tx, org, &who, "label.update", target("label", id))?;
            Ok(label)
        })
        .await
}

/// Deletes a label and takes it off every thread of the organization in
/// the same write; live lists hear of each changed thread.
pub async fn delete(state: &AppState, org: OrgId, id: LabelId, who: &Who) -> AppResult<()> {
    let who = who.clone();
    state
        .write(move |tx| {
            let label = owned(tx, org, id)?;
            let spaces: Vec<_> = tx.spaces_of_org(org)?.into_iter().map(|s| s.id).collect();
            let labelled = tx
                .threads_in_spaces(&spaces, &ThreadStatus::ALL, None, usize::MAX, &|t| {
                    t.labels.contains(&id)
                })?
                .items;
            for mut thread in labelled {
                thread.labels.retain(|l| *l != id);
                tx.put(&thread)?;
                tx.emit(Event::ThreadUpdated { thread });
            }
            tx.delete::<Label>(&label.key())?;
            tx.emit(Event::LabelsChanged { org });
            audit::record(tx, org, &who, "label.delete", target("label", id))?;
            Ok(())
        })
        .await
}

/// A thread's new label list: each one a label of `org`, no repeats, at
/// most [`MAX_PER_THREAD`]. An unknown label refuses the whole change.
pub fn check_for_thread(tx: &WriteTx<'_>, org: OrgId, ids: &[LabelId]) -> AppResult<Vec<LabelId>> {
    let mut out: Vec<LabelId> = Vec::with_capacity(ids.len());
    for id in ids {
        if out.contains(id) {
            continue;
        }
        if tx.label(*id)?.is_none_or(|l| l.organization_id != org) {
            return Err(AppError::validation(format!("unknown label {id}")));
        }
        out.push(*id);
    }
    if out.len() > MAX_PER_THREAD {
        return Err(AppError::validation(format!(
            "a thread may carry at most {MAX_PER_THREAD} labels"
        )));
    }
    Ok(out)
}

/// Whether the thread carries the label.
pub fn has(thread: &Thread, label: LabelId) -> bool {
    thread.labels.contains(&label)
}
