//! The shared state every handler and task sees.

use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use crate::auth::jwt::JwtKeys;
use crate::auth::limits::RateLimits;
use crate::config::Config;
use crate::error::AppResult;
use crate::metrics::Metrics;
use crate::realtime::hub::Hub;
use crate::realtime::slots::Sockets;
use crate::store::{Store, WriteTx};

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub config: Config,
    pub store: Store,
    pub jwt: JwtKeys,
    pub limits: RateLimits,
    pub metrics: Metrics,
    pub hub: Arc<Hub>,
    /// Open sockets, in all and per visitor.
    pub sockets: Arc<Sockets>,
    /// Time for schedules; tests move it.
    pub clock: Arc<crate::clock::Clock>,
    /// Email's signing key, wake-up and counters.
    pub mailer: Arc<crate::email::Mailer>,
    /// Wakes the webhook worker when deliveries may be due.
    pub webhooks_due: Arc<tokio::sync::Notify>,
    /// Web Push: the VAPID key, the worker's wake-up, counters.
    pub push: Arc<crate::push::pusher::Pusher>,
    /// The full-text index of messages, visitors and subjects.
    pub search: Arc<crate::search::Search>,
    /// Certificate expiry for `/metrics` (empty without TLS).
    pub tls: Arc<crate::tls::TlsStatus>,
    /// Set once the listener is bound (or from `public_url`).
    base_url: OnceLock<String>,
}

impl AppState {
    pub fn new(
        config: Config,
        store: Store,
        jwt: JwtKeys,
        mailer: crate::email::Mailer,
        search: crate::search::Search,
    ) -> AppState {
        let limits = RateLimits::new(&config.limits);
        let sockets = Sockets::with_memory_mark(
            config.limits.max_sockets,
            config.limits.sockets_per_visitor,
            crate::memory::high_mark(config.limits.memory_high_mb),
        );
        let hub = Hub::with_queue(crate::realtime::hub::queue_for(config.store.max_batch));
        let base_url = OnceLock::new();
        if !config.public_url.is_empty() {
            let _ = base_url.set(config.public_url.trim_end_matches('/').to_owned());
        }
        AppState(Arc::new(Shared {
            config,
            store,
            jwt,
            limits,
            metrics: Metrics::default(),
            hub,
            sockets,
            clock: Default::default(),
            mailer: Arc::new(mailer),
            webhooks_due: Default::default(),
            push: Default::default(),
            search: Arc::new(search),
            tls: Default::default(),
            base_url,
        }))
    }

    /// The URL the appliance is reached at, without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.base_url
            .get()
            .map_or("http://127.0.0.1:8080", String::as_str)
    }

    /// Runs a use case's write closure in the next group commit
    /// ([`Store::write`]); the closure refuses with an [`AppError`].
    pub async fn write<T, F>(&self, op: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnMut(&mut WriteTx<'_>) -> AppResult<T> + Send + 'static,
    {
        self.store.write(op).await
    }

    pub(crate) fn set_base_url(&self, url: String) {
        let _ = self.base_url.set(url);
    }
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}
