//! Organization and people use cases behind the admin API: renaming the
//! organization, changing and disabling agents, invite links, and teams.
//!
//! Every lookup takes the caller's organization and treats another
//! organization's object as absent (404), so no route can leak across
//! tenants. Every write closure checks all of its rules before its first
//! write, so a refused request changes nothing.

use chrono::{DateTime, Duration, Utc};

use crate::accounts::model::{Agent, Invite, NotifyPrefs, Organization, Role, Team};
use crate::accounts::service::MAX_NAME;
use crate::audit::{self, Who, target};
use crate::auth::{Caller, tokens};
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::ids::{AgentId, OrgId, SpaceId, TeamId};
use crate::state::AppState;
use crate::store::{self, Reader, WriteTx, id_key, tables};

/// An agent may belong to at most this many teams.
pub const MAX_TEAM_IDS: usize = 50;
/// An agent may work in at most this many named spaces.
pub const MAX_SPACE_IDS: usize = 200;

/// Who is acting: small and `Copy`, so write closures can capture it.
#[derive(Clone, Copy, Debug)]
pub struct Actor {
    pub id: AgentId,
    pub org: OrgId,
    pub role: Role,
}

impl From<&Caller> for Actor {
    fn from(c: &Caller) -> Self {
        Actor {
            id: c.id(),
            org: c.org(),
            role: c.role(),
        }
    }
}

/// A validated change to an agent; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentChange {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub team_ids: Option<Vec<TeamId>>,
    /// Some(None): every space.
    pub space_ids: Option<Option<Vec<SpaceId>>>,
    pub disabled: Option<bool>,
    /// An agent's own choice; admins may set it too.
    pub notify: Option<NotifyPrefs>,
    /// The agent's away switch (its own choice, like `notify`).
    pub away: Option<bool>,
    /// Automatic assignment's limit for the agent (admins only).
    pub max_concurrent: Option<u32>,
}

/// The largest `maxConcurrent` an admin may set.
pub const MAX_CONCURRENT: u32 = 1000;

/// The ids without repeats, in their first order, at most `max` of them.
fn unique<T: PartialEq + Copy>(field: &str, ids: Vec<T>, max: usize) -> AppResult<Vec<T>> {
    crate::validate::list_len(field, &ids, max)?;
    let mut unique: Vec<T> = Vec::with_capacity(ids.len());
    for id in ids {
        if !unique.contains(&id) {
            unique.push(id);
        }
    }
    Ok(unique)
}

impl AgentChange {
    /// Checks the shape of each field; whether the caller may make the
    /// change is decided later, against the stored agent.
    pub fn parse(
        display_name: Option<&str>,
        role: Option<Role>,
        team_ids: Option<Vec<TeamId>>,
        space_ids: Option<Option<Vec<SpaceId>>>,
        disabled: Option<bool>,
        notify: Option<NotifyPrefs>,
        away: Option<bool>,
    ) -> AppResult<AgentChange> {
        let display_name = display_name
            .map(|n| crate::validate::name("displayName", n, MAX_NAME))
            .transpose()?;
        let team_ids = team_ids
            .map(|ids| unique("teamIds", ids, MAX_TEAM_IDS))
            .transpose()?;
        let space_ids = match space_ids {
            Some(Some(ids)) => Some(Some(unique("spaceIds", ids, MAX_SPACE_IDS)?)),
            other => other,
        };
        if let Some(n) = &notify
            && n.quiet_minutes > NotifyPrefs::MAX_QUIET_MINUTES
        {
            return Err(AppError::validation(format!(
                "notify.quietMinutes must be at most {}",
                NotifyPrefs::MAX_QUIET_MINUTES
            )));
        }
        Ok(AgentChange {
            display_name,
            role,
            team_ids,
            space_ids,
            disabled,
            notify,
            away,
            max_concurrent: None,
        })
    }

    /// Adds the automatic-assignment limit to the change.
    pub fn with_max_concurrent(mut self, max: Option<u32>) -> AppResult<AgentChange> {
        if max.is_some_and(|m| m > MAX_CONCURRENT) {
            return Err(AppError::validation(format!(
                "maxConcurrent must be between 0 (no limit) and {MAX_CONCURRENT}"
            )));
        }
        self.max_concurrent = max;
        Ok(self)
    }

