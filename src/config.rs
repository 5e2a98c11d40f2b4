//! Configuration: built-in defaults < config file < `MYCHAT_*` environment <
//! command-line flags, layered with figment. Unknown keys are errors, so a
//! typo in `/etc/mychat/config.toml` is reported instead of silently ignored.
//! `config.example.toml` documents every key; a test keeps it in step.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use crate::net::{Cidr, ForwardedHeader};

/// `MYCHAT_*` variables that are read by the command line, not the config.
pub const NOT_CONFIG_ENV: &[&str] = &["LOG", "ADMIN_PASSWORD"];

/// The system-wide config file, read when `--config` is not given.
pub const SYSTEM_CONFIG: &str = "/etc/mychat/config.toml";

/// `http.listen` in ACME mode unless set: the CA's HTTP-01 requests and
/// redirects to HTTPS arrive on port 80.
pub const ACME_HTTP_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 80);

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory holding the database, signing key, certificates and files.
    pub data_dir: PathBuf,
    /// The address users reach the appliance at, e.g. `https://chat.example.com`.
    /// Empty: derived from the listener.
    pub public_url: String,
    pub registration: Registration,
    /// Create a demo organization, agent and chat space on first run.
    pub demo: bool,
    pub http: HttpConfig,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub store: StoreConfig,
    pub webhooks: WebhooksConfig,
    pub audit: AuditConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub email: EmailConfig,
    pub push: PushConfig,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Registration {
    /// Registration is open until the first organization exists.
    FirstRun,
    Open,
    Closed,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Largest JSON request body, in bytes.
    pub body_limit: usize,
    /// Seconds to let requests and sockets finish on shutdown.
    pub shutdown_grace_secs: u64,
    /// Seconds a REST request may take before it is answered 503
    /// (uploads, downloads and sockets are not limited).
    pub request_timeout_secs: u64,
    /// Reverse proxies (addresses or blocks) whose forwarding header names
    /// the client; from any other peer the header is ignored.
    pub trusted_proxies: Vec<Cidr>,
    /// The header the trusted proxies set.
    pub forwarded_header: ForwardedHeader,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    Off,
    Manual,
    Acme,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// Answered on the HTTP listener (port 80 as the CA sees it).
    #[serde(rename = "http-01")]
    Http01,
    /// Answered on the HTTPS listener (port 443 as the CA sees it).
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub mode: TlsMode,
    pub listen: SocketAddr,
    pub domains: Vec<String>,
    pub email: String,
    pub acme_directory: String,
    pub acme_ca_file: String,
    /// Challenge types, most preferred first; a failed order tries the next.
    pub acme_challenges: Vec<AcmeChallenge>,
    /// First wait after a failed order; doubles on each failure.
    pub acme_retry_min_secs: u64,
    /// Longest wait between retries of a failed order.
    pub acme_retry_max_secs: u64,
    pub cert_file: String,
    pub key_file: String,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_days: u64,
    pub invite_ttl_hours: u64,
    /// HMAC key for access tokens; empty means a key generated on first run
    /// and kept in the data dir.
    pub jwt_secret: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Login attempts per client address (IPv6: per /64).
    pub login_per_ip_per_minute: u32,
    /// Login attempts per account *from one address*: guessing from one
    /// address never locks the owner out from another.
    pub login_per_account_per_minute: u32,
    pub sessions_per_ip_per_minute: u32,
    pub visitor_messages_per_minute: u32,
    /// How long after sending an agent may still edit a message.
    pub edit_window_secs: u64,
    /// WebSocket connection attempts per client IP per minute.
    pub ws_connects_per_ip_per_minute: u32,
    /// Frames one socket may send per second (twice that in a burst).
    pub ws_frames_per_second: u32,
    /// File uploads one visitor or agent may make per minute.
    pub uploads_per_minute: u32,
    /// Bytes one client address may upload per hour.
    pub upload_bytes_per_ip_per_hour: u64,
    /// Bytes all uploaders of one chat space may upload per hour.
    pub upload_bytes_per_space_per_hour: u64,
    /// Uploads one uploader may hold that no message carries yet.
    pub max_pending_uploads: u32,
    /// Uploads are refused (507) while the data dir's file system has less
    /// free space than this, in MiB.
    pub min_free_disk_mb: u64,
    /// Widget sockets one visitor may hold at once.
    pub sockets_per_visitor: u32,
    /// Sockets of every kind the appliance holds at once.
    pub max_sockets: u32,
    /// New sockets are refused (503) while the process's anonymous memory
    /// (with the kernel memory its cgroup is charged) is above this many
    /// MiB; 0: the cgroup's memory limit (systemd `MemoryMax=`) less a
    /// quarter of it, at least 40 MiB, when there is one, else no mark.
    pub memory_high_mb: u64,
}

