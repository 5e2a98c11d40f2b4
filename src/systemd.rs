//! The service manager's notifications (`Type=notify`): READY once the
//! listeners are bound and the store is open, STOPPING when shutdown
//! begins, and watchdog pings while the store takes writes when the unit
//! sets `WatchdogSec`. Without `NOTIFY_SOCKET` (not under systemd, tests)
//! nothing is sent.

use sd_notify::NotifyState;

use crate::state::AppState;
use crate::tasks::Tasks;

fn notify(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "could not notify the service manager");
    }
}

/// Serving: the listeners are bound and the store is open.
pub fn ready(url: &str) {
    notify(&[
        NotifyState::Ready,
        NotifyState::Status(&format!("serving {url}")),
    ]);
}

/// Shutdown has begun: requests drain, queued writes are committed.
pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// With `WatchdogSec` set, pings at half the interval while the store's
/// writer runs: a stuck or failed writer lets systemd restart the service.
pub fn start_watchdog(state: &AppState, tasks: &mut Tasks) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let state = state.clone();
    tasks.every("watchdog", interval / 2, move || {
        let running = state.store.is_running();
        async move {
            if running {
                notify(&[NotifyState::Watchdog]);
            }
        }
    });
}