    /// What an agent may change about itself: its name and notifications.
    fn only_own_settings(&self) -> bool {
        self.role.is_none()
            && self.team_ids.is_none()
            && self.space_ids.is_none()
            && self.disabled.is_none()
            && self.max_concurrent.is_none()
    }
}

fn owner_protected() -> AppError {
    AppError::conflict("owner_protected", "the owner cannot be demoted or disabled")
}

/// The permission rules for changing an agent, applied to `target` in
/// place. Returns whether the agent's sessions must end (a role change or
/// disabling: its existing tokens must stop working at once).
///
/// Every rule is checked before `target` is touched.
pub fn apply_change(actor: Actor, target: &mut Agent, change: &AgentChange) -> AppResult<bool> {
    let is_self = target.id == actor.id;
    if actor.role < Role::Admin {
        if !is_self {
            return Err(AppError::Forbidden("this needs an admin".into()));
        }
        if !change.only_own_settings() {
            return Err(AppError::Forbidden(
                "agents may change only their own displayName and notify".into(),
            ));
        }
    }
    let new_role = change.role.filter(|r| *r != target.role);
    if let Some(role) = new_role {
        if target.role == Role::Owner {
            return Err(owner_protected());
        }
        if role == Role::Owner && actor.role < Role::Owner {
            return Err(AppError::Forbidden(
                "only the owner can make an agent an owner".into(),
            ));
        }
    }
    let new_disabled = change.disabled.filter(|d| *d != target.disabled);
    if new_disabled == Some(true) {
        if is_self {
            return Err(AppError::conflict(
                "cannot_disable_self",
                "you cannot disable yourself",
            ));
        }
        if target.role == Role::Owner {
            return Err(owner_protected());
        }
    }

    if let Some(name) = &change.display_name {
        target.display_name = name.clone();
    }
    if let Some(ids) = &change.team_ids {
        target.team_ids = ids.clone();
    }
    if let Some(ids) = &change.space_ids {
        target.space_ids = ids.clone();
    }
    if let Some(n) = change.notify {
        target.notify = n;
    }
    if let Some(away) = change.away {
        target.away = away;
    }
    if let Some(m) = change.max_concurrent {
        target.max_concurrent = m;
    }
    if let Some(role) = new_role {
        target.role = role;
    }
    if let Some(disabled) = new_disabled {
        target.disabled = disabled;
    }
    let revoke = new_role.is_some() || new_disabled.is_some();
    if revoke {
        target.token_version += 1;
    }
    Ok(revoke)
}

/// The agent `id` if it belongs to `org`; anything else reads as absent.
fn agent_in<R: Reader + ?Sized>(r: &R, org: OrgId, id: AgentId) -> AppResult<Agent> {
    match r.agent(id)? {
        Some(a) if a.organization_id == org => Ok(a),
        _ => Err(AppError::NotFound("agent")),
    }
}

fn team_in<R: Reader + ?Sized>(r: &R, org: OrgId, id: TeamId) -> AppResult<Team> {
    match r.team(id)? {
        Some(t) if t.organization_id == org => Ok(t),
        _ => Err(AppError::NotFound("team")),
    }
}

/// Every id must name a team of `org`. An unknown id is the request's
/// fault (400), not a missing route object (404).
fn check_teams<R: Reader + ?Sized>(r: &R, org: OrgId, ids: &[TeamId]) -> AppResult<()> {
    for id in ids {
        if !matches!(r.team(*id)?, Some(t) if t.organization_id == org) {
            return Err(AppError::validation(format!("teamIds: no team {id}")));
        }
    }
    Ok(())
}

/// Every id must name a chat space of `org` (400 otherwise).
fn check_spaces<R: Reader + ?Sized>(r: &R, org: OrgId, ids: &[SpaceId]) -> AppResult<()> {
    for id in ids {
        if !matches!(r.space(*id)?, Some(s) if s.organization_id == org) {
            return Err(AppError::validation(format!(
                "spaceIds: no chat space {id}"
            )));
        }
    }
    Ok(())
}

