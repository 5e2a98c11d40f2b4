//! The `mychat` command: parse arguments, load config, start logging, call
//! the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use mychat::accounts::model::Role;
use mychat::accounts::service::{self, NewAgent};
use mychat::config::{Config, LogFormat, Overrides, TlsMode};
use mychat::store::Reader;
use mychat::{App, TlsListeners};
use tracing_subscriber::EnvFilter;

/// mimalloc in every build: musl's allocator slows the server under
/// concurrent load, and glibc's keeps what every argon2 hash (19 MiB) used
/// in its per-thread arenas, so a server that only logs agents in grows by
/// hundreds of MiB. Figures in packaging/README.md and docs/BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "mychat",
    version,
    about = "Self-hosted live-chat appliance",
    long_about = "My-Chat: a chat widget for websites, an agent app, a REST and WebSocket API \
and its own embedded database in one executable. Without a command it serves.",
    after_help = "Documentation: https://github.com/mychat/mychat#operations"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Clone, Default)]
struct ConfigArgs {
    /// Config file (default: /etc/mychat/config.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory for the database and state (overrides `data_dir`).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
        /// HTTP listen address, e.g. 127.0.0.1:8080 (overrides `http.listen`).
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Validate the configuration and print it as TOML (secrets redacted).
    Check {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Print the version, commit, build date and target.
    Version,
    /// Write a consistent backup of the data dir to FILE (while the server
    /// runs, or with it stopped).
    Backup {
        #[command(flatten)]
        config: ConfigArgs,
        /// The backup file to create (it must not exist).
        file: PathBuf,
    },
    /// Restore a backup into an empty data dir (with the server stopped).
    Restore {
        #[command(flatten)]
        config: ConfigArgs,
        /// A file written by `mychat backup`.
        file: PathBuf,
    },
    /// Administration of accounts (with the server stopped).
    Admin {
        #[command(subcommand)]
        action: AdminCommand,
    },
    /// Create or migrate the tables of the PostgreSQL database in
    /// `store.url` (each node also does it at start); with `--from-redb`,
    /// copy an appliance's embedded database into it first.
    Migrate {
        #[command(flatten)]
        config: ConfigArgs,
        /// The data dir of an appliance on the embedded database (stopped):
        /// its database and signing keys are copied. Running it again after
        /// an interruption finishes the copy.
        #[arg(long, value_name = "DATA_DIR")]
        from_redb: Option<PathBuf>,
    },
    /// Email through the configured relay.
    Email {
        #[command(subcommand)]
        action: EmailCommand,
    },
    /// Print a shell completion script, e.g.
    /// `mychat completions bash > /etc/bash_completion.d/mychat`.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `mychat man | man -l -`, or
    /// write a page for every command into a directory.
    Man {
        /// Write mychat.1, mychat-serve.1, … into DIR instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum EmailCommand {
    /// Send a test mail to ADDRESS now, through `email.smtp_url`.
    Test {
        #[command(flatten)]
        config: ConfigArgs,
        /// Where the test mail goes.
        address: String,
    },
}

/// Where a new password comes from: never the command line, which other
/// users of the machine can read.
#[derive(Args)]
struct PasswordArgs {
    /// Read the password from the first line of standard input instead of
    /// asking for it on the terminal (for scripts; MYCHAT_ADMIN_PASSWORD
    /// also works).
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an organization and its owner. The password is asked for on
    /// the terminal (not echoed), or read with --password-stdin.
    Create {
        #[command(flatten)]
        config: ConfigArgs,
        /// The organization's name.
        #[arg(long, value_name = "NAME")]
        organization: String,
        /// The owner's email address, used to log in.
        #[arg(long, value_name = "ADDRESS")]
        email: String,
        /// The owner's display name.
        #[arg(long, value_name = "NAME", default_value = "Owner")]
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Set a new password for an agent and end its sessions. The password is
    /// asked for on the terminal (not echoed), or read with --password-stdin.
    ResetPassword {
        #[command(flatten)]
        config: ConfigArgs,
        /// The agent's email address.
        #[arg(long, value_name = "ADDRESS")]
        email: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
}

/// The new password: standard input's first line, MYCHAT_ADMIN_PASSWORD,
/// or asked twice on the terminal without echo.
fn read_password(args: &PasswordArgs) -> Result<String, String> {
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else if let Ok(password) = std::env::var("MYCHAT_ADMIN_PASSWORD") {
        password
    } else {
        let ask = |prompt: &str| {
            rpassword::prompt_password(prompt)
                .map_err(|e| format!("cannot ask for the password ({e}); use --password-stdin"))
        };
        let first = ask("New password: ")?;
        if ask("Again: ")? != first {
            return Err("the passwords differ".to_owned());
        }
        first
    };
    if password.is_empty() {
        return Err("the password is empty".to_owned());
    }
    Ok(password)
}

/// `mychat version`: what a bug report needs.
fn version_text() -> String {
    let built = env!("BUILD_EPOCH")
        .parse::<i64>()
        .ok()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map_or_else(
            || "unknown".to_owned(),
            |t| t.format("%Y-%m-%d").to_string(),
        );
    let allocator = if cfg!(target_env = "musl") {
        "mimalloc"
    } else {
        "system"
    };
    format!(
        "mychat {}\ncommit: {}\nbuilt: {built}\ntarget: {}\nallocator: {allocator}\ntls: rustls (ring)",
        env!("CARGO_PKG_VERSION"),
        mychat::metrics::COMMIT,
        env!("BUILD_TARGET"),
    )
}

/// Writes generated output to stdout; a closed pipe (`| head`) is no error
/// worth a panic.
fn print_bytes(bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.to_string()),
        _ => Ok(()),
    }
}

/// The configuration as `mychat check` prints it.
fn check(config: &Config) -> Result<(), String> {
    let toml = config.to_redacted_toml().map_err(|e| e.to_string())?;
    println!(
        "# configuration is valid; secrets are shown as \"{}\"",
        mychat::config::REDACTED
    );
    print!("{toml}");
    Ok(())
}

fn load(args: &ConfigArgs, listen: Option<std::net::SocketAddr>) -> Result<Config, String> {
    let overrides = Overrides {
        data_dir: args.data_dir.clone(),
        listen,
    };
    Config::load(args.config.as_deref(), &overrides).map_err(|e| e.to_string())
}

/// Logs go to stderr (the journal, under systemd), as text or, with
/// `log.format = "json"`, one JSON object per line.
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("MYCHAT_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => logs.json().init(),
        // Colour codes only for a person at a terminal, never into the journal.
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

/// Every socket is an open file: the soft limit (often 1,024) would cap the
/// server near a thousand sockets, so it is raised to the hard limit, as
/// Go's runtime does.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // One crypto provider for every TLS connection, chosen here: ring.
    mychat::tls::install_crypto_provider();
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve {
        config: ConfigArgs::default(),
        listen: None,
    });
    let result = match command {
        Command::Version => {
            println!("{}", version_text());
            Ok(())
        }
        Command::Check { config } => load(&config, None).and_then(|c| check(&c)),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "mychat", &mut script);
            print_bytes(&script)
        }
        Command::Man { dir: Some(dir) } => clap_mangen::generate_to(Cli::command(), &dir)
            .map_err(|e| format!("cannot write the manual pages into {}: {e}", dir.display())),
        Command::Man { dir: None } => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .map_err(|e| e.to_string())
                .and_then(|()| print_bytes(&page))
        }
        Command::Serve { config, listen } => match load(&config, listen) {
            Ok(config) => {
                init_logging(config.log.format);
                raise_open_file_limit();
                serve(config).await
            }
            Err(e) => Err(e),
        },
        Command::Backup { config, file } => match load(&config, None) {
            Ok(config) => backup(config, file).await,
            Err(e) => Err(e),
        },
        Command::Migrate { config, from_redb } => match load(&config, None) {
            Ok(config) => migrate(config, from_redb).await,
            Err(e) => Err(e),
        },
        Command::Restore { config, file } => match load(&config, None) {
            Ok(config) => restore(config, file).await,
            Err(e) => Err(e),
        },
        Command::Admin { action } => {
            init_logging(LogFormat::Text);
            admin(action).await
        }
        Command::Email {
            action: EmailCommand::Test { config, address },
        } => match load(&config, None) {
            Ok(config) if !config.email.enabled() => {
                Err("email is off: set email.smtp_url and email.from".to_owned())
            }
            Ok(config) => mychat::email::worker::send_now(&config.email, &address)
                .await
                .map(|()| println!("sent a test mail to {address}"))
                .map_err(|e| format!("the test mail was not sent: {e}")),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mychat: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn bind(listen: std::net::SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))
}

