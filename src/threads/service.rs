//! Thread use cases: lists, the lifecycle (claim, release, transfer, close,
//! reopen, pending), read markers, and expiry. Every state change is one
//! write closure, so claims are atomic and first-wins.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::accounts::model::Agent;
use crate::attachments::model::Attachment;
use crate::audit::Who;
use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::events::{Event, ReaderKind};
use crate::ids::{
    AgentId, LabelId, MemberId, MessageId, OrgId, SpaceId, TeamId, ThreadId, VisitorId,
};
use crate::messages::history::{Happened, HistoryEvent, Person};
use crate::messages::model::{Message, SenderType};
use crate::messages::send::history;
use crate::search::Found;
use crate::state::AppState;
use crate::store::{Page, Reader, Record, ThreadCursor, WriteTx};
use crate::threads::model::{Priority, ReadMarker, Thread, ThreadStatus};
use crate::threads::rules::{
    Access, assign, ensure_holder_or_admin, ensure_open, holder_error, open_thread_of,
    thread_of_org, visible_thread,
};

pub const OPEN: [ThreadStatus; 3] = [
    ThreadStatus::Unassigned,
    ThreadStatus::Active,
    ThreadStatus::Pending,
];
pub const ENDED: [ThreadStatus; 2] = [ThreadStatus::Closed, ThreadStatus::Expired];

/// A thread as agents see it in lists and views.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThreadView {
    #[serde(flatten)]
    pub thread: Thread,
    pub visitor_name: String,
    /// An unnamed visitor's number, so each app names it in its language
    /// ("Visitor #5"); null once the visitor has a name.
    pub visitor_number: Option<u64>,
    /// The visitor proved who they are with an identity token.
    pub visitor_verified: bool,
    pub assigned_agent_name: Option<String>,
    /// Visitor messages the calling agent has not read.
    pub unread_count: u64,
    /// A conversation bound to an integrator's object: its members.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<crate::integrations::views::Participant>>,
    /// In a search (`q`): what matched, with the matching words marked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<Matched>,
}

/// The text a search matched in a thread: one of its messages, its
/// subject, or its visitor's fields.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Matched {
    /// The matching message, when it was a message.
    pub message_id: Option<MessageId>,
    /// The matching message is an internal note.
    pub internal: bool,
    pub parts: Vec<crate::search::snippet::Part>,
}

pub fn view_of<R: Reader + ?Sized>(
    read: &R,
    thread: Thread,
    viewer: AgentId,
) -> AppResult<ThreadView> {
    // An object's conversation has members, not a visitor: it is named
    // after its subject or its object.
    let members = thread
        .is_object_bound()
        .then(|| crate::integrations::views::participants(read, &thread));
    let visitor = read.visitor(thread.visitor_id)?;
    let visitor_verified = visitor.as_ref().is_some_and(|v| v.verified);
    let visitor_name = match (&members, &thread.subject, &thread.external_ref) {
        (Some(_), Some(subject), _) => subject.clone(),
        (Some(_), None, Some(r)) => format!("{} {}", r.kind, r.id),
        _ => visitor
            .as_ref()
            .map_or_else(|| "Visitor".to_owned(), |v| v.label()),
    };
    let visitor_number = visitor
        .as_ref()
        .filter(|v| members.is_none() && v.display_name.as_deref().is_none_or(str::is_empty))
        .map(|v| v.number);
    let assigned_agent_name = match thread.assigned_agent_id {
        Some(a) => read.agent(a)?.map(|a| a.display_name),
        None => None,
    };
    Ok(ThreadView {
        unread_count: thread.unread_for_agent(viewer),
        visitor_name,
        visitor_number,
        visitor_verified,
        assigned_agent_name,
        members,
        matched: None,
        thread,
    })
}

/// Which threads a list shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Open threads the agent holds.
    Mine,
    /// Unassigned threads of the agent's spaces and teams.
    Available,
    /// Every open thread of the organization.
    All,
    /// Closed and expired threads.
    Closed,
}

impl View {
    pub fn parse(s: &str) -> AppResult<View> {
        match s {
            "mine" => Ok(View::Mine),
            "available" => Ok(View::Available),
            "all" => Ok(View::All),
            "closed" => Ok(View::Closed),
            _ => Err(AppError::validation(
                "view must be mine, available, all or closed",
            )),
        }
    }
}