/// Deletes the agent's outstanding invites (and any expired ones, which
/// nobody can use anyway). Invites are keyed by token hash, so this scans;
/// the table holds only unaccepted invites and stays small.
fn forget_invites(tx: &mut WriteTx<'_>, agent: AgentId, now: DateTime<Utc>) -> AppResult<()> {
    let rows = tx.scan(
        tables::INVITES,
        &store::Scan {
            limit: usize::MAX,
            ..Default::default()
        },
    )?;
    for (hash, _) in rows {
        let stale = tx
            .invite(&hash)?
            .is_some_and(|i| i.agent_id == agent || i.expires_at < now);
        if stale {
            tx.delete_raw(tables::INVITES, &hash)?;
        }
    }
    Ok(())
}

/// The link an invited agent opens to set a password.
pub fn invite_url(state: &AppState, token: &str) -> String {
    format!("{}/app/#/invite/{}", state.base_url(), token)
}

// Organization.

pub fn organization(state: &AppState, org: OrgId) -> AppResult<Organization> {
    state
        .store
        .read()?
        .org(org)?
        .ok_or(AppError::NotFound("organization"))
}

pub async fn rename_organization(
    state: &AppState,
    org: OrgId,
    name: &str,
    who: &Who,
) -> AppResult<Organization> {
    let name = crate::validate::name("name", name, MAX_NAME)?;
    let who = who.clone();
    let updated = state
        .write(move |tx| {
            let mut o = tx.org(org)?.ok_or(AppError::NotFound("organization"))?;
            o.name = name.clone();
            tx.put(&o)?;
            audit::record(
                tx,
                org,
                &who,
                "organization.update",
                target("organization", org),
            )?;
            Ok(o)
        })
        .await?;
    Ok(updated)
}

// Agents.

/// The organization's agents, disabled ones included, in creation order.
pub fn agents(state: &AppState, org: OrgId) -> AppResult<Vec<Agent>> {
    Ok(state.store.read()?.agents_of_org(org)?)
}

pub fn agent(state: &AppState, org: OrgId, id: AgentId) -> AppResult<Agent> {
    agent_in(&state.store.read()?, org, id)
}

/// Changes an agent as `actor` may (see [`apply_change`]). Disabling also
/// withdraws the agent's pending invites, so re-enabling does not revive them.
pub async fn update_agent(
    state: &AppState,
    actor: Actor,
    id: AgentId,
    change: AgentChange,
    who: &Who,
) -> AppResult<Agent> {
    let now = Utc::now();
    let who = who.clone();
    let updated = state
        .write(move |tx| {
            let mut agent = agent_in(tx, actor.org, id)?;
            if let Some(ids) = &change.team_ids {
                check_teams(tx, actor.org, ids)?;
            }
            if let Some(Some(ids)) = &change.space_ids {
                check_spaces(tx, actor.org, ids)?;
            }
            let before = agent.clone();
            let revoked = apply_change(actor, &mut agent, &change)?;
            if agent.disabled && !before.disabled {
                forget_invites(tx, agent.id, now)?;
            }
            tx.put(&agent)?;
            let changes = [
                (agent.role != before.role, "agent.role_change"),
                (agent.disabled && !before.disabled, "agent.disable"),
                (!agent.disabled && before.disabled, "agent.enable"),
                (agent.team_ids != before.team_ids, "agent.teams_change"),
                (agent.space_ids != before.space_ids, "agent.spaces_change"),
                (agent.display_name != before.display_name, "agent.rename"),
                (
                    agent.max_concurrent != before.max_concurrent,
                    "agent.capacity_change",
                ),
            ];
            for (_, action) in changes.iter().filter(|(changed, _)| *changed) {
                audit::record(tx, actor.org, &who, action, target("agent", id))?;
            }
            if agent.away != before.away {
                tx.emit(Event::AgentAway {
                    agent: agent.clone(),
                });
            }
            if revoked {
                tx.emit(Event::AgentRevoked { agent: agent.id });
            } else if agent.team_ids != before.team_ids || agent.space_ids != before.space_ids {
                tx.emit(Event::AgentAccessChanged {
                    agent: agent.clone(),
                });
            }
            Ok(agent)
        })
        .await?;
    tracing::info!(org = %actor.org, actor = %actor.id, agent = %id, "agent updated");
    Ok(updated)
}

/// Disables an agent and ends its sessions. The record stays, so the
/// agent's name still shows in the threads and messages it took part in.
pub async fn disable_agent(
    state: &AppState,
    actor: Actor,
    id: AgentId,
    who: &Who,
) -> AppResult<Agent> {
    let change = AgentChange {
        disabled: Some(true),
        ..AgentChange::default()
    };
    update_agent(state, actor, id, change, who).await
}

