//! Account use cases: registering an organization, logging in, refreshing
//! and revoking tokens, creating agents.

use chrono::{Duration, Utc};
use serde::Serialize;

use crate::accounts::model::{Agent, AgentView, Organization, RefreshToken, Role};
use crate::audit::{self, Who, target};
use crate::auth::{password, tokens};
use crate::config::Registration;
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::ids::{AgentId, OrgId};
use crate::state::AppState;
use crate::store::{self, Reader, tables};

pub const MAX_NAME: usize = 100;
const DEMO_ORG_KEY: &[u8] = b"demo_org";

/// What login, registration and refresh return.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub agent: AgentView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<Organization>,
}

/// A new agent's validated fields.
pub struct NewAgent {
    pub email: String,
    pub display_name: String,
    pub role: Role,
    /// None: the agent gets an invite link instead.
    pub password: Option<String>,
}

impl NewAgent {
    pub fn parse(
        email: &str,
        display_name: &str,
        role: Role,
        password: Option<&str>,
    ) -> AppResult<NewAgent> {
        if let Some(p) = password {
            password::validate(p)?;
        }
        Ok(NewAgent {
            email: crate::validate::email(email)?,
            display_name: crate::validate::name("displayName", display_name, MAX_NAME)?,
            role,
            password: password.map(str::to_owned),
        })
    }
}

fn email_taken(e: store::Error) -> AppError {
    match e {
        store::Error::Unique("email") => {
            AppError::conflict("email_taken", "an agent with this email already exists")
        }
        other => other.into(),
    }
}

/// Whether a new organization may register now.
pub fn registration_open(state: &AppState) -> AppResult<bool> {
    Ok(match state.config.registration {
        Registration::Open => true,
        Registration::Closed => false,
        Registration::FirstRun => {
            let read = state.store.read()?;
            let demo = read.get_raw(tables::META, DEMO_ORG_KEY)?;
            let orgs = read.scan(
                tables::ORGS,
                &store::Scan {
                    limit: 2,
                    ..Default::default()
                },
            )?;
            // The demo organization does not count as a first run.
            orgs.iter()
                .all(|(k, _)| demo.as_deref() == Some(k.as_slice()))
        }
    })
}

/// Creates an organization with its owner. `demo` marks the demo organization.
pub async fn create_organization(
    state: &AppState,
    org_name: &str,
    owner: NewAgent,
    demo: bool,
) -> AppResult<(Organization, Agent)> {
    let org_name = crate::validate::name("organizationName", org_name, MAX_NAME)?;
    let hash = match owner.password.clone() {
        Some(p) => password::hash(p).await?,
        None => String::new(),
    };
    let now = Utc::now();
    let org = Organization {
        id: OrgId::new(),
        name: org_name,
        created_at: now,
    };
    let agent = Agent {
        id: AgentId::new(),
        organization_id: org.id,
        email: owner.email,
        password_hash: hash,
        display_name: owner.display_name,
        role: Role::Owner,
        team_ids: Vec::new(),
        space_ids: None,
        notify: Default::default(),
        last_seen_at: None,
        created_at: now,
        disabled: false,
        token_version: 0,
        away: false,
        max_concurrent: 0,
        avatar: None,
    };
    let (o, a) = (org.clone(), agent.clone());
    state
        .write(move |tx| {
            tx.put(&a).map_err(email_taken)?;
            tx.put(&o)?;
            if demo {
                tx.put_raw(tables::META, DEMO_ORG_KEY, &store::id_key(o.id.as_u128()))?;
            }
            Ok(())
        })
        .await?;
    Ok((org, agent))
}

/// Adds an agent to an organization.
pub async fn create_agent(state: &AppState, org: OrgId, new: NewAgent) -> AppResult<Agent> {
    create_agent_as(state, org, new, None).await
}

/// Adds an agent, noting in the audit log who did.
pub async fn create_agent_as(
    state: &AppState,
    org: OrgId,
    new: NewAgent,
    who: Option<&Who>,
) -> AppResult<Agent> {
    let who = who.cloned();
    let hash = match new.password.clone() {
        Some(p) => password::hash(p).await?,
        None => String::new(),
    };
    let agent = Agent {
        id: AgentId::new(),
        organization_id: org,
        email: new.email,
        password_hash: hash,
        display_name: new.display_name,
        role: new.role,
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
    };
    let a = agent.clone();
    state
        .write(move |tx| {
            if tx.org(org)?.is_none() {
                return Err(AppError::NotFound("organization"));
            }
            tx.put(&a).map_err(email_taken)?;
            if let Some(who) = &who {
                audit::record(tx, org, who, "agent.create", target("agent", a.id))?;
            }
            Ok(())
        })
        .await?;
    Ok(agent)
}