/// The largest byte budget: budgets are counted in KiB, in 32 bits.
pub const MAX_UPLOAD_BUDGET: u64 = u32::MAX as u64 * 1024;

#[derive(Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Bearer token `/metrics` asks for. Empty: only loopback peers may
    /// read it, without a token.
    pub token: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line of text per event.
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
        }
    }
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Where the data lives: `embedded` (a redb file in the data dir, the
    /// default) or `postgres` (one PostgreSQL database shared by every
    /// node of a cluster, at `url`).
    pub backend: StoreBackend,
    /// The PostgreSQL database of the `postgres` backend, as libpq's URL
    /// (`postgres://user:password@host:5432/mychat`) or key=value form.
    pub url: String,
    /// Most writes folded into one durable commit.
    pub max_batch: usize,
    /// Writes are refused (507) while the data dir's file system has less
    /// free space than this, in MiB, so the database is never written on a
    /// full disk. Keep it below `limits.min_free_disk_mb`, so uploads stop
    /// first and messages keep a margin.
    pub min_free_mb: u64,
    /// Seconds between runs of the thread-expiry job.
    pub expiry_interval_secs: u64,
    /// Seconds between runs of the attachment-retention job.
    pub retention_interval_secs: u64,
    /// With several nodes: how long, in seconds, the agents of a node that
    /// stopped without saying so (killed, cut off) still count as online
    /// on the others. Each node renews its agents six times as often.
    pub presence_ttl_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            public_url: String::new(),
            registration: Registration::FirstRun,
            demo: true,
            http: HttpConfig::default(),
            tls: TlsConfig::default(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            store: StoreConfig::default(),
            webhooks: WebhooksConfig::default(),
            audit: AuditConfig::default(),
            metrics: MetricsConfig::default(),
            log: LogConfig::default(),
            email: EmailConfig::default(),
            push: PushConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit: 1024 * 1024,
            shutdown_grace_secs: 10,
            request_timeout_secs: 30,
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::XForwardedFor,
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            mode: TlsMode::Off,
            listen: SocketAddr::from(([0, 0, 0, 0], 443)),
            domains: Vec::new(),
            email: String::new(),
            acme_directory: "https://acme-v02.api.letsencrypt.org/directory".into(),
            acme_ca_file: String::new(),
            acme_challenges: vec![AcmeChallenge::Http01, AcmeChallenge::TlsAlpn01],
            acme_retry_min_secs: 60,
            acme_retry_max_secs: 6 * 3600,
            cert_file: String::new(),
            key_file: String::new(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_days: 30,
            invite_ttl_hours: 72,
            jwt_secret: String::new(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            login_per_ip_per_minute: 20,
            login_per_account_per_minute: 10,
            sessions_per_ip_per_minute: 30,
            visitor_messages_per_minute: 60,
            edit_window_secs: 15 * 60,
            ws_connects_per_ip_per_minute: 120,
            ws_frames_per_second: 20,
            uploads_per_minute: 20,
            upload_bytes_per_ip_per_hour: 256 * 1024 * 1024,
            upload_bytes_per_space_per_hour: 2048 * 1024 * 1024,
            max_pending_uploads: 10,
            min_free_disk_mb: 512,
            sockets_per_visitor: 5,
            max_sockets: 50_000,
            memory_high_mb: 0,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Allow webhook URLs on loopback, private, link-local and unique-local
    /// addresses (a webhook receiver on the same host or network).
    pub allow_private_targets: bool,
    /// Hours a webhook may keep failing before it is disabled.
    pub disable_after_hours: u64,
    /// Days the delivery log keeps a delivered or failed delivery.
    pub keep_deliveries_days: u32,
}

/// Email through the operator's SMTP relay. Empty `smtp_url`: no email.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// lettre's URL form: `smtp://user:pass@host:587?tls=required`,
    /// `smtps://host:465`, `smtp://127.0.0.1:25` (no TLS, a local relay).
    pub smtp_url: String,
    /// The sender: `My Shop <chat@example.com>` or `chat@example.com`.
    pub from: String,
    /// Minutes a visitor message may wait for an answer before the space's
    /// agents are emailed about it.
    pub unanswered_minutes: u32,
    /// Minutes agents' replies wait (and gather) before they are emailed to
    /// a visitor who is not on the site.
    pub visitor_delay_minutes: u32,
    /// Tries before a mail counts as failed.
    pub max_attempts: u32,
    /// Where visitors' email answers arrive: mail to visitors carries
    /// `Reply-To: reply+<token>@<reply_domain>`. Empty: no Reply-To.
    pub reply_domain: String,
    /// Address of the inbound SMTP listener for those answers (its MX
    /// record points here), e.g. `0.0.0.0:25`. Unset: no listener.
    pub inbound_listen: Option<SocketAddr>,
    /// Largest inbound mail accepted, in bytes.
    pub inbound_max_bytes: usize,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            smtp_url: String::new(),
            from: String::new(),
            unanswered_minutes: 5,
            visitor_delay_minutes: 5,
            max_attempts: 8,
            reply_domain: String::new(),
            inbound_listen: None,
            inbound_max_bytes: 2 * 1024 * 1024,
        }
    }
}

