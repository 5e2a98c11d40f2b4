//! Request ids: every request has one in `x-request-id` — the client's, when
//! it sent a usable one, else a new UUID — echoed in the response and named
//! in every log line of the request, so a support ticket quoting it finds
//! the log lines. The layers are tower-http's; this module only decides
//! what a usable id is.

use axum::extract::Request;
use axum::http::HeaderValue;

/// The header that carries the id.
pub const HEADER: &str = "x-request-id";

/// Longest id taken from a client.
const MAX_LEN: usize = 128;

/// Whether a client's id may be used: short, and only characters that
/// cannot break a log line or a header.
pub fn usable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
}

/// Drops an unusable id (or several), so that a new one is made.
pub async fn keep_usable(mut request: Request) -> Request {
    let headers = request.headers_mut();
    let values: Vec<&HeaderValue> = headers.get_all(HEADER).iter().collect();
    if values.len() > 1 || values.first().is_some_and(|v| !usable(v)) {
        headers.remove(HEADER);
    }
    request
}

/// The request's id, for its log span.
pub fn of<B>(request: &axum::http::Request<B>) -> &str {
    request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_break_a_log_line_are_not_taken() {
        for ok in [
            "abc-123",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "req:1.2_x",
        ] {
            assert!(usable(&HeaderValue::from_static(ok)), "{ok}");
        }
        let long = "a".repeat(MAX_LEN + 1);
        for bad in ["", "a b", "a\"b", "ä", long.as_str()] {
            let value = HeaderValue::from_bytes(bad.as_bytes()).unwrap();
            assert!(!usable(&value), "{bad}");
        }
    }
}
