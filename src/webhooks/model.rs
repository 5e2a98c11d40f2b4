//! Webhooks and their deliveries (PRODUCT.md §4a, Standard Webhooks).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{DeliveryId, OrgId, WebhookId};

/// The events a webhook may ask for.
pub const EVENTS: &[&str] = &[
    "message.new",
    "participant.joined",
    "participant.left",
    "thread.created",
    "thread.updated",
    "thread.closed",
    "visitor.offline_message",
];
/// The event a "send test event" delivers.
pub const TEST_EVENT: &str = "webhook.test";

/// When a failed delivery is tried again, after the first attempt: the
/// Standard Webhooks schedule. After the last one it is marked failed.
pub const RETRY_AFTER_SECS: [i64; 7] = [5, 300, 1800, 7200, 18000, 36000, 36000];

pub const MAX_URL: usize = 2000;
pub const MAX_DESCRIPTION: usize = 500;
/// Hours the old secret still signs after a rotation.
pub const ROTATION_OVERLAP_HOURS: i64 = 24;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: WebhookId,
    pub organization_id: OrgId,
    pub url: String,
    pub description: Option<String>,
    pub events: Vec<String>,
    pub enabled: bool,
    /// `whsec_` + base64 of the key bytes.
    pub secret: String,
    /// The secret before the last rotation, and until when it still signs.
    pub previous_secret: Option<(String, DateTime<Utc>)>,
    /// Since when every attempt has failed (None while it delivers).
    pub failing_since: Option<DateTime<Utc>>,
    /// Why the appliance disabled it, if it did.
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A webhook as admins see it: never its secrets.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    pub id: WebhookId,
    pub url: String,
    pub description: Option<String>,
    pub events: Vec<String>,
    pub enabled: bool,
    pub failing_since: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> Self {
        WebhookView {
            id: w.id,
            url: w.url,
            description: w.description,
            events: w.events,
            enabled: w.enabled,
            failing_since: w.failing_since,
            disabled_reason: w.disabled_reason,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

/// One try at delivering.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub at: DateTime<Utc>,
    pub response_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// One event for one webhook: written in the commit that made the event.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub organization_id: OrgId,
    pub event_type: String,
    /// The exact body sent (and signed), every attempt the same.
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: Vec<Attempt>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl Delivery {
    /// The `webhook-id` header: the same on every attempt.
    pub fn message_id(&self) -> String {
        format!("msg_{}", self.id.0.simple())
    }
}
