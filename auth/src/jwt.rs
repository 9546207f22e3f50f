//! Compact JWS verification and HS256 signing, done directly with `ring`. This module owns the
//! security-relevant decisions about a token: which algorithms are allowed (HS256, RS256, ES256;
//! never `none`), which keys a token is checked against (only keys of its own algorithm), and the
//! strict reading of the time claims (`exp`/`nbf`/`iat` must be JSON integers — a string `nbf`
//! slipping through was a published jsonwebtoken CVE) and of `aud`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::keys::KeyRing;

/// Why a token was refused. Small and `Copy` so the hot path never allocates for a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("missing access token")]
    Missing,
    #[error("malformed token")]
    Malformed,
    /// `none`, an unknown `alg`, or an algorithm for which no key of that kind is configured
    /// (an RS256 token when only HMAC keys exist, an HS256 token when there are none).
    #[error("unsupported token algorithm")]
    UnsupportedAlgorithm,
    #[error("invalid token signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token has no expiry")]
    MissingExpiry,
    #[error("wrong token audience")]
    WrongAudience,
    /// A claim has the wrong type or shape; the text says which (e.g. "nbf must be an integer").
    #[error("{0}")]
    BadClaim(&'static str),
}

impl TokenError {
    /// Short text for the HTTP 401 body.
    pub fn describe(self) -> &'static str {
        match self {
            TokenError::Missing => "missing access token",
            TokenError::Malformed => "malformed token",
            TokenError::UnsupportedAlgorithm => "unsupported token algorithm",
            TokenError::BadSignature => "invalid token signature",
            TokenError::Expired => "token expired",
            TokenError::NotYetValid => "token not yet valid",
            TokenError::MissingExpiry => "token has no expiry",
            TokenError::WrongAudience => "wrong token audience",
            TokenError::BadClaim(what) => what,
        }
    }
}

/// What `verify` checks besides the signature.
#[derive(Clone, Copy)]
pub struct VerifyOptions<'a> {
    /// Current time, unix seconds (this crate never reads the clock).
    pub now: u64,
    /// Allowance for clock skew applied to `exp` and `nbf` (spec default: 300 s).
    pub skew_secs: u64,
    /// Called for each `aud` entry (a string `aud` is one entry); the token passes if any
    /// entry is accepted.
    pub audience: &'a dyn Fn(&str) -> bool,
    /// Refuse tokens without `exp` (true for client and REST tokens).
    pub require_exp: bool,
}

/// Tokens above this size are refused before any decoding, bounding the work a client can cause.
/// Real tokens are a few hundred bytes; a thousand group claims still fit.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// The algorithms we accept, each tied to one kind of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Hs256,
    Rs256,
    Es256,
}

/// Verifies a compact JWS and returns its claims. See the module docs for the rules; the order of
/// checks is: shape → header and algorithm → signature → claim types → `exp` → `nbf` → `aud`.
/// The payload is only parsed after the signature is checked.
pub fn verify(
    token: &str,
    keys: &KeyRing,
    opts: &VerifyOptions,
) -> Result<Map<String, Value>, TokenError> {
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };

    let header_json = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| TokenError::Malformed)?;
    let header = parse_object(&header_json).ok_or(TokenError::Malformed)?;
    if header.duplicate {
        return Err(TokenError::Malformed);
    }
    let alg = header_alg(&header.map)?;

    // Refuse an algorithm we hold no key for before touching the signature: this is what makes
    // HS256-signed-with-the-public-key tokens fail when only public keys are configured.
    let have_key = match alg {
        Alg::Hs256 => keys.hmac_ring_keys().next().is_some(),
        Alg::Rs256 => keys.rsa_keys().next().is_some(),
        Alg::Es256 => keys.ec_keys().next().is_some(),
    };
    if !have_key {
        return Err(TokenError::UnsupportedAlgorithm);
    }

    let sig = URL_SAFE_NO_PAD
        .decode(sig_b64)
        .map_err(|_| TokenError::Malformed)?;
    // The signing input is the two encoded parts as sent, dot included.
    let signing_input = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
    let valid = match alg {
        Alg::Hs256 => keys
            .hmac_ring_keys()
            .any(|key| hmac::verify(key, signing_input, &sig).is_ok()),
        Alg::Rs256 => keys.verify_rs256(signing_input, &sig),
        Alg::Es256 => keys.verify_es256(signing_input, &sig),
    };
    if !valid {
        return Err(TokenError::BadSignature);
    }

    let payload_json = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| TokenError::Malformed)?;
    let payload = parse_object(&payload_json).ok_or(TokenError::Malformed)?;
    if payload.duplicate {
        return Err(TokenError::BadClaim("duplicate claim"));
    }
    let claims = payload.map;
    check_claims(&claims, opts)?;
    Ok(claims)
}

