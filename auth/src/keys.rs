//! The keys a token may be signed with: HS256 access keys (primary and secondary, for rotation)
//! and, as an extension for users with their own identity provider, RS256 / ES256 public keys
//! loaded from PEM (bare public keys, or X.509 certificates such as Event Grid's custom-JWT
//! `issuerCertificates`) or from a JWKS document. Each key remembers which algorithm it serves,
//! so a token is only ever checked against keys of its own kind (no HS256-with-a-public-key
//! confusion).

use base64::Engine as _;
use ring::{hmac, signature};

use crate::der::{self, DerError};
use crate::eventgrid::cert;

/// Why a PEM public key or certificate, or a JWKS document, could not be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no PEM block found")]
    NotPem,
    #[error("PEM block is not closed by a matching END line")]
    UnterminatedPem,
    #[error("PEM body is not valid base64")]
    Base64,
    #[error("PEM block is not a public key (expected PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)")]
    UnsupportedPemLabel,
    #[error("public key DER is malformed")]
    MalformedDer,
    /// A CERTIFICATE block is not a well-formed DER X.509 certificate.
    #[error("certificate DER is malformed")]
    MalformedCertificate,
    #[error("public key algorithm is not supported (RSA or EC P-256 only)")]
    UnsupportedAlgorithm,
    #[error("EC public key is not on curve P-256")]
    UnsupportedCurve,
    #[error("EC public key point is not in uncompressed form")]
    CompressedPoint,
    #[error("RSA modulus must be 2048 to 8192 bits")]
    RsaKeySize,
    #[error("RSA public exponent is not supported")]
    RsaExponent,
    /// A JWKS document (RFC 7517) could not be used; the text says why.
    #[error("JWKS: {0}")]
    Jwks(&'static str),
}

impl From<DerError> for KeyError {
    fn from(_: DerError) -> Self {
        KeyError::MalformedDer
    }
}

/// One loaded public key in the form ring verifies against.
#[derive(Clone)]
pub(crate) enum PublicKey {
    /// PKCS#1 `RSAPublicKey` DER (what `RSA_PKCS1_2048_8192_SHA256` takes).
    Rsa(Vec<u8>),
    /// Uncompressed P-256 point `04 || X || Y` (what `ECDSA_P256_SHA256_FIXED` takes).
    EcP256(Vec<u8>),
}

/// One HS256 key: the access-key string as configured plus ring's prepared HMAC key, built once
/// here so the per-token cost is the MAC alone.
#[derive(Clone)]
struct HmacKey {
    text: String,
    key: hmac::Key,
}

/// Every key a token of one hub (or of the service) may be signed with. Built at start-up or on
/// reload and then only read; it is `Send + Sync` so workers can share it behind an `Arc`.
#[derive(Clone, Default)]
pub struct KeyRing {
    hmac: Vec<HmacKey>,
    public: Vec<PublicKey>,
}

impl std::fmt::Debug for KeyRing {
    // Never print key material, not even in debug logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("hmac_keys", &self.hmac.len())
            .field("rsa_keys", &self.rsa_keys().count())
            .field("ec_keys", &self.ec_keys().count())
            .finish()
    }
}

