//! The management API's use cases: conversations bound to the
//! integrator's objects, their participants and access scopes. Every one
//! is scoped to the API token's organization.

use chrono::Utc;

use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::ids::{OrgId, SpaceId, ThreadId, VisitorId};
use crate::integrations::members::{self, parse_external_id};
use crate::integrations::model::{
    AccessScope, MAX_PARTICIPANTS, MAX_REF_ID, MAX_REF_TYPE, MAX_SCOPE_VALUE, MAX_SCOPE_VALUES,
    MAX_SCOPES,
};
use crate::state::AppState;
use crate::store::{Reader, WriteTx};
use crate::threads::model::{ExternalRef, Membership, Thread, ThreadStatus};
use crate::threads::rules::{new_thread, thread_of_org};

/// Longest subject.
pub const MAX_SUBJECT: usize = 300;

fn printable(field: &str, value: &str, max: usize) -> AppResult<()> {
    if value.trim().is_empty() || value.chars().count() > max || value.chars().any(char::is_control)
    {
        return Err(AppError::validation(format!(
            "{field} must have 1 to {max} printable characters"
        )));
    }
    Ok(())
}

pub fn parse_ref(kind: &str, id: &str) -> AppResult<ExternalRef> {
    printable("externalRef.type", kind, MAX_REF_TYPE)?;
    printable("externalRef.id", id, MAX_REF_ID)?;
    Ok(ExternalRef {
        kind: kind.to_owned(),
        id: id.to_owned(),
    })
}

pub fn parse_subject(subject: Option<&str>) -> AppResult<Option<String>> {
    match subject.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => {
            printable("subject", s, MAX_SUBJECT)?;
            Ok(Some(s.to_owned()))
        }
    }
}

pub fn parse_scopes(scopes: Vec<AccessScope>) -> AppResult<Vec<AccessScope>> {
    crate::validate::list_len("accessScopes", &scopes, MAX_SCOPES)?;
    for s in &scopes {
        printable("accessScopes.tenant", &s.tenant, MAX_SCOPE_VALUE)?;
        for list in [&s.scope1, &s.scope2] {
            crate::validate::list_len("accessScopes.scope1/scope2", list, MAX_SCOPE_VALUES)?;
            for v in list {
                printable("a scope value", v, MAX_SCOPE_VALUE)?;
            }
        }
    }
    Ok(scopes)
}