/// Reads `alg` (required string) and checks the other header fields we understand.
fn header_alg(header: &Map<String, Value>) -> Result<Alg, TokenError> {
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.as_str(),
        _ => return Err(TokenError::Malformed),
    };
    // `typ` and `kid` are optional strings; we try every key, so `kid` is only type-checked.
    for name in ["typ", "kid"] {
        if !matches!(header.get(name), None | Some(Value::String(_))) {
            return Err(TokenError::Malformed);
        }
    }
    // RFC 7515 §4.1.11: a `crit` header names extensions the verifier must understand; we
    // understand none, so any token using it is refused.
    if header.contains_key("crit") {
        return Err(TokenError::Malformed);
    }
    match alg {
        "HS256" => Ok(Alg::Hs256),
        "RS256" => Ok(Alg::Rs256),
        "ES256" => Ok(Alg::Es256),
        _ => Err(TokenError::UnsupportedAlgorithm),
    }
}

/// Reads a time claim: absent is fine, otherwise it must be a non-negative JSON integer.
fn numeric_date(
    claims: &Map<String, Value>,
    name: &str,
    bad: &'static str,
) -> Result<Option<u64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or(TokenError::BadClaim(bad)),
        Some(_) => Err(TokenError::BadClaim(bad)),
    }
}

fn check_claims(claims: &Map<String, Value>, opts: &VerifyOptions) -> Result<(), TokenError> {
    let exp = numeric_date(claims, "exp", "exp must be an integer")?;
    let nbf = numeric_date(claims, "nbf", "nbf must be an integer")?;
    numeric_date(claims, "iat", "iat must be an integer")?;

    match exp {
        None if opts.require_exp => return Err(TokenError::MissingExpiry),
        // RFC 7519 §4.1.4: the current time must be before `exp`.
        Some(exp) if opts.now >= exp.saturating_add(opts.skew_secs) => {
            return Err(TokenError::Expired)
        }
        _ => {}
    }
    if let Some(nbf) = nbf {
        // RFC 7519 §4.1.5: accepted on or after `nbf`.
        if opts.now.saturating_add(opts.skew_secs) < nbf {
            return Err(TokenError::NotYetValid);
        }
    }

    const BAD_AUD: &str = "aud must be a string or an array of strings";
    let accepted = match claims.get("aud") {
        None => false,
        Some(Value::String(aud)) => (opts.audience)(aud),
        Some(Value::Array(entries)) => {
            let mut any = false;
            for entry in entries {
                let Value::String(aud) = entry else {
                    return Err(TokenError::BadClaim(BAD_AUD));
                };
                any = any || (opts.audience)(aud);
            }
            any
        }
        Some(_) => return Err(TokenError::BadClaim(BAD_AUD)),
    };
    if accepted {
        Ok(())
    } else {
        Err(TokenError::WrongAudience)
    }
}

/// A JSON object read with duplicate member names noticed instead of silently taking the last
/// one (the default for `serde_json::Map`). Two `sub` or two `alg` members are an ambiguity an
/// attacker can exploit when different parsers pick different ones, so callers refuse them.
struct StrictObject {
    map: Map<String, Value>,
    duplicate: bool,
}

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = StrictObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<StrictObject, A::Error> {
                let mut map = Map::new();
                let mut duplicate = false;
                while let Some(key) = access.next_key::<String>()? {
                    let value: Value = access.next_value()?;
                    duplicate |= map.insert(key, value).is_some();
                }
                Ok(StrictObject { map, duplicate })
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// Parses bytes as exactly one JSON object; `None` for anything else (arrays, trailing data,
/// invalid UTF-8).
fn parse_object(json: &[u8]) -> Option<StrictObject> {
    serde_json::from_slice(json).ok()
}

/// The JOSE header both SDKs emit (PyJWT and `jsonwebtoken` alike), byte for byte.
const HS256_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Signs `claims` as a compact HS256 JWS with the access key string's UTF-8 bytes as the secret.
/// Used by `hubmq token`, the REST `:generateToken` operation and tests.
pub fn sign_hs256(claims: &Value, key: &str) -> String {
    let mut token = URL_SAFE_NO_PAD.encode(HS256_HEADER);
    token.push('.');
    // `Value`'s Display writes compact JSON and cannot fail (keys are always strings).
    URL_SAFE_NO_PAD.encode_string(claims.to_string(), &mut token);
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes()),
        token.as_bytes(),
    );
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut token);
    token
}

#[cfg(test)]
mod tests;
