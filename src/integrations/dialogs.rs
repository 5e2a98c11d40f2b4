//! The member chat API's use cases: a member's dialogs (the object-bound
//! threads it takes part in, and those its scopes let it join), joining
//! and leaving, messages and read markers. Sending goes through
//! `messages::send::from_member`.

use crate::error::{AppError, AppResult};
use crate::ids::{MessageId, ThreadId};
use crate::integrations::model::{Member, MemberScopes, may_join};
use crate::integrations::objects::{add_in, by_ref_in, remove_in};
use crate::integrations::views::{self, Dialog};
use crate::messages::model::Message;
use crate::messages::send::member_thread;
use crate::messages::service::{self as messages, Audience};
use crate::state::AppState;
use crate::store::{Page, Reader, ThreadCursor};
use crate::threads::model::{ExternalRef, Thread, ThreadStatus};
use crate::threads::service::{self as threads, ReadBy};

/// A verified member and the scopes its token carries.
#[derive(Clone, Debug)]
pub struct MemberCtx {
    pub member: Member,
    pub scopes: MemberScopes,
    /// When the member token expires (Unix seconds).
    pub expires_at: i64,
    /// The signing key of the member token.
    pub key_id: crate::ids::SigningKeyId,
}

/// Which dialogs a list shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Participating,
    Available,
}

impl Which {
    pub fn parse(s: &str) -> AppResult<Which> {
        match s {
            "participating" => Ok(Which::Participating),
            "available" => Ok(Which::Available),
            _ => Err(AppError::validation(
                "type must be participating or available",
            )),
        }
    }
}

/// A page of the member's dialogs, most recent activity first.
pub fn list(
    state: &AppState,
    who: &MemberCtx,
    which: Which,
    cursor: Option<ThreadCursor>,
    limit: usize,
) -> AppResult<Page<Dialog>> {
    let read = state.store.read()?;
    let spaces: Vec<_> = read
        .spaces_of_org(who.member.organization_id)?
        .into_iter()
        .map(|s| s.id)
        .collect();
    let me = who.member.id;
    let keep = |t: &Thread| match &t.membership {
        Some(m) if m.members.contains(&me) => which == Which::Participating,
        Some(m) => which == Which::Available && may_join(&m.access_scopes, &who.scopes),
        None => false,
    };
    let page = read.threads_in_spaces(&spaces, &[ThreadStatus::Active], cursor, limit, &keep)?;
    Ok(Page {
        items: page
            .items
            .iter()
            .map(|t| views::dialog(&read, t, me))
            .collect(),
        next_cursor: page.next_cursor,
    })
}

pub fn get(state: &AppState, who: &MemberCtx, id: ThreadId) -> AppResult<Dialog> {
    let read = state.store.read()?;
    let thread = member_thread(&read, &who.member, &who.scopes, id)?;
    Ok(views::dialog(&read, &thread, who.member.id))
}

/// The dialog of an object: 404 unless the member takes part or may join.
pub fn by_object(state: &AppState, who: &MemberCtx, r: &ExternalRef) -> AppResult<Dialog> {
    let read = state.store.read()?;
    let thread =
        by_ref_in(&read, who.member.organization_id, r)?.ok_or(AppError::NotFound("dialog"))?;
    let thread = member_thread(&read, &who.member, &who.scopes, thread.id)?;
    Ok(views::dialog(&read, &thread, who.member.id))
}

/// A potential member joins; anyone else gets 404.
pub async fn join(state: &AppState, who: &MemberCtx, id: ThreadId) -> AppResult<Dialog> {
    let who2 = who.clone();
    let thread = state
        .write(move |tx| {
            let mut thread = member_thread(tx, &who2.member, &who2.scopes, id)?;
            if thread.has_member(who2.member.id) {
                return Err(AppError::NotFound("dialog"));
            }
            add_in(tx, &mut thread, who2.member.clone())?;
            Ok(thread)
        })
        .await?;
    Ok(views::dialog(&state.store.read()?, &thread, who.member.id))
}

/// A participant leaves; anyone else gets 404.
pub async fn leave(state: &AppState, who: &MemberCtx, id: ThreadId) -> AppResult<()> {
    let who = who.clone();
    state
        .write(move |tx| {
            let mut thread = member_thread(tx, &who.member, &who.scopes, id)?;
            if !remove_in(tx, &mut thread, who.member.clone())? {
                return Err(AppError::NotFound("dialog"));
            }
            Ok(())
        })
        .await
}

/// A thread the member takes part in: 403 for a potential member, 404 for
/// anything else.
pub fn participant_thread<R: Reader + ?Sized>(
    read: &R,
    who: &MemberCtx,
    id: ThreadId,
) -> AppResult<Thread> {
    let thread = member_thread(read, &who.member, &who.scopes, id)?;
    if !thread.has_member(who.member.id) {
        return Err(AppError::Forbidden(
            "join the conversation to read and write in it".into(),
        ));
    }
    Ok(thread)
}

pub fn messages(
    state: &AppState,
    who: &MemberCtx,
    id: ThreadId,
    before: Option<MessageId>,
    after: Option<MessageId>,
    limit: usize,
) -> AppResult<Page<Message>> {
    let read = state.store.read()?;
    let thread = participant_thread(&read, who, id)?;
    messages::page(&read, thread.id, before, after, limit, Audience::Visitor)
}

/// Moves the member's read marker; the others get `messages:read`.
pub async fn mark_read(
    state: &AppState,
    who: &MemberCtx,
    id: ThreadId,
    up_to: MessageId,
) -> AppResult<()> {
    participant_thread(&state.store.read()?, who, id)?;
    threads::mark_read(state, id, ReadBy::Member(who.member.id), up_to).await?;
    Ok(())
}
