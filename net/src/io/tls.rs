//! TLS server configuration from PEM files (rustls with the ring provider), and optional
//! mutual TLS: each connection's client chain is verified against the listener's client CA or,
//! failing that, accepted because its leaf's SHA-256 thumbprint is pinned (Event Grid's
//! self-signed `ThumbprintMatch` clients), and captured per connection together with how it
//! was accepted, for the upstream `connect` event (`clientCertificates`) and for certificate
//! authentication (`ChainTrust`).

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, ResolvesServerCert, WebPkiClientVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// Whether a TLS listener asks clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMode {
    /// Asked for; a client without one still connects. A presented one must verify (or be
    /// pinned).
    Optional,
    /// A client without a certificate that verifies (or is pinned) fails the handshake.
    Required,
}

/// A SHA-256 thumbprint of a DER certificate.
pub type Thumbprint = [u8; 32];

/// Client-certificate settings of one listener. rustls gives no access to the verified peer
/// chain through monoio-rustls' stream, so each connection gets its own `ServerConfig` whose
/// verifier records the chain into a slot that connection owns ([`ClientAuth::config_for_connection`]).
pub struct ClientAuth {
    /// The CA-chain check; `None` for a listener that only accepts pinned certificates.
    ca: Option<Arc<dyn ClientCertVerifier>>,
    mode: ClientAuthMode,
    resolver: Arc<dyn ResolvesServerCert>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// Leaf thumbprints accepted without a CA. Swapped whole on reload; each connection takes
    /// a snapshot when its config is built, so a reload never changes a handshake under way.
    pinned: ArcSwap<Vec<Thumbprint>>,
}

/// A client certificate chain (DER, leaf first) accepted during one handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// As presented: DER, leaf first.
    pub chain: Vec<Vec<u8>>,
    /// True when the chain verified up to a client CA (`ChainTrust::CaVerified`); false when
    /// only the leaf's pinned thumbprint let it in, so only possession of its key is proven
    /// (`ChainTrust::Unverified`: the validity period is still to be checked).
    pub ca_verified: bool,
}

impl ClientCert {
    /// No certificate presented (plain TCP/HTTP listeners, or `optional` without one).
    pub fn none() -> ClientCert {
        ClientCert {
            chain: Vec::new(),
            ca_verified: false,
        }
    }
}

/// What one handshake recorded about the client's certificate; `None` when it sent none.
pub type CertSlot = Arc<Mutex<Option<ClientCert>>>;

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
/// Chains must verify against `client_ca` unless their leaf is pinned ([`ClientAuth::set_pinned`]).
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
    let auth = ClientAuth::new(Some(verifier), mode, &base, provider);
    Ok((base, Arc::new(auth)))
}

/// Like [`server_config_with_client_auth`] for a listener without a client CA: only pinned
/// certificates ([`ClientAuth::set_pinned`]) are accepted, and until pins are set none is
/// (so with `Required` every handshake fails; with `Optional` clients connect without one).
pub fn server_config_with_pinned_client_auth(
    cert: &Path,
    key: &Path,
    mode: ClientAuthMode,
) -> io::Result<(Arc<rustls::ServerConfig>, Arc<ClientAuth>)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let base = server_config(cert, key)?;
    let auth = ClientAuth::new(None, mode, &base, provider);
    Ok((base, Arc::new(auth)))
}