impl KeyRing {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an HS256 key. The access key string's UTF-8 bytes are the HMAC key as they are — the
    /// SDKs never base64-decode it. An empty key is ignored: HMAC with an empty secret would let
    /// anyone mint tokens. Adding the same key twice keeps one copy.
    pub fn add_hmac(&mut self, key: &str) {
        if key.is_empty() || self.hmac.iter().any(|k| k.text == key) {
            return;
        }
        self.hmac.push(HmacKey {
            text: key.to_owned(),
            key: hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes()),
        });
    }

    /// Adds every public key in `pem`: `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo with an
    /// RSA or EC P-256 key), `-----BEGIN RSA PUBLIC KEY-----` (PKCS#1) or `-----BEGIN
    /// CERTIFICATE-----` (X.509; its SubjectPublicKeyInfo is the key, under the same RSA / P-256
    /// rule). A certificate only carries the key here: its signature, issuer, validity period and
    /// key usage are not checked, because configuring it is what makes it trusted (as Event
    /// Grid's `issuerCertificates` work). Blocks of different labels may be mixed in one text.
    /// Nothing is added unless every block parses.
    pub fn add_public_pem(&mut self, pem: &str) -> Result<(), KeyError> {
        let blocks = pem_blocks(pem)?;
        let mut parsed = Vec::with_capacity(blocks.len());
        for (label, der) in blocks {
            let key = match label {
                "PUBLIC KEY" => parse_spki(&der)?,
                "CERTIFICATE" => parse_spki_fields(
                    cert::subject_public_key_info(&der)
                        .map_err(|_| KeyError::MalformedCertificate)?,
                )?,
                "RSA PUBLIC KEY" => {
                    check_rsa_public_key(&der)?;
                    PublicKey::Rsa(der)
                }
                _ => return Err(KeyError::UnsupportedPemLabel),
            };
            parsed.push(key);
        }
        self.public.extend(parsed);
        Ok(())
    }

    /// Adds the signature keys of a JWKS document (RFC 7517 `{"keys": [...]}`, as Entra ID and
    /// most OpenID providers publish): RSA keys from `n`/`e` and EC P-256 keys from `x`/`y`.
    /// Keys meant for encryption (`"use": "enc"`) and key types or curves ring cannot verify with
    /// (e.g. `OKP`, P-384) are skipped rather than refused, because real provider documents mix
    /// them in; a usable-looking key that is malformed refuses the whole document, and so does a
    /// document with no usable key at all. Nothing is added unless the whole document loads.
    /// Returns how many keys were added.
    pub fn add_jwks_json(&mut self, json: &str) -> Result<usize, KeyError> {
        let doc: serde_json::Value =
            serde_json::from_str(json).map_err(|_| KeyError::Jwks("not valid JSON"))?;
        let Some(entries) = doc.get("keys").and_then(serde_json::Value::as_array) else {
            return Err(KeyError::Jwks("no \"keys\" array"));
        };
        let mut parsed = Vec::with_capacity(entries.len());
        for entry in entries {
            if let Some(key) = jwk_public_key(entry)? {
                parsed.push(key);
            }
        }
        if parsed.is_empty() {
            return Err(KeyError::Jwks("no RSA or EC P-256 signature key"));
        }
        let added = parsed.len();
        self.public.extend(parsed);
        Ok(added)
    }

    /// The configured HS256 access keys, in the order added (primary first).
    pub fn hmac_keys(&self) -> impl Iterator<Item = &str> {
        self.hmac.iter().map(|k| k.text.as_str())
    }

    /// True when no key of any kind is configured (every token must then be refused).
    pub fn is_empty(&self) -> bool {
        self.hmac.is_empty() && self.public.is_empty()
    }

    /// True when at least one RS256 or ES256 public key is configured.
    pub fn has_public_keys(&self) -> bool {
        !self.public.is_empty()
    }

    pub(crate) fn hmac_ring_keys(&self) -> impl Iterator<Item = &hmac::Key> {
        self.hmac.iter().map(|k| &k.key)
    }

    pub(crate) fn rsa_keys(&self) -> impl Iterator<Item = &[u8]> {
        self.public.iter().filter_map(|k| match k {
            PublicKey::Rsa(der) => Some(der.as_slice()),
            PublicKey::EcP256(_) => None,
        })
    }

    pub(crate) fn ec_keys(&self) -> impl Iterator<Item = &[u8]> {
        self.public.iter().filter_map(|k| match k {
            PublicKey::EcP256(point) => Some(point.as_slice()),
            PublicKey::Rsa(_) => None,
        })
    }

    /// Verifies an RS256 signature against every RSA key; true if any accepts it.
    pub(crate) fn verify_rs256(&self, message: &[u8], sig: &[u8]) -> bool {
        self.rsa_keys().any(|der| {
            signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, der)
                .verify(message, sig)
                .is_ok()
        })
    }

    /// Verifies an ES256 (raw `r || s`) signature against every P-256 key.
    pub(crate) fn verify_es256(&self, message: &[u8], sig: &[u8]) -> bool {
        self.ec_keys().any(|point| {
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(message, sig)
                .is_ok()
        })
    }
}

/// DER of OID 1.2.840.113549.1.1.1 (rsaEncryption).
const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// DER of OID 1.2.840.10045.2.1 (id-ecPublicKey).
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// DER of OID 1.2.840.10045.3.1.7 (prime256v1 / secp256r1).
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// Takes a SubjectPublicKeyInfo apart:
/// `SEQUENCE { SEQUENCE { algorithm OID, parameters ANY OPTIONAL }, subjectPublicKey BIT STRING }`.
pub(crate) fn parse_spki(der_bytes: &[u8]) -> Result<PublicKey, KeyError> {
    parse_spki_fields(der::read_only(der_bytes, der::TAG_SEQUENCE)?)
}

