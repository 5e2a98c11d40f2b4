//! Web Push subscriptions (one per agent and device) and the pushes waiting
//! to be sent, with the rules a subscription must pass and the words a
//! notification says.

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{AgentId, MessageId, OrgId, PushId, ThreadId};

/// Longest endpoint URL accepted (push services' are a few hundred bytes).
pub const MAX_ENDPOINT: usize = 2000;
/// Devices one agent may have subscribed; a new one beyond that replaces
/// the oldest.
pub const MAX_PER_AGENT: usize = 10;
/// Attempts at one push before it is dropped.
pub const MAX_ATTEMPTS: u32 = 5;
/// Seconds before the next attempt after the first, second, … failure.
pub const RETRY_AFTER_SECS: [i64; 4] = [10, 60, 300, 1800];
/// How long a push service keeps a push for a device that is offline.
pub const TTL_SECS: u64 = 24 * 3600;
/// Longest body text, in characters.
const BODY_CHARS: usize = 140;

/// base64url, with or without padding (browsers send it without).
pub const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A browser's push subscription, as `PushSubscription.toJSON()` gives it,
/// held for the agent that made it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PushSubscription {
    pub endpoint: String,
    pub agent_id: AgentId,
    pub organization_id: OrgId,
    /// The browser's P-256 public key: base64url of the uncompressed point.
    pub p256dh: String,
    /// The browser's 16-byte authentication secret, base64url.
    pub auth: String,
    /// The language notifications are written in (`en`, `pl`).
    pub locale: String,
    pub created_at: DateTime<Utc>,
}

impl PushSubscription {
    /// The storage key of an endpoint: its sha256 (endpoints are long).
    pub fn key_of(endpoint: &str) -> Vec<u8> {
        Sha256::digest(endpoint.as_bytes()).to_vec()
    }

    /// The browser's public key and secret, decoded.
    pub fn keys(&self) -> Option<(p256::PublicKey, [u8; 16])> {
        let public = p256::PublicKey::from_sec1_bytes(&B64URL.decode(&self.p256dh).ok()?).ok()?;
        let auth = B64URL.decode(&self.auth).ok()?.try_into().ok()?;
        Some((public, auth))
    }
}

/// What a push tells an agent about.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum PushKind {
    /// A new unassigned thread the agent may take.
    NewThread,
    /// A visitor's message in a thread the agent holds.
    Message,
    /// A thread handed to the agent.
    Transfer,
}

/// One notification for one device, waiting to be sent: written in the
/// commit of the event it is about, removed once sent or given up.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Push {
    pub id: PushId,
    pub agent_id: AgentId,
    pub endpoint: String,
    pub thread_id: ThreadId,
    pub kind: PushKind,
    /// The message it is about: the visitor's, or the newest one of a
    /// thread handed over. Read or answered up to it, the push is dropped.
    pub message_id: Option<MessageId>,
    pub title: String,
    pub body: String,
    /// Where a click leads: `/app/#/inbox/<view>/<thread>`.
    pub url: String,
    pub attempts: u32,
    /// Not before this time (the agent's quiet minutes, or a retry).
    pub due_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl Push {
    /// The encrypted notification's plain text: small JSON the service
    /// worker shows. `tag` makes a thread's notifications replace each other.
    pub fn payload(&self) -> String {
        serde_json::json!({
            "title": self.title,
            "body": self.body,
            "url": self.url,
            "tag": format!("thread-{}", self.thread_id),
        })
        .to_string()
    }
}

/// The words of a notification in one language.
pub struct Words {
    pub code: &'static str,
    new_thread: &'static str,
    message: &'static str,
    transfer: &'static str,
}

const EN: Words = Words {
    code: "en",
    new_thread: "New conversation",
    message: "New message",
    transfer: "Conversation handed to you",
};
const PL: Words = Words {
    code: "pl",
    new_thread: "Nowa rozmowa",
    message: "Nowa wiadomość",
    transfer: "Przekazano Ci rozmowę",
};

impl Words {
    /// The language of a locale tag; English unless it is Polish.
    pub fn of(locale: &str) -> &'static Words {
        if locale.to_ascii_lowercase().starts_with("pl") {
            &PL
        } else {
            &EN
        }
    }

    /// The title for `kind` about the visitor called `who`.
    pub fn title(&self, kind: PushKind, who: &str) -> String {
        let what = match kind {
            PushKind::NewThread => self.new_thread,
            PushKind::Message => self.message,
            PushKind::Transfer => self.transfer,
        };
        format!("{what}: {who}")
    }
}

/// A notification's body: the start of a message, on one line.
pub fn body_text(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= BODY_CHARS {
        return line;
    }
    let mut cut: String = line.chars().take(BODY_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_one_short_line() {
        assert_eq!(body_text("  Hello\n\nthere  "), "Hello there");
        let long = body_text(&"word ".repeat(100));
        assert_eq!(long.chars().count(), BODY_CHARS);
        assert!(long.ends_with('…'));
    }
}