/// Filters shared by the list routes.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    pub statuses: Option<Vec<ThreadStatus>>,
    /// Some(None): unassigned only; Some(Some(a)): held by a; None: any.
    pub assigned: Option<Option<AgentId>>,
    /// Words searched for in every message of the history, the visitor's
    /// fields and the subject (the search index).
    pub q: Option<String>,
    pub space: Option<SpaceId>,
    /// Only threads carrying this label (of the caller's organization).
    pub label: Option<LabelId>,
    /// Bounds on `lastActivityAt`, both inclusive.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub cursor: Option<ThreadCursor>,
    pub limit: usize,
}

/// At most this many index documents answer one search.
const MAX_HITS: usize = 1000;

/// The threads a search found, best first, once each, with what matched
/// first in each (a visitor's match stands for each of its threads).
fn found_threads<R: Reader + ?Sized>(
    read: &R,
    found: &[Found],
) -> AppResult<Vec<(ThreadId, Found)>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for f in found {
        let ids = match f {
            Found::Message { thread, .. } | Found::Thread(thread) => vec![*thread],
            Found::Visitor(v) => read.threads_of_visitor(*v)?.iter().map(|t| t.id).collect(),
        };
        for id in ids {
            if seen.insert(id) {
                out.push((id, *f));
            }
        }
    }
    Ok(out)
}

/// One page of the found threads that pass `keep`, in list order (latest
/// activity first) after `cursor`.
fn found_page<R: Reader + ?Sized>(
    read: &R,
    found: &[(ThreadId, Found)],
    cursor: Option<ThreadCursor>,
    limit: usize,
    keep: &dyn Fn(&Thread) -> bool,
) -> AppResult<Page<Thread>> {
    let mut threads = Vec::new();
    for (id, _) in found {
        if let Some(t) = read.thread(*id)?
            && keep(&t)
        {
            let at = ThreadCursor::of(&t);
            if cursor.is_none_or(|c| (at.micros, at.id) < (c.micros, c.id)) {
                threads.push(t);
            }
        }
    }
    threads.sort_by_key(|t| std::cmp::Reverse((t.last_activity_at.timestamp_micros(), t.id)));
    let more = threads.len() > limit;
    threads.truncate(limit);
    let next_cursor = match (more, threads.last()) {
        (true, Some(t)) => Some(ThreadCursor::of(t).encode()),
        _ => None,
    };
    Ok(Page {
        items: threads,
        next_cursor,
    })
}

/// What a list item shows of its match.
fn matched<R: Reader + ?Sized>(read: &R, found: Found, words: &[String]) -> Option<Matched> {
    use crate::search::snippet::snippet;
    match found {
        Found::Message { message, .. } => {
            let m = read.message(message).ok().flatten()?;
            let mut text = m.content.clone();
            for a in &m.attachments {
                text.push_str(&format!(" [{}]", a.name));
            }
            Some(Matched {
                message_id: Some(m.id),
                internal: m.internal,
                parts: snippet(&text, words)?,
            })
        }
        Found::Thread(id) => {
            let subject = read.thread(id).ok().flatten()?.subject?;
            Some(Matched {
                message_id: None,
                internal: false,
                parts: snippet(&subject, words)?,
            })
        }
        Found::Visitor(id) => {
            let v = read.visitor(id).ok().flatten()?;
            let text = crate::search::index::visitor_texts(&v).join(" · ");
            Some(Matched {
                message_id: None,
                internal: false,
                parts: snippet(&text, words)?,
            })
        }
    }
}

