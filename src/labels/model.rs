//! A label as stored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{LabelId, OrgId};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Label {
    pub id: LabelId,
    pub organization_id: OrgId,
    /// Unique in the organization, compared without case.
    pub name: String,
    /// `#rrggbb`.
    pub color: String,
    pub created_at: DateTime<Utc>,
}

/// Longest label name, in characters.
pub const MAX_NAME: usize = 40;
/// Most labels an organization defines.
pub const MAX_PER_ORG: usize = 200;
/// Most labels one thread carries.
pub const MAX_PER_THREAD: usize = 20;
