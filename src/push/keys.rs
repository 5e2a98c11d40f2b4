//! The appliance's VAPID key pair (RFC 8292): a P-256 key that signs a
//! short JWT on every push, so push services know the pushes come from the
//! server the browser subscribed with. Given in `push.vapid_private_key`,
//! or generated on first run and kept in the data dir (0600). Changing it
//! makes every browser subscription useless until the app subscribes again.

use std::path::Path;

use base64::Engine;
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use serde::Serialize;

use crate::push::model::B64URL;

const KEY_FILE: &str = "vapid.key";
/// How long a push's JWT is good for (RFC 8292 allows up to 24 hours).
const JWT_SECS: i64 = 12 * 3600;

pub struct VapidKeys {
    encoding: EncodingKey,
    /// base64url of the uncompressed public point: the app's
    /// `applicationServerKey` and the header's `k`.
    public: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    exp: i64,
    sub: &'a str,
}

impl VapidKeys {
    /// The configured key, else the key file in `data_dir` (created on
    /// first run).
    pub fn load(data_dir: &Path, configured: &str) -> std::io::Result<VapidKeys> {
        let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
        if !configured.is_empty() {
            return VapidKeys::from_private(configured).ok_or_else(|| {
                invalid("push.vapid_private_key is not a base64url P-256 private key")
            });
        }
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => VapidKeys::from_private(text.trim())
                .ok_or_else(|| invalid("vapid.key is not a base64url P-256 private key")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret = generate();
                let text = format!("{}\n", B64URL.encode(secret.to_bytes()));
                crate::fsutil::write_private(&path, text.as_bytes())?;
                Ok(VapidKeys::from_secret(&secret))
            }
            Err(e) => Err(e),
        }
    }

    /// A key from base64url of its 32-byte private scalar (what
    /// `web-push generate-vapid-keys` and similar tools print).
    pub fn from_private(b64: &str) -> Option<VapidKeys> {
        let bytes = B64URL.decode(b64.trim()).ok()?;
        let secret = p256::SecretKey::from_slice(&bytes).ok()?;
        Some(VapidKeys::from_secret(&secret))
    }

    fn from_secret(secret: &p256::SecretKey) -> VapidKeys {
        let der = secret
            .to_pkcs8_der()
            .expect("a P-256 key encodes as PKCS#8");
        let point = secret.public_key().to_encoded_point(false);
        VapidKeys {
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            public: B64URL.encode(point.as_bytes()),
        }
    }

    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The `Authorization` header of a push to `endpoint`:
    /// `vapid t=<ES256 JWT for the endpoint's origin>, k=<public key>`.
    pub fn authorization(&self, endpoint: &reqwest::Url, subject: &str) -> Result<String, String> {
        let audience = endpoint.origin().ascii_serialization();
        let claims = Claims {
            aud: &audience,
            exp: Utc::now().timestamp() + JWT_SECS,
            sub: subject,
        };
        let jwt = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.encoding)
            .map_err(|e| format!("signing the VAPID token: {e}"))?;
        Ok(format!("vapid t={jwt}, k={}", self.public))
    }
}

/// A fresh private key from the system's randomness.
fn generate() -> p256::SecretKey {
    loop {
        // Almost every 32-byte string is a valid scalar; retry the rest.
        if let Ok(secret) = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
            return secret;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_kept_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = VapidKeys::load(dir.path(), "").unwrap();
        let again = VapidKeys::load(dir.path(), "").unwrap();
        assert_eq!(first.public_key(), again.public_key());
        assert_eq!(B64URL.decode(first.public_key()).unwrap().len(), 65);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_configured_key_wins_and_a_bad_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let configured = B64URL.encode([9u8; 32]);
        let keys = VapidKeys::load(dir.path(), &configured).unwrap();
        let same = VapidKeys::from_private(&configured).unwrap();
        assert_eq!(keys.public_key(), same.public_key());
        assert!(!dir.path().join(KEY_FILE).exists());
        assert!(VapidKeys::load(dir.path(), "not-a-key").is_err());
        assert!(VapidKeys::from_private(&B64URL.encode([0u8; 32])).is_none());
    }

    #[test]
    fn the_header_carries_a_token_and_the_public_key() {
        let keys = VapidKeys::from_private(&B64URL.encode([9u8; 32])).unwrap();
        let url = reqwest::Url::parse("https://push.example:8443/send/abc").unwrap();
        let header = keys.authorization(&url, "mailto:ops@example.com").unwrap();
        let (t, k) = header
            .strip_prefix("vapid t=")
            .and_then(|r| r.split_once(", k="))
            .unwrap();
        assert_eq!(k, keys.public_key());
        let claims: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(t.split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert_eq!(claims["aud"], "https://push.example:8443");
        assert_eq!(claims["sub"], "mailto:ops@example.com");
    }
}