/// A fresh one-time invite token for an agent that has not yet set a
/// password; earlier invites of that agent stop working.
pub async fn reissue_invite(state: &AppState, actor: Actor, id: AgentId) -> AppResult<String> {
    let token = tokens::generate();
    let hash = tokens::hash(&token);
    let now = Utc::now();
    let invite = Invite {
        agent_id: id,
        expires_at: now + Duration::hours(state.config.auth.invite_ttl_hours as i64),
    };
    state
        .write(move |tx| {
            let agent = agent_in(tx, actor.org, id)?;
            // Whoever holds the link sets the password, so handing out an
            // owner's link would be a way for an admin to become one.
            if agent.role == Role::Owner && actor.role < Role::Owner {
                return Err(AppError::Forbidden(
                    "only the owner can invite an owner".into(),
                ));
            }
            if agent.disabled {
                return Err(AppError::conflict(
                    "agent_disabled",
                    "this agent is disabled",
                ));
            }
            if !agent.password_hash.is_empty() {
                return Err(AppError::conflict(
                    "invite_accepted",
                    "this agent has already set a password",
                ));
            }
            forget_invites(tx, id, now)?;
            Ok(tx.put_value(tables::INVITES, &hash, &invite)?)
        })
        .await?;
    tracing::info!(org = %actor.org, actor = %actor.id, agent = %id, "invite issued");
    Ok(token)
}

// Teams.

fn name_taken(teams: &[Team], name: &str, except: Option<TeamId>) -> bool {
    let wanted = name.to_lowercase();
    teams
        .iter()
        .any(|t| Some(t.id) != except && t.name.to_lowercase() == wanted)
}

fn team_name_taken() -> AppError {
    AppError::conflict("team_name_taken", "a team with this name already exists")
}

/// The organization's teams, in creation order.
pub fn teams(state: &AppState, org: OrgId) -> AppResult<Vec<Team>> {
    Ok(state.store.read()?.teams_of_org(org)?)
}

pub fn team(state: &AppState, org: OrgId, id: TeamId) -> AppResult<Team> {
    team_in(&state.store.read()?, org, id)
}

/// Creates a team; names are unique within the organization, ignoring case.
pub async fn create_team(state: &AppState, org: OrgId, name: &str, who: &Who) -> AppResult<Team> {
    let who = who.clone();
    let team = Team {
        id: TeamId::new(),
        organization_id: org,
        name: crate::validate::name("name", name, MAX_NAME)?,
        created_at: Utc::now(),
    };
    let t = team.clone();
    state
        .write(move |tx| {
            if tx.org(org)?.is_none() {
                return Err(AppError::NotFound("organization"));
            }
            if name_taken(&tx.teams_of_org(org)?, &t.name, None) {
                return Err(team_name_taken());
            }
            tx.put(&t)?;
            audit::record(tx, org, &who, "team.create", target("team", t.id))?;
            Ok(())
        })
        .await?;
    Ok(team)
}

pub async fn rename_team(
    state: &AppState,
    org: OrgId,
    id: TeamId,
    name: &str,
    who: &Who,
) -> AppResult<Team> {
    let name = crate::validate::name("name", name, MAX_NAME)?;
    let who = who.clone();
    let updated = state
        .write(move |tx| {
            let mut team = team_in(tx, org, id)?;
            if name_taken(&tx.teams_of_org(org)?, &name, Some(id)) {
                return Err(team_name_taken());
            }
            team.name = name.clone();
            tx.put(&team)?;
            audit::record(tx, org, &who, "team.update", target("team", id))?;
            Ok(team)
        })
        .await?;
    Ok(updated)
}

