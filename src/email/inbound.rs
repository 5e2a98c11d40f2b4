//! Visitors answer by email: a small SMTP listener (`email.inbound_listen`,
//! the MX of `email.reply_domain`) that takes mail for one kind of address
//! only — `reply+<token>@<reply_domain>`, each naming one conversation and
//! signed by this appliance — and appends the answer's text to it as the
//! visitor's message. The token is the authority, never the `From` header.
//! Quoted history and signatures are cut; oversize mail is refused.
//! STARTTLS uses the appliance's own certificate when HTTPS is on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mail_parser::MimeHeaders;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::attachments::service as attachments;
use crate::error::{AppError, AppResult};
use crate::ids::ThreadId;
use crate::messages::model::MAX_CONTENT_CHARS;
use crate::messages::send::{self, NewMessage};
use crate::state::AppState;
use crate::store::Reader;
use crate::tasks::Tasks;

/// Longest command line (RFC 5321 allows 512 octets).
const MAX_LINE: usize = 1000;
/// Recipients one mail may have.
const MAX_RCPT: usize = 10;
/// Connections served at once.
const MAX_CONNECTIONS: usize = 64;
/// How long a client may stay silent.
const IDLE: Duration = Duration::from_secs(120);

/// Binds `email.inbound_listen` and serves it on `tasks` until shutdown.
pub async fn start(
    state: &AppState,
    tasks: &mut Tasks,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    let config = &state.config.email;
    let Some(listen) = config.inbound_listen.filter(|_| config.takes_replies()) else {
        return Ok(());
    };
    let listener = TcpListener::bind(listen).await?;
    let bound = listener.local_addr()?;
    let _ = state.mailer.inbound_addr.set(bound);
    tracing::info!(listen = %bound, domain = %config.reply_domain, "taking email replies");
    let state = state.clone();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tasks.spawn("email-inbound", move |mut stop| async move {
        loop {
            let accepted = tokio::select! {
                _ = stop.requested() => break,
                a = listener.accept() => a,
            };
            let Ok((socket, peer)) = accepted else {
                continue;
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                let mut socket = socket;
                let _ = socket.write_all(b"421 too busy, try later\r\n").await;
                continue;
            };
            let (state, tls) = (state.clone(), tls.clone());
            tokio::spawn(async move {
                serve(state, socket, peer, tls).await;
                drop(slot);
            });
        }
    });
    Ok(())
}

async fn serve(
    state: AppState,
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let mut session = Session::new(&state, peer, tls.is_some());
    match session.run(socket, true).await {
        Ok(Some(plain)) => {
            let Some(tls) = tls else { return };
            let acceptor = tokio_rustls::TlsAcceptor::from(tls);
            match acceptor.accept(plain).await {
                Ok(secure) => {
                    let mut session = Session::new(&state, peer, false);
                    let _ = session.run(secure, false).await;
                }
                Err(e) => tracing::debug!(%peer, error = %e, "STARTTLS handshake failed"),
            }
        }
        Ok(None) => {}
        Err(e) => tracing::debug!(%peer, error = %e, "SMTP session ended"),
    }
}

struct Session<'a> {
    state: &'a AppState,
    peer: SocketAddr,
    offers_tls: bool,
    greeted: bool,
    from: Option<String>,
    to: Vec<ThreadId>,
}

/// What DATA read.
enum Data {
    Mail(Vec<u8>),
    TooBig,
}

impl<'a> Session<'a> {
    fn new(state: &'a AppState, peer: SocketAddr, offers_tls: bool) -> Self {
        Session {
            state,
            peer,
            offers_tls,
            greeted: false,
            from: None,
            to: Vec::new(),
        }
    }

