//! What every thread write shares: the organization-scoped lookup, the
//! claim rules, and a visitor's one open thread. The lifecycle
//! (`service`) and the send path (`messages::send`) both stand on these.

use chrono::Utc;

use crate::accounts::model::{Agent, Role};
use crate::error::{AppError, AppResult};
use crate::ids::{AgentId, OrgId, SpaceId, ThreadId, VisitorId};
use crate::store::{Reader, WriteTx};
use crate::threads::model::{Thread, ThreadStatus};

/// A thread of a space of `org`; otherwise 404.
pub fn thread_of_org<R: Reader + ?Sized>(read: &R, org: OrgId, id: ThreadId) -> AppResult<Thread> {
    let not_found = || AppError::NotFound("thread");
    let thread = read.thread(id)?.ok_or_else(not_found)?;
    let space = read.space(thread.chat_space_id)?.ok_or_else(not_found)?;
    if space.organization_id != org {
        return Err(not_found());
    }
    Ok(thread)
}

/// Whether an agent may see an unassigned thread in its Available list:
/// threads routed to a team are for that team's agents.
pub fn available_to(agent: &Agent, thread: &Thread) -> bool {
    thread
        .team_id
        .is_none_or(|t| agent.team_ids.contains(&t) || agent.role >= Role::Admin)
}

/// The 409 naming who holds the thread.
pub fn holder_error<R: Reader + ?Sized>(read: &R, holder: AgentId) -> AppError {
    let holder_name = read
        .agent(holder)
        .ok()
        .flatten()
        .map_or_else(|| "another agent".to_owned(), |a| a.display_name);
    AppError::Claimed {
        holder_id: holder,
        holder_name,
    }
}

/// Only open threads take replies and lifecycle changes.
pub fn ensure_open(thread: &Thread) -> AppResult<()> {
    if !thread.status.is_open() {
        return Err(AppError::conflict("thread_closed", "the thread is closed"));
    }
    Ok(())
}

/// Whether `agent` may act on a thread someone holds: the holder or an admin.
pub fn ensure_holder_or_admin(tx: &WriteTx<'_>, thread: &Thread, agent: &Agent) -> AppResult<()> {
    match thread.assigned_agent_id {
        Some(holder) if holder != agent.id && agent.role < Role::Admin => {
            Err(holder_error(tx, holder))
        }
        _ => Ok(()),
    }
}

/// Gives the thread to `agent` (claim, transfer, a reply to an unassigned thread).
pub fn assign(thread: &mut Thread, agent: AgentId) {
    thread.assigned_agent_id = Some(agent);
    thread.status = ThreadStatus::Active;
    if !thread.participants.contains(&agent) {
        thread.participants.push(agent);
    }
    thread.updated_at = Utc::now();
}

/// A new thread, not yet stored.
pub fn new_thread(space: SpaceId, visitor: VisitorId) -> Thread {
    let now = Utc::now();
    Thread {
        id: ThreadId::new(),
        chat_space_id: space,
        visitor_id: visitor,
        assigned_agent_id: None,
        team_id: None,
        participants: Vec::new(),
        external_ref: None,
        subject: None,
        status: ThreadStatus::Unassigned,
        last_message: None,
        visitor_message_count: 0,
        agent_message_count: 0,
        visitor_read: None,
        agent_reads: Default::default(),
        last_activity_at: now,
        created_at: now,
        updated_at: now,
        closed_at: None,
        membership: None,
    }
}

/// The visitor's open thread, if any (there is at most one).
pub fn open_thread_of<R: Reader + ?Sized>(
    read: &R,
    visitor: VisitorId,
) -> AppResult<Option<Thread>> {
    Ok(read
        .threads_of_visitor(visitor)?
        .into_iter()
        .find(|t| t.status.is_open()))
}