pub fn parse_participants(ids: &[String]) -> AppResult<Vec<String>> {
    crate::validate::list_len("participants", ids, MAX_PARTICIPANTS)?;
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        let id = parse_external_id(id)?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// A new object-bound thread, validated.
#[derive(Clone, Debug)]
pub struct NewObjectThread {
    pub chat_space_id: SpaceId,
    pub external_ref: ExternalRef,
    pub subject: Option<String>,
    pub participants: Vec<String>,
    pub access_scopes: Vec<AccessScope>,
}

/// The organization's thread bound to `r`, in any of its spaces.
pub fn by_ref_in<R: Reader + ?Sized>(
    read: &R,
    org: OrgId,
    r: &ExternalRef,
) -> AppResult<Option<Thread>> {
    for space in read.spaces_of_org(org)? {
        if let Some(t) = read.thread_by_ref(space.id, &r.kind, &r.id)? {
            return Ok(Some(t));
        }
    }
    Ok(None)
}

/// Creates the thread of an object, or returns the one it already has
/// (false): one object never gets two threads, however many creates race.
pub async fn create(
    state: &AppState,
    org: OrgId,
    new: NewObjectThread,
) -> AppResult<(Thread, bool)> {
    state
        .write(move |tx| {
            tx.space(new.chat_space_id)?
                .filter(|s| s.organization_id == org)
                .ok_or(AppError::NotFound("chat space"))?;
            // Checked inside the write, which sees the batch's earlier
            // writes: concurrent creates of one object make one thread.
            if let Some(existing) = by_ref_in(tx, org, &new.external_ref)? {
                return Ok((existing, false));
            }
            let mut thread = new_thread(new.chat_space_id, VisitorId(uuid::Uuid::nil()));
            thread.status = ThreadStatus::Active;
            thread.external_ref = Some(new.external_ref.clone());
            thread.subject = new.subject.clone();
            let mut members = Vec::with_capacity(new.participants.len());
            for external_id in &new.participants {
                members.push(members::upsert_in(tx, org, external_id, None, None)?.id);
            }
            thread.membership = Some(Membership {
                members,
                access_scopes: new.access_scopes.clone(),
                reads: Default::default(),
            });
            tx.put(&thread)?;
            tx.emit(Event::ThreadNew {
                thread: thread.clone(),
            });
            Ok((thread, true))
        })
        .await
}

/// An object-bound thread of `org`; anything else is a 404.
pub fn object_thread_in<R: Reader + ?Sized>(
    read: &R,
    org: OrgId,
    id: ThreadId,
) -> AppResult<Thread> {
    let thread = thread_of_org(read, org, id)?;
    if !thread.is_object_bound() {
        return Err(AppError::NotFound("thread"));
    }
    Ok(thread)
}

pub fn get_by_ref(state: &AppState, org: OrgId, r: &ExternalRef) -> AppResult<Thread> {
    by_ref_in(&state.store.read()?, org, r)?.ok_or(AppError::NotFound("thread"))
}

/// What a patch changes.
#[derive(Clone, Debug, Default)]
pub struct ObjectPatch {
    pub subject: Option<Option<String>>,
    pub access_scopes: Option<Vec<AccessScope>>,
}

pub async fn patch(
    state: &AppState,
    org: OrgId,
    id: ThreadId,
    patch: ObjectPatch,
) -> AppResult<Thread> {
    state
        .write(move |tx| {
            let mut thread = object_thread_in(tx, org, id)?;
            if let Some(s) = &patch.subject {
                thread.subject = s.clone();
            }
            if let (Some(scopes), Some(m)) = (&patch.access_scopes, thread.membership.as_mut()) {
                m.access_scopes = scopes.clone();
            }
            thread.updated_at = Utc::now();
            tx.put(&thread)?;
            tx.emit(Event::ThreadUpdated {
                thread: thread.clone(),
            });
            Ok(thread)
        })
        .await
}

pub async fn delete(
    state: &AppState,
    org: OrgId,
    id: ThreadId,
    who: &crate::audit::Who,
) -> AppResult<()> {
    object_thread_in(&state.store.read()?, org, id)?;
    crate::threads::service::delete_in_org(state, org, id, who).await
}

/// Adds a participant (creating the member when new). Adding one twice
/// changes nothing.
pub fn add_in(
    tx: &mut WriteTx<'_>,
    thread: &mut Thread,
    member: crate::integrations::model::Member,
) -> AppResult<bool> {
    let m = thread.membership.get_or_insert_with(Default::default);
    if m.members.contains(&member.id) {
        return Ok(false);
    }
    crate::validate::list_len("participants", &m.members, MAX_PARTICIPANTS - 1)?;
    m.members.push(member.id);
    thread.updated_at = Utc::now();
    tx.put(&*thread)?;
    tx.emit(Event::ParticipantJoined {
        thread: thread.clone(),
        member,
    });
    Ok(true)
}

/// Removes a participant; false when it was not one.
pub fn remove_in(
    tx: &mut WriteTx<'_>,
    thread: &mut Thread,
    member: crate::integrations::model::Member,
) -> AppResult<bool> {
    let Some(m) = thread.membership.as_mut() else {
        return Ok(false);
    };
    let before = m.members.len();
    m.members.retain(|x| *x != member.id);
    if m.members.len() == before {
        return Ok(false);
    }
    m.reads.remove(&member.id);
    thread.updated_at = Utc::now();
    tx.put(&*thread)?;
    tx.emit(Event::ParticipantLeft {
        thread: thread.clone(),
        member,
    });
    Ok(true)
}

pub async fn add_participant(
    state: &AppState,
    org: OrgId,
    id: ThreadId,
    external_id: String,
    name: Option<String>,
) -> AppResult<Thread> {
    state
        .write(move |tx| {
            let mut thread = object_thread_in(tx, org, id)?;
            let member = members::upsert_in(tx, org, &external_id, name.as_deref(), None)?;
            add_in(tx, &mut thread, member)?;
            Ok(thread)
        })
        .await
}

pub async fn remove_participant(
    state: &AppState,
    org: OrgId,
    id: ThreadId,
    external_id: String,
) -> AppResult<Thread> {
    state
        .write(move |tx| {
            let mut thread = object_thread_in(tx, org, id)?;
            let member = tx
                .member_by_external(org, &external_id)?
                .ok_or(AppError::NotFound("participant"))?;
            if !remove_in(tx, &mut thread, member)? {
                return Err(AppError::NotFound("participant"));
            }
            Ok(thread)
        })
        .await
}
