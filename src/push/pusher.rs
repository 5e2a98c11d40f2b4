//! What the push side shares with the rest of the appliance (held in the
//! state): the VAPID key, the worker's wake-up, the counters.

use std::fmt::Write;
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