/// Deletes a team and, in the same write, takes it out of every agent's
/// `teamIds`, so no agent is left pointing at a team that is gone.
pub async fn delete_team(state: &AppState, org: OrgId, id: TeamId, who: &Who) -> AppResult<()> {
    let who = who.clone();
    state
        .write(move |tx| {
            team_in(tx, org, id)?;
            let members: Vec<Agent> = tx
                .agents_of_org(org)?
                .into_iter()
                .filter(|a| a.team_ids.contains(&id))
                .collect();
            for mut agent in members {
                agent.team_ids.retain(|t| *t != id);
                tx.put(&agent)?;
                tx.emit(Event::AgentAccessChanged { agent });
            }
            tx.delete::<Team>(&id_key(id.as_u128()))?;
            audit::record(tx, org, &who, "team.delete", target("team", id))?;
            Ok(())
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(role: Role) -> Agent {
        Agent {
            id: AgentId::new(),
            organization_id: OrgId::new(),
            email: "a@example.com".into(),
            password_hash: "x".into(),
            display_name: "A".into(),
            role,
            team_ids: Vec::new(),
            space_ids: None,
            notify: Default::default(),
            last_seen_at: None,
            created_at: Utc::now(),
            disabled: false,
            token_version: 0,
            away: false,
            max_concurrent: 0,
            avatar: None,
        }
    }

    fn actor(a: &Agent) -> Actor {
        Actor {
            id: a.id,
            org: a.organization_id,
            role: a.role,
        }
    }

    fn change(role: Option<Role>, disabled: Option<bool>) -> AgentChange {
        AgentChange {
            role,
            disabled,
            ..AgentChange::default()
        }
    }

    #[test]
    fn a_refused_change_leaves_the_agent_untouched() {
        let admin = agent(Role::Admin);
        let mut owner = agent(Role::Owner);
        let before = owner.clone();
        let c = AgentChange {
            display_name: Some("New".into()),
            ..change(Some(Role::Agent), None)
        };
        assert!(apply_change(actor(&admin), &mut owner, &c).is_err());
        assert_eq!(owner, before);
    }

    #[test]
    fn role_changes_and_disabling_end_sessions_but_renames_do_not() {
        let admin = agent(Role::Admin);
        let mut a = agent(Role::Agent);
        let rename = AgentChange {
            display_name: Some("B".into()),
            ..AgentChange::default()
        };
        assert!(!apply_change(actor(&admin), &mut a, &rename).unwrap());
        assert_eq!(a.token_version, 0);
        assert!(apply_change(actor(&admin), &mut a, &change(Some(Role::Admin), None)).unwrap());
        assert!(apply_change(actor(&admin), &mut a, &change(None, Some(true))).unwrap());
        assert_eq!(a.token_version, 2);
        // Repeating a value is not a change.
        assert!(!apply_change(actor(&admin), &mut a, &change(None, Some(true))).unwrap());
    }

    #[test]
    fn only_an_owner_makes_owners_and_nobody_demotes_or_disables_one() {
        let owner = agent(Role::Owner);
        let admin = agent(Role::Admin);
        let mut a = agent(Role::Agent);
        let promote = change(Some(Role::Owner), None);
        assert_eq!(
            apply_change(actor(&admin), &mut a, &promote)
                .unwrap_err()
                .status(),
            403
        );
        assert!(apply_change(actor(&owner), &mut a, &promote).is_ok());
        // Not even another owner: an organization keeps its owners.
        let other_owner = agent(Role::Owner);
        let mut o = owner.clone();
        for c in [change(Some(Role::Admin), None), change(None, Some(true))] {
            assert_eq!(
                apply_change(actor(&other_owner), &mut o, &c)
                    .unwrap_err()
                    .code(),
                "owner_protected"
            );
        }
    }

    #[test]
    fn plain_agents_may_only_rename_themselves() {
        let mut me = agent(Role::Agent);
        let mut other = agent(Role::Agent);
        let rename = AgentChange {
            display_name: Some("Me".into()),
            ..AgentChange::default()
        };
        let who = actor(&me);
        assert!(apply_change(who, &mut me, &rename).is_ok());
        assert!(apply_change(who, &mut other, &rename).is_err());
        let teams = AgentChange {
            team_ids: Some(Vec::new()),
            ..AgentChange::default()
        };
        assert!(apply_change(who, &mut me, &teams).is_err());
        let spaces = AgentChange {
            space_ids: Some(None),
            ..AgentChange::default()
        };
        assert!(apply_change(who, &mut me, &spaces).is_err());
    }

    #[test]
    fn nobody_disables_themselves() {
        let mut admin = agent(Role::Admin);
        let who = actor(&admin);
        let e = apply_change(who, &mut admin, &change(None, Some(true))).unwrap_err();
        assert_eq!(e.code(), "cannot_disable_self");
    }
}
