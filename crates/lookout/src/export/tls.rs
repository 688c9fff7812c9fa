//! TLS for OTLP: the collector's CA (`..._CERTIFICATE`, else the system's roots) and an optional
//! client identity (`..._CLIENT_CERTIFICATE` + `..._CLIENT_KEY`) for mutual TLS.

use std::fs;
use std::path::Path;

use super::OtlpSettings;

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
}

/// A client certificate chain and its private key, both PEM.
struct IdentityPem {
    cert: Vec<u8>,
    key: Vec<u8>,
}

fn identity_files(s: &OtlpSettings) -> Result<Option<IdentityPem>, String> {
    match (&s.client_certificate, &s.client_key) {
        (Some(cert), Some(key)) => Ok(Some(IdentityPem {
            cert: read(cert, "client certificate")?,
            key: read(key, "client key")?,
        })),
        (None, None) => Ok(None),
        _ => Err(
            "a client certificate needs its key and a key needs its certificate: set both OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY"
                .to_owned(),
        ),
    }
}

#[cfg(feature = "grpc")]
pub(super) fn tonic_config(s: &OtlpSettings) -> Result<tonic::transport::ClientTlsConfig, String> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let mut config = ClientTlsConfig::new();
    config = match &s.certificate {
        Some(ca) => config.ca_certificate(Certificate::from_pem(read(ca, "CA certificate")?)),
        None => config.with_native_roots(),
    };
    if let Some(id) = identity_files(s)? {
        config = config.identity(Identity::from_pem(id.cert, id.key));
    }
    Ok(config)
}

#[cfg(feature = "http")]
pub(super) fn rustls_config(s: &OtlpSettings) -> Result<rustls::ClientConfig, String> {
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let mut roots = rustls::RootCertStore::empty();
    match &s.certificate {
        Some(ca) => {
            let pem = read(ca, "CA certificate")?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert =
                    cert.map_err(|e| format!("{} is not a PEM certificate: {e}", ca.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{} holds an unusable certificate: {e}", ca.display()))?;
            }
        }
        None => {
            // Unreadable system certificates only narrow what can be verified; never fatal.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots);
    let mut config = match identity_files(s)? {
        Some(id) => {
            let certs = CertificateDer::pem_slice_iter(&id.cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("the client certificate is not PEM: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(&id.key)
                .map_err(|e| format!("the client key is not a PEM private key: {e}"))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("the client certificate and key do not fit: {e}"))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
