//! TLS server configuration from PEM files (rustls with the ring provider), and optional
//! mutual TLS whose presented client chain is captured per connection for the upstream
//! `connect` event (`clientCertificates`).

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ResolvesServerCert, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// Whether a TLS listener asks clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMode {
    /// Asked for; a client without one still connects. A presented one must verify.
    Optional,
    /// A client without a verifying certificate fails the handshake.
    Required,
}

/// Client-certificate settings of one listener. rustls gives no access to the verified peer
/// chain through monoio-rustls' stream, so each connection gets its own `ServerConfig` whose
/// verifier records the chain into a slot that connection owns ([`ClientAuth::config_for_connection`]).
pub struct ClientAuth {
    verifier: Arc<dyn ClientCertVerifier>,
    resolver: Arc<dyn ResolvesServerCert>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

/// The chain (DER, leaf first) a client presented during one handshake; empty when none.
pub type CertSlot = Arc<Mutex<Option<Vec<Vec<u8>>>>>;

fn bad(what: &str, p: &Path, e: &dyn std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{what} {}: {e}", p.display()),
    )
}

fn load_certs(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).map_err(|e| bad("cannot read certificate", path, &e))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("bad certificate", path, &e))?;
    if certs.is_empty() {
        return Err(bad("no certificate in", path, &"empty"));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> io::Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path).map_err(|e| bad("cannot read key", path, &e))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| bad("bad key", path, &e))?
        .ok_or_else(|| bad("no private key in", path, &"empty"))
}

/// Loads a certificate chain and private key into a rustls server config (TLS 1.2 and 1.3,
/// no client authentication).
pub fn server_config(cert: &Path, key: &Path) -> io::Result<Arc<rustls::ServerConfig>> {
    let certs = load_certs(cert)?;
    let key_der = load_key(key)?;
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

/// Like [`server_config`] plus client-certificate settings: the returned config (no client
/// auth) is unused by listeners that have a `ClientAuth`, which build one per connection.
pub fn server_config_with_client_auth(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
    mode: ClientAuthMode,
) -> io::Result<(Arc<rustls::ServerConfig>, Arc<ClientAuth>)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in load_certs(client_ca)? {
        roots
            .add(c)
            .map_err(|e| bad("bad CA certificate in", client_ca, &e))?;
    }
    let base = server_config(cert, key)?;
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let builder = match mode {
        ClientAuthMode::Optional => builder.allow_unauthenticated(),
        ClientAuthMode::Required => builder,
    };
    let verifier = builder
        .build()
        .map_err(|e| bad("client CA", client_ca, &e))?;
    let auth = ClientAuth {
        verifier,
        resolver: base.cert_resolver.clone(),
        provider,
    };
    Ok((base, Arc::new(auth)))
}

impl ClientAuth {
    /// A server config for one connection, and the slot its handshake fills with the client's
    /// chain. Resumption is off so every handshake presents (and verifies) a certificate.
    pub fn config_for_connection(&self) -> io::Result<(Arc<rustls::ServerConfig>, CertSlot)> {
        let slot: CertSlot = Arc::new(Mutex::new(None));
        let verifier = Arc::new(Capturing {
            inner: self.verifier.clone(),
            slot: slot.clone(),
        });
        let mut cfg = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(self.resolver.clone());
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        cfg.send_tls13_tickets = 0;
        Ok((Arc::new(cfg), slot))
    }
}

/// The chain a finished handshake recorded (leaf first); empty when the client sent none.
pub fn take_chain(slot: &CertSlot) -> Vec<Vec<u8>> {
    slot.lock()
        .map(|mut g| g.take().unwrap_or_default())
        .unwrap_or_default()
}

/// Delegates every decision to the WebPKI verifier and, once a chain verified, stores it.
#[derive(Debug)]
struct Capturing {
    inner: Arc<dyn ClientCertVerifier>,
    slot: CertSlot,
}

impl ClientCertVerifier for Capturing {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.as_ref().to_vec())
            .collect();
        if let Ok(mut g) = self.slot.lock() {
            *g = Some(chain);
        }
        Ok(ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_auth_rejects_a_ca_file_without_certificates() {
        let dir = std::env::temp_dir().join(format!("hubmq-tls-ca-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let ca = dir.join("empty-ca.pem");
        let _ = std::fs::write(&ca, "not a certificate\n");
        let none = dir.join("absent.pem");
        let err = server_config_with_client_auth(&none, &none, &ca, ClientAuthMode::Optional)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("no certificate in"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn empty_slot_gives_an_empty_chain() {
        let slot: CertSlot = Arc::new(Mutex::new(None));
        assert!(take_chain(&slot).is_empty());
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(vec![vec![1, 2]]);
        assert_eq!(take_chain(&slot), vec![vec![1, 2]]);
        assert!(take_chain(&slot).is_empty());
    }
}