async fn serve(config: Config) -> Result<(), String> {
    let listener = bind(config.http.listen).await?;
    let https = match config.tls.mode {
        TlsMode::Off => None,
        _ => Some(bind(config.tls.listen).await?),
    };
    let shutdown = shutdown_signal()?;
    ignore_hangup()?;
    let app = App::build(config).await.map_err(|e| e.to_string())?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let base = match &https {
        Some(https) => {
            let https = https.local_addr().map_err(|e| e.to_string())?;
            app.state().config.tls_base_url(https)
        }
        None => app.state().config.base_url(bound),
    };
    tracing::info!(version = env!("CARGO_PKG_VERSION"), url = %base, "serving");
    println!("My-Chat is running at {base}");
    println!("  agent app:  {base}/app");
    println!("  demo page:  {base}/demo");
    if let Some(demo) = &app.demo {
        println!("  demo login: {} / {}", demo.email, demo.password);
        println!("  demo widget key: {}", demo.widget_key);
    }
    if service::registration_open(app.state()).unwrap_or(false) {
        println!("  register your organization at {base}/app");
    }
    // An empty line ends the banner, for scripts that read it.
    println!();
    let served = match https {
        Some(https) => {
            let listeners = TlsListeners {
                http: listener,
                https,
            };
            app.serve_tls(listeners, shutdown).await
        }
        None => app.serve(listener, shutdown).await,
    };
    served.map_err(|e| e.to_string())
}