impl EmailConfig {
    pub fn enabled(&self) -> bool {
        !self.smtp_url.is_empty()
    }

    /// Whether visitors may answer mails by email.
    pub fn takes_replies(&self) -> bool {
        self.enabled() && !self.reply_domain.is_empty() && self.inbound_listen.is_some()
    }
}

impl EmailConfig {
    /// The relay's URL without its user and password.
    pub fn redacted_smtp_url(&self) -> String {
        match self.smtp_url.split_once('@') {
            Some((scheme_user, host)) => match scheme_user.split_once("://") {
                Some((scheme, _)) => format!("{scheme}://***@{host}"),
                None => "***".to_owned(),
            },
            None => self.smtp_url.clone(),
        }
    }
}

impl fmt::Debug for EmailConfig {
    /// The relay's password never reaches a log or `mychat check`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.redacted_smtp_url();
        f.debug_struct("EmailConfig")
            .field("smtp_url", &url)
            .field("from", &self.from)
            .field("unanswered_minutes", &self.unanswered_minutes)
            .field("visitor_delay_minutes", &self.visitor_delay_minutes)
            .field("max_attempts", &self.max_attempts)
            .field("reply_domain", &self.reply_domain)
            .field("inbound_listen", &self.inbound_listen)
            .field("inbound_max_bytes", &self.inbound_max_bytes)
            .finish()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Days the audit log keeps an entry.
    pub retention_days: u32,
}

/// Web Push to agents' devices (VAPID, RFC 8292).
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    pub enabled: bool,
    /// Who push services may contact about our pushes: a `mailto:` or
    /// `https:` URL. Empty: the appliance's own URL.
    pub subject: String,
    /// base64url of a P-256 private key; empty means a key generated on
    /// first run and kept in the data dir.
    pub vapid_private_key: String,
    /// Allow push endpoints on loopback and private addresses, and plain
    /// http (a push service on the same host or network; tests).
    pub allow_private_endpoints: bool,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            enabled: true,
            subject: String::new(),
            vapid_private_key: String::new(),
            allow_private_endpoints: false,
        }
    }
}

impl fmt::Debug for PushConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushConfig")
            .field("enabled", &self.enabled)
            .field("subject", &self.subject)
            .field(
                "vapid_private_key",
                &if self.vapid_private_key.is_empty() {
                    "(generated)"
                } else {
                    "(redacted)"
                },
            )
            .field("allow_private_endpoints", &self.allow_private_endpoints)
            .finish()
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention_days: 365,
        }
    }
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            allow_private_targets: false,
            disable_after_hours: 5 * 24,
            keep_deliveries_days: 30,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    #[default]
    Embedded,
    Postgres,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::Embedded,
            url: String::new(),
            max_batch: 2048,
            min_free_mb: 16,
            expiry_interval_secs: 60,
            retention_interval_secs: 3600,
            presence_ttl_secs: 30,
        }
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("access_token_ttl_secs", &self.access_token_ttl_secs)
            .field("refresh_token_ttl_days", &self.refresh_token_ttl_days)
            .field("invite_ttl_hours", &self.invite_ttl_hours)
            .field(
                "jwt_secret",
                &if self.jwt_secret.is_empty() {
                    "(generated)"
                } else {
                    "(redacted)"
                },
            )
            .finish()
    }
}

