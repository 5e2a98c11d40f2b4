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
pub mod pusher;
pub mod service;
pub mod subscription;
pub mod worker;

use crate::state::AppState;
use crate::store::Reader;

/// Loads the VAPID key and connects the outbox hook (`push.enabled`).
pub fn install(state: &AppState) -> std::io::Result<()> {
    let config = &state.config.push;
    if !config.enabled {
        return Ok(());
    }
    let keys = keys::VapidKeys::load(&state.config.data_dir, &config.vapid_private_key)?;
    state.push.set_keys(keys);
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