/// Issues an access token and a fresh refresh token for `agent`.
pub async fn issue_session(
    state: &AppState,
    agent: &Agent,
    organization: Option<Organization>,
) -> AppResult<Session> {
    let refresh = tokens::generate();
    let record = RefreshToken {
        agent_id: agent.id,
        expires_at: Utc::now() + Duration::days(state.config.auth.refresh_token_ttl_days as i64),
        token_version: agent.token_version,
    };
    let hash = tokens::hash(&refresh);
    state
        .write(move |tx| Ok(tx.put_value(tables::REFRESH_TOKENS, &hash, &record)?))
        .await?;
    Ok(Session {
        access_token: state.jwt.issue(agent),
        refresh_token: refresh,
        expires_in: state.jwt.ttl_secs(),
        agent: agent.view(false),
        organization,
    })
}

/// Checks credentials. Every failure reads the same, so nobody learns which
/// emails exist.
pub async fn login(state: &AppState, email: &str, password: &str, who: &Who) -> AppResult<Agent> {
    let bad = || AppError::Unauthorized("wrong email or password".into());
    let email = email.trim().to_lowercase();
    let agent = state.store.read()?.agent_by_email(&email)?;
    let hash = agent
        .as_ref()
        .map(|a| a.password_hash.clone())
        .unwrap_or_default();
    let ok = password::verify(password.to_owned(), hash).await;
    // Logins and failed logins of known accounts go in their organization's
    // audit log; an unknown email belongs to no organization.
    if let Some(a) = &agent {
        let success = ok && !a.disabled;
        let (org, id) = (a.organization_id, a.id);
        let mut who = who.clone();
        if success {
            who.actor = audit::Actor {
                kind: audit::ActorKind::Agent,
                id: Some(id.0),
                name: Some(a.display_name.clone()),
            };
        }
        let action = if success {
            "auth.login"
        } else {
            "auth.login_failed"
        };
        let note = move |tx: &mut crate::store::WriteTx<'_>| {
            Ok(audit::record(tx, org, &who, action, target("agent", id))?)
        };
        if success {
            state.write(note).await?;
        } else {
            // Off the response path: a failed login for a known email must
            // take no longer than one for an unknown email.
            let state = state.clone();
            tokio::spawn(async move {
                if let Err(e) = state.write(note).await {
                    tracing::warn!(error = %e, "could not note a failed login");
                }
            });
        }
    }
    match agent {
        Some(agent) if ok && !agent.disabled => Ok(agent),
        _ => Err(bad()),
    }
}

/// Trades a refresh token for a new pair; the old one stops working.
pub async fn refresh(state: &AppState, token: &str) -> AppResult<Session> {
    let invalid = || AppError::Unauthorized("invalid or expired refresh token".into());
    let hash = tokens::hash(token);
    let agent = state
        .write(move |tx| {
            let record = tx.refresh_token(&hash)?.ok_or_else(invalid)?;
            // The token is spent whatever happens next.
            tx.delete_raw(tables::REFRESH_TOKENS, &hash)?;
            let agent = tx.agent(record.agent_id)?;
            match agent {
                Some(a)
                    if !a.disabled
                        && a.token_version == record.token_version
                        && record.expires_at > Utc::now() =>
                {
                    Ok(Ok(a))
                }
                _ => Ok(Err(invalid())),
            }
        })
        .await??;
    issue_session(state, &agent, None).await
}

/// Ends every session of the agent: access tokens stop working at once and
/// refresh tokens no longer refresh.
pub async fn revoke_all(state: &AppState, agent: AgentId) -> AppResult<Agent> {
    let updated = state
        .write(move |tx| {
            let mut a = tx.agent(agent)?.ok_or(AppError::NotFound("agent"))?;
            a.token_version += 1;
            tx.put(&a)?;
            tx.emit(Event::AgentRevoked { agent: a.id });
            Ok(a)
        })
        .await?;
    Ok(updated)
}