/// `parse_spki` on the contents of the outer SEQUENCE, which is what the certificate reader
/// hands over (`cert::subject_public_key_info`).
fn parse_spki_fields(spki: &[u8]) -> Result<PublicKey, KeyError> {
    let mut fields = der::Reader::new(spki);
    let algorithm = fields.read(der::TAG_SEQUENCE)?;
    let bits = fields.read(der::TAG_BIT_STRING)?;
    fields.finish()?;

    // A BIT STRING starts with the count of unused bits in its last octet; keys are whole octets.
    let key = match bits.split_first() {
        Some((0, key)) => key,
        _ => return Err(KeyError::MalformedDer),
    };

    let mut alg = der::Reader::new(algorithm);
    let oid = alg.read(der::TAG_OID)?;
    if oid == OID_RSA_ENCRYPTION {
        // Parameters must be NULL (RFC 3279 §2.3.1); some encoders omit them, which is harmless.
        if !alg.is_empty() {
            alg.read(der::TAG_NULL)?;
        }
        alg.finish()?;
        check_rsa_public_key(key)?;
        Ok(PublicKey::Rsa(key.to_vec()))
    } else if oid == OID_EC_PUBLIC_KEY {
        let curve = alg
            .read(der::TAG_OID)
            .map_err(|_| KeyError::UnsupportedCurve)?;
        alg.finish()?;
        if curve != OID_P256 {
            return Err(KeyError::UnsupportedCurve);
        }
        match key {
            [0x04, ..] if key.len() == 65 => Ok(PublicKey::EcP256(key.to_vec())),
            [0x02 | 0x03, ..] => Err(KeyError::CompressedPoint),
            _ => Err(KeyError::MalformedDer),
        }
    } else {
        Err(KeyError::UnsupportedAlgorithm)
    }
}

/// Checks a PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` for
/// what ring's `RSA_PKCS1_2048_8192_*` will accept, so a key that could never verify anything is
/// refused when loaded instead of failing every token later with "bad signature".
fn check_rsa_public_key(der_bytes: &[u8]) -> Result<(), KeyError> {
    let body = der::read_only(der_bytes, der::TAG_SEQUENCE)?;
    let mut fields = der::Reader::new(body);
    let modulus = der::positive_integer(fields.read(der::TAG_INTEGER)?)?;
    let exponent = der::positive_integer(fields.read(der::TAG_INTEGER)?)?;
    fields.finish()?;

    let bits = match modulus.first() {
        Some(&top) => modulus.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    };
    if !(2048..=8192).contains(&bits) {
        return Err(KeyError::RsaKeySize);
    }
    // ring wants an odd exponent of at least 3 that fits in 33 bits.
    let exp = match exponent.len() {
        1..=5 => exponent
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
        _ => return Err(KeyError::RsaExponent),
    };
    if exp < 3 || exp % 2 == 0 || exp >= 1 << 33 {
        return Err(KeyError::RsaExponent);
    }
    Ok(())
}