    /// Serves one SMTP session; gives the stream back when the client asked
    /// for STARTTLS.
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: S,
        banner: bool,
    ) -> std::io::Result<Option<S>> {
        let mut io = BufReader::new(stream);
        let host = &self.state.config.email.reply_domain;
        if banner {
            reply(&mut io, &format!("220 {host} ESMTP My-Chat")).await?;
        }
        loop {
            let Some(line) = read_line(&mut io).await? else {
                return Ok(None);
            };
            let upper = line.to_ascii_uppercase();
            let verb = upper.split_whitespace().next().unwrap_or("");
            match verb {
                "EHLO" => {
                    self.greeted = true;
                    self.reset();
                    let max = self.state.config.email.inbound_max_bytes;
                    let mut lines = vec![host.to_owned(), format!("SIZE {max}"), "8BITMIME".into()];
                    if self.offers_tls {
                        lines.push("STARTTLS".into());
                    }
                    let n = lines.len();
                    let text: String = lines
                        .iter()
                        .enumerate()
                        .map(|(i, l)| format!("250{}{l}\r\n", if i + 1 == n { ' ' } else { '-' }))
                        .collect();
                    io.write_all(text.as_bytes()).await?;
                    io.flush().await?;
                }
                "HELO" => {
                    self.greeted = true;
                    self.reset();
                    reply(&mut io, &format!("250 {host}")).await?;
                }
                "STARTTLS" if self.offers_tls => {
                    reply(&mut io, "220 ready to start TLS").await?;
                    return Ok(Some(io.into_inner()));
                }
                "MAIL" => {
                    let answer = self.mail(&line);
                    reply(&mut io, answer).await?;
                }
                "RCPT" => {
                    let answer = self.rcpt(&line);
                    reply(&mut io, &answer).await?;
                }
                "DATA" => {
                    if self.from.is_none() || self.to.is_empty() {
                        reply(&mut io, "503 need MAIL and RCPT first").await?;
                        continue;
                    }
                    reply(&mut io, "354 end with <CRLF>.<CRLF>").await?;
                    let max = self.state.config.email.inbound_max_bytes;
                    let answer = match read_data(&mut io, max).await? {
                        Data::TooBig => "552 message too large".to_owned(),
                        Data::Mail(raw) => self.deliver(&raw).await,
                    };
                    self.reset();
                    reply(&mut io, &answer).await?;
                }
                "RSET" => {
                    self.reset();
                    reply(&mut io, "250 OK").await?;
                }
                "NOOP" => reply(&mut io, "250 OK").await?,
                "QUIT" => {
                    reply(&mut io, "221 bye").await?;
                    return Ok(None);
                }
                "VRFY" | "EXPN" => reply(&mut io, "252 not verifying addresses").await?,
                _ => reply(&mut io, "502 command not implemented").await?,
            }
        }
    }

    fn reset(&mut self) {
        self.from = None;
        self.to.clear();
    }

    fn mail(&mut self, line: &str) -> &'static str {
        if !self.greeted {
            return "503 say EHLO first";
        }
        let Some(rest) = strip_prefix_ci(line, "MAIL FROM:") else {
            return "501 syntax: MAIL FROM:<address>";
        };
        let max = self.state.config.email.inbound_max_bytes;
        let declared = rest
            .split_whitespace()
            .find_map(|p| strip_prefix_ci(p, "SIZE="))
            .and_then(|n| n.parse::<usize>().ok());
        if declared.is_some_and(|n| n > max) {
            return "552 message too large";
        }
        self.from = Some(angle(rest).to_owned());
        self.to.clear();
        "250 OK"
    }

    fn rcpt(&mut self, line: &str) -> String {
        if self.from.is_none() {
            return "503 need MAIL first".into();
        }
        let Some(rest) = strip_prefix_ci(line, "RCPT TO:") else {
            return "501 syntax: RCPT TO:<address>".into();
        };
        if self.to.len() >= MAX_RCPT {
            return "452 too many recipients".into();
        }
        let address = angle(rest);
        let Some((local, domain)) = address.rsplit_once('@') else {
            return "550 no such mailbox".into();
        };
        if !domain.eq_ignore_ascii_case(&self.state.config.email.reply_domain) {
            return "550 relaying is not done here".into();
        }
        let Some(thread) = self.state.mailer.thread_of_reply(local) else {
            return "550 no such mailbox".into();
        };
        let found = self
            .state
            .store
            .read()
            .ok()
            .and_then(|r| r.thread(thread).ok().flatten());
        match found {
            Some(t) if !t.is_object_bound() => {
                if !self.to.contains(&thread) {
                    self.to.push(thread);
                }
                "250 OK".into()
            }
            _ => "550 no such mailbox".into(),
        }
    }

    /// Appends the answer to every addressed conversation.
    async fn deliver(&self, raw: &[u8]) -> String {
        let Some(parsed) = mail_parser::MessageParser::default().parse(raw) else {
            return "554 this is not a mail".into();
        };
        let body = parsed
            .body_text(0)
            .map(|b| b.into_owned())
            .unwrap_or_default();
        let text = reply_text(&body);
        let files: Vec<(String, Vec<u8>)> = parsed
            .attachments()
            .filter(|a| !a.is_message())
            .map(|a| {
                let name = a.attachment_name().unwrap_or("attachment").to_owned();
                (name, a.contents().to_vec())
            })
            .collect();
        if text.is_empty() && files.is_empty() {
            return "554 no answer found above the quoted text".into();
        }
        // A relay that retries delivers the same Message-ID again: one message.
        let digest = Sha256::digest(parsed.message_id().map(str::as_bytes).unwrap_or(raw));
        let client_msg_id = format!("email-{}", hex::encode(&digest[..16]));
        for thread in &self.to {
            match self.append(*thread, &text, &client_msg_id, &files).await {
                Ok(()) => {}
                // The mail itself is the problem: retrying cannot help.
                Err(e @ (AppError::Validation { .. } | AppError::Unprocessable(_))) => {
                    return format!("554 {}", crate::email::one_line(&e.public_message()));
                }
                Err(e) => {
                    tracing::warn!(thread = %thread, error = %e, "an email reply was not stored");
                    return "451 try again later".into();
                }
            }
        }
        "250 OK: thanks".into()
    }

    /// Appends `text` and the files the space's policy takes (the rest
    /// are left out; the text still lands).
    async fn append(
        &self,
        thread: ThreadId,
        text: &str,
        cmid: &str,
        files: &[(String, Vec<u8>)],
    ) -> AppResult<()> {
        let (visitor, space, known) = {
            let read = self.state.store.read()?;
            let t = read.thread(thread)?.ok_or(AppError::NotFound("thread"))?;
            let space = read
                .space(t.chat_space_id)?
                .ok_or(AppError::NotFound("chat space"))?;
            // A redelivered mail is stored already: no second copy of its files.
            let known = read.message_by_client_id(t.visitor_id.0, cmid)?.is_some();
            (t.visitor_id, space, known)
        };
        let mut ids = Vec::new();
        let policy = &space.settings.attachments;
        if policy.allowed && !known {
            for (name, bytes) in files.iter().take(policy.max_count as usize) {
                let scope = attachments::visitor_scope(&space, visitor)?;
                let Ok((name, kind)) = attachments::admit(self.state, &scope, name) else {
                    continue;
                };
                let bytes = bytes.clone();
                let body = futures_util::stream::once(async move { Ok::<_, AppError>(bytes) });
                match attachments::upload(self.state, scope, self.peer.ip(), name, kind, body).await
                {
                    Ok(a) => ids.push(a.id),
                    Err(e) => {
                        tracing::info!(thread = %thread, error = %e, "an emailed file was refused")
                    }
                }
            }
        }
        if text.is_empty() && ids.is_empty() && !known {
            return Err(AppError::validation(
                "nothing to add: no text and no file we take",
            ));
        }
        let new = NewMessage::parse(text, Some(cmid), None, false, ids)?;
        send::from_visitor(self.state, visitor, &space, new).await?;
        Ok(())
    }
}

