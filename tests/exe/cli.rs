//! The real `mychat` binary: version, config checks and layering, first run,
//! admin create, graceful stop, its open-file limit and its log formats.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::mychat;

#[test]
fn version_prints_the_version_commit_build_date_and_target() {
    let out = mychat().arg("version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("mychat {}", env!("CARGO_PKG_VERSION")));
    let field = |name: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    assert!(!field("commit").is_empty());
    assert!(chrono::NaiveDate::parse_from_str(field("built"), "%Y-%m-%d").is_ok());
    assert!(field("target").starts_with("x86_64-"), "{text}");
}

#[test]
fn check_prints_the_effective_configuration_as_toml_without_secrets() {
    let dir = crate::harness::scratch::temp_dir();
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        "[auth]\njwt_secret = \"jwt-secret-0123456789-0123456789-xyz\"\n[metrics]\ntoken = \"metrics-token-0123456789\"\n",
    )
    .unwrap();
    let out = mychat()
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        !shown.contains("jwt-secret-0123") && !shown.contains("metrics-token-0123"),
        "{shown}"
    );
    // What it prints is a configuration file that loads to the same values.
    let parsed: mychat::Config = toml::from_str(&shown).expect("valid TOML of the config");
    assert_eq!(parsed.auth.jwt_secret, "<redacted>");
    assert_eq!(parsed.metrics.token, "<redacted>");
    assert_eq!(parsed.http, mychat::Config::default().http);
}

#[test]
fn completions_and_manual_pages_come_from_the_command_definitions() {
    for (shell, marker) in [
        ("bash", "complete -F _mychat"),
        ("zsh", "#compdef mychat"),
        ("fish", "complete -c mychat"),
    ] {
        let out = mychat().args(["completions", shell]).output().unwrap();
        assert!(out.status.success());
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("reset-password"), "{shell}");
    }
    let out = mychat().arg("man").output().unwrap();
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && page.contains(".TH mychat 1"),
        "{page}"
    );
    let dir = crate::harness::scratch::temp_dir();
    let out = mychat()
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let create = std::fs::read_to_string(dir.path().join("mychat-admin-create.1")).unwrap();
    assert!(create.contains("password\\-stdin"), "{create}");
}

#[test]
fn every_flag_has_help_text() {
    for args in [
        &["serve", "--help"][..],
        &["check", "--help"],
        &["admin", "create", "--help"],
        &["admin", "reset-password", "--help"],
        &["backup", "--help"],
        &["completions", "--help"],
    ] {
        let out = mychat().args(args).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        for line in help.lines().filter(|l| l.trim_start().starts_with("--")) {
            let described = line
                .trim_start()
                .split_once("  ")
                .map_or("", |(_, help)| help.trim());
            assert!(!described.is_empty(), "{args:?}: {line}");
        }
    }
}

#[test]
fn check_reports_unknown_keys() {
    let dir = crate::harness::scratch::temp_dir();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, "[http]\nlisten = \"127.0.0.1:9000\"\nlistne = 1\n").unwrap();
    let out = mychat()
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listne"), "{err}");
}

#[test]
fn unknown_environment_keys_are_reported() {
    let out = mychat()
        .arg("check")
        .env("MYCHAT_HTTP__LISTNE", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("listne"));
}

