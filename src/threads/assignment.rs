//! Automatic assignment: who a thread goes to without anyone claiming it.
//!
//! A space's `defaultAssignee` (its responsible agent) takes every new
//! thread while it is an enabled agent working in the space. Otherwise the
//! space's `assignment` decides: `manual` leaves the thread for a claim,
//! `round-robin` gives it to the agent online (and not away) in the space (and its team,
//! when routed) with the fewest open threads, below its `maxConcurrent`.
//! Threads nobody could take wait unassigned and are handed out by
//! [`fill`] when an agent comes online in a space (its socket joins the
//! space, as the agent app does when it connects) or a thread closes.
//!
//! Both run inside a write closure, so they are atomic with claims: the
//! writer applies closures one after another, and a claim that comes
//! later in the same batch already sees the holder and gets 409.

use crate::accounts::model::Agent;
use crate::error::AppResult;
use crate::events::Event;
use crate::ids::{AgentId, OrgId};
use crate::realtime::hub::Hub;
use crate::spaces::model::{Assignment, ChatSpace};
use crate::state::AppState;
use crate::store::{Reader, WriteTx};
use crate::threads::model::{Thread, ThreadStatus};
use crate::threads::rules::{Access, assign};

/// Open threads an agent holds: what `maxConcurrent` counts.
const HELD: [ThreadStatus; 2] = [ThreadStatus::Active, ThreadStatus::Pending];

/// The space's default assignee, when it may still take threads.
fn default_assignee<R: Reader + ?Sized>(read: &R, space: &ChatSpace) -> AppResult<Option<Agent>> {
    let Some(id) = space.settings.default_assignee else {
        return Ok(None);
    };
    Ok(read
        .agent(id)?
        .filter(|a| may_be_default_assignee(a, space)))
}

/// Whether `agent` may be the space's default assignee now: an enabled
/// agent of its organization who has accepted its invite and works in it.
pub fn may_be_default_assignee(agent: &Agent, space: &ChatSpace) -> bool {
    agent.organization_id == space.organization_id
        && !agent.disabled
        && !agent.password_hash.is_empty()
        && agent.works_in(space.id)
}

/// How many open threads each candidate holds, for the ones below their
/// limit, fewest first (ties by id, so the order is stable).
fn free_agents<R: Reader + ?Sized>(
    read: &R,
    hub: &Hub,
    thread: &Thread,
    org: OrgId,
) -> AppResult<Vec<(usize, AgentId)>> {
    let online = hub.online_agents(org);
    let mut free = Vec::new();
    for id in online {
        let Some(agent) = read.agent(id)? else {
            continue;
        };
        // An agent who switched itself away takes no new threads.
        if agent.organization_id != org
            || agent.disabled
            || agent.away
            || !Access::of(&agent).may_claim(thread)
        {
            continue;
        }
        let held = read
            .threads_of_agent(id, &HELD, None, usize::MAX, &|_| true)?
            .items
            .len();
        if agent.max_concurrent == 0 || held < agent.max_concurrent as usize {
            free.push((held, id));
        }
    }
    free.sort();
    Ok(free)
}

/// The agent a waiting thread of `space` goes to by round-robin, if any.
fn round_robin<R: Reader + ?Sized>(
    read: &R,
    hub: &Hub,
    space: &ChatSpace,
    thread: &Thread,
) -> AppResult<Option<AgentId>> {
    if space.settings.assignment != Assignment::RoundRobin {
        return Ok(None);
    }
    Ok(free_agents(read, hub, thread, space.organization_id)?
        .first()
        .map(|(_, id)| *id))
}

/// Gives a new thread (not yet stored) its agent, when the space says
/// so. Returns whether it was assigned; the caller puts the thread and
/// announces it as new.
pub fn on_new_thread(
    tx: &WriteTx<'_>,
    hub: &Hub,
    space: &ChatSpace,
    thread: &mut Thread,
) -> AppResult<bool> {
    if thread.assigned_agent_id.is_some() || thread.is_object_bound() {
        return Ok(false);
    }
    let to = match default_assignee(tx, space)? {
        Some(agent) => Some(agent.id),
        None => round_robin(tx, hub, space, thread)?,
    };
    match to {
        Some(agent) => {
            assign(thread, agent);
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Hands the organization's waiting threads (unassigned, oldest first) in
/// its round-robin spaces to the agents online with free capacity. Called
/// when an agent's socket joins a space, a thread closes, or a space
/// switches to round-robin. Returns how many threads it assigned.
pub async fn fill(state: &AppState, org: OrgId) -> AppResult<usize> {
    let hub = state.hub.clone();
    // Who is away is read from the store below (the hub learns of an away
    // switch a moment after its commit), so any live agent socket counts.
    if hub.online_agents(org).is_empty() || !anything_waiting(state, org)? {
        return Ok(0);
    }
    let assigned = state
        .write(move |tx| {
            let mut assigned = 0;
            for space in tx.spaces_of_org(org)? {
                if space.settings.assignment != Assignment::RoundRobin {
                    continue;
                }
                let mut waiting = tx
                    .threads_in_spaces(
                        &[space.id],
                        &[ThreadStatus::Unassigned],
                        None,
                        usize::MAX,
                        &|t| !t.is_object_bound(),
                    )?
                    .items;
                waiting.sort_by_key(|t| (t.created_at, t.id));
                for mut thread in waiting {
                    let Some(agent) = round_robin(tx, &hub, &space, &thread)? else {
                        // Nobody has room; later threads would find nobody either,
                        // unless they are routed to another team.
                        continue;
                    };
                    assign(&mut thread, agent);
                    tx.put(&thread)?;
                    tx.emit(Event::ThreadUpdated { thread });
                    assigned += 1;
                }
            }
            Ok(assigned)
        })
        .await?;
    if assigned > 0 {
        tracing::info!(org = %org, assigned, "waiting threads assigned");
    }
    Ok(assigned)
}

/// Whether a round-robin space of `org` has a thread waiting: most calls
/// find none, and then no write is queued at all.
fn anything_waiting(state: &AppState, org: OrgId) -> AppResult<bool> {
    let read = state.store.read()?;
    let spaces: Vec<_> = read
        .spaces_of_org(org)?
        .into_iter()
        .filter(|s| s.settings.assignment == Assignment::RoundRobin)
        .map(|s| s.id)
        .collect();
    if spaces.is_empty() {
        return Ok(false);
    }
    let waiting = read.threads_in_spaces(&spaces, &[ThreadStatus::Unassigned], None, 1, &|t| {
        !t.is_object_bound()
    })?;
    Ok(!waiting.items.is_empty())
}

/// [`fill`] for a caller that must not fail because of it (a socket
/// coming online, a thread closing): a failure is logged.
pub async fn fill_quietly(state: &AppState, org: OrgId) {
    if let Err(e) = fill(state, org).await {
        tracing::warn!(org = %org, error = %e, "assigning waiting threads failed");
    }
}
