//! The keys a token may be signed with: HS256 access keys (primary and secondary, for rotation)
//! and, as an extension for users with their own identity provider, RS256 / ES256 public keys
//! loaded from PEM. Each key remembers which algorithm it serves, so a token is only ever checked
//! against keys of its own kind (no HS256-with-a-public-key confusion).

use base64::Engine as _;
use ring::{hmac, signature};

use crate::der::{self, DerError};

/// Why a PEM public key could not be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no PEM block found")]
    NotPem,
    #[error("PEM block is not closed by a matching END line")]
    UnterminatedPem,
    #[error("PEM body is not valid base64")]
    Base64,
    #[error("PEM block is not a public key (expected PUBLIC KEY or RSA PUBLIC KEY)")]
    UnsupportedPemLabel,
    #[error("public key DER is malformed")]
    MalformedDer,
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
    /// RSA or EC P-256 key) or `-----BEGIN RSA PUBLIC KEY-----` (PKCS#1). Nothing is added unless
    /// every block parses.
    pub fn add_public_pem(&mut self, pem: &str) -> Result<(), KeyError> {
        let blocks = pem_blocks(pem)?;
        let mut parsed = Vec::with_capacity(blocks.len());
        for (label, der) in blocks {
            let key = match label {
                "PUBLIC KEY" => parse_spki(&der)?,
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
    let spki = der::read_only(der_bytes, der::TAG_SEQUENCE)?;
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
    fn rejects_private_keys_certificates_and_garbage() {
        let mut ring = KeyRing::new();
        assert_eq!(
            ring.add_public_pem(&pem("PRIVATE KEY", &[0x30, 0x00])),
            Err(KeyError::UnsupportedPemLabel)
        );
        assert_eq!(
            ring.add_public_pem(&pem("CERTIFICATE", &[0x30, 0x00])),
            Err(KeyError::UnsupportedPemLabel)
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
}