#[test]
fn layers_apply_in_order_file_env_flags() {
    let dir = crate::harness::scratch::temp_dir();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, "registration = \"closed\"\n[http]\nlisten = \"127.0.0.1:9001\"\n[limits]\nedit_window_secs = 5\n").unwrap();
    let check = |env: &[(&str, &str)], flags: &[&str]| {
        let mut cmd = mychat();
        cmd.args(["check", "--config"]).arg(&file).args(flags);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let file_only = check(&[], &[]);
    assert!(file_only.contains("listen = \"127.0.0.1:9001\""));
    assert!(file_only.contains("registration = \"closed\""));
    assert!(file_only.contains("edit_window_secs = 5"));
    let env = check(
        &[
            ("MYCHAT_HTTP__LISTEN", "127.0.0.1:9002"),
            ("MYCHAT_REGISTRATION", "open"),
        ],
        &[],
    );
    assert!(env.contains("127.0.0.1:9002"));
    assert!(env.contains("registration = \"open\""));
    let flag = check(
        &[("MYCHAT_DATA_DIR", "/tmp/from-env")],
        &["--data-dir", "/tmp/from-flag"],
    );
    assert!(flag.contains("/tmp/from-flag"));
}

#[test]
fn the_example_config_is_valid() {
    let out = mychat()
        .args([
            "check",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `mychat serve` on a free port; returns the child and base URL.
fn serve(data: &std::path::Path, extra_env: &[(&str, &str)]) -> (Child, String, Vec<String>) {
    let mut cmd = mychat();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("MYCHAT_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = vec![];
    let base = loop {
        let line = lines.next().expect("server printed its address").unwrap();
        printed.push(line.clone());
        if let Some(url) = line.strip_prefix("My-Chat is running at ") {
            break url.trim().to_owned();
        }
    };
    // The banner ends with an empty line.
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.is_empty() {
            break;
        }
        printed.push(line);
    }
    (child, base, printed)
}

fn stop(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "graceful stop exits 0, got {exit:?}");
}

#[tokio::test]
async fn first_run_serves_the_demo_and_its_credentials_work() {
    let dir = crate::harness::scratch::temp_dir();
    let (child, base, printed) = serve(dir.path(), &[]);
    let text = printed.join("\n");
    let login_line = printed
        .iter()
        .find(|l| l.contains("demo login:"))
        .unwrap_or_else(|| panic!("{text}"));
    let creds = login_line.split("demo login:").nth(1).unwrap().trim();
    let (email, password) = creds.split_once(" / ").unwrap();

    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let demo = client.get(format!("{base}/demo")).send().await.unwrap();
    assert_eq!(demo.status(), 200);
    let page = demo.text().await.unwrap();
    assert!(page.contains("data-widget-key="));
    assert!(page.contains("/widget.js"));
    let login = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    // The demo organization does not close first-run registration.
    let open: serde_json::Value = client
        .get(format!("{base}/api/v1/auth/registration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(open["open"], true);
    stop(child);

    // A second start reuses the data and creates no second demo.
    let (child, _, printed) = serve(dir.path(), &[]);
    assert!(!printed.iter().any(|l| l.contains("demo login:")));
    stop(child);
}

#[tokio::test]
async fn the_demo_can_be_turned_off() {
    let dir = crate::harness::scratch::temp_dir();
    let (child, base, printed) = serve(dir.path(), &[("MYCHAT_DEMO", "false")]);
    assert!(!printed.iter().any(|l| l.contains("demo login:")));
    let demo = reqwest::get(format!("{base}/demo")).await.unwrap();
    assert_eq!(demo.status(), 404);
    stop(child);
}

#[tokio::test]
async fn admin_create_makes_an_owner_who_can_log_in() {
    let dir = crate::harness::scratch::temp_dir();
    let out = mychat()
        .args([
            "admin",
            "create",
            "--organization",
            "Acme",
            "--email",
            "boss@acme.test",
            "--name",
            "Boss",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("MYCHAT_ADMIN_PASSWORD", "a long password")
        .env("MYCHAT_DEMO", "false")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A new password from standard input, never the command line.
    let mut reset = mychat()
        .args([
            "admin",
            "reset-password",
            "--email",
            "boss@acme.test",
            "--password-stdin",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("MYCHAT_DEMO", "false")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = reset.stdin.take().unwrap();
        stdin.write_all(b"another long password\n").unwrap();
    }
    let out = reset.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without a terminal and without --password-stdin there is no password.
    let out = mychat()
        .args([
            "admin",
            "reset-password",
            "--email",
            "boss@acme.test",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--password-stdin"));

    let (child, base, _) = serve(dir.path(), &[("MYCHAT_REGISTRATION", "closed")]);
    let login = |password: &str| {
        reqwest::Client::new()
            .post(format!("{base}/api/v1/auth/login"))
            .json(&serde_json::json!({"email": "boss@acme.test", "password": password}))
            .send()
    };
    assert_eq!(login("a long password").await.unwrap().status(), 401);
    assert_eq!(login("another long password").await.unwrap().status(), 200);
    stop(child);
}

/// The soft and hard "Max open files" of a running process.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let mut fields = line["Max open files".len()..].split_whitespace();
    (
        fields.next().unwrap().to_owned(),
        fields.next().unwrap().to_owned(),
    )
}

#[test]
fn serve_raises_its_open_file_limit_and_logs_without_colour_codes() {
    use std::os::unix::process::CommandExt;
    let dir = crate::harness::scratch::temp_dir();
    let mut cmd = mychat();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("MYCHAT_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Started the way a default shell starts it: a soft limit of 1,024.
    unsafe {
        cmd.pre_exec(|| {
            let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
            rlimit::setrlimit(rlimit::Resource::NOFILE, 1024.min(hard), hard)
        });
    }
    let mut child = cmd.spawn().unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    // The first log line comes once the server is on its way.
    let first = err.next().expect("a log line").unwrap();
    let (soft, hard) = open_file_limits(child.id());
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(soft, hard, "the soft limit is raised to the hard one");
    assert!(
        !first.contains('\u{1b}'),
        "no colour codes when stderr is not a terminal: {first:?}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = crate::harness::scratch::temp_dir();
    let mut child = mychat()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("MYCHAT_LOG", "info")
        .env("MYCHAT_LOG__FORMAT", "json")
        .env("MYCHAT_DEMO", "false")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    // Read up to the "serving" line: every line before it must parse too.
    let mut seen = Vec::new();
    let serving = loop {
        let line = err.next().expect("a log line").unwrap();
        let event: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?} after {seen:?}"));
        seen.push(line);
        if event["fields"]["message"] == "serving" {
            break event;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(serving["level"], "INFO", "{serving}");
    assert!(serving["timestamp"].is_string(), "{serving}");
    assert!(serving["fields"]["url"].is_string(), "{serving}");
}

#[tokio::test]
async fn email_test_sends_through_the_relay_and_check_refuses_a_bad_one() {
    let sink = crate::harness::smtp::SmtpSink::start().await;
    let dir = crate::harness::scratch::temp_dir();
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        format!(
            "[email]\nsmtp_url = \"{}\"\nfrom = \"Acme <chat@acme.test>\"\n",
            sink.url()
        ),
    )
    .unwrap();
    let out = mychat()
        .args(["email", "test", "ops@acme.test", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mails = sink.wait_for(1).await;
    assert_eq!(mails[0].to, "ops@acme.test");
    assert_eq!(mails[0].from, "chat@acme.test");
    assert_eq!(mails[0].subject, "My-Chat test mail");
    // `check` shows the relay without its password.
    std::fs::write(
        &file,
        "[email]\nsmtp_url = \"smtp://user:s3cret@127.0.0.1:2525\"\nfrom = \"chat@acme.test\"\n",
    )
    .unwrap();
    let out = mychat()
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !shown.contains("s3cret"), "{shown}");
    for bad in [
        "[email]\nsmtp_url = \"http://mail.example.com\"\nfrom = \"chat@acme.test\"\n",
        "[email]\nsmtp_url = \"smtp://127.0.0.1:2525\"\nfrom = \"nobody\"\n",
    ] {
        std::fs::write(&file, bad).unwrap();
        let out = mychat()
            .args(["check", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("email."),
            "{bad}"
        );
    }
}