impl fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsConfig")
            .field(
                "token",
                &if self.token.is_empty() {
                    "(none: loopback only)"
                } else {
                    "(redacted)"
                },
            )
            .finish()
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("public_url", &self.public_url)
            .field("registration", &self.registration)
            .field("demo", &self.demo)
            .field("http", &self.http)
            .field("tls", &self.tls)
            .field("auth", &self.auth)
            .field("limits", &self.limits)
            .field("store", &self.store)
            .field("webhooks", &self.webhooks)
            .field("audit", &self.audit)
            .field("metrics", &self.metrics)
            .field("log", &self.log)
            .field("email", &self.email)
            .field("push", &self.push)
            .finish()
    }
}

impl fmt::Debug for StoreConfig {
    /// The database's password never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("backend", &self.backend)
            .field("url", &self.redacted_url())
            .field("max_batch", &self.max_batch)
            .field("min_free_mb", &self.min_free_mb)
            .field("expiry_interval_secs", &self.expiry_interval_secs)
            .field("retention_interval_secs", &self.retention_interval_secs)
            .field("presence_ttl_secs", &self.presence_ttl_secs)
            .finish()
    }
}

impl StoreConfig {
    /// `url` without its password, for `mychat check` and logs.
    pub fn redacted_url(&self) -> String {
        match reqwest::Url::parse(&self.url) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some(REDACTED));
                u.to_string()
            }
            Ok(u) => u.to_string(),
            // The key=value form: only its password's value is hidden.
            Err(_) => self
                .url
                .split_whitespace()
                .map(|kv| match kv.split_once('=') {
                    Some(("password", _)) => format!("password={REDACTED}"),
                    _ => kv.to_owned(),
                })
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// Stands in for a secret in `mychat check`.
pub const REDACTED: &str = "<redacted>";

impl Config {
    /// The effective configuration as TOML, for `mychat check`: every key
    /// with its value, secrets replaced by [`REDACTED`] (an empty one stays
    /// empty: it means "generated into the data dir").
    pub fn to_redacted_toml(&self) -> Result<String, toml::ser::Error> {
        let mut shown = self.clone();
        for secret in [
            &mut shown.auth.jwt_secret,
            &mut shown.metrics.token,
            &mut shown.push.vapid_private_key,
        ] {
            if !secret.is_empty() {
                *secret = REDACTED.to_owned();
            }
        }
        shown.email.smtp_url = self.email.redacted_smtp_url();
        if !shown.store.url.is_empty() {
            shown.store.url = self.store.redacted_url();
        }
        toml::to_string(&shown)
    }
}

