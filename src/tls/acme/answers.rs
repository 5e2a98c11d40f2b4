//! Challenge answers of an order another node makes: with a shared
//! database the CA may reach any node, and a node that does not hold the
//! answer itself finds it where the ordering node published it
//! ([`Storage::save_pending`]), at the moment of the request.

use std::sync::Arc;

use rustls::sign::CertifiedKey;

use super::order;
use super::storage::Storage;

/// The HTTP-01 answer for `token` that the ordering node published.
pub async fn http01(storage: &Storage, token: &str) -> Option<String> {
    // Tokens are base64url; anything else is not worth a query.
    let plausible = !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !plausible {
        return None;
    }
    match storage.load_pending().await {
        Ok(pending) => pending.http01.get(token).cloned(),
        Err(e) => {
            tracing::debug!(error = %e, "the shared challenge answers could not be read");
            None
        }
    }
}

/// The TLS-ALPN-01 certificate for `domain`, made from the answer the
/// ordering node published.
pub async fn tls_alpn01(storage: &Storage, domain: &str) -> Option<Arc<CertifiedKey>> {
    let pending = match storage.load_pending().await {
        Ok(pending) => pending,
        Err(e) => {
            tracing::debug!(error = %e, "the shared challenge answers could not be read");
            return None;
        }
    };
    let digest = hex::decode(pending.tls_alpn01.get(domain)?).ok()?;
    match order::alpn_certificate(domain, &digest) {
        Ok(key) => Some(key),
        Err(e) => {
            tracing::debug!(error = %e, %domain, "no TLS-ALPN-01 answer");
            None
        }
    }
}
