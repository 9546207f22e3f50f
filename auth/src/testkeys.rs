//! Test-only key material, generated at test time with the `openssl` command line so no key is
//! ever committed, plus independent reference computations (HMAC, RSA/ECDSA signatures) to check
//! our code against. Every helper returns `None` when `openssl` is missing; tests then print a
//! note and skip.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use crate::der;

/// A generated key pair: the private key PEM (kept in memory, written to a temp file only while
/// signing) and the public key PEM (SubjectPublicKeyInfo).
pub(crate) struct TestKey {
    private_pem: String,
    pub(crate) public_pem: String,
}

/// A fresh path under the temp directory, unique within and across test processes.
fn temp_path(what: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("hubmq-auth-test-{}-{n}-{what}", std::process::id()))
}

/// Runs openssl with `args`, feeding `stdin`; `None` if it is absent or fails.
fn openssl(args: &[&str], stdin: &[u8]) -> Option<Vec<u8>> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(stdin).ok()?;
    let out = child.wait_with_output().ok()?;
    out.status.success().then_some(out.stdout)
}

pub(crate) fn openssl_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| openssl(&["version"], b"").is_some())
}

/// Prints the skip note and returns false when openssl is missing.
pub(crate) fn require_openssl(test: &str) -> bool {
    if openssl_available() {
        true
    } else {
        eprintln!("note: openssl not found; skipping {test}");
        false
    }
}

fn generate(genpkey_opts: &[&str]) -> Option<TestKey> {
    let mut args = vec!["genpkey"];
    args.extend_from_slice(genpkey_opts);
    let private_pem = String::from_utf8(openssl(&args, b"")?).ok()?;
    let public_pem =
        String::from_utf8(openssl(&["pkey", "-pubout"], private_pem.as_bytes())?).ok()?;
    Some(TestKey {
        private_pem,
        public_pem,
    })
}

/// A 2048-bit RSA key, generated once per test process.
pub(crate) fn rsa_2048() -> Option<&'static TestKey> {
    static KEY: OnceLock<Option<TestKey>> = OnceLock::new();
    KEY.get_or_init(|| generate(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]))
        .as_ref()
}

/// A second, unrelated RSA key (for "signed by someone else" tests).
pub(crate) fn rsa_2048_other() -> Option<&'static TestKey> {
    static KEY: OnceLock<Option<TestKey>> = OnceLock::new();
    KEY.get_or_init(|| generate(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]))
        .as_ref()
}

