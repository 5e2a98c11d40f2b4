//! Email through the operator's SMTP relay (`[email]`): what a change
//! makes the appliance send is written as a [`model::Mail`] in the same
//! commit (`outbox.rs`, the store's outbox hook, or the use case's own
//! write), and a background worker (`worker.rs`) renders and sends it
//! with retries. A crash between the commit and the send loses nothing:
//! the worker finds the mail on the next start.
//!
//! - `model.rs`: mails, why each is sent, its state.
//! - `outbox.rs`: events → mails (agents about offline and unanswered
//!   messages, visitors about replies they have not seen).
//! - `render.rs`: subject, plain text and simple HTML in the space's
//!   language, name and colour.
//! - `worker.rs`: due mails → SMTP (lettre), backoff, give up after
//!   `email.max_attempts`.
//! - `http.rs`: transcripts on request, one-click unsubscribe, the admins'
//!   outbox view.

pub mod http;
pub mod inbound;
pub mod model;
pub mod outbox;
pub mod render;
pub mod worker;

use std::path::Path;

use hmac::{Hmac, Mac};
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use sha2::Sha256;

use crate::ids::{ThreadId, VisitorId};

/// The key file that signs unsubscribe links.
const KEY_FILE: &str = "mail.key";

/// The SMTP client for `url` (lettre's URL form). Nothing connects yet.
pub fn transport(url: &str) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map(|b| b.timeout(Some(std::time::Duration::from_secs(20))).build())
        .map_err(|e| e.to_string())
}

/// The configured sender, `Name <address>` or a bare address.
pub fn sender(from: &str) -> Result<Mailbox, String> {
    from.parse::<Mailbox>().map_err(|e| e.to_string())
}

/// A recipient: the address must parse on its own (no list, no comment,
/// no header tricks); the name loses every control character, and
/// lettre encodes what is left.
pub fn recipient(name: Option<&str>, address: &str) -> Option<Mailbox> {
    if address.contains(|c: char| c.is_control() || c == ',' || c == '<' || c == '>') {
        return None;
    }
    let address = address.trim().parse::<lettre::Address>().ok()?;
    let name = name
        .map(one_line)
        .filter(|n| !n.is_empty())
        .map(|n| n.chars().take(100).collect());
    Some(Mailbox::new(name, address))
}

/// A header-safe line: control characters (CR, LF, tabs…) become spaces.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the email side of the appliance keeps at run time.
pub struct Mailer {
    /// Signs unsubscribe links.
    key: Vec<u8>,
    /// Wakes the worker when mails may be due.
    pub due: tokio::sync::Notify,
    /// Where the inbound SMTP listener is bound, once it is.
    pub inbound_addr: std::sync::OnceLock<std::net::SocketAddr>,
    /// Mails sent and given up on since start, for `/metrics`.
    pub sent: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
}

impl Mailer {
    /// The key file in `data_dir` (created 0600 on first run).
    pub fn load(data_dir: &Path) -> std::io::Result<Mailer> {
        let path = data_dir.join(KEY_FILE);
        let key = match std::fs::read(&path) {
            Ok(bytes) if bytes.len() >= 32 => bytes,
            _ => {
                let key = crate::auth::tokens::generate().into_bytes();
                crate::fsutil::write_private(&path, &key)?;
                key
            }
        };
        Ok(Mailer::with_key(key))
    }

    /// A mailer whose reply-address key is `key` (shared by a cluster's
    /// nodes through the database).
    pub fn with_key(key: Vec<u8>) -> Mailer {
        Mailer {
            key,
            due: tokio::sync::Notify::new(),
            inbound_addr: Default::default(),
            sent: Default::default(),
            failed: Default::default(),
        }
    }

    /// The token of a visitor's unsubscribe link.
    pub fn unsubscribe_token(&self, visitor: VisitorId) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(b"unsubscribe:");
        mac.update(visitor.0.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// The local part of a thread's reply address: `reply+<thread><mac>`.
    /// Only this appliance can make one; the thread's deletion ends it.
    pub fn reply_local_part(&self, thread: ThreadId) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(b"reply:");
        mac.update(thread.0.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!(
            "reply+{}{}",
            hex::encode(thread.0.as_bytes()),
            hex::encode(&tag[..8])
        )
    }

    /// The thread a reply address's local part stands for, if genuine.
    pub fn thread_of_reply(&self, local_part: &str) -> Option<ThreadId> {
        let token = local_part.to_ascii_lowercase();
        let hex_part = token.strip_prefix("reply+")?;
        if hex_part.len() != 48 {
            return None;
        }
        let bytes = hex::decode(&hex_part[..32]).ok()?;
        let thread = ThreadId(uuid::Uuid::from_slice(&bytes).ok()?);
        subtle_eq::eq(self.reply_local_part(thread).as_bytes(), token.as_bytes()).then_some(thread)
    }

    pub fn unsubscribe_ok(&self, visitor: VisitorId, token: &str) -> bool {
        use subtle_eq::eq;
        eq(self.unsubscribe_token(visitor).as_bytes(), token.as_bytes())
    }
}

mod subtle_eq {
    /// Compares without stopping at the first difference.
    pub fn eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_cannot_smuggle_headers_or_more_addresses() {
        let evil = [
            "a@example.com\r\nBcc: b@example.com",
            "a@example.com, b@example.com",
            "A <a@example.com>",
            "a@example.com\nX: y",
            "not an address",
            "",
        ];
        for address in evil {
            assert!(recipient(None, address).is_none(), "{address:?}");
        }
        let m = recipient(Some("Eve\r\nBcc: x@example.com"), "eve@example.com").unwrap();
        assert_eq!(m.name.as_deref(), Some("Eve Bcc: x@example.com"));
        assert_eq!(m.email.to_string(), "eve@example.com");
        let header = lettre::message::header::HeaderValue::new(
            lettre::message::header::HeaderName::new_from_ascii_str("To"),
            m.to_string(),
        );
        assert!(!format!("{header:?}").contains('\n'));
    }

    #[test]
    fn reply_addresses_are_unforgeable() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = Mailer::load(dir.path()).unwrap();
        let thread = ThreadId::new();
        let local = mailer.reply_local_part(thread);
        assert!(local.len() <= 64, "{local}");
        assert_eq!(mailer.thread_of_reply(&local), Some(thread));
        assert_eq!(mailer.thread_of_reply(&local.to_uppercase()), Some(thread));
        let other = ThreadId::new();
        let forged = format!("reply+{}{}", hex::encode(other.0.as_bytes()), &local[38..]);
        assert_eq!(mailer.thread_of_reply(&forged), None);
        assert_eq!(mailer.thread_of_reply("reply+"), None);
        assert_eq!(mailer.thread_of_reply("postmaster"), None);
        let elsewhere = Mailer::load(tempfile::tempdir().unwrap().path()).unwrap();
        assert_eq!(elsewhere.thread_of_reply(&local), None);
    }

    #[test]
    fn one_line_removes_line_breaks() {
        assert_eq!(one_line("Hello\r\nBcc: x"), "Hello Bcc: x");
        assert_eq!(one_line("  a\tb  "), "a b");
    }

    #[test]
    fn smtp_urls_are_checked_before_use() {
        assert!(transport("smtp://127.0.0.1:2525").is_ok());
        assert!(transport("smtps://user:pass@mail.example.com").is_ok());
        assert!(transport("smtp://mail.example.com:587?tls=required").is_ok());
        assert!(transport("http://mail.example.com").is_err());
        assert!(transport("nonsense").is_err());
        assert!(sender("Shop <chat@example.com>").is_ok());
        assert!(sender("nobody").is_err());
    }
}
