//! `CUSTOM-JWT` tokens for Event Grid mode benchmarks: RS256 JWTs (`iss`, `sub`, `aud`, `nbf`,
//! `exp`) signed with an RSA key the benchmark script generates with openssl at run time (no
//! key is ever committed). The broker checks them against the matching public PEM listed in
//! `custom_jwt.public_key_files`; `sub` becomes the client's authentication name.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64URL};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// A loaded signing key plus the claims every token shares.
pub struct Signer {
    key: RsaKeyPair,
    rng: SystemRandom,
    issuer: String,
    audience: String,
}

/// The DER body of a PEM file (the base64 between the `-----` lines).
fn pem_body(pem: &str) -> Result<Vec<u8>, String> {
    let b64: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    STANDARD
        .decode(b64)
        .map_err(|e| format!("PEM body is not base64: {e}"))
}

impl Signer {
    /// Loads a PKCS#8 RSA private key PEM (`openssl genpkey -algorithm RSA` writes one).
    pub fn from_pem_file(path: &Path, issuer: &str, audience: &str) -> Result<Signer, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Signer::from_pem(&text, issuer, audience).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_pem(pem: &str, issuer: &str, audience: &str) -> Result<Signer, String> {
        let der = pem_body(pem)?;
        let key = RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| format!("not a PKCS#8 RSA private key: {e}"))?;
        Ok(Signer {
            key,
            rng: SystemRandom::new(),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        })
    }

    /// A token for authentication name `sub`, valid from a minute ago (clock skew) for
    /// `ttl_secs`.
    pub fn mint(&self, sub: &str, ttl_secs: u64) -> Result<String, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let header = B64URL.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "iss": self.issuer,
            "sub": sub,
            "aud": self.audience,
            "nbf": now.saturating_sub(60),
            "exp": now + ttl_secs,
        });
        let input = format!("{header}.{}", B64URL.encode(claims.to_string()));
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &self.rng, input.as_bytes(), &mut sig)
            .map_err(|_| "RSA signing failed".to_string())?;
        Ok(format!("{input}.{}", B64URL.encode(sig)))
    }

    /// The public key (PKCS#1 `RSAPublicKey` DER), for checking signatures in tests.
    #[cfg(test)]
    fn public_der(&self) -> Vec<u8> {
        use ring::signature::KeyPair as _;
        self.key.public_key().as_ref().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};

    /// A fresh 2048-bit key from openssl, or `None` where openssl is missing (the test is then
    /// skipped: the benchmark script needs openssl anyway).
    fn fresh_key_pem() -> Option<String> {
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    #[test]
    fn minted_token_verifies_and_carries_custom_jwt_claims() {
        let Some(pem) = fresh_key_pem() else {
            eprintln!("openssl missing: skipped");
            return;
        };
        let s = Signer::from_pem(&pem, "https://issuer.bench", "bench.example").unwrap();
        let t = s.mint("bench-7", 60).unwrap();
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        let sig = B64URL.decode(parts[2]).unwrap();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, s.public_der())
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        let c: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(c["iss"], "https://issuer.bench");
        assert_eq!(c["sub"], "bench-7");
        assert_eq!(c["aud"], "bench.example");
        assert!(c["nbf"].as_u64().unwrap() < c["exp"].as_u64().unwrap());
    }

    #[test]
    fn rejects_pem_that_is_not_a_pkcs8_rsa_key() {
        assert!(Signer::from_pem("-----BEGIN X-----\n!!!\n-----END X-----\n", "i", "a").is_err());
        let not_rsa = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode([0x30, 0x03, 0x02, 0x01, 0x00])
        );
        assert!(Signer::from_pem(&not_rsa, "i", "a").is_err());
    }
}