async fn backup(config: Config, file: PathBuf) -> Result<(), String> {
    let dir = config.data_dir;
    let dest = file.clone();
    let manifest = tokio::task::spawn_blocking(move || mychat::backup::backup(&dir, &dest))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("backup failed: {e}"))?;
    println!(
        "backup written to {} and verified: {} messages, {} database entries, {} files",
        file.display(),
        manifest.database.messages,
        manifest.database.entries,
        manifest.files.len()
    );
    Ok(())
}

async fn migrate(config: Config, from: Option<PathBuf>) -> Result<(), String> {
    if config.store.url.is_empty() {
        return Err("set store.url (MYCHAT_STORE__URL) to the PostgreSQL database".to_owned());
    }
    let url = config.store.url.clone();
    let shown = config.store.redacted_url();
    let Some(dir) = from else {
        let layout =
            tokio::task::spawn_blocking(move || mychat::store::Store::migrate_postgres(&url))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("migrate failed: {e}"))?;
        println!("{shown}: tables at layout {layout}");
        return Ok(());
    };
    let source = dir.join(mychat::DB_FILE);
    if !source.exists() {
        return Err(format!("{} holds no database", dir.display()));
    }
    // The signing keys go along, so sessions and reply addresses stay good.
    let mut secrets = Vec::new();
    for (name, file) in [("jwt", "jwt.key"), ("mail", "mail.key")] {
        if let Ok(key) = std::fs::read(dir.join(file)) {
            secrets.push((name, key));
        }
    }
    // Files every node must serve: attachments (and thumbnails) under
    // their storage keys, agent pictures under "avatar:<agent>", ACME's
    // documents under "acme:<file name>".
    let mut files = Vec::new();
    let attachments = mychat::attachments::files::root(&dir);
    for folder in std::fs::read_dir(&attachments)
        .into_iter()
        .flatten()
        .flatten()
    {
        if folder.file_name() == "tmp" {
            continue;
        }
        for file in std::fs::read_dir(folder.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let key = file.file_name().to_string_lossy().into_owned();
            if mychat::attachments::files::path_of(&attachments, &key).is_some() {
                files.push((key, file.path()));
            }
        }
    }
    for file in std::fs::read_dir(dir.join("avatars"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = file.file_name().to_string_lossy().into_owned();
        if let Some(agent) = name.strip_suffix(".png") {
            files.push((format!("avatar:{agent}"), file.path()));
        }
    }
    // The ACME account and certificate: every node serves that certificate,
    // and the node that orders renews it with that account.
    let acme = mychat::tls::acme::storage::dir(&dir);
    for name in [
        mychat::tls::acme::storage::ACCOUNT_FILE,
        mychat::tls::acme::storage::CERTIFICATE_FILE,
        mychat::tls::acme::storage::ISSUER_FILE,
    ] {
        let path = acme.join(name);
        if path.exists() {
            files.push((mychat::tls::acme::storage::blob_key(name), path));
        }
    }
    let report = tokio::task::spawn_blocking(move || {
        mychat::store::Store::import_into_postgres(&source, &url, &secrets, &files)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("migrate failed: {e}"))?;
    for (table, n) in report.tables.iter().filter(|(_, n)| *n > 0) {
        println!("{table}: {n}");
    }
    println!(
        "copied {} entries and {} files into {shown}, every table's count verified",
        report.entries, report.files
    );
    Ok(())
}

async fn restore(config: Config, file: PathBuf) -> Result<(), String> {
    let dir = config.data_dir;
    let shown = dir.clone();
    let manifest = tokio::task::spawn_blocking(move || mychat::backup::restore(&file, &dir))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("restore failed: {e}"))?;
    println!(
        "restored into {}: {} messages, {} database entries, {} files (backup of {})",
        shown.display(),
        manifest.database.messages,
        manifest.database.entries,
        manifest.files.len(),
        manifest.created_at
    );
    Ok(())
}