async fn reply<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    line: &str,
) -> std::io::Result<()> {
    let w = io.get_mut();
    w.write_all(line.as_bytes()).await?;
    w.write_all(b"\r\n").await?;
    w.flush().await
}

/// One command line without its line end; None when the client left.
async fn read_line<S: AsyncRead + Unpin>(io: &mut BufReader<S>) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    let mut limited = AsyncReadExt::take(&mut *io, MAX_LINE as u64 + 2);
    let read = tokio::time::timeout(IDLE, limited.read_until(b'\n', &mut buf))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle"))??;
    if read == 0 {
        return Ok(None);
    }
    if !buf.ends_with(b"\n") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "line too long",
        ));
    }
    let line = String::from_utf8_lossy(&buf);
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

/// The message after DATA, dot-unstuffed, up to `max` bytes (the rest is
/// read and thrown away, so the session stays in step).
async fn read_data<S: AsyncRead + Unpin>(
    io: &mut BufReader<S>,
    max: usize,
) -> std::io::Result<Data> {
    let mut out = Vec::new();
    let mut too_big = false;
    loop {
        let mut line = Vec::new();
        let n = tokio::time::timeout(IDLE, io.read_until(b'\n', &mut line))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle"))??;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "cut off in DATA",
            ));
        }
        let content = line.strip_suffix(b"\n").unwrap_or(&line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content == b"." {
            break;
        }
        let content = content.strip_prefix(b".").unwrap_or(content);
        if out.len() + content.len() + 2 > max {
            too_big = true;
            out.clear();
            continue;
        }
        if !too_big {
            out.extend_from_slice(content);
            out.extend_from_slice(b"\r\n");
        }
    }
    Ok(if too_big {
        Data::TooBig
    } else {
        Data::Mail(out)
    })
}

