//! Short-lived access tokens: HS256 only, with `exp`, `iss` and `aud`
//! checked. The key is generated on first run and kept in the data dir.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::accounts::model::{Agent, Role};
use crate::ids::{AgentId, OrgId};

const ISSUER: &str = "mychat";
const AUDIENCE: &str = "mychat-agent";
const KEY_FILE: &str = "jwt.key";
/// Seconds a token stays valid past its `exp` (clocks of two machines).
const LEEWAY_SECS: u64 = 5;
/// Tokens remembered as genuine; the memory is emptied when it is full.
const REMEMBERED: usize = 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: AgentId,
    pub org: OrgId,
    pub role: Role,
    /// The agent's token version at issue time.
    pub ver: u64,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: u64,
    /// Tokens whose signature and claims were checked, by their exact
    /// text: an agent's next request with the same token skips the HMAC,
    /// the base64 and the JSON. Only a token that passed the full check
    /// gets in, and its `exp` is still checked on every use.
    genuine: Mutex<HashMap<Box<str>, Claims>>,
}

impl JwtKeys {
    /// The configured secret, else the key file in `data_dir` (created 0600
    /// on first run).
    pub fn load(data_dir: &Path, configured: &str, ttl_secs: u64) -> std::io::Result<JwtKeys> {
        let secret = if configured.is_empty() {
            let path = data_dir.join(KEY_FILE);
            match std::fs::read(&path) {
                Ok(bytes) if bytes.len() >= 32 => bytes,
                _ => {
                    let key = crate::auth::tokens::generate().into_bytes();
                    crate::fsutil::write_private(&path, &key)?;
                    key
                }
            }
        } else {
            configured.as_bytes().to_vec()
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        // `exp` is checked by `verify_at` against the time it is given, so
        // the check can be tried with a clock that jumps.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        Ok(JwtKeys {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            validation,
            ttl_secs,
            genuine: Mutex::new(HashMap::new()),
        })
    }

    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    pub fn issue(&self, agent: &Agent) -> String {
        self.issue_at(agent, Utc::now().timestamp())
    }

    /// A token issued at `now` (Unix seconds).
    pub fn issue_at(&self, agent: &Agent, now: i64) -> String {
        let claims = Claims {
            sub: agent.id,
            org: agent.organization_id,
            role: agent.role,
            ver: agent.token_version,
            iat: now,
            exp: now + self.ttl_secs as i64,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    pub fn verify(&self, token: &str) -> Option<Claims> {
        self.verify_at(token, Utc::now().timestamp())
    }

    /// The token's claims if it is genuine and not expired at `now` (Unix
    /// seconds, the wall clock of this moment). Only `exp` counts: a token
    /// issued "in the future" (the clock stepped back since) stays good
    /// until its `exp`, so a jump moves an expiry by at most the jump.
    pub fn verify_at(&self, token: &str, now: i64) -> Option<Claims> {
        let remembered = self.remembered().get(token).cloned();
        let claims = match remembered {
            Some(claims) => claims,
            None => {
                let claims =
                    jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
                        .ok()?
                        .claims;
                let mut genuine = self.remembered();
                if genuine.len() >= REMEMBERED {
                    genuine.clear();
                }
                genuine.insert(token.into(), claims.clone());
                claims
            }
        };
        (claims.exp + LEEWAY_SECS as i64 >= now).then_some(claims)
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Claims>> {
        self.genuine.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(keys: &JwtKeys, iat: i64) -> String {
        let claims = Claims {
            sub: AgentId::new(),
            org: OrgId::new(),
            role: Role::Agent,
            ver: 1,
            iat,
            exp: iat + keys.ttl_secs as i64,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap()
    }

    /// Keys of a configured secret, tokens valid for 900 s.
    fn keys_with(secret: &str) -> JwtKeys {
        JwtKeys::load(Path::new("/nonexistent"), secret, 900).unwrap()
    }

    #[test]
    fn a_clock_jump_moves_a_token_expiry_by_at_most_the_jump() {
        let keys = keys_with("a test secret of enough length!!");
        let t = 1_800_000_000;
        let issued = token(&keys, t);
        let leeway = LEEWAY_SECS as i64;
        // The clock stepped back an hour after issue: still good, and the
        // token's end stays where it was in the clock's time.
        assert!(keys.verify_at(&issued, t - 3600).is_some());
        assert!(keys.verify_at(&issued, t + 900 + leeway).is_some());
        assert!(keys.verify_at(&issued, t + 900 + leeway + 1).is_none());
        // Forward by less than the lifetime: still good; past it: expired,
        // which is early by the jump and never more.
        assert!(keys.verify_at(&issued, t + 600).is_some());
        assert!(keys.verify_at(&issued, t + 3600).is_none());
        // A token issued while the clock was an hour ahead, checked after
        // it stepped back: good, not refused as "from the future".
        let ahead = token(&keys, t + 3600);
        assert!(keys.verify_at(&ahead, t).is_some());
        // Forged tokens stay forged whatever the time.
        let other = keys_with("another secret of enough length!");
        assert!(other.verify_at(&issued, t).is_none());
    }

    #[test]
    fn a_remembered_token_is_matched_by_its_whole_text_and_the_memory_stays_bounded() {
        let keys = keys_with("a test secret of enough length!!");
        let t = 1_800_000_000;
        let issued = token(&keys, t);
        assert!(keys.verify_at(&issued, t).is_some());
        assert!(keys.remembered().contains_key(issued.as_str()));
        // The same claims under a signature one character off, and the
        // genuine text with something after it, are refused.
        let mut forged = issued.clone().into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert!(keys.verify_at(&forged, t).is_none());
        assert!(keys.verify_at(&format!("{issued}x"), t).is_none());
        assert!(keys.verify_at(&issued[..issued.len() - 1], t).is_none());
        assert_eq!(keys.remembered().len(), 1);
        // Remembered or not, an expired token is refused.
        assert!(
            keys.verify_at(&issued, t + 900 + LEEWAY_SECS as i64 + 1)
                .is_none()
        );
        for i in 0..REMEMBERED + 10 {
            assert!(keys.verify_at(&token(&keys, t + i as i64), t).is_some());
        }
        assert!(keys.remembered().len() <= REMEMBERED);
    }
}
