//! What happened to a conversation's handling — claimed, released,
//! transferred, closed by an agent or the visitor, reopened, expired,
//! labels changed —
//! kept as internal system messages that carry a [`HistoryEvent`]
//! (`Message::event`): every agent reads the same story in the
//! conversation, in order with the messages, and visitors never see it.
//! A new kind is one variant of [`Happened`] (with its English line in
//! [`HistoryEvent::text`]) and one word per language in the agent app
//! (`history.<kind>`).

use serde::{Deserialize, Serialize};

use crate::accounts::model::Agent;
use crate::ids::AgentId;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Happened {
    Claimed,
    Released,
    Transferred,
    Closed,
    ClosedByVisitor,
    Reopened,
    Expired,
    LabelsChanged,
}

/// An agent as the history names it: its name when it happened.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    pub id: AgentId,
    pub name: String,
}

impl Person {
    pub fn of(agent: &Agent) -> Person {
        Person {
            id: agent.id,
            name: agent.display_name.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEvent {
    pub kind: Happened,
    /// The agent who did it; none when the visitor or the appliance did.
    #[serde(default)]
    pub by: Option<Person>,
    /// The agent a transfer went to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Person>,
}

impl HistoryEvent {
    /// Something an agent did.
    pub fn by(kind: Happened, agent: &Agent) -> HistoryEvent {
        HistoryEvent {
            kind,
            by: Some(Person::of(agent)),
            to: None,
        }
    }

    /// Something the visitor or the appliance did.
    pub fn of(kind: Happened) -> HistoryEvent {
        HistoryEvent {
            kind,
            by: None,
            to: None,
        }
    }

    /// The message's content, for readers of the API; the apps say it in
    /// their own language from `kind`, `by` and `to`.
    pub fn text(&self) -> String {
        let name = |p: &Option<Person>| p.as_ref().map_or("—", |p| p.name.as_str()).to_owned();
        let (by, to) = (name(&self.by), name(&self.to));
        match self.kind {
            Happened::Claimed => format!("Claimed by {by}"),
            Happened::Released => format!("Released by {by}"),
            Happened::Transferred => format!("Transferred from {by} to {to}"),
            Happened::Closed => format!("Closed by {by}"),
            Happened::ClosedByVisitor => "Closed by the visitor".to_owned(),
            Happened::Reopened => format!("Reopened by {by}"),
            Happened::Expired => "Closed after a time without messages".to_owned(),
            Happened::LabelsChanged => format!("Labels changed by {by}"),
        }
    }
}