/// One page of a list for `caller`.
pub fn list(
    state: &AppState,
    caller: &Caller,
    view: Option<View>,
    filter: &ListFilter,
) -> AppResult<Page<ThreadView>> {
    let read = state.store.read()?;
    let access = caller.access();
    let spaces: Vec<SpaceId> = match filter.space {
        Some(id) => {
            let space = read
                .space(id)?
                .filter(|s| s.organization_id == caller.org() && access.works_in(s.id))
                .ok_or(AppError::NotFound("chat space"))?;
            vec![space.id]
        }
        None => spaces_of(&read, caller.org(), &access)?,
    };
    if let Some(label) = filter.label {
        crate::labels::service::owned(&read, caller.org(), label)
            .map_err(|_| AppError::validation(format!("unknown label {label}")))?;
    }
    let agent = &caller.agent;
    let in_range = |t: &Thread| {
        filter.from.is_none_or(|f| t.last_activity_at >= f)
            && filter.to.is_none_or(|to| t.last_activity_at <= to)
            && filter
                .label
                .is_none_or(|l| crate::labels::service::has(t, l))
    };
    let keep = |t: &Thread| {
        if !access.sees(t) {
            return false;
        }
        let assigned_ok = match filter.assigned {
            None => true,
            Some(want) => t.assigned_agent_id == want,
        };
        let view_ok = match view {
            Some(View::Available) => access.may_claim(t),
            Some(View::Mine) => filter.space.is_none_or(|s| s == t.chat_space_id),
            _ => true,
        };
        assigned_ok && view_ok && in_range(t)
    };
    let default_statuses: &[ThreadStatus] = match view {
        Some(View::Mine) => &[ThreadStatus::Active, ThreadStatus::Pending],
        Some(View::Available) => &[ThreadStatus::Unassigned],
        Some(View::Closed) => &ENDED,
        Some(View::All) => &OPEN,
        None => &ThreadStatus::ALL,
    };
    let statuses = filter.statuses.as_deref().unwrap_or(default_statuses);
    // A search takes its candidates from the index (every message ever
    // written, visitors' fields, subjects), then the same rules as a list.
    let found = match filter.q.as_deref() {
        Some(q) => Some(found_threads(
            &read,
            &state.search.find(caller.org(), q, true, MAX_HITS),
        )?),
        None => None,
    };
    let page = if let Some(found) = &found {
        let mine = view == Some(View::Mine);
        let listed = |t: &Thread| {
            statuses.contains(&t.status)
                && if mine {
                    t.assigned_agent_id == Some(agent.id)
                } else {
                    spaces.contains(&t.chat_space_id)
                }
                && keep(t)
        };
        found_page(&read, found, filter.cursor, filter.limit, &listed)?
    } else if view == Some(View::Mine) {
        read.threads_of_agent(agent.id, statuses, filter.cursor, filter.limit, &keep)?
    } else {
        read.threads_in_spaces(&spaces, statuses, filter.cursor, filter.limit, &keep)?
    };
    let words = filter
        .q
        .as_deref()
        .map(crate::search::snippet::query_words)
        .unwrap_or_default();
    let items = page
        .items
        .into_iter()
        .map(|t| {
            let hit = found
                .as_ref()
                .and_then(|f| f.iter().find(|(id, _)| *id == t.id).map(|(_, hit)| *hit));
            let mut view = view_of(&read, t, agent.id)?;
            view.matched = hit.and_then(|hit| matched(&read, hit, &words));
            Ok(view)
        })
        .collect::<AppResult<Vec<_>>>()?;
    Ok(Page {
        items,
        next_cursor: page.next_cursor,
    })
}

/// The organization's spaces `access` works in.
pub fn spaces_of<R: Reader + ?Sized>(
    read: &R,
    org: OrgId,
    access: &Access,
) -> AppResult<Vec<SpaceId>> {
    Ok(read
        .spaces_of_org(org)?
        .into_iter()
        .map(|s| s.id)
        .filter(|s| access.works_in(*s))
        .collect())
}

pub fn get(state: &AppState, caller: &Caller, id: ThreadId) -> AppResult<ThreadView> {
    let read = state.store.read()?;
    let thread = visible_thread(&read, caller.org(), &caller.access(), id)?;
    view_of(&read, thread, caller.id())
}

/// Holding threads is for people: an API token may not claim, release,
/// transfer or reopen.
fn people_only(caller: &Caller) -> AppResult<()> {
    if caller.is_integration() {
        return Err(AppError::Forbidden(
            "an API token cannot hold threads".into(),
        ));
    }
    Ok(())
}

