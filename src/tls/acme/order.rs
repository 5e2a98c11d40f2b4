//! One certificate order: answer each authorization's challenge (HTTP-01
//! through the HTTP listener, TLS-ALPN-01 through the TLS listener, on this
//! node and, with a shared database, on every node), wait for the CA,
//! finalize with a fresh key, download the chain.

use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier, NewOrder,
    Order, OrderStatus, RetryPolicy,
};
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::CertifiedKey;

use super::AcmeError;
use super::storage::{Pending, Storage};
use crate::config::AcmeChallenge;
use crate::tls::{Certs, provider};

/// How long the CA gets to validate, and then to issue.
const CA_PATIENCE: Duration = Duration::from_secs(120);

/// A certificate as the CA issued it.
pub struct Issued {
    pub key_pem: String,
    pub chain_pem: String,
}

/// Orders a certificate for exactly `domains`, answering with the first
/// type in `challenges` that each authorization offers.
pub async fn run(
    account: &Account,
    domains: &[String],
    challenges: &[AcmeChallenge],
    replaces: Option<CertificateIdentifier<'_>>,
    certs: &Certs,
    storage: &Storage,
) -> Result<Issued, AcmeError> {
    let identifiers: Vec<Identifier> = domains.iter().cloned().map(Identifier::Dns).collect();
    let mut new_order = NewOrder::new(&identifiers);
    if let Some(replaces) = replaces {
        new_order = new_order.replaces(replaces);
    }
    let mut order = account.new_order(&new_order).await?;
    tracing::info!(order = order.url(), names = ?domains, "ACME order created");
    let result = solve(&mut order, domains, challenges, certs, storage).await;
    // Answers are only ever given for the order in flight.
    certs.clear_challenges();
    if let Err(e) = storage.clear_pending().await {
        // The next order replaces them.
        tracing::warn!(error = %e, "the shared challenge answers were not cleared");
    }
    result?;
    let key_pem = order.finalize().await?;
    let chain_pem = order
        .poll_certificate(&RetryPolicy::new().timeout(CA_PATIENCE))
        .await?;
    Ok(Issued { key_pem, chain_pem })
}

async fn solve(
    order: &mut Order,
    domains: &[String],
    challenges: &[AcmeChallenge],
    certs: &Certs,
    storage: &Storage,
) -> Result<(), AcmeError> {
    let mut pending = Pending::default();
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            status => {
                return Err(AcmeError::Order(format!(
                    "authorization for {} is {status:?}",
                    authz.identifier()
                )));
            }
        }
        let domain = match authz.identifier().identifier {
            Identifier::Dns(name) => name.clone(),
            other => return Err(AcmeError::Order(format!("unexpected identifier {other:?}"))),
        };
        if !domains.contains(&domain) {
            return Err(AcmeError::Order(format!(
                "the CA asked to validate {domain}, which was not ordered"
            )));
        }
        let kind = challenges
            .iter()
            .copied()
            .find(|c| authz.challenges.iter().any(|o| o.r#type == acme_type(*c)))
            .ok_or_else(|| {
                AcmeError::Order(format!("the CA offers none of {challenges:?} for {domain}"))
            })?;
        let mut challenge = authz
            .challenge(acme_type(kind))
            .expect("the offered challenge is there");
        let key_authorization = challenge.key_authorization();
        match kind {
            AcmeChallenge::Http01 => {
                certs.add_http_challenge(&challenge.token, key_authorization.as_str());
                pending.http01.insert(
                    challenge.token.clone(),
                    key_authorization.as_str().to_owned(),
                );
            }
            AcmeChallenge::TlsAlpn01 => {
                let digest = key_authorization.digest();
                certs.add_alpn_challenge(&domain, alpn_certificate(&domain, digest.as_ref())?);
                pending
                    .tls_alpn01
                    .insert(domain.clone(), hex::encode(digest.as_ref()));
            }
        }
        // Before the CA is told to validate: it may reach any node.
        storage.save_pending(&pending).await?;
        tracing::info!(%domain, challenge = ?kind, "answering ACME challenge");
        challenge.set_ready().await?;
    }
    let status = order
        .poll_ready(&RetryPolicy::new().timeout(CA_PATIENCE))
        .await?;
    if status != OrderStatus::Ready {
        return Err(AcmeError::Order(format!(
            "the order is {status:?}: {}",
            why_invalid(order).await
        )));
    }
    Ok(())
}

/// The CA's own words on failed challenges, for the log.
async fn why_invalid(order: &mut Order) -> String {
    let mut problems = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        let Ok(state) = authz.refresh().await else {
            continue;
        };
        for challenge in &state.challenges {
            if let Some(error) = &challenge.error {
                problems.push(format!(
                    "{} ({:?}): {error}",
                    state.identifier(),
                    challenge.r#type
                ));
            }
        }
    }
    if problems.is_empty() {
        "no challenge error given".into()
    } else {
        problems.join("; ")
    }
}

fn acme_type(challenge: AcmeChallenge) -> ChallengeType {
    match challenge {
        AcmeChallenge::Http01 => ChallengeType::Http01,
        AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
    }
}

/// The self-signed certificate that answers TLS-ALPN-01 (RFC 8737): the
/// domain as its only name and the key authorization's digest in the
/// acmeIdentifier extension.
pub(crate) fn alpn_certificate(
    domain: &str,
    digest: &[u8],
) -> Result<Arc<CertifiedKey>, AcmeError> {
    let rcgen = |e: rcgen::Error| AcmeError::Order(format!("challenge certificate: {e}"));
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()]).map_err(rcgen)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(rcgen)?;
    let cert = params.self_signed(&key).map_err(rcgen)?;
    let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    // Not `CertifiedKey::from_der`: its key check parses the certificate
    // with webpki, which refuses the critical acmeIdentifier extension.
    let key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| AcmeError::Order(format!("challenge certificate: {e}")))?;
    Ok(Arc::new(CertifiedKey::new(vec![cert.der().clone()], key)))
}
