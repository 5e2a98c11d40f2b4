//! My-Chat: a self-hosted live-chat appliance.
//!
//! [`App::build`] opens the data dir and prepares everything from a
//! [`Config`]; [`App::serve`] serves on a listener the caller passes in, so
//! tests bind port 0 and get the real server in-process.

pub mod accounts;
pub mod attachments;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod clock;
pub mod config;
pub mod control;
pub mod email;
pub mod error;
pub mod events;
pub mod extract;
pub mod fsutil;
pub mod ids;
pub mod integrations;
pub mod labels;
pub mod memory;
pub mod messages;
pub mod metrics;
pub mod net;
pub mod openapi;
pub mod ops;
#[cfg(test)]
mod proptests;
pub mod push;
pub mod realtime;
pub mod reports;
pub mod request_id;
pub mod search;
pub mod spaces;
pub mod state;
pub mod store;
pub mod systemd;
pub mod tasks;
pub mod templates;
pub mod threads;
pub mod tls;
pub mod validate;
pub mod visitors;
pub mod web;
pub mod webhooks;
pub mod widget;

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Router, middleware};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use config::Config;
use error::AppError;
pub use state::AppState;

/// The database file inside the data dir.
pub const DB_FILE: &str = "mychat.redb";
/// The embedded database's write-ahead log, next to it: two files, one
/// written while the other waits for a checkpoint (see `store::wal`).
pub const WAL_FILES: [&str; 2] = ["mychat.wal", "mychat.wal.1"];

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("data dir {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Store(#[from] store::Error),
    #[error("signing key: {0}")]
    Key(std::io::Error),
    #[error("first run: {0}")]
    Seed(#[from] AppError),
    #[error("web push key: {0}")]
    PushKey(std::io::Error),
    #[error("search index: {0}")]
    Search(#[from] tantivy::TantivyError),
}

/// The two listeners of an appliance that serves HTTPS itself.
pub struct TlsListeners {
    /// Answers HTTP-01 challenges and redirects everything else to HTTPS.
    pub http: TcpListener,
    /// Serves the appliance over TLS (and answers TLS-ALPN-01 challenges).
    pub https: TcpListener,
}

/// What runs beside the listeners while serving.
struct Running {
    dispatcher: JoinHandle<()>,
    /// In a cluster: who is online on the other nodes.
    presence: Option<JoinHandle<()>>,
    tasks: tasks::Tasks,
}

/// A ready-to-serve appliance.
pub struct App {
    state: AppState,
    /// Set on the first run when a demo was created.
    pub demo: Option<accounts::service::Demo>,
}

impl App {
    /// Opens (or creates) the data dir and the database, loads the signing
    /// key, and on a fresh database creates the demo when configured.
    pub async fn build(config: Config) -> Result<App, BuildError> {
        let dir = config.data_dir.clone();
        fsutil::create_private_dir(&dir).map_err(|source| BuildError::DataDir {
            path: dir.display().to_string(),
            source,
        })?;
        let options = store::Options {
            max_batch: config.store.max_batch,
            min_free_bytes: config.store.min_free_mb.saturating_mul(1024 * 1024),
            presence_ttl: Duration::from_secs(config.store.presence_ttl_secs.max(1)),
        };
        let store = match config.store.backend {
            config::StoreBackend::Embedded => store::Store::open_with(&dir.join(DB_FILE), options)?,
            config::StoreBackend::Postgres => {
                let url = config.store.url.clone();
                tokio::task::spawn_blocking(move || store::Store::open_postgres(&url, options))
                    .await
                    .map_err(|e| store::Error::Storage(e.to_string()))??
            }
        };
        // Webhook deliveries commit with the events that cause them.
        if !store::Reader::is_empty(&store.read()?, store::tables::WEBHOOKS)? {
            webhooks::outbox::webhooks_may_exist();
        }
        // Webhook deliveries and mails commit with the events that cause
        // them (pushes too: `push::install` adds its hook after these).
        store.add_outbox(std::sync::Arc::new(webhooks::outbox::write_deliveries));
        // Report counters move with the conversations they count.
        store.add_outbox(std::sync::Arc::new(reports::outbox::count));
        if let Some(c) = config.email.enabled().then(|| config.email.clone()) {
            store.add_outbox(std::sync::Arc::new(move |tx, events| {
                email::outbox::write_mails(tx, events, &c)
            }));
        }
        // Nodes sharing a database share its keys too: a token one node
        // signed is good on every other.
        let shared = store.is_shared();
        let jwt_secret = if config.auth.jwt_secret.is_empty() && shared {
            store.shared_secret("jwt").await?
        } else {
            config.auth.jwt_secret.clone()
        };
        let jwt = auth::jwt::JwtKeys::load(&dir, &jwt_secret, config.auth.access_token_ttl_secs)
            .map_err(BuildError::Key)?;
        let mailer = if shared {
            email::Mailer::with_key(store.shared_secret("mail").await?.into_bytes())
        } else {
            email::Mailer::load(&dir).map_err(BuildError::Key)?
        };
        let search = search::Search::open(&dir.join(search::DIR))?;
        let state = AppState::new(config, store, jwt, mailer, search);
        push::install(&state).map_err(BuildError::PushKey)?;
        let demo = if state.config.demo {
            accounts::service::seed_demo(&state).await?
        } else {
            None
        };
        Ok(App { state, demo })
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then lets requests finish, stops
    /// the background jobs and commits every queued write.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let bound = listener.local_addr()?;
        self.state.set_base_url(self.state.config.base_url(bound));
        let mut running = self.start();
        if let Err(e) = email::inbound::start(&self.state, &mut running.tasks, None).await {
            self.finish(running).await;
            return Err(e);
        }
        let router = router(self.state.clone());
        tracing::info!(listen = %bound, url = self.state.base_url(), "serving");
        systemd::ready(self.state.base_url());
        let shutdown = async move {
            shutdown.await;
            systemd::stopping();
        };
        // Small live frames must not wait for the peer's delayed ACKs.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let served = axum::serve(
            listener,
            axum::ServiceExt::into_make_service_with_connect_info::<SocketAddr>(router),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        self.finish(running).await;
        served
    }

    /// Serves HTTPS (`tls.mode` manual or acme) until `shutdown` resolves:
    /// the appliance with HSTS on `https`, redirects and HTTP-01 answers on
    /// `http`. Stops like [`App::serve`].
    pub async fn serve_tls(
        self,
        listeners: TlsListeners,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let https_bound = listeners.https.local_addr()?;
        let http_bound = listeners.http.local_addr()?;
        self.state
            .set_base_url(self.state.config.tls_base_url(https_bound));
        let mut running = self.start();
        let started = tls::Tls::start(
            &self.state.config,
            &self.state.store,
            &self.state.tls,
            &mut running.tasks,
        )
        .await;
        let tls = match started {
            Ok(tls) => tls,
            Err(e) => {
                self.finish(running).await;
                return Err(std::io::Error::other(e.to_string()));
            }
        };
        // STARTTLS on the email listener presents the same certificate.
        let mut smtp_tls = (*tls.server_config).clone();
        smtp_tls.alpn_protocols.clear();
        let smtp_tls = Some(std::sync::Arc::new(smtp_tls));
        if let Err(e) = email::inbound::start(&self.state, &mut running.tasks, smtp_tls).await {
            self.finish(running).await;
            return Err(e);
        }
        let (stop, stopping) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            systemd::stopping();
            let _ = stop.send(true);
        });
        let signal = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        tracing::info!(https = %https_bound, http = %http_bound, url = self.state.base_url(), "serving");
        systemd::ready(self.state.base_url());
        let app = HttpService::new(tower::Layer::layer(
            &tls::hsts(),
            router(self.state.clone()),
        ));
        let https = axum::serve(
            tls::TlsListener::new(
                listeners.https,
                tls.server_config.clone(),
                tls.certs.clone(),
            )?
            .tap_io(|_| {}),
            axum::ServiceExt::into_make_service_with_connect_info::<SocketAddr>(app),
        )
        .with_graceful_shutdown(signal(stopping.clone()));
        let redirect = tls::redirect_router(tls.certs.clone(), https_bound.port());
        let http = axum::serve(listeners.http, redirect.into_make_service())
            .with_graceful_shutdown(signal(stopping));
        let (https, http) = tokio::join!(https.into_future(), http.into_future());
        self.finish(running).await;
        https.and(http)
    }

    fn start(&self) -> Running {
        if let Err(e) = self.state.search.start(self.state.store.clone()) {
            tracing::error!(error = %e, "search indexer did not start");
        }
        let dispatcher = realtime::dispatch::start(&self.state);
        let presence = realtime::presence::follow(&self.state);
        let mut tasks = spawn_tasks(&self.state);
        control::start(&self.state, &mut tasks);
        webhooks::worker::start(&self.state, &mut tasks);
        push::worker::start(&self.state, &mut tasks);
        email::worker::start(&self.state, &mut tasks);
        systemd::start_watchdog(&self.state, &mut tasks);
        Running {
            dispatcher,
            presence,
            tasks,
        }
    }

    /// After HTTP has drained: sockets are told to reconnect, background
    /// jobs stop, then the queued writes are committed.
    async fn finish(&self, running: Running) {
        let grace = Duration::from_secs(self.state.config.http.shutdown_grace_secs);
        self.state
            .hub
            .close_all(
                realtime::CLOSE_GOING_AWAY_RECONNECT,
                "server restarting, reconnect",
                grace,
            )
            .await;
        running.tasks.shutdown().await;
        if let Some(presence) = running.presence {
            presence.abort();
        }
        self.state.store.shutdown().await;
        // After the last commit: every event is queued for the index.
        self.state.search.stop().await;
        running.dispatcher.abort();
        // Awaited, so that its handle on the store is gone when serving
        // returns and the data dir can be opened again at once.
        let _ = running.dispatcher.await;
        tracing::info!("stopped");
    }
}

