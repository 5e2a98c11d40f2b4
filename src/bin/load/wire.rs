//! The senders' HTTP/1.1 client for `http` runs: one keep-alive
//! connection per sender, a request written whole in one system call, an
//! answer read by its `Content-Length`. A general client (connection
//! pool, redirects, retries, a header map per request) had about a fifth
//! of a 128-sender run's CPU samples, CPU the server then lacked;
//! pgbench, the other side of the comparison, is as lean. `--reqwest`
//! sends through the general client instead.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Fallible;

/// Largest answer head the client reads.
const MAX_HEAD: usize = 16 * 1024;

/// One sender's connection to `http://host:port`, opened on first use and
/// again after a failure.
pub struct Wire {
    addr: String,
    host: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

/// An answer: its status and body.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Wire {
    /// A client of `base` (`http://host:port`); `None` for any other scheme
    /// or an address with a path (a server behind a prefix), which the
    /// general client serves.
    pub fn new(base: &str) -> Option<Wire> {
        let rest = base.strip_prefix("http://")?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() || !path.is_empty() {
            return None;
        }
        let addr = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.contains(']'))
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Some(Wire {
            addr,
            host: authority.to_owned(),
            stream: None,
            buf: Vec::with_capacity(4096),
        })
    }

    /// `POST path` with a JSON body and a bearer token. A failed exchange
    /// drops the connection, so the next one starts on a fresh one.
    pub async fn post(&mut self, path: &str, token: &str, body: &[u8]) -> Fallible<Answer> {
        let request = self.request(path, token, body);
        let result = self.exchange(&request).await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn request(&self, path: &str, token: &str, body: &[u8]) -> Vec<u8> {
        let mut r = Vec::with_capacity(256 + token.len() + body.len());
        r.extend_from_slice(b"POST ");
        r.extend_from_slice(path.as_bytes());
        r.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        r.extend_from_slice(self.host.as_bytes());
        r.extend_from_slice(b"\r\nAuthorization: Bearer ");
        r.extend_from_slice(token.as_bytes());
        r.extend_from_slice(b"\r\nContent-Type: application/json\r\nContent-Length: ");
        r.extend_from_slice(body.len().to_string().as_bytes());
        r.extend_from_slice(b"\r\n\r\n");
        r.extend_from_slice(body);
        r
    }

    async fn exchange(&mut self, request: &[u8]) -> Fallible<Answer> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(&self.addr)
                .await
                .map_err(|e| format!("connect {}: {e}", self.addr))?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            self.buf.clear();
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().expect("connected above");
        stream
            .write_all(request)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let (status, head, length) = loop {
            if let Some(parsed) = parse_head(&self.buf)? {
                break parsed;
            }
            if self.buf.len() > MAX_HEAD {
                return Err("answer head too long".into());
            }
            read_more(stream, &mut self.buf).await?;
        };
        while self.buf.len() < head + length {
            read_more(stream, &mut self.buf).await?;
        }
        let body = self.buf[head..head + length].to_vec();
        self.buf.drain(..head + length);
        Ok(Answer { status, body })
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Fallible<()> {
    buf.reserve(4096);
    match stream.read_buf(buf).await {
        Ok(0) => Err("the server closed the connection".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("read: {e}")),
    }
}

/// The answer's status, head length and body length, once the head is
/// whole. Every answer of the API carries a `Content-Length`; one without
/// it (chunked) is an error here.
fn parse_head(buf: &[u8]) -> Fallible<Option<(u16, usize, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad answer: {e}")),
    };
    let status = response.code.ok_or("answer without a status")?;
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
        .ok_or("answer without a Content-Length")?;
    Ok(Some((status, head, length)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_read_once_whole_with_its_body_length() {
        let answer = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        let head = answer.len() - 2;
        assert_eq!(parse_head(&answer[..10]).unwrap(), None);
        assert_eq!(parse_head(answer).unwrap(), Some((201, head, 2)));
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(parse_head(chunked).is_err());
    }

    #[test]
    fn only_plain_http_addresses_are_served() {
        let wire = Wire::new("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (wire.addr.as_str(), wire.host.as_str()),
            ("127.0.0.1:8080", "127.0.0.1:8080")
        );
        assert_eq!(
            Wire::new("http://example.test/").unwrap().addr,
            "example.test:80"
        );
        assert!(Wire::new("https://example.test").is_none());
        assert!(Wire::new("http://example.test/chat").is_none());
        assert!(Wire::new("http:///").is_none());
    }
}