/// Listens for SIGTERM and Ctrl-C from now on (before the banner is
/// printed, so a supervisor's early SIGTERM is a graceful stop too).
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()> + Send + 'static, String> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot listen for SIGTERM: {e}"))?;
    Ok(async move {
        #[cfg(unix)]
        let term = term.recv();
        #[cfg(not(unix))]
        let term = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term => {},
        }
        tracing::info!("shutting down");
    })
}

/// SIGHUP (`systemctl reload`) must never stop the server: in
/// `tls.mode = "manual"` it reloads the certificate files, otherwise there
/// is nothing to reload.
fn ignore_hangup() -> Result<(), String> {
    #[cfg(unix)]
    {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| format!("cannot listen for SIGHUP: {e}"))?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP received");
            }
        });
    }
    Ok(())
}

async fn open_for_admin(args: &ConfigArgs) -> Result<App, String> {
    let mut config = load(args, None)?;
    config.demo = false;
    App::build(config).await.map_err(|e| e.to_string())
}

async fn admin(action: AdminCommand) -> Result<(), String> {
    match action {
        AdminCommand::Create {
            config,
            organization,
            email,
            name,
            password,
        } => {
            let password = read_password(&password)?;
            let app = open_for_admin(&config).await?;
            let owner = NewAgent::parse(&email, &name, Role::Owner, Some(&password))
                .map_err(|e| e.to_string())?;
            let (org, agent) =
                service::create_organization(app.state(), &organization, owner, false)
                    .await
                    .map_err(|e| e.to_string())?;
            app.state().store.shutdown().await;
            println!(
                "created organization {} ({}) with owner {}",
                org.name, org.id, agent.email
            );
            Ok(())
        }
        AdminCommand::ResetPassword {
            config,
            email,
            password,
        } => {
            let password = read_password(&password)?;
            let app = open_for_admin(&config).await?;
            let agent = app
                .state()
                .store
                .read()
                .map_err(|e| e.to_string())?
                .agent_by_email(&email.trim().to_lowercase())
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no agent with email {email}"))?;
            service::set_password(app.state(), agent.id, &password)
                .await
                .map_err(|e| e.to_string())?;
            app.state().store.shutdown().await;
            println!(
                "password of {} changed; its sessions have ended",
                agent.email
            );
            Ok(())
        }
    }
}
