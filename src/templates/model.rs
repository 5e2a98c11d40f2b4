//! Canned responses agents insert with a `/shortcut`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{OrgId, SpaceId, TemplateId};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    pub id: TemplateId,
    pub organization_id: OrgId,
    pub chat_space_id: Option<SpaceId>,
    /// `/hello`
    pub shortcut: String,
    pub title: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}
