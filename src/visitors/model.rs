//! Visitors: the anonymous (or identified) people on a site with the widget.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{SpaceId, VisitorId};

/// A visitor as stored. The session token itself is never stored, only its hash
/// (kept in the visitor-by-token index).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Visitor {
    pub id: VisitorId,
    pub chat_space_id: SpaceId,
    /// Sequential per space, for a stable "Visitor #n" label.
    pub number: u64,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// The integrator's user id: from a verified identity token, or set by
    /// an agent.
    pub external_id: Option<String>,
    /// The external id came from an identity token signed with one of the
    /// organization's signing keys; its name and email are the token's.
    #[serde(default)]
    pub verified: bool,
    /// Small custom attributes the site sets (string, number or bool
    /// values; see [`crate::visitors::attributes`]).
    #[serde(default)]
    #[schema(schema_with = crate::openapi::schemas::attributes_schema)]
    pub attributes: BTreeMap<String, serde_json::Value>,
    pub metadata: VisitorMetadata,
    #[serde(with = "crate::store::stamp")]
    pub created_at: DateTime<Utc>,
    /// Unsubscribed from mails about replies (one click in any such mail).
    #[serde(default)]
    pub email_opt_out: bool,
    /// Agents' notes about the contact; never shown to the visitor.
    #[serde(default)]
    pub notes: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VisitorMetadata {
    pub current_url: Option<String>,
    pub current_title: Option<String>,
    pub referrer: Option<String>,
    pub user_agent: Option<String>,
    pub locale: Option<String>,
    pub ip: Option<String>,
    pub first_seen_at: Option<DateTime<Utc>>,
    pub last_seen_at: Option<DateTime<Utc>>,
}

impl Visitor {
    /// The name agents see: the visitor's own, else "Visitor #n".
    pub fn label(&self) -> String {
        match &self.display_name {
            Some(name) if !name.is_empty() => name.clone(),
            _ => format!("Visitor #{}", self.number),
        }
    }
}
