//! What every thread write shares: the organization-scoped lookup, the
//! claim rules, and a visitor's one open thread. The lifecycle
//! (`service`) and the send path (`messages::send`) both stand on these.

use chrono::Utc;

use crate::accounts::model::{Agent, Role};
use crate::error::{AppError, AppResult};
use crate::ids::{AgentId, OrgId, SpaceId, TeamId, ThreadId, VisitorId};
use crate::store::{Reader, WriteTx};
use crate::threads::model::{Thread, ThreadStatus};

/// A thread of a space of `org`; otherwise 404.
pub fn thread_of_org<R: Reader + ?Sized>(read: &R, org: OrgId, id: ThreadId) -> AppResult<Thread> {
    let not_found = || AppError::NotFound("thread");
    let thread = read.thread(id)?.ok_or_else(not_found)?;
    let space_org = read
        .org_of_space(thread.chat_space_id)?
        .ok_or_else(not_found)?;
    if space_org != org {
        return Err(not_found());
    }
    Ok(thread)
}

/// What an agent may see: the one access rule for threads. REST routes
/// apply it to every read and write, the hub to every live frame.
///
/// Owners, admins and the organization's backend (API tokens) see every
/// thread of the organization. A plain agent sees a thread when it is in
/// one of the agent's spaces and has no team, or one of the agent's teams,
/// or the agent holds it or took part in it.
#[derive(Clone, Debug, PartialEq)]
pub struct Access {
    pub agent: AgentId,
    pub all: bool,
    /// None: every space.
    pub spaces: Option<Vec<SpaceId>>,
    pub teams: Vec<TeamId>,
}

impl Access {
    pub fn of(agent: &Agent) -> Access {
        Access {
            agent: agent.id,
            all: agent.role >= Role::Admin,
            spaces: agent.space_ids.clone(),
            teams: agent.team_ids.clone(),
        }
    }

    /// Everything of the organization (an API token).
    pub fn everything(agent: AgentId) -> Access {
        Access {
            agent,
            all: true,
            spaces: None,
            teams: Vec::new(),
        }
    }

    pub fn works_in(&self, space: SpaceId) -> bool {
        self.all || self.spaces.as_ref().is_none_or(|s| s.contains(&space))
    }

    fn in_team_of(&self, thread: &Thread) -> bool {
        thread.team_id.is_none_or(|t| self.teams.contains(&t))
    }

    pub fn sees(&self, thread: &Thread) -> bool {
        self.all
            || (self.works_in(thread.chat_space_id)
                && (self.in_team_of(thread)
                    || thread.assigned_agent_id == Some(self.agent)
                    || thread.participants.contains(&self.agent)))
    }

    /// Whether the agent may take the thread while nobody holds it: its
    /// space, and its team when it is routed to one.
    pub fn may_claim(&self, thread: &Thread) -> bool {
        self.all || (self.works_in(thread.chat_space_id) && self.in_team_of(thread))
    }
}

/// A thread of `org` that `access` sees; anything else is a 404.
pub fn visible_thread<R: Reader + ?Sized>(
    read: &R,
    org: OrgId,
    access: &Access,
    id: ThreadId,
) -> AppResult<Thread> {
    let thread = thread_of_org(read, org, id)?;
    if !access.sees(&thread) {
        return Err(AppError::NotFound("thread"));
    }
    Ok(thread)
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
        rating: None,
        labels: Vec::new(),
        priority: Default::default(),
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
