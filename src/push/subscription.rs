//! A push subscription as the agent app sends it, checked for its shape
//! before anything is stored (the endpoint's address is checked by the
//! service, which may resolve it).

use base64::Engine;

use crate::error::{AppError, AppResult};
use crate::push::model::{B64URL, MAX_ENDPOINT, Words};

/// A subscription, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct NewSubscription {
    pub endpoint: reqwest::Url,
    pub p256dh: String,
    pub auth: String,
    pub locale: String,
}

impl NewSubscription {
    /// `allow_http`: plain-http endpoints too (`push.allow_private_endpoints`).
    pub fn parse(
        endpoint: &str,
        p256dh: &str,
        auth: &str,
        locale: Option<&str>,
        allow_http: bool,
    ) -> AppResult<NewSubscription> {
        if endpoint.len() > MAX_ENDPOINT {
            return Err(AppError::validation(format!(
                "endpoint must have at most {MAX_ENDPOINT} characters"
            )));
        }
        let url = crate::webhooks::target::parse_url(endpoint)
            .map_err(|_| AppError::validation("endpoint must be an https URL with a host"))?;
        if url.scheme() != "https" && !allow_http {
            return Err(AppError::validation("endpoint must be an https URL"));
        }
        let point = B64URL
            .decode(p256dh.trim())
            .map_err(|_| AppError::validation("keys.p256dh must be base64url"))?;
        if point.len() != 65 || p256::PublicKey::from_sec1_bytes(&point).is_err() {
            return Err(AppError::validation(
                "keys.p256dh must be an uncompressed P-256 public key (65 bytes)",
            ));
        }
        let secret = B64URL
            .decode(auth.trim())
            .map_err(|_| AppError::validation("keys.auth must be base64url"))?;
        if secret.len() != 16 {
            return Err(AppError::validation("keys.auth must be 16 bytes"));
        }
        Ok(NewSubscription {
            endpoint: url,
            p256dh: B64URL.encode(point),
            auth: B64URL.encode(secret),
            locale: Words::of(locale.unwrap_or_default()).code.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn browser_key() -> String {
        let secret = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
            &secret.public_key(),
            false,
        );
        B64URL.encode(point.as_bytes())
    }

    #[test]
    fn a_subscription_needs_https_a_real_key_and_a_16_byte_secret() {
        let key = browser_key();
        let auth = B64URL.encode([1u8; 16]);
        let ok =
            NewSubscription::parse("https://push.example/x", &key, &auth, Some("pl-PL"), false)
                .unwrap();
        assert_eq!(ok.locale, "pl");
        // Padded base64url is the same key.
        let padded = format!("{auth}==");
        assert!(
            NewSubscription::parse("https://push.example/x", &key, &padded, None, false).is_ok()
        );
        for (endpoint, p256dh, secret) in [
            ("http://push.example/x", key.as_str(), auth.as_str()),
            ("ftp://push.example/x", &key, &auth),
            ("https://user:pw@push.example/x", &key, &auth),
            ("not a url", &key, &auth),
            ("https://push.example/x", "AAAA", &auth),
            ("https://push.example/x", &B64URL.encode([4u8; 65]), &auth),
            ("https://push.example/x", "*not base64*", &auth),
            ("https://push.example/x", &key, &B64URL.encode([1u8; 15])),
            ("https://push.example/x", &key, "%%%"),
        ] {
            assert!(
                NewSubscription::parse(endpoint, p256dh, secret, None, false).is_err(),
                "{endpoint} {p256dh} {secret}"
            );
        }
        assert!(NewSubscription::parse("http://127.0.0.1:9/x", &key, &auth, None, true).is_ok());
        let long = format!("https://push.example/{}", "a".repeat(MAX_ENDPOINT));
        assert!(NewSubscription::parse(&long, &key, &auth, None, false).is_err());
    }
}
