//! OTLP over TLS with `OTEL_EXPORTER_OTLP_CERTIFICATE`, and mutual TLS with
//! `..._CLIENT_CERTIFICATE` / `..._CLIENT_KEY`.
//!
//! rotel's receivers speak plain text only, so a TLS terminator stands in front of it (as an
//! ingress would): a test fixture that completes the handshake with rustls and forwards the
//! decrypted bytes to the real collector. Certificates are made fresh for each run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lookout_e2e::run;
use lookout_testing::Collector;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};

struct Pki {
    dir: tempfile::TempDir,
    ca_der: CertificateDer<'static>,
    server: (CertificateDer<'static>, PrivateKeyDer<'static>),
}

impl Pki {
    /// A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA;
    /// the CA and client files are written as PEM for the program under test.
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_key = KeyPair::generate().expect("key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "lookout test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA");
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().expect("key");
        let server_cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .expect("params")
            .signed_by(&server_key, &issuer)
            .expect("server cert");
        let client_key = KeyPair::generate().expect("key");
        let mut client_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        client_params
            .distinguished_name
            .push(DnType::CommonName, "lookout test client");
        let client_cert = client_params
            .signed_by(&client_key, &issuer)
            .expect("client cert");

        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).expect("write");
        std::fs::write(dir.path().join("client.pem"), client_cert.pem()).expect("write");
        std::fs::write(dir.path().join("client.key"), client_key.serialize_pem()).expect("write");
        let server_key_der =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        Pki {
            ca_der: ca_cert.der().clone(),
            server: (server_cert.der().clone(), server_key_der),
            dir,
        }
    }

    fn file(&self, name: &str) -> String {
        let path: PathBuf = self.dir.path().join(name);
        path.to_string_lossy().into_owned()
    }

    fn server_config(&self, alpn: &[u8], require_client_cert: bool) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions");
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca_der.clone()).expect("CA");
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(vec![self.server.0.clone()], self.server.1.clone_key())
            .expect("server cert");
        config.alpn_protocols = vec![alpn.to_vec()];
        Arc::new(config)
    }
}

/// Test fixture: terminates TLS on a loopback port and forwards to `target` (the collector).
struct TlsTerminator {
    addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

impl TlsTerminator {
    fn start(target: SocketAddr, config: Arc<rustls::ServerConfig>) -> TlsTerminator {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A failed handshake just closes the connection, as a real terminator does.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    if let Ok(mut upstream) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                    }
                });
            }
        });
        TlsTerminator {
            addr,
            _runtime: runtime,
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

fn addr(endpoint: &str) -> SocketAddr {
    endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("collector address")
}

#[test]
fn grpc_over_tls_trusts_the_given_ca() {
    let pki = Pki::new();
    let collector = Collector::start().expect("collector starts");
    let tls = TlsTerminator::start(
        addr(&collector.grpc_endpoint()),
        pki.server_config(b"h2", false),
    );
    let app = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["tree"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &tls.url()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &pki.file("ca.pem")),
        ],
    );
    assert_eq!(app.result(), Some("ok"), "{}\n{}", app.stdout, app.stderr);
    collector
        .wait_for(Duration::from_secs(20), |r| r.spans.len() >= 3)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn http_over_mutual_tls_presents_the_client_certificate() {
    let pki = Pki::new();
    let collector = Collector::start().expect("collector starts");
    let tls = TlsTerminator::start(
        addr(&collector.http_endpoint()),
        pki.server_config(b"http/1.1", true),
    );
    let app = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["tree"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &tls.url()),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &pki.file("ca.pem")),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                &pki.file("client.pem"),
            ),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &pki.file("client.key")),
        ],
    );
    assert_eq!(app.result(), Some("ok"), "{}\n{}", app.stdout, app.stderr);
    collector
        .wait_for(Duration::from_secs(20), |r| {
            r.spans.len() >= 3 && r.logs.len() >= 3
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn an_untrusted_server_or_a_missing_client_certificate_loses_data_visibly() {
    let pki = Pki::new();
    let collector = Collector::start().expect("collector starts");
    let tls = TlsTerminator::start(
        addr(&collector.http_endpoint()),
        pki.server_config(b"http/1.1", true),
    );
    let app = env!("CARGO_BIN_EXE_e2e-app").into();
    let url = tls.url();
    // No CA given: the system roots do not trust the test CA.
    let untrusted = run(
        &app,
        &["tree"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &url),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                &pki.file("client.pem"),
            ),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &pki.file("client.key")),
        ],
    );
    assert_eq!(untrusted.result(), Some("lost"), "{}", untrusted.stdout);
    assert_eq!(untrusted.counts("traces"), Some((0, 3)));
    // CA given but no client certificate: the terminator refuses the handshake.
    let anonymous = run(
        &app,
        &["tree"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &url),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &pki.file("ca.pem")),
        ],
    );
    assert_eq!(anonymous.result(), Some("lost"), "{}", anonymous.stdout);
    assert_eq!(anonymous.counts("traces"), Some((0, 3)));
    assert!(collector.received().spans.is_empty());
}
