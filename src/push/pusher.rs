//! What the push side shares with the rest of the appliance (held in the
//! state): the VAPID key, the worker's wake-up, the counters.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::Notify;

use crate::push::keys;

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
    /// The VAPID key, once loaded (`push::install`).
    pub fn keys(&self) -> Option<&keys::VapidKeys> {
        self.keys.get()
    }

    pub(crate) fn set_keys(&self, keys: keys::VapidKeys) {
        let _ = self.keys.set(keys);
    }

    pub(crate) fn note_subscribed(&self) {
        self.subscribed.store(true, Ordering::Release);
    }

    pub(crate) fn may_have_subscriptions(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    /// Notifications sent, failed and skipped since start, for `/metrics`.
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.skipped.load(Ordering::Relaxed),
        )
    }
}