/// Runs a lifecycle change as one write and returns the new thread.
async fn change<F>(
    state: &AppState,
    caller: &Caller,
    id: ThreadId,
    mut apply: F,
) -> AppResult<ThreadView>
where
    F: FnMut(&mut WriteTx<'_>, &mut Thread, &Agent, &Access) -> AppResult<bool> + Send + 'static,
{
    let agent = caller.agent.clone();
    let access = caller.access();
    let thread = state
        .write(move |tx| {
            let mut thread = visible_thread(tx, agent.organization_id, &access, id)?;
            if thread.is_object_bound() {
                return Err(AppError::conflict(
                    "object_bound",
                    "a conversation bound to an object has no holder; its members take part",
                ));
            }
            if apply(tx, &mut thread, &agent, &access)? {
                tx.put(&thread)?;
                tx.emit(Event::ThreadUpdated {
                    thread: thread.clone(),
                });
            }
            Ok(thread)
        })
        .await?;
    let read = state.store.read()?;
    view_of(&read, thread, caller.id())
}

/// Claims an unassigned thread. Atomic and first-wins: the loser gets 409
/// naming the holder. Claiming a thread one already holds is a no-op.
pub async fn claim(state: &AppState, caller: &Caller, id: ThreadId) -> AppResult<ThreadView> {
    people_only(caller)?;
    change(state, caller, id, |tx, thread, agent, access| {
        ensure_open(thread)?;
        match thread.assigned_agent_id {
            Some(holder) if holder == agent.id => return Ok(false),
            Some(holder) => return Err(holder_error(tx, holder)),
            None => {}
        }
        if !access.may_claim(thread) {
            return Err(AppError::Forbidden(
                "this thread is for another team".into(),
            ));
        }
        assign(thread, agent.id);
        history(tx, thread, HistoryEvent::by(Happened::Claimed, agent))?;
        Ok(true)
    })
    .await
}

/// Gives a thread back to the queue.
pub async fn release(state: &AppState, caller: &Caller, id: ThreadId) -> AppResult<ThreadView> {
    people_only(caller)?;
    change(state, caller, id, |tx, thread, agent, _| {
        ensure_open(thread)?;
        ensure_holder_or_admin(tx, thread, agent)?;
        if thread.assigned_agent_id.is_none() {
            return Ok(false);
        }
        thread.assigned_agent_id = None;
        thread.status = ThreadStatus::Unassigned;
        thread.updated_at = Utc::now();
        history(tx, thread, HistoryEvent::by(Happened::Released, agent))?;
        Ok(true)
    })
    .await
}

/// Hands a thread to another agent of the organization.
pub async fn transfer(
    state: &AppState,
    caller: &Caller,
    id: ThreadId,
    to: AgentId,
) -> AppResult<ThreadView> {
    people_only(caller)?;
    change(state, caller, id, move |tx, thread, agent, _| {
        ensure_open(thread)?;
        ensure_holder_or_admin(tx, thread, agent)?;
        let target = tx
            .agent(to)?
            .filter(|a| a.organization_id == agent.organization_id)
            .ok_or(AppError::NotFound("agent"))?;
        if target.disabled {
            return Err(AppError::conflict(
                "agent_disabled",
                "that agent is disabled",
            ));
        }
        if !target.works_in(thread.chat_space_id) {
            return Err(AppError::conflict(
                "agent_not_in_space",
                "that agent does not work in this chat space",
            ));
        }
        assign(thread, target.id);
        let event = HistoryEvent {
            to: Some(Person::of(&target)),
            ..HistoryEvent::by(Happened::Transferred, agent)
        };
        history(tx, thread, event)?;
        tx.emit(Event::ThreadTransferred {
            thread: thread.clone(),
            by: agent.id,
        });
        Ok(true)
    })
    .await
}

/// Ends a conversation. The holder, an admin, or anyone while unassigned.
pub async fn close(state: &AppState, caller: &Caller, id: ThreadId) -> AppResult<ThreadView> {
    let closed = change(state, caller, id, |tx, thread, agent, _| {
        if !thread.status.is_open() {
            return Ok(false);
        }
        ensure_holder_or_admin(tx, thread, agent)?;
        let now = Utc::now();
        thread.status = ThreadStatus::Closed;
        thread.closed_at = Some(now);
        thread.updated_at = now;
        history(tx, thread, HistoryEvent::by(Happened::Closed, agent))?;
        Ok(true)
    })
    .await?;
    // The holder has room for a waiting thread now.
    crate::threads::assignment::fill_quietly(state, caller.org()).await;
    Ok(closed)
}

/// Reopens a closed or expired thread; the reopening agent holds it.
pub async fn reopen(state: &AppState, caller: &Caller, id: ThreadId) -> AppResult<ThreadView> {
    people_only(caller)?;
    change(state, caller, id, |tx, thread, agent, access| {
        if thread.status.is_open() {
            return Ok(false);
        }
        if !access.may_claim(thread) && thread.assigned_agent_id != Some(agent.id) {
            return Err(AppError::Forbidden(
                "this thread is for another team".into(),
            ));
        }
        assign(thread, agent.id);
        thread.closed_at = None;
        thread.last_activity_at = Utc::now();
        history(tx, thread, HistoryEvent::by(Happened::Reopened, agent))?;
        Ok(true)
    })
    .await
}

/// Changes that `PATCH /threads/:id` may make.
#[derive(Clone, Debug, Default)]
pub struct ThreadPatch {
    pub status: Option<ThreadStatus>,
    /// Some(None) clears the subject.
    pub subject: Option<Option<String>>,
    /// Some(None) removes the team routing.
    pub team_id: Option<Option<TeamId>>,
    /// The thread's whole new label list.
    pub labels: Option<Vec<LabelId>>,
    pub priority: Option<Priority>,
}

impl ThreadPatch {
    /// Whether the change is the holder's (or an admin's) to make: labels
    /// and priority are for every agent who sees the thread.
    fn needs_holder(&self) -> bool {
        self.status.is_some() || self.subject.is_some() || self.team_id.is_some()
    }
}

pub async fn patch(
    state: &AppState,
    caller: &Caller,
    id: ThreadId,
    p: ThreadPatch,
) -> AppResult<ThreadView> {
    change(state, caller, id, move |tx, thread, agent, access| {
        if p.needs_holder() && !access.all && thread.assigned_agent_id != Some(agent.id) {
            return Err(AppError::Forbidden(
                "only the agent holding the thread or an admin may change it".into(),
            ));
        }
        if let Some(status) = p.status {
            if !matches!(status, ThreadStatus::Pending | ThreadStatus::Active) {
                return Err(AppError::validation(
                    "status may only be set to pending or active here",
                ));
            }
            ensure_open(thread)?;
            ensure_holder_or_admin(tx, thread, agent)?;
            if thread.assigned_agent_id.is_none() {
                return Err(AppError::conflict(
                    "thread_unassigned",
                    "claim the thread first",
                ));
            }
        }
        if let Some(Some(team)) = p.team_id {
            tx.team(team)?
                .filter(|t| t.organization_id == agent.organization_id)
                .ok_or(AppError::NotFound("team"))?;
        }
        if let Some(status) = p.status {
            thread.status = status;
        }
        if let Some(subject) = &p.subject {
            thread.subject = subject.clone();
        }
        if let Some(team) = p.team_id {
            thread.team_id = team;
        }
        if let Some(labels) = &p.labels {
            let labels =
                crate::labels::service::check_for_thread(tx, agent.organization_id, labels)?;
            // The same set in another order is no change.
            let same = labels.len() == thread.labels.len()
                && labels.iter().all(|l| thread.labels.contains(l));
            if !same {
                thread.labels = labels;
                history(tx, thread, HistoryEvent::by(Happened::LabelsChanged, agent))?;
            }
        }
        if let Some(priority) = p.priority {
            thread.priority = priority;
        }
        thread.updated_at = Utc::now();
        Ok(true)
    })
    .await
}

/// Counts the other side's messages up to and including `up_to`.
fn seen_up_to<R: Reader + ?Sized>(
    read: &R,
    thread: &Thread,
    up_to: MessageId,
    counts_visitor: bool,
) -> AppResult<u64> {
    let total = if counts_visitor {
        thread.visitor_message_count
    } else {
        thread.agent_message_count
    };
    let mut later = 0u64;
    let mut cursor = Some(up_to);
    loop {
        let batch = read.messages(thread.id, cursor, false, 256)?;
        for m in &batch {
            let is_visitor = m.sender_type == SenderType::Visitor;
            if !m.internal && is_visitor == counts_visitor {
                later += 1;
            }
        }
        if batch.len() < 256 {
            break;
        }
        cursor = batch.last().map(|m| m.id);
    }
    Ok(total.saturating_sub(later))
}

/// Who is reading.
#[derive(Clone, Debug)]
pub enum ReadBy {
    Agent(AgentId),
    Visitor,
    Member(MemberId),
}

/// Messages of `thread` anyone but agents may see, up to `up_to`.
fn visible_up_to<R: Reader + ?Sized>(
    read: &R,
    thread: &Thread,
    up_to: MessageId,
) -> AppResult<u64> {
    let total = thread.visitor_message_count + thread.agent_message_count;
    let mut later = 0u64;
    let mut cursor = Some(up_to);
    loop {
        let batch = read.messages(thread.id, cursor, false, 256)?;
        later += batch.iter().filter(|m| !m.internal).count() as u64;
        if batch.len() < 256 {
            break;
        }
        cursor = batch.last().map(|m| m.id);
    }
    Ok(total.saturating_sub(later))
}

/// Moves a reader's marker forward to `up_to` (never back). Returns the
/// thread and whether the marker moved.
pub async fn mark_read(
    state: &AppState,
    thread: ThreadId,
    who: ReadBy,
    up_to: MessageId,
) -> AppResult<(Thread, bool)> {
    let result = state
        .write(move |tx| {
            let mut t = tx.thread(thread)?.ok_or(AppError::NotFound("thread"))?;
            let m = tx
                .message(up_to)?
                .filter(|m| m.thread_id == thread)
                .ok_or_else(|| AppError::validation("upTo is not a message of this thread"))?;
            let current = match &who {
                ReadBy::Agent(a) => t.agent_reads.get(a).map(|r| r.up_to),
                ReadBy::Visitor => t.visitor_read.as_ref().map(|r| r.up_to),
                ReadBy::Member(mb) => t
                    .membership
                    .as_ref()
                    .and_then(|ms| ms.reads.get(mb))
                    .map(|r| r.up_to),
            };
            if current.is_some_and(|c| c >= m.id) {
                return Ok((t, false));
            }
            if !matches!(who, ReadBy::Agent(_)) && m.internal {
                return Err(AppError::validation("upTo is not a message of this thread"));
            }
            let seen = match &who {
                ReadBy::Member(_) => visible_up_to(tx, &t, m.id)?,
                _ => seen_up_to(tx, &t, m.id, matches!(who, ReadBy::Agent(_)))?,
            };
            let reader = match &who {
                ReadBy::Agent(a) => ReaderKind::Agent(*a),
                ReadBy::Visitor => ReaderKind::Visitor,
                ReadBy::Member(mb) => ReaderKind::Member(*mb),
            };
            let marker = ReadMarker {
                up_to: m.id,
                seen,
                at: Utc::now(),
            };
            match &who {
                ReadBy::Agent(a) => {
                    t.agent_reads.insert(*a, marker);
                }
                ReadBy::Visitor => t.visitor_read = Some(marker),
                ReadBy::Member(mb) => {
                    if let Some(ms) = t.membership.as_mut() {
                        ms.reads.insert(*mb, marker);
                    }
                }
            }
            tx.put(&t)?;
            tx.emit(Event::Read {
                thread: t.clone(),
                reader,
                up_to: m.id,
            });
            Ok((t, true))
        })
        .await?;
    Ok(result)
}

/// Unread visitor messages for the agent, over the threads it works on:
/// the ones it holds and the unassigned ones available to it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnreadCount {
    pub total: u64,
    pub threads: u64,
}

