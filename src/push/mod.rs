//! Web Push to agents (PRODUCT.md §7): notifications that reach a phone
//! with the app closed. The app subscribes through its service worker
//! (`http.rs`, `service.rs`); the outbox hook (`outbox.rs`) writes one
//! [`model::Push`] per device in the commit of the event it is about,
//! following each agent's `notify` preferences; the `push` task
//! (`worker.rs`) encrypts it for the device (RFC 8291, aes128gcm), signs
//! it with the VAPID key (`keys.rs`, RFC 8292) and sends it with retries.

pub mod http;
pub mod keys;
pub mod model;
pub mod outbox;
pub mod service;
pub mod worker;

use std::fmt::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::Notify;

use crate::state::AppState;
use crate::store::Reader;

/// What the push side shares: the key, the worker's wake-up, counters.
#[derive(Default)]
pub struct Pusher {
    keys: OnceLock<keys::VapidKeys>,
    /// Wakes the worker: a commit may have queued pushes, or a test moved
    /// the clock.
    pub due: Notify,
    /// Whether any subscription may exist. Set at start when one is stored
    /// and before one is stored; never cleared, so it only lets the hook
    /// skip work when there is surely no device to tell.
    subscribed: AtomicBool,
    pub(crate) sent: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// Dropped before sending: no longer wanted (read, answered, taken).
    pub(crate) skipped: AtomicU64,
}

impl Pusher {
    /// The VAPID key, once loaded ([`install`]).
    pub fn keys(&self) -> Option<&keys::VapidKeys> {
        self.keys.get()
    }

    pub(crate) fn note_subscribed(&self) {
        self.subscribed.store(true, Ordering::Release);
    }

    fn may_have_subscriptions(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    /// Appends the push counters and the pending gauge to `/metrics`.
    pub fn render(&self, pending: usize, out: &mut String) {
        out.push_str("# HELP mychat_push_total Web Push notifications by outcome.\n");
        out.push_str("# TYPE mychat_push_total counter\n");
        for (result, counter) in [
            ("sent", &self.sent),
            ("failed", &self.failed),
            ("skipped", &self.skipped),
        ] {
            let _ = writeln!(
                out,
                "mychat_push_total{{result=\"{result}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP mychat_push_pending Web Push notifications waiting to be sent.\n");
        out.push_str("# TYPE mychat_push_pending gauge\n");
        let _ = writeln!(out, "mychat_push_pending {pending}");
    }
}

/// Loads the VAPID key and connects the outbox hook (`push.enabled`).
pub fn install(state: &AppState) -> std::io::Result<()> {
    let config = &state.config.push;
    if !config.enabled {
        return Ok(());
    }
    let keys = keys::VapidKeys::load(&state.config.data_dir, &config.vapid_private_key)?;
    let _ = state.push.keys.set(keys);
    let empty = state
        .store
        .read()
        .and_then(|r| r.is_empty(crate::store::tables::PUSH_SUBSCRIPTIONS))
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    if !empty {
        state.push.note_subscribed();
    }
    state.store.add_outbox(outbox::hook(state));
    Ok(())
}
