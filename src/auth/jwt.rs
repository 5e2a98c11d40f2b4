//! Short-lived access tokens: HS256 only, with `exp`, `iss` and `aud`
//! checked. The key is generated on first run and kept in the data dir.

use std::path::Path;

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::accounts::model::{Agent, Role};
use crate::ids::{AgentId, OrgId};

const ISSUER: &str = "mychat";
const AUDIENCE: &str = "mychat-agent";
const KEY_FILE: &str = "jwt.key";

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
        validation.leeway = 5;
        Ok(JwtKeys {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            validation,
            ttl_secs,
        })
    }

    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    pub fn issue(&self, agent: &Agent) -> String {
        let now = Utc::now().timestamp();
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
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|d| d.claims)
    }
}