fn strip_prefix_ci<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s[prefix.len()..].trim_start())
}

/// The address inside `<…>` (or the first word).
fn angle(s: &str) -> &str {
    let s = s.trim();
    match (s.find('<'), s.find('>')) {
        (Some(a), Some(b)) if a < b => &s[a + 1..b],
        _ => s.split_whitespace().next().unwrap_or(""),
    }
}

/// A line that introduces the quoted mail in common clients.
fn is_attribution(line: &str, previous: &str) -> bool {
    let wrote =
        line.ends_with("wrote:") && (line.starts_with("On ") || previous.starts_with("On "));
    wrote
        || (line.starts_with("W dniu ") || previous.starts_with("W dniu "))
            && line.ends_with("pisze:")
        || line.ends_with("написал(а):")
        || line.ends_with("написал:")
        || line.ends_with("написала:")
        || line.starts_with("-----Original Message-----")
        || line.starts_with("________________________________")
}

/// The answer itself: the text above the quoted history and the
/// signature, without quoted lines, at most one message long.
pub fn reply_text(body: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut previous = "";
    for raw in body.lines() {
        let line = raw.trim_end();
        if line == "--" || line == "-- " || raw == "-- " {
            break;
        }
        if is_attribution(line.trim_start(), previous.trim_start()) {
            // A two-line attribution ("On …\nwrote:") started on the line before.
            if !line.trim_start().starts_with("On ") && previous.trim_start().starts_with("On ") {
                kept.pop();
            }
            break;
        }
        previous = line;
        if line.trim_start().starts_with('>') {
            continue;
        }
        kept.push(line);
    }
    while kept.last().is_some_and(|l| l.trim().is_empty()) {
        kept.pop();
    }
    while kept.first().is_some_and(|l| l.trim().is_empty()) {
        kept.remove(0);
    }
    kept.join("\n").chars().take(MAX_CONTENT_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_history_and_signatures_are_cut() {
        let gmail = "Thanks, that works!\n\nOn Mon, 1 Dec 2026 at 10:00, Acme Shop <chat@acme.test> wrote:\n> It ships today.\n";
        assert_eq!(reply_text(gmail), "Thanks, that works!");
        let wrapped =
            "Yes please\nOn Mon, 1 Dec 2026 at 10:00, Acme Shop <chat@acme.test>\nwrote:\n> old";
        assert_eq!(reply_text(wrapped), "Yes please");
        let polish = "Dziękuję\n\nW dniu 1.12.2026 o 10:00 Sklep pisze:\n> stare";
        assert_eq!(reply_text(polish), "Dziękuję");
        let russian = "Спасибо\n\n1 дек. 2026 г., в 10:00, Магазин написал(а):\n> старое";
        assert_eq!(reply_text(russian), "Спасибо");
        let outlook = "Fine.\n\n-----Original Message-----\nFrom: Acme";
        assert_eq!(reply_text(outlook), "Fine.");
        let signed = "See you\n-- \nOla, CEO of Things";
        assert_eq!(reply_text(signed), "See you");
        let inline = "> question?\nanswer\n> another?\nsecond answer";
        assert_eq!(reply_text(inline), "answer\nsecond answer");
        assert_eq!(reply_text("> only quoted\n"), "");
    }

    #[test]
    fn addresses_come_out_of_angle_brackets() {
        assert_eq!(angle(" <a@b.c> SIZE=10"), "a@b.c");
        assert_eq!(angle("a@b.c"), "a@b.c");
        assert_eq!(strip_prefix_ci("mail from:<x>", "MAIL FROM:"), Some("<x>"));
        assert_eq!(strip_prefix_ci("MAIL", "MAIL FROM:"), None);
    }
}