/// Values given on the command line; they win over every other layer.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Figment(Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads the layered configuration. `file` is `--config`; without it the
    /// system file is read when it exists.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        // The layers the user wrote, kept apart from the defaults so that
        // "was http.listen set?" can be answered.
        let mut figment = Figment::new();
        match file {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError::Invalid(format!(
                        "config file {} does not exist",
                        path.display()
                    )));
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            None if Path::new(SYSTEM_CONFIG).exists() => {
                figment = figment.merge(Toml::file_exact(SYSTEM_CONFIG));
            }
            None => {}
        }
        figment = figment.merge(
            Env::prefixed("MYCHAT_")
                .ignore(NOT_CONFIG_ENV)
                .split("__")
                .lowercase(true),
        );
        if let Some(dir) = &overrides.data_dir {
            figment = figment.merge(Serialized::default("data_dir", dir));
        }
        if let Some(listen) = overrides.listen {
            figment = figment.merge(Serialized::default("http.listen", listen));
        }
        let listen_set = figment.contains("http.listen");
        let mut config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(figment)
            .extract()
            .map_err(|e| ConfigError::Figment(Box::new(e)))?;
        if config.tls.mode == TlsMode::Acme && !listen_set {
            config.http.listen = ACME_HTTP_LISTEN;
        }
        for domain in &mut config.tls.domains {
            *domain = domain.trim().to_ascii_lowercase();
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde's types cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir must not be empty");
        }
        let has_scheme =
            self.public_url.starts_with("http://") || self.public_url.starts_with("https://");
        if !self.public_url.is_empty() && !has_scheme {
            return invalid("public_url must start with http:// or https://");
        }
        if self.http.body_limit < 1024 {
            return invalid("http.body_limit must be at least 1024 bytes");
        }
        if self.http.request_timeout_secs == 0 {
            return invalid("http.request_timeout_secs must be at least 1");
        }
        if self.auth.access_token_ttl_secs < 30 {
            return invalid("auth.access_token_ttl_secs must be at least 30");
        }
        if !self.auth.jwt_secret.is_empty() && self.auth.jwt_secret.len() < 32 {
            return invalid("auth.jwt_secret must be at least 32 characters");
        }
        let subject = &self.push.subject;
        if !subject.is_empty()
            && !subject.starts_with("mailto:")
            && !subject.starts_with("https://")
        {
            return invalid("push.subject must be a mailto: or https:// URL");
        }
        let l = &self.limits;
        for (key, budget) in [
            (
                "upload_bytes_per_ip_per_hour",
                l.upload_bytes_per_ip_per_hour,
            ),
            (
                "upload_bytes_per_space_per_hour",
                l.upload_bytes_per_space_per_hour,
            ),
        ] {
            if !(1024..=MAX_UPLOAD_BUDGET).contains(&budget) {
                return Err(ConfigError::Invalid(format!(
                    "limits.{key} must be between 1024 and {MAX_UPLOAD_BUDGET} bytes"
                )));
            }
        }
        if l.sockets_per_visitor == 0 || l.max_sockets == 0 {
            return invalid("limits.sockets_per_visitor and limits.max_sockets must be at least 1");
        }
        if !self.metrics.token.is_empty() && self.metrics.token.len() < 16 {
            return invalid("metrics.token must be at least 16 characters");
        }
        if self.store.max_batch == 0 {
            return invalid("store.max_batch must be at least 1");
        }
        match self.store.backend {
            StoreBackend::Postgres if self.store.url.is_empty() => {
                return invalid("store.url is required with store.backend = \"postgres\"");
            }
            StoreBackend::Postgres => {
                if let Err(e) = self.store.url.parse::<tokio_postgres::Config>() {
                    return invalid(&format!("store.url: {e}"));
                }
            }
            StoreBackend::Embedded => {}
        }
        if self.email.enabled() {
            if let Err(e) = crate::email::transport(&self.email.smtp_url) {
                return invalid(&format!("email.smtp_url: {e}"));
            }
            if crate::email::sender(&self.email.from).is_err() {
                return invalid(
                    "email.from must be an address, e.g. \"My Shop <chat@example.com>\"",
                );
            }
            if self.email.max_attempts == 0 {
                return invalid("email.max_attempts must be at least 1");
            }
            let domain_ok = self.email.reply_domain.is_empty()
                || crate::email::recipient(None, &format!("reply@{}", self.email.reply_domain))
                    .is_some();
            if !domain_ok {
                return invalid("email.reply_domain must be a domain, e.g. reply.example.com");
            }
        }
        match self.tls.mode {
            TlsMode::Off => {}
            TlsMode::Manual => {
                if self.tls.cert_file.is_empty() || self.tls.key_file.is_empty() {
                    return invalid("tls.mode = \"manual\" needs tls.cert_file and tls.key_file");
                }
            }
            TlsMode::Acme => {
                if self.tls.domains.is_empty() {
                    return invalid("tls.mode = \"acme\" needs tls.domains");
                }
                if let Some(bad) = self.tls.domains.iter().find(|d| !is_dns_name(d)) {
                    return Err(ConfigError::Invalid(format!(
                        "tls.domains: {bad:?} is not a DNS name (wildcards and IP addresses cannot be ordered)"
                    )));
                }
                if !self.tls.email.is_empty() && !self.tls.email.contains('@') {
                    return invalid("tls.email must be an email address");
                }
                let directory = &self.tls.acme_directory;
                if !directory.starts_with("https://") {
                    return invalid("tls.acme_directory must be an https:// URL");
                }
                if self.tls.acme_challenges.is_empty() {
                    return invalid("tls.acme_challenges must name at least one challenge type");
                }
                if self.tls.acme_retry_min_secs == 0
                    || self.tls.acme_retry_max_secs < self.tls.acme_retry_min_secs
                {
                    return invalid(
                        "tls.acme_retry_min_secs must be at least 1 and at most tls.acme_retry_max_secs",
                    );
                }
            }
        }
        if self.tls.mode != TlsMode::Off && self.tls.listen == self.http.listen {
            return invalid("tls.listen and http.listen must differ");
        }
        Ok(())
    }

    /// The base URL when serving HTTPS on `bound`: `public_url`, else the
    /// first domain (with the port unless it is 443), else the address.
    pub fn tls_base_url(&self, bound: SocketAddr) -> String {
        if !self.public_url.is_empty() {
            return self.public_url.trim_end_matches('/').to_owned();
        }
        let host = match self.tls.domains.first() {
            Some(domain) => domain.clone(),
            None => bound.ip().to_string(),
        };
        match bound.port() {
            443 => format!("https://{host}"),
            port => format!("https://{host}:{port}"),
        }
    }

    /// The base URL links and snippets point at.
    pub fn base_url(&self, bound: SocketAddr) -> String {
        if !self.public_url.is_empty() {
            return self.public_url.trim_end_matches('/').to_owned();
        }
        if self.tls.mode != TlsMode::Off
            && let Some(domain) = self.tls.domains.first()
        {
            return format!("https://{domain}");
        }
        format!("http://{bound}")
    }
}