fn spawn_tasks(state: &AppState) -> tasks::Tasks {
    let mut tasks = tasks::Tasks::default();
    let s = state.clone();
    tasks.every("rate-limit-cleanup", Duration::from_secs(60), move || {
        let s = s.clone();
        async move {
            s.limits.forget_idle();
            if s.store.is_shared() && s.store.leads() {
                let store = s.store.clone();
                let _ = tokio::task::spawn_blocking(move || store.forget_shared_counts()).await;
            }
        }
    });
    let s = state.clone();
    let period = Duration::from_secs(state.config.store.expiry_interval_secs.max(1));
    tasks.every("thread-expiry", period, move || {
        let s = s.clone();
        async move {
            // With several nodes, the one that runs the jobs does it.
            if !s.store.leads() {
                return;
            }
            if let Err(e) = threads::service::expire_inactive(&s).await.map(drop) {
                tracing::warn!(error = %e, "thread expiry failed");
            }
        }
    });
    let s = state.clone();
    tasks.every("log-retention", Duration::from_secs(3600), move || {
        let s = s.clone();
        async move {
            if !s.store.leads() {
                return;
            }
            if let Err(e) = audit::prune(&s, s.config.audit.retention_days).await {
                tracing::warn!(error = %e, "audit retention failed");
            }
            if let Err(e) =
                webhooks::service::prune(&s, s.config.webhooks.keep_deliveries_days).await
            {
                tracing::warn!(error = %e, "delivery log retention failed");
            }
        }
    });
    let s = state.clone();
    let period = Duration::from_secs(state.config.store.retention_interval_secs.max(1));
    tasks.every("attachment-retention", period, move || {
        let s = s.clone();
        async move {
            if let Err(e) = attachments::retention::run_retention(&s).await.map(drop) {
                tracing::warn!(error = %e, "attachment retention failed");
            }
        }
    });
    tasks
}