/// Reads one JWK (RFC 7518 §6.2, §6.3). `Ok(None)` for a key that is not for us (see
/// `KeyRing::add_jwks_json`).
fn jwk_public_key(jwk: &serde_json::Value) -> Result<Option<PublicKey>, KeyError> {
    let text = |name: &str| jwk.get(name).and_then(serde_json::Value::as_str);
    if jwk.get("kty").is_some() && text("kty").is_none() {
        return Err(KeyError::Jwks("kty must be a string"));
    }
    if text("use") == Some("enc") {
        return Ok(None);
    }
    let b64 = |name: &str| -> Result<Vec<u8>, KeyError> {
        let value = text(name).ok_or(KeyError::Jwks("a key member is missing or not a string"))?;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value.trim_end_matches('='))
            .map_err(|_| KeyError::Jwks("a key member is not base64url"))
    };
    match text("kty") {
        Some("RSA") => {
            let modulus = b64("n")?;
            let exponent = b64("e")?;
            let der_bytes = der_sequence(&[
                der_unsigned_integer(&modulus),
                der_unsigned_integer(&exponent),
            ]);
            check_rsa_public_key(&der_bytes)?;
            Ok(Some(PublicKey::Rsa(der_bytes)))
        }
        Some("EC") if text("crv") == Some("P-256") => {
            let (x, y) = (b64("x")?, b64("y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err(KeyError::Jwks("P-256 coordinates must be 32 bytes"));
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            // ring checks the point is on the curve only when verifying; a bad point then fails
            // every signature, the same as a wrong key.
            Ok(Some(PublicKey::EcP256(point)))
        }
        _ => Ok(None),
    }
}

/// A big-endian unsigned magnitude as a minimal DER INTEGER (leading zeros dropped, a sign octet
/// added when the top bit is set).
fn der_unsigned_integer(magnitude: &[u8]) -> Vec<u8> {
    let start = magnitude.iter().take_while(|&&b| b == 0).count();
    let digits = &magnitude[start..];
    let mut contents = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_none_or(|&b| b & 0x80 != 0) {
        contents.push(0);
    }
    contents.extend_from_slice(digits);
    der::tlv(der::TAG_INTEGER, &contents)
}

fn der_sequence(items: &[Vec<u8>]) -> Vec<u8> {
    der::tlv(der::TAG_SEQUENCE, &items.concat())
}

/// Splits `pem` into `(label, DER)` pairs. Text outside BEGIN/END lines is ignored (as OpenSSL
/// does), so a file with comments still loads.
fn pem_blocks(pem: &str) -> Result<Vec<(&str, Vec<u8>)>, KeyError> {
    const BEGIN: &str = "-----BEGIN ";
    const END: &str = "-----END ";
    const DASHES: &str = "-----";

    let mut blocks = Vec::new();
    let mut lines = pem.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix(BEGIN)
            .and_then(|l| l.strip_suffix(DASHES))
        else {
            continue;
        };
        let mut body = String::new();
        let mut closed = false;
        for line in lines.by_ref() {
            if let Some(end) = line.strip_prefix(END).and_then(|l| l.strip_suffix(DASHES)) {
                if end != label {
                    return Err(KeyError::UnterminatedPem);
                }
                closed = true;
                break;
            }
            body.push_str(line);
        }
        if !closed {
            return Err(KeyError::UnterminatedPem);
        }
        let der_bytes = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|_| KeyError::Base64)?;
        blocks.push((label, der_bytes));
    }
    if blocks.is_empty() {
        return Err(KeyError::NotPem);
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(label: &str, der_bytes: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der_bytes);
        let mut out = format!("-----BEGIN {label}-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push('\n');
        }
        out.push_str(&format!("-----END {label}-----\n"));
        out
    }

    /// Builds a DER TLV (test helper; lengths up to 65535).
    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match contents.len() {
            n if n < 0x80 => out.push(n as u8),
            n if n < 0x100 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(contents);
        out
    }

    fn ec_spki(curve: &[u8], point: &[u8]) -> Vec<u8> {
        let alg = [
            tlv(der::TAG_OID, OID_EC_PUBLIC_KEY),
            tlv(der::TAG_OID, curve),
        ]
        .concat();
        let bits = [&[0u8][..], point].concat();
        tlv(
            der::TAG_SEQUENCE,
            &[
                tlv(der::TAG_SEQUENCE, &alg),
                tlv(der::TAG_BIT_STRING, &bits),
            ]
            .concat(),
        )
    }

    fn rsa_pkcs1(modulus_bits: usize, exponent: &[u8]) -> Vec<u8> {
        // A modulus with its top bit set: 0x00 sign octet, then 0x80 followed by zeros.
        let mut modulus = vec![0x00, 0x80];
        modulus.resize(1 + modulus_bits / 8, 0x01);
        tlv(
            der::TAG_SEQUENCE,
            &[
                tlv(der::TAG_INTEGER, &modulus),
                tlv(der::TAG_INTEGER, exponent),
            ]
            .concat(),
        )
    }

    #[test]
    fn key_ring_can_be_shared_across_workers() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<KeyRing>();
    }

    #[test]
    fn empty_ring_is_empty() {
        let ring = KeyRing::new();
        assert!(ring.is_empty());
        assert_eq!(ring.hmac_keys().count(), 0);
    }

    #[test]
    fn hmac_keys_keep_order_skip_empty_and_duplicates() {
        let mut ring = KeyRing::new();
        ring.add_hmac("primary");
        ring.add_hmac("");
        ring.add_hmac("secondary");
        ring.add_hmac("primary");
        assert_eq!(
            ring.hmac_keys().collect::<Vec<_>>(),
            ["primary", "secondary"]
        );
        assert!(!ring.is_empty());
        assert!(!ring.has_public_keys());
    }

    #[test]
    fn debug_output_never_shows_key_material() {
        let mut ring = KeyRing::new();
        ring.add_hmac("super-secret-key");
        let text = format!("{ring:?}");
        assert!(!text.contains("super-secret"), "{text}");
        assert!(text.contains("hmac_keys: 1"), "{text}");
    }

    #[test]
    fn loads_synthetic_ec_p256_spki() {
        let mut point = vec![0x04];
        point.extend([0x11; 64]);
        let mut ring = KeyRing::new();
        ring.add_public_pem(&pem("PUBLIC KEY", &ec_spki(OID_P256, &point)))
            .unwrap();
        assert_eq!(ring.ec_keys().collect::<Vec<_>>(), [point.as_slice()]);
        assert!(ring.has_public_keys());
    }

    #[test]
    fn rejects_other_curves_and_compressed_points() {
        let p384 = [0x2b, 0x81, 0x04, 0x00, 0x22];
        let mut point = vec![0x04];
        point.extend([0x11; 64]);
        assert_eq!(
            parse_spki(&ec_spki(&p384, &point)).err(),
            Some(KeyError::UnsupportedCurve)
        );
        let mut compressed = vec![0x02];
        compressed.extend([0x11; 32]);
        assert_eq!(
            parse_spki(&ec_spki(OID_P256, &compressed)).err(),
            Some(KeyError::CompressedPoint)
        );
    }

    #[test]
    fn loads_pkcs1_rsa_public_key_and_checks_its_size() {
        let mut ring = KeyRing::new();
        ring.add_public_pem(&pem(
            "RSA PUBLIC KEY",
            &rsa_pkcs1(2048, &[0x01, 0x00, 0x01]),
        ))
        .unwrap();
        assert_eq!(ring.rsa_keys().count(), 1);
        assert_eq!(
            ring.add_public_pem(&pem(
                "RSA PUBLIC KEY",
                &rsa_pkcs1(1024, &[0x01, 0x00, 0x01])
            )),
            Err(KeyError::RsaKeySize)
        );
        assert_eq!(
            ring.add_public_pem(&pem("RSA PUBLIC KEY", &rsa_pkcs1(2048, &[0x02]))),
            Err(KeyError::RsaExponent)
        );
    }

    #[test]
    fn rejects_private_keys_empty_certificates_and_garbage() {
        let mut ring = KeyRing::new();
        assert_eq!(
            ring.add_public_pem(&pem("PRIVATE KEY", &[0x30, 0x00])),
            Err(KeyError::UnsupportedPemLabel)
        );
        assert_eq!(
            ring.add_public_pem(&pem("ENCRYPTED PRIVATE KEY", &[0x30, 0x00])),
            Err(KeyError::UnsupportedPemLabel)
        );
        assert_eq!(
            ring.add_public_pem(&pem("CERTIFICATE", &[0x30, 0x00])),
            Err(KeyError::MalformedCertificate)
        );
        assert_eq!(ring.add_public_pem("not a key"), Err(KeyError::NotPem));
        assert_eq!(
            ring.add_public_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n"),
            Err(KeyError::UnterminatedPem)
        );
        assert_eq!(
            ring.add_public_pem("-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n"),
            Err(KeyError::Base64)
        );
        assert_eq!(
            ring.add_public_pem(&pem("PUBLIC KEY", &[0x30, 0x00])),
            Err(KeyError::MalformedDer)
        );
        assert!(ring.is_empty(), "failed loads add nothing");
    }

    #[test]
    fn a_bad_block_keeps_the_good_ones_out_too() {
        let mut point = vec![0x04];
        point.extend([0x11; 64]);
        let text =
            pem("PUBLIC KEY", &ec_spki(OID_P256, &point)) + &pem("PUBLIC KEY", &[0x30, 0x00]);
        let mut ring = KeyRing::new();
        assert_eq!(ring.add_public_pem(&text), Err(KeyError::MalformedDer));
        assert!(ring.is_empty());
    }

    // ---- X.509 certificates (add_public_pem with CERTIFICATE blocks) ----

    const CERT_NOW: u64 = 1_700_000_000;

    /// A compact JWS over `{"sub":"issuer-test","aud":"hubmq",...}` with `alg`, signed by `key`
    /// through openssl (ES256 signatures converted to the raw `r || s` JWS wants).
    fn token_signed_by(key: &crate::testkeys::TestKey, alg: &str) -> String {
        let header = b64url(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
        let claims =
            serde_json::json!({"sub": "issuer-test", "aud": "hubmq", "exp": CERT_NOW + 60});
        let input = format!("{header}.{}", b64url(claims.to_string().as_bytes()));
        let mut sig = key.sign_sha256(input.as_bytes()).unwrap();
        if alg == "ES256" {
            sig = crate::testkeys::ecdsa_der_to_raw(&sig).unwrap();
        }
        format!("{input}.{}", b64url(&sig))
    }

    fn verify_at_cert_now(token: &str, ring: &KeyRing) -> Result<(), crate::TokenError> {
        let any_audience = |_: &str| true;
        let opts = crate::VerifyOptions {
            now: CERT_NOW,
            skew_secs: 0,
            audience: &any_audience,
            require_exp: true,
        };
        crate::verify(token, ring, &opts).map(|_| ())
    }

    /// The single DER body of a one-block PEM text.
    fn der_of(pem_text: &str) -> Vec<u8> {
        let mut blocks = pem_blocks(pem_text).unwrap();
        assert_eq!(blocks.len(), 1);
        blocks.remove(0).1
    }

    #[test]
    fn rs256_token_verifies_against_its_rsa_certificate() {
        use crate::testkeys::{self, require_openssl, self_signed_cert_pem_for};
        if !require_openssl("rs256_token_verifies_against_its_rsa_certificate") {
            return;
        }
        let (rsa, other) = (
            testkeys::rsa_2048().unwrap(),
            testkeys::rsa_2048_other().unwrap(),
        );
        let cert_pem = self_signed_cert_pem_for(rsa, "/CN=issuer.example").unwrap();
        assert!(cert_pem.contains("-----BEGIN CERTIFICATE-----"));
        let mut ring = KeyRing::new();
        ring.add_public_pem(&cert_pem).unwrap();
        assert_eq!((ring.rsa_keys().count(), ring.ec_keys().count()), (1, 0));

        assert_eq!(
            verify_at_cert_now(&token_signed_by(rsa, "RS256"), &ring),
            Ok(())
        );
        assert_eq!(
            verify_at_cert_now(&token_signed_by(other, "RS256"), &ring),
            Err(crate::TokenError::BadSignature)
        );
        // The certificate yields exactly the key its PUBLIC KEY form does.
        let mut from_key = KeyRing::new();
        from_key.add_public_pem(&rsa.public_pem).unwrap();
        assert_eq!(
            ring.rsa_keys().collect::<Vec<_>>(),
            from_key.rsa_keys().collect::<Vec<_>>()
        );
    }

    #[test]
    fn es256_token_verifies_against_its_p256_certificate() {
        use crate::testkeys::{self, require_openssl, self_signed_cert_pem_for};
        if !require_openssl("es256_token_verifies_against_its_p256_certificate") {
            return;
        }
        let ec = testkeys::ec_p256().unwrap();
        let cert_pem = self_signed_cert_pem_for(ec, "/O=Contoso/CN=issuer.example").unwrap();
        let mut ring = KeyRing::new();
        ring.add_public_pem(&cert_pem).unwrap();
        assert_eq!((ring.rsa_keys().count(), ring.ec_keys().count()), (0, 1));
        assert_eq!(
            verify_at_cert_now(&token_signed_by(ec, "ES256"), &ring),
            Ok(())
        );
        // An EC key serves ES256 only: with no RSA key configured, RS256 is not accepted at all.
        assert_eq!(
            verify_at_cert_now(&token_signed_by(ec, "RS256"), &ring),
            Err(crate::TokenError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn loads_ca_signed_certificates_with_extensions() {
        use crate::testkeys::{ca_signed_cert, require_openssl};
        if !require_openssl("loads_ca_signed_certificates_with_extensions") {
            return;
        }
        let der_bytes =
            ca_signed_cert("/CN=issuer", Some("DNS:issuer.example,IP:10.0.0.1")).unwrap();
        let mut ring = KeyRing::new();
        ring.add_public_pem(&pem("CERTIFICATE", &der_bytes))
            .unwrap();
        assert_eq!(ring.ec_keys().count(), 1);
    }

    #[test]
    fn one_pem_mixing_a_certificate_and_a_public_key_loads_both() {
        use crate::testkeys::{self, require_openssl, self_signed_cert_pem_for};
        if !require_openssl("one_pem_mixing_a_certificate_and_a_public_key_loads_both") {
            return;
        }
        let (rsa, ec) = (testkeys::rsa_2048().unwrap(), testkeys::ec_p256().unwrap());
        let text = format!(
            "# issuer certificate, then the rotation key\n{}{}",
            self_signed_cert_pem_for(rsa, "/CN=issuer").unwrap(),
            ec.public_pem
        );
        let mut ring = KeyRing::new();
        ring.add_public_pem(&text).unwrap();
        assert_eq!((ring.rsa_keys().count(), ring.ec_keys().count()), (1, 1));
        assert_eq!(
            verify_at_cert_now(&token_signed_by(rsa, "RS256"), &ring),
            Ok(())
        );
        assert_eq!(
            verify_at_cert_now(&token_signed_by(ec, "ES256"), &ring),
            Ok(())
        );
    }

    #[test]
    fn refuses_truncated_or_garbage_certificates_and_adds_nothing() {
        use crate::testkeys::{self, require_openssl, self_signed_cert_pem_for};
        if !require_openssl("refuses_truncated_or_garbage_certificates_and_adds_nothing") {
            return;
        }
        let rsa = testkeys::rsa_2048().unwrap();
        let good = der_of(&self_signed_cert_pem_for(rsa, "/CN=issuer").unwrap());
        let truncated = &good[..good.len() - 10];
        let trailing = [good.as_slice(), &[0x00]].concat();
        // A bare SubjectPublicKeyInfo mislabelled as a certificate.
        let spki = der_of(&rsa.public_pem);
        let mut lying_length = good.clone();
        lying_length[3] ^= 0x01;
        let bad_bodies: [&[u8]; 6] = [
            truncated,
            &trailing,
            &spki,
            &lying_length,
            b"garbage, not DER",
            &[],
        ];
        let mut ring = KeyRing::new();
        for body in bad_bodies {
            // Behind a good public key, so a partial load would show.
            let text = rsa.public_pem.clone() + &pem("CERTIFICATE", body);
            assert_eq!(
                ring.add_public_pem(&text),
                Err(KeyError::MalformedCertificate),
                "{body:02x?}"
            );
        }
        assert!(ring.is_empty(), "a refused certificate adds nothing");
    }

    #[test]
    fn refuses_certificates_whose_key_is_not_rsa_or_p256() {
        use crate::testkeys::{self, require_openssl, self_signed_cert_pem_for};
        if !require_openssl("refuses_certificates_whose_key_is_not_rsa_or_p256") {
            return;
        }
        let cases = [
            (
                &["-algorithm", "ED25519"][..],
                KeyError::UnsupportedAlgorithm,
            ),
            (
                &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"][..],
                KeyError::UnsupportedCurve,
            ),
        ];
        let mut ring = KeyRing::new();
        for (opts, want) in cases {
            let key = testkeys::other_key(opts).unwrap();
            let cert_pem = self_signed_cert_pem_for(&key, "/CN=issuer").unwrap();
            assert_eq!(ring.add_public_pem(&cert_pem), Err(want), "{opts:?}");
        }
        let small = testkeys::rsa_1024().unwrap();
        let cert_pem = self_signed_cert_pem_for(&small, "/CN=issuer").unwrap();
        assert_eq!(ring.add_public_pem(&cert_pem), Err(KeyError::RsaKeySize));
        assert!(ring.is_empty());
    }

    // ---- JWKS (add_jwks_json) ----

    fn b64url(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The JWK members of an openssl-generated public key, computed through our own SPKI reader.
    fn jwk_of(key: &crate::testkeys::TestKey) -> serde_json::Value {
        let blocks = pem_blocks(&key.public_pem).unwrap();
        match parse_spki(&blocks[0].1).unwrap() {
            PublicKey::Rsa(pkcs1) => {
                let body = der::read_only(&pkcs1, der::TAG_SEQUENCE).unwrap();
                let mut fields = der::Reader::new(body);
                let n = der::positive_integer(fields.read(der::TAG_INTEGER).unwrap()).unwrap();
                let e = der::positive_integer(fields.read(der::TAG_INTEGER).unwrap()).unwrap();
                serde_json::json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "r1",
                                   "n": b64url(n), "e": b64url(e)})
            }
            PublicKey::EcP256(point) => serde_json::json!({"kty": "EC", "crv": "P-256",
                "x": b64url(&point[1..33]), "y": b64url(&point[33..])}),
        }
    }

    #[test]
    fn jwks_keys_verify_like_their_pem_form() {
        use crate::testkeys::{self, require_openssl};
        if !require_openssl("jwks_keys_verify_like_their_pem_form") {
            return;
        }
        let rsa = testkeys::rsa_2048().unwrap();
        let ec = testkeys::ec_p256().unwrap();
        let doc = serde_json::json!({"keys": [
            jwk_of(rsa),
            jwk_of(ec),
            {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"},
            {"kty": "EC", "crv": "P-384", "x": "AAAA", "y": "AAAA"},
            {"kty": "RSA", "use": "enc", "n": "AA", "e": "AQAB"}
        ]});
        let mut ring = KeyRing::new();
        assert_eq!(ring.add_jwks_json(&doc.to_string()), Ok(2));
        assert_eq!((ring.rsa_keys().count(), ring.ec_keys().count()), (1, 1));

        let message = b"header.payload";
        let rsa_sig = rsa.sign_sha256(message).unwrap();
        assert!(ring.verify_rs256(message, &rsa_sig));
        let ec_sig = testkeys::ecdsa_der_to_raw(&ec.sign_sha256(message).unwrap()).unwrap();
        assert!(ring.verify_es256(message, &ec_sig));
        assert!(!ring.verify_rs256(b"other", &rsa_sig));

        // Same bytes as the PEM path, so the DER we build is exactly what ring expects.
        let mut from_pem = KeyRing::new();
        from_pem.add_public_pem(&rsa.public_pem).unwrap();
        assert_eq!(
            from_pem.rsa_keys().collect::<Vec<_>>(),
            ring.rsa_keys().collect::<Vec<_>>()
        );
    }

    #[test]
    fn refuses_unusable_jwks_documents_whole() {
        let mut ring = KeyRing::new();
        let good_ec = serde_json::json!({"kty": "EC", "crv": "P-256",
            "x": b64url(&[1; 32]), "y": b64url(&[2; 32])});
        let cases = [
            ("not json".to_owned(), "not valid JSON"),
            ("{}".to_owned(), "keys"),
            (r#"{"keys": []}"#.to_owned(), "no RSA or EC"),
            (r#"{"keys": [{"kty": "OKP"}]}"#.to_owned(), "no RSA or EC"),
            (
                serde_json::json!({"keys": [good_ec, {"kty": "RSA", "n": "!!", "e": "AQAB"}]})
                    .to_string(),
                "base64url",
            ),
            (
                serde_json::json!({"keys": [{"kty": "RSA", "e": "AQAB"}]}).to_string(),
                "missing",
            ),
            (
                serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "AQ", "y": "AQ"}]})
                    .to_string(),
                "32 bytes",
            ),
            (r#"{"keys": [{"kty": 5}]}"#.to_owned(), "kty"),
        ];
        for (doc, needle) in cases {
            let e = ring.add_jwks_json(&doc).unwrap_err();
            assert!(e.to_string().contains(needle), "{doc}: {e}");
        }
        let small = serde_json::json!({"keys": [{"kty": "RSA",
            "n": b64url(&[0xc5; 128]), "e": "AQAB"}]});
        assert_eq!(
            ring.add_jwks_json(&small.to_string()),
            Err(KeyError::RsaKeySize)
        );
        assert!(ring.is_empty(), "nothing added by a refused document");
    }

    #[test]
    fn der_integer_encoding_is_minimal() {
        assert_eq!(
            der_unsigned_integer(&[0x00, 0x00, 0x7f]),
            [0x02, 0x01, 0x7f]
        );
        assert_eq!(der_unsigned_integer(&[0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(der_unsigned_integer(&[]), [0x02, 0x01, 0x00]);
        let long = der::tlv(der::TAG_SEQUENCE, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x30, 0x82, 0x01, 0x2c]);
    }
}
