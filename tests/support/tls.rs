//! TLS for the loopback tests: a self-signed certificate for 127.0.0.1 made
//! for each run (rcgen), a server-side acceptor presenting it
//! (tokio-rustls), and hyper-rustls clients that trust that certificate and
//! nothing else. No address outside loopback, no system roots.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// The crypto provider both ends use (ring, as the crate's `rustls` feature).
pub fn crypto() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A self-signed certificate for 127.0.0.1 and localhost, with its key.
pub struct Cert {
    der: CertificateDer<'static>,
    key: Vec<u8>,
}

/// A fresh certificate: two calls give two certificates that do not trust
/// each other.
pub fn make_cert() -> Cert {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    Cert {
        der: cert.der().clone(),
        key: key_pair.serialize_der(),
    }
}

/// A TLS acceptor presenting `cert`.
pub fn acceptor(cert: &Cert) -> TlsAcceptor {
    let config = rustls::ServerConfig::builder_with_provider(crypto())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key.clone())),
        )
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// A hyper-util client over HTTPS (HTTP/1) that trusts `cert` and nothing else.
pub fn https_client<B>(cert: &Cert) -> Client<HttpsConnector<HttpConnector>, B>
where
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(crypto())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(https)
}