/// A 1024-bit RSA key: too small for ring, must be refused when loaded.
pub(crate) fn rsa_1024() -> Option<TestKey> {
    generate(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"])
}

/// A P-256 key, generated once per test process.
pub(crate) fn ec_p256() -> Option<&'static TestKey> {
    static KEY: OnceLock<Option<TestKey>> = OnceLock::new();
    KEY.get_or_init(|| generate(&["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]))
        .as_ref()
}

/// A key of another kind or curve (e.g. `["-algorithm", "ED25519"]`).
pub(crate) fn other_key(genpkey_opts: &[&str]) -> Option<TestKey> {
    generate(genpkey_opts)
}

impl TestKey {
    /// Signs `data` with SHA-256 (PKCS#1 v1.5 for RSA, DER `ECDSA-Sig-Value` for EC) via openssl.
    pub(crate) fn sign_sha256(&self, data: &[u8]) -> Option<Vec<u8>> {
        let path = temp_path("key.pem");
        std::fs::write(&path, &self.private_pem).ok()?;
        let path_text = path.to_str().map(str::to_owned);
        let sig = path_text.and_then(|p| openssl(&["dgst", "-sha256", "-sign", &p], data));
        let _ = std::fs::remove_file(&path);
        sig
    }
}

/// HMAC-SHA256 computed by openssl, as an independent reference for our HS256 signatures.
pub(crate) fn openssl_hmac_sha256(key: &str, data: &[u8]) -> Option<Vec<u8>> {
    openssl(&["dgst", "-sha256", "-hmac", key, "-binary"], data)
}

/// Converts a DER `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` into the JWS form:
/// `r || s`, each left-padded to 32 bytes.
pub(crate) fn ecdsa_der_to_raw(sig: &[u8]) -> Option<Vec<u8>> {
    let body = der::read_only(sig, der::TAG_SEQUENCE).ok()?;
    let mut fields = der::Reader::new(body);
    let r = der::positive_integer(fields.read(der::TAG_INTEGER).ok()?).ok()?;
    let s = der::positive_integer(fields.read(der::TAG_INTEGER).ok()?).ok()?;
    fields.finish().ok()?;
    let mut out = vec![0u8; 64];
    let (r_slot, s_slot) = out.split_at_mut(32);
    for (value, slot) in [(r, r_slot), (s, s_slot)] {
        if value.len() > 32 {
            return None;
        }
        slot[32 - value.len()..].copy_from_slice(value);
    }
    Some(out)
}

/// A test certificate authority (EC P-256, for speed), generated once per test process.
pub(crate) struct TestCa {
    cert_pem: String,
    key_pem: String,
}

/// Arguments making `openssl req -x509` generate a fresh P-256 key (written to `key_path`) and a
/// certificate for `subject` (openssl `-subj` form, `+` joining multi-valued RDNs), valid for two
/// days from now, printed as DER; `san` is openssl's `subjectAltName` syntax.
fn req_args(key_path: &str, subject: &str, san: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key_path,
        "-multivalue-rdn",
        "-subj",
        subject,
        "-days",
        "2",
        "-outform",
        "DER",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(san) = san {
        args.push("-addext".into());
        args.push(format!("subjectAltName={san}"));
    }
    args
}

/// Runs `openssl req` with `args`, then returns its stdout and the key it wrote to `key_path`
/// (removing the file).
fn run_req(args: &[String], key_path: &std::path::Path) -> Option<(Vec<u8>, String)> {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = openssl(&refs, b"");
    let key = std::fs::read_to_string(key_path).ok();
    let _ = std::fs::remove_file(key_path);
    Some((out?, key?))
}

/// The process-wide test CA (`/CN=hubmq test CA`).
pub(crate) fn test_ca() -> Option<&'static TestCa> {
    static CA: OnceLock<Option<TestCa>> = OnceLock::new();
    CA.get_or_init(|| {
        let key_path = temp_path("ca.key");
        let args = req_args(key_path.to_str()?, "/CN=hubmq test CA", None);
        let (der, key_pem) = run_req(&args, &key_path)?;
        let cert_pem = String::from_utf8(openssl(
            &["x509", "-inform", "DER", "-outform", "PEM"],
            &der,
        )?)
        .ok()?;
        Some(TestCa { cert_pem, key_pem })
    })
    .as_ref()
}

/// A DER client certificate signed by `test_ca()` with `subject` (openssl `-subj` form, e.g.
/// `/O=Contoso/CN=dev-1`) and optional subjectAltName (`DNS:a.example,IP:10.0.0.1,...`).
pub(crate) fn ca_signed_cert(subject: &str, san: Option<&str>) -> Option<Vec<u8>> {
    let ca = test_ca()?;
    let (ca_cert, ca_key, key_path) = (
        temp_path("ca.pem"),
        temp_path("ca-key.pem"),
        temp_path("leaf.key"),
    );
    std::fs::write(&ca_cert, &ca.cert_pem).ok()?;
    std::fs::write(&ca_key, &ca.key_pem).ok()?;
    let der = (|| {
        let mut args = req_args(key_path.to_str()?, subject, san);
        args.extend([
            "-CA".to_owned(),
            ca_cert.to_str()?.to_owned(),
            "-CAkey".to_owned(),
            ca_key.to_str()?.to_owned(),
        ]);
        run_req(&args, &key_path).map(|(der, _)| der)
    })();
    let _ = std::fs::remove_file(&ca_cert);
    let _ = std::fs::remove_file(&ca_key);
    let _ = std::fs::remove_file(&key_path);
    der
}

/// A self-signed DER certificate for `subject` (the `ThumbprintMatch` case).
pub(crate) fn self_signed_cert(subject: &str) -> Option<Vec<u8>> {
    let key_path = temp_path("self.key");
    let args = req_args(key_path.to_str()?, subject, None);
    run_req(&args, &key_path).map(|(der, _)| der)
}

/// A self-signed PEM certificate (`-----BEGIN CERTIFICATE-----`) for `subject` over the public
/// half of `key`, whatever its kind (RSA, P-256, Ed25519, ...), valid for two days: how an
/// identity provider's issuer certificate looks, so a token `key` signs must verify against it.
pub(crate) fn self_signed_cert_pem_for(key: &TestKey, subject: &str) -> Option<String> {
    let key_path = temp_path("cert-key.pem");
    std::fs::write(&key_path, &key.private_pem).ok()?;
    let pem = key_path.to_str().and_then(|p| {
        openssl(
            &["req", "-x509", "-key", p, "-subj", subject, "-days", "2"],
            b"",
        )
    });
    let _ = std::fs::remove_file(&key_path);
    String::from_utf8(pem?).ok()
}

/// openssl's own SHA-256 fingerprint of a DER certificate, `AB:CD:...` (uppercase, colons), as
/// an independent reference for the thumbprint.
pub(crate) fn openssl_sha256_fingerprint(der: &[u8]) -> Option<String> {
    let out = openssl(
        &[
            "x509",
            "-inform",
            "DER",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
        der,
    )?;
    let text = String::from_utf8(out).ok()?;
    Some(text.trim().rsplit('=').next()?.to_owned())
}