pub fn unread_count(state: &AppState, caller: &Caller) -> AppResult<UnreadCount> {
    let read = state.store.read()?;
    let access = caller.access();
    let spaces = spaces_of(&read, caller.org(), &access)?;
    let agent = &caller.agent;
    let mut total = 0;
    let mut threads = 0;
    let mut count = |t: &Thread| {
        let n = t.unread_for_agent(agent.id);
        if n > 0 {
            total += n;
            threads += 1;
        }
    };
    let available = read.threads_in_spaces(
        &spaces,
        &[ThreadStatus::Unassigned],
        None,
        usize::MAX,
        &|t| access.may_claim(t),
    )?;
    available.items.iter().for_each(&mut count);
    let mine = read.threads_of_agent(
        agent.id,
        &[ThreadStatus::Active, ThreadStatus::Pending],
        None,
        usize::MAX,
        &|_| true,
    )?;
    mine.items.iter().for_each(&mut count);
    Ok(UnreadCount { total, threads })
}

/// The visitor ends the chat from the widget.
pub async fn visitor_close(state: &AppState, visitor: VisitorId) -> AppResult<Option<Thread>> {
    let closed = state
        .write(move |tx| {
            let Some(mut thread) = open_thread_of(tx, visitor)? else {
                return Ok(None);
            };
            let now = Utc::now();
            thread.status = ThreadStatus::Closed;
            thread.closed_at = Some(now);
            thread.updated_at = now;
            history(tx, &mut thread, HistoryEvent::of(Happened::ClosedByVisitor))?;
            tx.put(&thread)?;
            tx.emit(Event::ThreadUpdated {
                thread: thread.clone(),
            });
            Ok(Some(thread))
        })
        .await?;
    Ok(closed)
}

