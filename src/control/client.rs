//! The commands' side of the control socket: send one request line, copy
//! the answer's payload.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// The socket's name inside the data dir.
pub const SOCKET: &str = "mychat.sock";

/// How a request went.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// No server listens: the caller may do the work itself.
    NoServer,
    /// The payload was copied.
    Done,
    /// The server refused, with its reason.
    Refused(String),
}

/// Sends `command` to the server of `data_dir` and copies the payload of
/// an `ok` answer into `out`.
pub fn request(data_dir: &Path, command: &str, out: &mut impl Write) -> std::io::Result<Answer> {
    let Ok(mut stream) = UnixStream::connect(data_dir.join(SOCKET)) else {
        return Ok(Answer::NoServer);
    };
    stream.write_all(format!("{command}\n").as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    match status.trim_end() {
        "ok" => {
            std::io::copy(&mut reader, out)?;
            Ok(Answer::Done)
        }
        other => Ok(Answer::Refused(
            other.strip_prefix("error: ").unwrap_or(other).to_owned(),
        )),
    }
}
