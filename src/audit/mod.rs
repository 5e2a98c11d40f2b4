//! The audit log: who did what to which object, when, from where. An entry
//! is written in the same write as the change it records, so the log
//! holds exactly what happened. Admins read it (`GET /audit-events`).

pub mod http;
pub mod model;

pub use model::{Actor, ActorKind, AuditEvent, Target};

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};

use crate::auth::Caller;
use crate::error::AppResult;
use crate::ids::{AuditId, OrgId};
use crate::integrations::model::ApiToken;
use crate::state::AppState;
use crate::store::{self, Reader, WriteTx};

/// Who acts, and from which address: made by the handler, handed to the
/// use case, written by it.
#[derive(Clone, Debug)]
pub struct Who {
    pub actor: Actor,
    pub ip: Option<IpAddr>,
}

impl Who {
    /// A person — or an API token acting through the agent API.
    pub fn caller(caller: &Caller, ip: IpAddr) -> Who {
        match &caller.token {
            Some(t) => Who::token(t, ip),
            None => Who {
                actor: Actor {
                    kind: ActorKind::Agent,
                    id: Some(caller.id().0),
                    name: Some(caller.agent.display_name.clone()),
                },
                ip: Some(ip),
            },
        }
    }

    pub fn token(token: &ApiToken, ip: IpAddr) -> Who {
        Who {
            actor: Actor {
                kind: ActorKind::ApiToken,
                id: Some(token.id.0),
                name: Some(token.name.clone()),
            },
            ip: Some(ip),
        }
    }

    pub fn anonymous(ip: IpAddr) -> Who {
        Who {
            actor: Actor {
                kind: ActorKind::Anonymous,
                id: None,
                name: None,
            },
            ip: Some(ip),
        }
    }

    pub fn system() -> Who {
        Who {
            actor: Actor {
                kind: ActorKind::System,
                id: None,
                name: None,
            },
            ip: None,
        }
    }
}

pub fn target(kind: &str, id: impl ToString) -> Option<Target> {
    Some(Target {
        kind: kind.to_owned(),
        id: id.to_string(),
    })
}

/// Writes an entry inside the write that makes the change.
pub fn record(
    tx: &mut WriteTx<'_>,
    org: OrgId,
    who: &Who,
    action: &str,
    target: Option<Target>,
) -> store::Result<()> {
    tx.put(&AuditEvent {
        id: AuditId::new(),
        organization_id: org,
        actor: who.actor.clone(),
        action: action.to_owned(),
        target,
        ip: who.ip.map(|i| i.to_string()),
        at: Utc::now(),
    })
}

/// What a list shows.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// The actor's id.
    pub actor: Option<uuid::Uuid>,
    /// An action, or a prefix of one ending in `.` (`webhook.`).
    pub action: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl Filter {
    fn keeps(&self, e: &AuditEvent) -> bool {
        self.actor.is_none_or(|a| e.actor.id == Some(a))
            && self.action.as_deref().is_none_or(|a| {
                if a.ends_with('.') {
                    e.action.starts_with(a)
                } else {
                    e.action == a
                }
            })
            && self.from.is_none_or(|f| e.at >= f)
            && self.to.is_none_or(|t| e.at < t)
    }
}

/// A page of the organization's log, newest first.
pub fn list(
    state: &AppState,
    org: OrgId,
    filter: &Filter,
    cursor: Option<AuditId>,
    limit: usize,
) -> AppResult<(Vec<AuditEvent>, Option<AuditId>)> {
    let read = state.store.read()?;
    let mut out = Vec::with_capacity(limit);
    let mut after = cursor;
    loop {
        let batch = read.audit_events(org, after, 256)?;
        let n = batch.len();
        for e in batch {
            after = Some(e.id);
            if filter.keeps(&e) {
                out.push(e);
                if out.len() == limit {
                    return Ok((out, after));
                }
            }
        }
        if n < 256 {
            return Ok((out, None));
        }
    }
}

/// Drops entries older than `days`; returns how many.
pub async fn prune(state: &AppState, days: u32) -> AppResult<usize> {
    let cutoff = Utc::now() - Duration::days(i64::from(days));
    let old = state.store.read()?.audit_events_before(cutoff, 1000)?;
    if old.is_empty() {
        return Ok(0);
    }
    state
        .write(move |tx| {
            for e in &old {
                tx.delete::<AuditEvent>(&store::Record::key(e))?;
            }
            Ok(old.len())
        })
        .await
}