/// A name an ACME CA can validate: letters, digits and hyphens in dot-separated
/// labels, no wildcard, not an IP address.
fn is_dns_name(name: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    name.len() <= 253
        && name.contains('.')
        && name.parse::<std::net::IpAddr>().is_err()
        && name.split('.').all(label_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flatten(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
        if let toml::Value::Table(table) = value {
            for (k, v) in table {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if v.is_table() {
                    flatten(&key, v, out);
                } else {
                    out.push(key);
                }
            }
        }
    }

    /// The example file must name every key of the config type and no other.
    #[test]
    fn the_database_password_never_shows() {
        let mut c = Config::default();
        c.store.backend = StoreBackend::Postgres;
        c.store.url = "postgres://chat:s3cret@db.internal:5432/mychat".into();
        assert!(c.validate().is_ok());
        let shown = c.to_redacted_toml().unwrap();
        assert!(
            !shown.contains("s3cret") && shown.contains("db.internal"),
            "{shown}"
        );
        assert!(!format!("{c:?}").contains("s3cret"));
        c.store.url = "host=db.internal user=chat password=s3cret dbname=mychat".into();
        assert!(c.validate().is_ok());
        assert!(!c.to_redacted_toml().unwrap().contains("s3cret"));
        c.store.url = String::new();
        assert!(c.validate().is_err(), "the postgres backend needs a url");
    }

    #[test]
    fn example_config_documents_every_key() {
        let example = include_str!("../config.example.toml");
        // Every key appears commented out: uncomment to read them all.
        let uncommented: String = example
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .filter(|l| {
                let t = l.trim_start();
                t.starts_with('[') || (t.contains(" = ") && !t.starts_with('#'))
            })
            .collect::<Vec<_>>()
            .join("\n");
        let parsed: toml::Value = toml::from_str(&uncommented).expect("example parses");
        let mut documented = Vec::new();
        flatten("", &parsed, &mut documented);
        let defaults = toml::Value::try_from(Config::default()).unwrap();
        let mut actual = Vec::new();
        flatten("", &defaults, &mut actual);
        // Keys unset by default (TOML has no "none") are documented too.
        actual.push("email.inbound_listen".to_owned());
        // Empty lists serialize without a type; still a key.
        documented.sort();
        actual.sort();
        assert_eq!(documented, actual, "config.example.toml is out of step");
        // And the example, as written, is a valid config.
        let _: Config = toml::from_str(&uncommented).expect("example is a valid config");
    }

    #[test]
    fn unknown_keys_are_reported() {
        let err = toml::from_str::<Config>("[http]\nlisten = \"127.0.0.1:1\"\nlistn = 3\n");
        assert!(err.unwrap_err().to_string().contains("listn"));
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    fn load_toml(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, text).unwrap();
        Config::load(Some(&file), &Overrides::default())
    }

    #[test]
    fn acme_mode_listens_for_http_on_port_80_unless_told_otherwise() {
        let acme = "[tls]\nmode = \"acme\"\ndomains = [\"Chat.Example.com\"]\n";
        let config = load_toml(acme).unwrap();
        assert_eq!(config.http.listen, ACME_HTTP_LISTEN);
        assert_eq!(config.tls.domains, ["chat.example.com"]);
        let explicit = format!("{acme}[http]\nlisten = \"127.0.0.1:8081\"\n");
        let config = load_toml(&explicit).unwrap();
        assert_eq!(config.http.listen, "127.0.0.1:8081".parse().unwrap());
        let off = load_toml("").unwrap();
        assert_eq!(off.http.listen, HttpConfig::default().listen);
    }

    #[test]
    fn acme_domains_must_be_orderable_names() {
        for bad in ["*.example.com", "127.0.0.1", "localhost", "a_b.example.com"] {
            let text = format!("[tls]\nmode = \"acme\"\ndomains = [\"{bad}\"]\n");
            assert!(load_toml(&text).is_err(), "{bad} was accepted");
        }
    }
}
