//! PEM in, rustls keys out; what a certificate says about itself.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::{TlsError, provider};

/// Builds a servable key from a PEM certificate chain (leaf first) and a
/// PEM private key; refuses a key that does not match the leaf.
pub fn certified_key(chain_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid(format!("certificate PEM: {e}")))?;
    if chain.is_empty() {
        return Err(TlsError::Invalid("no certificate in the PEM".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| TlsError::Invalid(format!("private key PEM: {e}")))?;
    Ok(Arc::new(CertifiedKey::from_der(chain, key, &provider())?))
}

/// The facts about a leaf certificate that renewal and logs need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// Serial number, lower-case hex.
    pub serial: String,
    /// DNS names of the subject alternative names, lower-cased.
    pub names: Vec<String>,
}

impl CertInfo {
    /// Whether the certificate names every one of `domains`.
    pub fn covers(&self, domains: &[String]) -> bool {
        domains.iter().all(|d| self.names.contains(d))
    }

    /// When a third of the lifetime is left (Unix seconds).
    pub fn renewal_due(&self) -> i64 {
        let lifetime = (self.not_after - self.not_before).max(0);
        self.not_after - lifetime / 3
    }
}

/// Reads a DER certificate.
pub fn cert_info(der: &[u8]) -> Result<CertInfo, TlsError> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TlsError::Invalid(format!("certificate: {e}")))?;
    let validity = cert.validity();
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.push(dns.to_ascii_lowercase());
            }
        }
    }
    Ok(CertInfo {
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        serial: hex::encode(cert.raw_serial()),
        names,
    })
}

/// Unix seconds as RFC 3339, for log lines.
pub fn unix_to_rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).map_or_else(|| secs.to_string(), |t| t.to_rfc3339())
}

/// The facts about the leaf of a servable key.
pub fn key_info(key: &CertifiedKey) -> Result<CertInfo, TlsError> {
    let leaf = key.end_entity_cert()?;
    cert_info(leaf.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_reads_back() {
        let mut params = rcgen::CertificateParams::new(vec!["chat.example.com".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2030, 1, 1);
        params.not_after = rcgen::date_time_ymd(2030, 1, 31);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let served = certified_key(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap();
        let info = key_info(&served).unwrap();
        assert_eq!(info.names, ["chat.example.com"]);
        assert!(info.covers(&["chat.example.com".into()]));
        assert!(!info.covers(&["other.example.com".into()]));
        assert_eq!(info.not_after - info.not_before, 30 * 86400);
        assert_eq!(info.renewal_due(), info.not_after - 10 * 86400);

        let other = rcgen::KeyPair::generate().unwrap();
        let mismatch = certified_key(cert.pem().as_bytes(), other.serialize_pem().as_bytes());
        assert!(mismatch.is_err(), "a key that does not match is refused");
    }
}