/// Logs out: revokes the given refresh token and every access token.
pub async fn logout(
    state: &AppState,
    agent: AgentId,
    refresh_token: Option<&str>,
) -> AppResult<()> {
    let hash = refresh_token.map(tokens::hash);
    state
        .write(move |tx| {
            if let Some(h) = &hash {
                tx.delete_raw(tables::REFRESH_TOKENS, h)?;
            }
            // A signed-out device gets no more notifications.
            crate::push::service::forget_agent(tx, agent)?;
            Ok(())
        })
        .await?;
    revoke_all(state, agent).await?;
    Ok(())
}

/// Sets a new password (after checking the current one) and revokes every
/// other session.
pub async fn change_password(
    state: &AppState,
    agent: &Agent,
    current: &str,
    new: &str,
) -> AppResult<Agent> {
    password::validate(new)?;
    if !password::verify(current.to_owned(), agent.password_hash.clone()).await {
        return Err(AppError::Forbidden("current password is wrong".into()));
    }
    set_password(state, agent.id, new).await
}

/// Sets a password and bumps the token version.
pub async fn set_password(state: &AppState, agent: AgentId, new: &str) -> AppResult<Agent> {
    password::validate(new)?;
    let hash = password::hash(new.to_owned()).await?;
    let updated = state
        .write(move |tx| {
            let mut a = tx.agent(agent)?.ok_or(AppError::NotFound("agent"))?;
            a.password_hash = hash.clone();
            a.token_version += 1;
            tx.put(&a)?;
            tx.emit(Event::AgentRevoked { agent: a.id });
            Ok(a)
        })
        .await?;
    Ok(updated)
}

/// Creates a one-time invite token for an agent without a password.
pub async fn create_invite(state: &AppState, agent: AgentId) -> AppResult<String> {
    let token = tokens::generate();
    let invite = crate::accounts::model::Invite {
        agent_id: agent,
        expires_at: Utc::now() + Duration::hours(state.config.auth.invite_ttl_hours as i64),
    };
    let hash = tokens::hash(&token);
    state
        .write(move |tx| Ok(tx.put_value(tables::INVITES, &hash, &invite)?))
        .await?;
    Ok(token)
}

/// Accepts an invite: sets the password and spends the token.
pub async fn accept_invite(state: &AppState, token: &str, new_password: &str) -> AppResult<Agent> {
    password::validate(new_password)?;
    let invalid = || AppError::Unauthorized("invalid or expired invite".into());
    let hash_of_token = tokens::hash(token);
    let password_hash = password::hash(new_password.to_owned()).await?;
    let agent = state
        .write(move |tx| {
            let invite = tx.invite(&hash_of_token)?.ok_or_else(invalid)?;
            if invite.expires_at < Utc::now() {
                return Err(invalid());
            }
            let mut a = tx.agent(invite.agent_id)?.ok_or_else(invalid)?;
            // An invite only sets a first password; it never resets one.
            if a.disabled || !a.password_hash.is_empty() {
                return Err(invalid());
            }
            tx.delete_raw(tables::INVITES, &hash_of_token)?;
            a.password_hash = password_hash.clone();
            a.token_version += 1;
            tx.put(&a)?;
            Ok(a)
        })
        .await?;
    Ok(agent)
}

/// Credentials of the demo created on first run, to print once.
pub struct Demo {
    pub email: String,
    pub password: String,
    pub widget_key: String,
}

/// On a fresh database, creates the demo organization, agent and chat space.
pub async fn seed_demo(state: &AppState) -> AppResult<Option<Demo>> {
    if state.store.read()?.has_orgs()? {
        return Ok(None);
    }
    let password = tokens::public_key();
    let owner = NewAgent::parse(
        "demo@mychat.local",
        "Demo Agent",
        Role::Owner,
        Some(&password),
    )?;
    let (org, _) = create_organization(state, "Demo", owner, true).await?;
    let listen = state.config.http.listen;
    let domains = vec![
        format!("127.0.0.1:{}", listen.port()),
        format!("localhost:{}", listen.port()),
        listen.to_string(),
    ];
    let space = crate::spaces::service::create(state, org.id, "Demo site", domains).await?;
    Ok(Some(Demo {
        email: "demo@mychat.local".into(),
        password,
        widget_key: space.widget_key,
    }))
}