/// Deletes a thread for good (admins): its messages, their attachments'
/// metadata in the same write, and the files once that is committed.
/// Live clients are not told; the thread is simply gone on their next read.
pub async fn delete(state: &AppState, caller: &Caller, id: ThreadId, who: &Who) -> AppResult<()> {
    delete_in_org(state, caller.org(), id, who).await?;
    tracing::info!(thread = %id, agent = %caller.id(), "thread deleted");
    Ok(())
}

/// Deletes a thread of `org` for good: its messages, their attachments'
/// metadata in the same write, and the files once that is committed.
pub async fn delete_in_org(state: &AppState, org: OrgId, id: ThreadId, who: &Who) -> AppResult<()> {
    let who = who.clone();
    crate::attachments::binding::write_then_remove(state, move |tx| {
        let thread = thread_of_org(tx, org, id)?;
        let files = erase(tx, &thread)?;
        crate::audit::record(
            tx,
            org,
            &who,
            "thread.delete",
            crate::audit::target("thread", id),
        )?;
        Ok(((), files))
    })
    .await
}

/// Removes a thread, its messages and their attachments' metadata in the
/// caller's write; returns the files to remove once it is committed.
pub fn erase(tx: &mut WriteTx<'_>, thread: &Thread) -> AppResult<Vec<String>> {
    let messages = tx.messages(thread.id, None, false, usize::MAX)?;
    let mut files = Vec::new();
    for m in &messages {
        for a in &m.attachments {
            let key = crate::store::id_key(a.id.as_u128());
            if let Some(gone) = tx.delete::<Attachment>(&key)? {
                files.extend(gone.file_keys());
            }
        }
        tx.delete::<Message>(&m.key())?;
    }
    tx.delete::<Thread>(&thread.key())?;
    Ok(files)
}

