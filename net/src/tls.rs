//! TLS server configuration from PEM files (rustls with the ring provider).

use std::io;
use std::path::Path;
use std::sync::Arc;

/// Loads a certificate chain and private key into a rustls server config (TLS 1.2 and 1.3,
/// no client authentication).
pub fn server_config(cert: &Path, key: &Path) -> io::Result<Arc<rustls::ServerConfig>> {
    let bad = |what: &str, p: &Path, e: &dyn std::fmt::Display| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what} {}: {e}", p.display()),
        )
    };
    let cert_pem = std::fs::read(cert).map_err(|e| bad("cannot read certificate", cert, &e))?;
    let key_pem = std::fs::read(key).map_err(|e| bad("cannot read key", key, &e))?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("bad certificate", cert, &e))?;
    if certs.is_empty() {
        return Err(bad("no certificate in", cert, &"empty"));
    }
    let key_der = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| bad("bad key", key, &e))?
        .ok_or_else(|| bad("no private key in", key, &"empty"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS setup", cert, &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| bad("certificate/key mismatch", cert, &e))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
