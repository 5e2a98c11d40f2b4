//! A real SMTP server for email tests: Debian's aiosmtpd, started on a free
//! loopback port with its Maildir handler, so every mail the appliance
//! sends lands as a file the test reads and parses.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::{WAIT, eventually, free_port};

pub struct SmtpSink {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

/// One received mail, decoded.
#[derive(Debug, Clone)]
pub struct Received {
    /// The envelope recipient.
    pub rcpt: String,
    pub from: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The raw message as it arrived.
    pub raw: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        let msg = mail_parser::MessageParser::default().parse(self.raw.as_bytes())?;
        msg.header_raw(name).map(|v| v.trim().to_owned())
    }
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        Self::start_on(free_port()).await
    }

    /// On a given port (a restarted sink keeps its address).
    pub async fn start_on(port: u16) -> SmtpSink {
        let dir = super::scratch::temp_dir();
        let child = Command::new("/usr/bin/aiosmtpd")
            .args(["-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("maildir"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts (Debian package python3-aiosmtpd)");
        eventually(WAIT, "the SMTP server to listen", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        SmtpSink { child, dir, port }
    }

    /// `email.smtp_url` for this server (plain SMTP on loopback).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn new_dir(&self) -> PathBuf {
        self.dir.path().join("maildir").join("new")
    }

    /// Every mail received so far, oldest first.
    pub fn mails(&self) -> Vec<Received> {
        let Ok(entries) = std::fs::read_dir(self.new_dir()) else {
            return Vec::new();
        };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
            .flatten()
            .map(|e| {
                let at = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (at, e.path())
            })
            .collect();
        files.sort();
        files.into_iter().filter_map(|(_, p)| parse(&p)).collect()
    }

    /// Waits until `n` mails have arrived; all of them.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        eventually(WAIT, &format!("{n} mail(s)"), || async move {
            let mails = self.mails();
            (mails.len() >= n).then_some(mails)
        })
        .await
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse(path: &std::path::Path) -> Option<Received> {
    let raw = std::fs::read_to_string(path).ok()?;
    let msg = mail_parser::MessageParser::default().parse(raw.as_bytes())?;
    let addr = |a: Option<&mail_parser::Address>| {
        a.and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or_default()
            .to_owned()
    };
    Some(Received {
        rcpt: msg
            .header_raw("X-RcptTo")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        from: addr(msg.from()),
        to: addr(msg.to()),
        subject: msg.subject().unwrap_or_default().to_owned(),
        text: msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
        html: msg.body_html(0).map(|t| t.into_owned()).unwrap_or_default(),
        raw,
    })
}