/// Threads whose last activity is before this, at `now`, have been idle
/// for `minutes`. Activity times are stamped by the wall clock when they
/// happen, so a clock that jumps by J since moves a thread's expiry by J,
/// never more: early after a step forward, late after a step back.
pub fn idle_cutoff(now: chrono::DateTime<Utc>, minutes: u32) -> chrono::DateTime<Utc> {
    now - Duration::minutes(minutes as i64)
}

/// Marks open threads whose space's `expireAfter` has passed without
/// activity as expired. Returns the threads it expired.
pub async fn expire_inactive(state: &AppState) -> AppResult<Vec<Thread>> {
    // The appliance's clock: a test steps it to see what a wall-clock jump
    // does (a thread expires at most the jump early or late, see
    // `idle_cutoff`).
    let now = state.clock.now();
    let mut candidates = Vec::new();
    {
        let read = state.store.read()?;
        for space in read.all_spaces()? {
            let minutes = space.settings.expire_after_minutes;
            if minutes == 0 {
                continue;
            }
            let cutoff = idle_cutoff(now, minutes);
            // Object-bound threads live as long as their object: the
            // integrator deletes them.
            let page = read.threads_in_spaces(&[space.id], &OPEN, None, usize::MAX, &|t| {
                !t.is_object_bound() && t.last_activity_at < cutoff
            })?;
            candidates.extend(page.items.into_iter().map(|t| (t.id, cutoff)));
        }
    }
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let expired = state
        .write(move |tx| {
            let mut expired = Vec::new();
            for (id, cutoff) in &candidates {
                // Checked again: a message may have arrived since the scan.
                let Some(mut t) = tx.thread(*id)? else {
                    continue;
                };
                if t.status.is_open() && !t.is_object_bound() && t.last_activity_at < *cutoff {
                    t.status = ThreadStatus::Expired;
                    t.closed_at = Some(Utc::now());
                    t.updated_at = Utc::now();
                    history(tx, &mut t, HistoryEvent::of(Happened::Expired))?;
                    tx.put(&t)?;
                    tx.emit(Event::ThreadUpdated { thread: t.clone() });
                    expired.push(t);
                }
            }
            Ok(expired)
        })
        .await?;
    if !expired.is_empty() {
        tracing::info!(count = expired.len(), "threads expired");
    }
    Ok(expired)
}