/// Every route of the appliance.
pub fn router(state: AppState) -> HttpService {
    // REST answers within `http.request_timeout_secs`; uploads and
    // downloads (attachments) take as long as the network needs, and
    // sockets live on after their upgrade.
    let timeout = tower_http::timeout::TimeoutLayer::with_status_code(
        StatusCode::SERVICE_UNAVAILABLE,
        Duration::from_secs(state.config.http.request_timeout_secs),
    );
    let api = Router::new()
        .merge(accounts::http::routes())
        .merge(accounts::admin::routes())
        .merge(accounts::avatar::routes())
        .merge(spaces::http::routes())
        .merge(threads::http::routes())
        .merge(messages::http::routes())
        .merge(visitors::http::routes())
        .merge(reports::http::routes())
        .merge(templates::http::routes())
        .merge(labels::http::routes())
        .merge(widget::http::routes())
        .merge(integrations::http::routes())
        .merge(webhooks::http::routes())
        .merge(audit::http::routes())
        .merge(push::http::routes())
        .merge(email::http::routes())
        .merge(openapi::api_routes())
        .fallback(api_not_found)
        .layer(timeout)
        .merge(attachments::http::routes());
    let routes = Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .merge(web::routes())
        .merge(openapi::routes())
        .merge(email::http::public_routes())
        .merge(realtime::routes())
        .layer(DefaultBodyLimit::max(state.config.http.body_limit))
        .layer(middleware::from_fn(auth::extract::api_token_from_query))
        .layer(middleware::map_response(envelope_for_bare_errors))
        // Per route: it labels its figures with the route that matched.
        .layer(middleware::from_fn_with_state(state.clone(), ops::track))
        .with_state(state);
    // The layers that need no route wrap the router once, rather than
    // every route: a request then clones only what its own route needs.
    let service = tower::ServiceBuilder::new()
        .map_response(IntoResponse::into_response)
        .layer(middleware::map_request(request_id::keep_usable))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        // Spans name the request id and the path only (query strings may
        // carry tokens); every log line of the request carries them.
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                tracing::info_span!(
                    "http",
                    request_id = %request_id::of(req),
                    method = %req.method(),
                    path = %req.uri().path()
                )
            }),
        )
        .layer(CatchPanicLayer::custom(|_| {
            AppError::Internal("handler panicked".into()).into_response()
        }))
        .service(routes);
    HttpService::new(service)
}

/// Every HTTP request's way in: the routes and the layers around them.
pub type HttpService =
    tower::util::BoxCloneSyncService<axum::extract::Request, Response, std::convert::Infallible>;

/// `x-request-id`, as the request-id layers want it.
static REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static(request_id::HEADER);

async fn api_not_found() -> AppError {
    AppError::NotFound("route")
}

/// Errors made below the handlers (a body over `http.body_limit` read by
/// axum itself) come as plain text; every client sees the JSON envelope.
async fn envelope_for_bare_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return AppError::TooLarge("the request body is too large".into()).into_response();
    }
    // The request timeout answers with a bare 503.
    if status == StatusCode::SERVICE_UNAVAILABLE && !is_json {
        return AppError::Unavailable("the request took too long; retry".into()).into_response();
    }
    response
}