/// The SHA-256 thumbprint of a DER certificate (what Event Grid's `allowedThumbprints` hold).
pub fn thumbprint(der: &[u8]) -> Thumbprint {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// A configured thumbprint as bytes: 64 hex digits, any case, ':' separators allowed (the
/// rules of `hubmq_auth::eventgrid::normalize_thumbprint`); `None` when it is not one.
pub fn thumbprint_from_hex(text: &str) -> Option<Thumbprint> {
    let hex = hubmq_auth::eventgrid::normalize_thumbprint(text)?;
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

impl ClientAuth {
    fn new(
        ca: Option<Arc<dyn ClientCertVerifier>>,
        mode: ClientAuthMode,
        base: &rustls::ServerConfig,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Self {
        ClientAuth {
            ca,
            mode,
            resolver: base.cert_resolver.clone(),
            provider,
            pinned: ArcSwap::from_pointee(Vec::new()),
        }
    }

    /// Replaces the set of leaf thumbprints accepted without a CA (Event Grid's
    /// `ThumbprintMatch` clients). Takes effect for connections accepted afterwards; a
    /// handshake already under way keeps the set it started with.
    pub fn set_pinned(&self, mut pins: Vec<Thumbprint>) {
        pins.sort_unstable();
        pins.dedup();
        self.pinned.store(Arc::new(pins));
    }

    /// The thumbprints currently pinned (sorted, without duplicates).
    pub fn pinned(&self) -> Vec<Thumbprint> {
        self.pinned.load().as_ref().clone()
    }

    /// A server config for one connection, and the slot its handshake fills with the client's
    /// chain. Resumption is off so every handshake presents (and verifies) a certificate.
    pub fn config_for_connection(&self) -> io::Result<(Arc<rustls::ServerConfig>, CertSlot)> {
        let slot: CertSlot = Arc::new(Mutex::new(None));
        let verifier = Arc::new(Capturing {
            ca: self.ca.clone(),
            mandatory: self.mode == ClientAuthMode::Required,
            pinned: self.pinned.load_full(),
            algs: self.provider.signature_verification_algorithms,
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

/// The certificate a handshake accepted, and how; `None` when the client sent none. Only
/// meaningful once the handshake succeeded: the slot is filled when the chain is accepted,
/// before the client's handshake signature is checked.
pub fn take_client_cert(slot: &CertSlot) -> Option<ClientCert> {
    slot.lock().ok().and_then(|mut g| g.take())
}

/// The chain a finished handshake recorded (leaf first); empty when the client sent none.
pub fn take_chain(slot: &CertSlot) -> Vec<Vec<u8>> {
    take_client_cert(slot).map(|c| c.chain).unwrap_or_default()
}

/// One connection's verifier: the CA check first, then the pinned thumbprints; records the
/// accepted chain and which of the two accepted it.
#[derive(Debug)]
struct Capturing {
    ca: Option<Arc<dyn ClientCertVerifier>>,
    mandatory: bool,
    pinned: Arc<Vec<Thumbprint>>,
    algs: WebPkiSupportedAlgorithms,
    slot: CertSlot,
}

impl Capturing {
    fn is_pinned(&self, leaf: &CertificateDer<'_>) -> bool {
        // Hashing is skipped when nothing is pinned, the common case of a CA-only listener.
        !self.pinned.is_empty() && self.pinned.binary_search(&thumbprint(leaf)).is_ok()
    }
}

impl ClientCertVerifier for Capturing {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.ca.as_ref().map_or(&[], |ca| ca.root_hint_subjects())
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let by_ca = match &self.ca {
            Some(ca) => ca.verify_client_cert(end_entity, intermediates, now),
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
        };
        let ca_verified = match by_ca {
            Ok(_) => true,
            // The pin names these exact bytes, so no issuer needs to vouch for them; the
            // handshake signature still proves the client holds the leaf's key, and the
            // caller, told `ca_verified = false`, checks the validity period and allows
            // only `ThumbprintMatch` (`ChainTrust::Unverified`). The leaf must still parse
            // as webpki needs it to check that signature, so garbage is refused here with
            // webpki's own error rather than later.
            Err(_) if self.is_pinned(end_entity) => {
                ParsedCertificate::try_from(end_entity)?;
                false
            }
            Err(e) => return Err(e),
        };
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.as_ref().to_vec())
            .collect();
        if let Ok(mut g) = self.slot.lock() {
            *g = Some(ClientCert { chain, ca_verified });
        }
        Ok(ClientCertVerified::assertion())
    }

    // The handshake signatures are checked with the leaf's own key whichever way the chain
    // was accepted, so a pinned certificate proves possession exactly as a CA-issued one.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::OnceLock;

    use rustls::pki_types::ServerName;

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
        assert_eq!(take_client_cert(&slot), None);
        let cert = ClientCert {
            chain: vec![vec![1, 2]],
            ca_verified: false,
        };
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(cert.clone());
        assert_eq!(take_chain(&slot), vec![vec![1, 2]]);
        assert!(take_chain(&slot).is_empty());
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(cert.clone());
        assert_eq!(take_client_cert(&slot), Some(cert));
        assert_eq!(take_client_cert(&slot), None);
    }

    #[test]
    fn thumbprint_from_hex_accepts_the_configured_spellings() {
        let lower = "cc01650b514899550c43c28432ec82fb4415b7d79ee3b2ac0d61247494320154";
        let want = thumbprint_from_hex(lower);
        assert_eq!(want.map(|t| t[0]), Some(0xcc));
        assert_eq!(want.map(|t| t[31]), Some(0x54));
        let colons: Vec<String> = lower
            .as_bytes()
            .chunks(2)
            .map(|p| String::from_utf8_lossy(p).to_uppercase())
            .collect();
        assert_eq!(thumbprint_from_hex(&colons.join(":")), want);
        assert_eq!(thumbprint_from_hex(&lower[..62]), None);
        assert_eq!(thumbprint_from_hex(&format!("{}zz", &lower[..62])), None);
    }

    #[test]
    fn set_pinned_replaces_the_whole_set() {
        let Some(pki) = pki("set_pinned_replaces_the_whole_set") else {
            return;
        };
        let l = Listener::new(pki, ClientAuthMode::Required, true);
        assert!(l.auth.pinned().is_empty());
        l.auth.set_pinned(vec![[2; 32], [1; 32], [2; 32]]);
        assert_eq!(l.auth.pinned(), vec![[1; 32], [2; 32]]);
        l.auth.set_pinned(vec![[3; 32]]);
        assert_eq!(l.auth.pinned(), vec![[3; 32]]);
    }

    #[test]
    fn ca_signed_client_is_accepted_as_ca_verified() {
        let Some(pki) = pki("ca_signed_client_is_accepted_as_ca_verified") else {
            return;
        };
        let l = Listener::new(pki, ClientAuthMode::Required, true);
        for version in VERSIONS {
            let got = l.connect(Some((&pki.client_pem, &pki.client_key)), version);
            let cert = got
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(no_cert);
            assert!(cert.ca_verified);
            assert_eq!(cert.chain, vec![der(&pki.client_pem)]);
        }
    }

    #[test]
    fn pinned_self_signed_client_is_accepted_without_ca_verification() {
        let test = "pinned_self_signed_client_is_accepted_without_ca_verification";
        let Some(pki) = pki(test) else {
            return;
        };
        let l = Listener::new(pki, ClientAuthMode::Required, true);
        l.auth.set_pinned(vec![thumbprint(&der(&pki.self_pem))]);
        // Both versions: TLS 1.2 and 1.3 check the client's signature through different calls.
        for version in VERSIONS {
            let got = l.connect(Some((&pki.self_pem, &pki.self_key)), version);
            let cert = got
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(no_cert);
            assert!(!cert.ca_verified);
            assert_eq!(cert.chain, vec![der(&pki.self_pem)]);
        }
    }

    #[test]
    fn unpinned_self_signed_client_fails_the_handshake() {
        let Some(pki) = pki("unpinned_self_signed_client_fails_the_handshake") else {
            return;
        };
        for mode in [ClientAuthMode::Required, ClientAuthMode::Optional] {
            let l = Listener::new(pki, mode, true);
            // Another certificate pinned: only the exact leaf counts.
            l.auth.set_pinned(vec![thumbprint(&der(&pki.client_pem))]);
            for version in VERSIONS {
                let got = l.connect(Some((&pki.self_pem, &pki.self_key)), version);
                let err = got.err().unwrap_or_default();
                assert!(err.starts_with("server:"), "{mode:?}: {err}");
            }
        }
    }

    #[test]
    fn pinned_certificate_signed_with_another_key_fails_the_handshake() {
        let test = "pinned_certificate_signed_with_another_key_fails_the_handshake";
        let Some(pki) = pki(test) else {
            return;
        };
        let l = Listener::new(pki, ClientAuthMode::Required, true);
        l.auth.set_pinned(vec![thumbprint(&der(&pki.self_pem))]);
        // The pin admits the certificate, not whoever replays it: the handshake signature
        // must still verify with the leaf's key.
        for version in VERSIONS {
            let got = l.connect(Some((&pki.self_pem, &pki.client_key)), version);
            let err = got.err().unwrap_or_default();
            assert!(err.starts_with("server:"), "{err}");
        }
    }

    #[test]
    fn replaced_pins_apply_from_the_next_connection() {
        let Some(pki) = pki("replaced_pins_apply_from_the_next_connection") else {
            return;
        };
        let l = Listener::new(pki, ClientAuthMode::Required, true);
        let me = Some((pki.self_pem.as_str(), pki.self_key.as_str()));
        assert!(l.connect(me, &rustls::version::TLS13).is_err());
        l.auth.set_pinned(vec![thumbprint(&der(&pki.self_pem))]);
        let started_pinned = l.auth.config_for_connection();
        assert!(l.connect(me, &rustls::version::TLS13).is_ok());
        l.auth.set_pinned(Vec::new());
        assert!(l.connect(me, &rustls::version::TLS13).is_err());
        // A connection whose config was built before the reload keeps its snapshot.
        let (cfg, slot) = started_pinned.unwrap_or_else(|e| panic!("{e}"));
        let got = handshake(client(pki, me, &rustls::version::TLS13), cfg);
        assert!(got.is_ok(), "{got:?}");
        assert_eq!(take_client_cert(&slot).map(|c| c.ca_verified), Some(false));
    }

    #[test]
    fn optional_listener_accepts_a_client_without_certificate() {
        let test = "optional_listener_accepts_a_client_without_certificate";
        let Some(pki) = pki(test) else {
            return;
        };
        let l = Listener::new(pki, ClientAuthMode::Optional, true);
        l.auth.set_pinned(vec![thumbprint(&der(&pki.self_pem))]);
        for version in VERSIONS {
            let got = l.connect(None, version);
            assert_eq!(got, Ok(None));
        }
        let (cfg, slot) = l
            .auth
            .config_for_connection()
            .unwrap_or_else(|e| panic!("{e}"));
        let got = handshake(client(pki, None, &rustls::version::TLS13), cfg);
        assert!(got.is_ok(), "{got:?}");
        assert!(take_chain(&slot).is_empty());
    }

    #[test]
    fn required_listener_refuses_a_client_without_certificate() {
        let test = "required_listener_refuses_a_client_without_certificate";
        let Some(pki) = pki(test) else {
            return;
        };
        let l = Listener::new(pki, ClientAuthMode::Required, true);
        l.auth.set_pinned(vec![thumbprint(&der(&pki.self_pem))]);
        for version in VERSIONS {
            let err = l.connect(None, version).err().unwrap_or_default();
            assert!(err.starts_with("server:"), "{err}");
        }
    }

    #[test]
    fn pinned_ca_signed_client_still_counts_as_ca_verified() {
        let test = "pinned_ca_signed_client_still_counts_as_ca_verified";
        let Some(pki) = pki(test) else {
            return;
        };
        let l = Listener::new(pki, ClientAuthMode::Required, true);
        l.auth.set_pinned(vec![thumbprint(&der(&pki.client_pem))]);
        let got = l.connect(
            Some((&pki.client_pem, &pki.client_key)),
            &rustls::version::TLS13,
        );
        let cert = got
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(no_cert);
        assert!(cert.ca_verified);
    }

    #[test]
    fn listener_without_ca_accepts_only_pinned_certificates() {
        let test = "listener_without_ca_accepts_only_pinned_certificates";
        let Some(pki) = pki(test) else {
            return;
        };
        let l = Listener::new(pki, ClientAuthMode::Required, false);
        let me = Some((pki.self_pem.as_str(), pki.self_key.as_str()));
        assert!(l.connect(me, &rustls::version::TLS13).is_err());
        l.auth.set_pinned(vec![thumbprint(&der(&pki.self_pem))]);
        let got = l.connect(me, &rustls::version::TLS13);
        let cert = got
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(no_cert);
        assert!(!cert.ca_verified);
        let ca_signed = Some((pki.client_pem.as_str(), pki.client_key.as_str()));
        assert!(l.connect(ca_signed, &rustls::version::TLS13).is_err());
    }

    #[test]
    fn pinned_bytes_that_are_not_a_certificate_are_refused() {
        let garbage = CertificateDer::from(b"\x30\x03\x02\x01\x00".to_vec());
        let slot: CertSlot = Arc::new(Mutex::new(None));
        let provider = rustls::crypto::ring::default_provider();
        let verifier = Capturing {
            ca: None,
            mandatory: true,
            pinned: Arc::new(vec![thumbprint(garbage.as_ref())]),
            algs: provider.signature_verification_algorithms,
            slot: slot.clone(),
        };
        let got = verifier.verify_client_cert(&garbage, &[], UnixTime::now());
        assert!(got.is_err());
        assert_eq!(take_client_cert(&slot), None);
    }

    // ---- test PKI (openssl at test time; nothing committed) and in-memory handshakes ----

    const VERSIONS: [&rustls::SupportedProtocolVersion; 2] =
        [&rustls::version::TLS12, &rustls::version::TLS13];

    /// PEM texts: a CA, a server cert for `localhost` and a client cert it signed, and a
    /// self-signed client cert.
    struct Pki {
        ca_pem: String,
        server_pem: String,
        server_key: String,
        client_pem: String,
        client_key: String,
        self_pem: String,
        self_key: String,
    }

    fn temp_dir(what: &str) -> PathBuf {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        std::env::temp_dir().join(format!("hubmq-net-tls-{pid}-{n}-{what}"))
    }

    fn openssl(dir: &Path, args: &[&str]) -> Option<()> {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(())
    }

    fn generate(dir: &Path) -> Option<Pki> {
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let self_signed = |name: &str, subj: &str, ext: &[&str]| {
            let mut args = vec!["req", "-x509", "-days", "2", "-subj", subj];
            args.extend_from_slice(&ec);
            let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
            args.extend_from_slice(&["-keyout", &key, "-out", &pem]);
            args.extend_from_slice(ext);
            openssl(dir, &args)
        };
        let ca_signed = |name: &str, subj: &str, ext: &str| {
            let (key, csr, pem, cnf) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.pem"),
                format!("{name}.cnf"),
            );
            std::fs::write(dir.join(&cnf), ext).ok()?;
            let mut args = vec!["req", "-new", "-subj", subj, "-keyout", &key, "-out", &csr];
            args.extend_from_slice(&ec);
            openssl(dir, &args)?;
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-days",
                    "2",
                    "-set_serial",
                    "7",
                    "-extfile",
                    &cnf,
                    "-out",
                    &pem,
                ],
            )
        };
        let leaf = "basicConstraints=critical,CA:FALSE\n";
        self_signed("ca", "/CN=hubmq test CA", &[])?;
        let server_ext =
            format!("{leaf}extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost\n");
        ca_signed("server", "/CN=localhost", &server_ext)?;
        ca_signed(
            "client",
            "/CN=device-ca",
            &format!("{leaf}extendedKeyUsage=clientAuth\n"),
        )?;
        self_signed(
            "self",
            "/CN=device-pinned",
            &[
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-addext",
                "extendedKeyUsage=clientAuth",
            ],
        )?;
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
        Some(Pki {
            ca_pem: read("ca.pem")?,
            server_pem: read("server.pem")?,
            server_key: read("server.key")?,
            client_pem: read("client.pem")?,
            client_key: read("client.key")?,
            self_pem: read("self.pem")?,
            self_key: read("self.key")?,
        })
    }

    /// The test PKI, generated once per test process; `None` (with a note) without openssl.
    fn pki(test: &str) -> Option<&'static Pki> {
        static PKI: OnceLock<Option<Pki>> = OnceLock::new();
        let pki = PKI.get_or_init(|| {
            let dir = temp_dir("pki");
            std::fs::create_dir_all(&dir).ok()?;
            let pki = generate(&dir);
            let _ = std::fs::remove_dir_all(&dir);
            pki
        });
        if pki.is_none() {
            eprintln!("note: openssl not found (or failed); skipping {test}");
        }
        pki.as_ref()
    }

    fn der(pem: &str) -> Vec<u8> {
        rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .and_then(Result::ok)
            .map(|c| c.as_ref().to_vec())
            .unwrap_or_default()
    }

    fn no_cert() -> ClientCert {
        panic!("the handshake recorded no client certificate")
    }

    /// A listener's `ClientAuth` built from PEM files, removed again on drop.
    struct Listener {
        auth: Arc<ClientAuth>,
        pki: &'static Pki,
        dir: PathBuf,
    }

    impl Listener {
        fn new(pki: &'static Pki, mode: ClientAuthMode, with_ca: bool) -> Self {
            let dir = temp_dir("listener");
            let write = |f: &str, text: &str| {
                std::fs::create_dir_all(&dir)
                    .and_then(|()| std::fs::write(dir.join(f), text))
                    .unwrap_or_else(|e| panic!("{e}"));
                dir.join(f)
            };
            let (cert, key) = (
                write("s.pem", &pki.server_pem),
                write("s.key", &pki.server_key),
            );
            let built = if with_ca {
                let ca = write("ca.pem", &pki.ca_pem);
                server_config_with_client_auth(&cert, &key, &ca, mode)
            } else {
                server_config_with_pinned_client_auth(&cert, &key, mode)
            };
            let (_, auth) = built.unwrap_or_else(|e| panic!("{e}"));
            Listener { auth, pki, dir }
        }

        /// One full handshake; the client certificate the server recorded.
        fn connect(
            &self,
            cert: Option<(&str, &str)>,
            version: &'static rustls::SupportedProtocolVersion,
        ) -> Result<Option<ClientCert>, String> {
            let (cfg, slot) = self
                .auth
                .config_for_connection()
                .map_err(|e| e.to_string())?;
            handshake(client(self.pki, cert, version), cfg)?;
            Ok(take_client_cert(&slot))
        }
    }

    impl Drop for Listener {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// A client trusting the test CA, presenting `cert` (PEM chain, PEM key) if given. The
    /// key is not checked against the certificate, so a test can present a mismatched pair.
    fn client(
        pki: &Pki,
        cert: Option<(&str, &str)>,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> rustls::ClientConnection {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(der(&pki.ca_pem)))
            .unwrap_or_else(|e| panic!("{e}"));
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[version])
            .unwrap_or_else(|e| panic!("{e}"))
            .with_root_certificates(roots);
        let cfg = match cert {
            None => builder.with_no_client_auth(),
            Some((pem, key)) => {
                let chain = vec![CertificateDer::from(der(pem))];
                let key = rustls_pemfile::private_key(&mut key.as_bytes())
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| panic!("bad test key"));
                let key = provider
                    .key_provider
                    .load_private_key(key)
                    .unwrap_or_else(|e| panic!("{e}"));
                let certified = rustls::sign::CertifiedKey::new(chain, key);
                let resolver = rustls::sign::SingleCertAndKey::from(certified);
                builder.with_client_cert_resolver(Arc::new(resolver))
            }
        };
        let name = ServerName::try_from("localhost").unwrap_or_else(|e| panic!("{e}"));
        rustls::ClientConnection::new(Arc::new(cfg), name).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Pumps records between the two ends until neither has anything to send. The error
    /// says which end refused ("server: ..." or "client: ...").
    fn handshake(
        client: rustls::ClientConnection,
        server_cfg: Arc<rustls::ServerConfig>,
    ) -> Result<(), String> {
        let server = rustls::ServerConnection::new(server_cfg).map_err(|e| e.to_string())?;
        let mut client = rustls::Connection::from(client);
        let mut server = rustls::Connection::from(server);
        // A handshake is a handful of flights; the bound only stops a bug from spinning.
        for _ in 0..16 {
            let to_server =
                transfer(&mut client, &mut server).map_err(|e| format!("server: {e}"))?;
            let to_client =
                transfer(&mut server, &mut client).map_err(|e| format!("client: {e}"))?;
            if !to_server && !to_client {
                break;
            }
        }
        if client.is_handshaking() || server.is_handshaking() {
            return Err("handshake stalled".into());
        }
        Ok(())
    }

    /// Moves everything `from` wants to send into `to` and lets `to` process it; whether
    /// anything moved.
    fn transfer(
        from: &mut rustls::Connection,
        to: &mut rustls::Connection,
    ) -> Result<bool, String> {
        let mut bytes = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut bytes).map_err(|e| e.to_string())?;
        }
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            to.read_tls(&mut rest).map_err(|e| e.to_string())?;
            to.process_new_packets().map_err(|e| e.to_string())?;
        }
        Ok(!bytes.is_empty())
    }
}
