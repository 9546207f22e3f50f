//! From an `OAUTH2-JWT` (Microsoft Entra ID, §3) or `CUSTOM-JWT` (§4) token in the CONNECT or
//! AUTH Authentication Data to a `ClientIdentity`, or to the MQTT reason code the refusal is
//! answered with. Signature, time and `aud` checks are `crate::verify`'s; this module adds the
//! Event Grid rules on top: which `alg` a method accepts (RS256 only, as Event Grid documents;
//! a custom-JWT namespace may opt into ES256 and HS256 as a hubmq extension), the 8 KB size cap,
//! `nbf` required, the issuer forms, the authentication name and the claims that become
//! attributes.

use serde_json::{Map, Value};

use super::model::{AttrValue, Attributes, CustomJwtCfg, EntraCfg, MAX_AUTHENTICATION_NAME_CHARS};
use super::policy::{AuthKind, ClientIdentity};
use crate::{verify, KeyRing, TokenError, VerifyOptions};

/// The CONNECT / AUTH Authentication Method of Entra tokens [doc].
pub const ENTRA_METHOD: &str = "OAUTH2-JWT";
/// The Authentication Method of custom-issuer tokens [doc].
pub const CUSTOM_JWT_METHOD: &str = "CUSTOM-JWT";
/// Authentication data above this is refused with 0x95 [doc: 8 KB; code unconfirmed].
pub const MAX_AUTH_DATA_LEN: usize = 8 * 1024;
/// CONNACK / DISCONNECT reason for a refused token: 0x87 Not authorized [unconfirmed, §3].
pub const REASON_NOT_AUTHORIZED: u8 = 0x87;
/// Reason for authentication data over `MAX_AUTH_DATA_LEN`: 0x95 Packet too large [unconfirmed].
pub const REASON_TOO_LARGE: u8 = 0x95;

/// Why a token was refused. `reason()` is the MQTT v5 code to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EgTokenError {
    #[error("authentication data is larger than 8 KB")]
    TooLarge,
    /// The `alg` header is not one the method accepts: RS256 for Entra; the namespace's
    /// `custom_jwt.algorithms` (default RS256) for custom JWT. `none` is always refused.
    #[error("token algorithm is not accepted")]
    Algorithm,
    /// The `typ` header is neither `JWT` nor `JWS` (custom JWT only).
    #[error("token type must be JWT or JWS")]
    Type,
    #[error("token issuer is not accepted")]
    WrongIssuer,
    #[error("token lacks the {0} claim")]
    MissingClaim(&'static str),
    #[error("{0}")]
    BadClaim(&'static str),
    /// Refused by `crate::verify` (shape, signature, `exp`/`nbf`, `aud`).
    #[error("{0}")]
    Token(TokenError),
}

impl EgTokenError {
    /// The CONNACK (at CONNECT) or DISCONNECT (at re-authentication) reason code.
    pub fn reason(&self) -> u8 {
        match self {
            EgTokenError::TooLarge => REASON_TOO_LARGE,
            _ => REASON_NOT_AUTHORIZED,
        }
    }
}

impl From<TokenError> for EgTokenError {
    fn from(e: TokenError) -> Self {
        EgTokenError::Token(e)
    }
}

/// A token that passed: who the client is, and when the token stops being valid (`exp`, unix
/// seconds; the broker disconnects with 0x87 at `expires_at + skew_secs` unless re-authenticated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub identity: ClientIdentity,
    pub expires_at: u64,
    pub skew_secs: u64,
}

/// Entra settings with their keys loaded (the caller reads `jwks_file` / `public_key_files` into
/// the `KeyRing`).
#[derive(Debug, Clone)]
pub struct EntraVerifier {
    tenants: Vec<String>,
    audiences: Vec<String>,
    keys: KeyRing,
    skew_secs: u64,
}

impl EntraVerifier {
    pub fn new(cfg: &EntraCfg, keys: KeyRing) -> Self {
        EntraVerifier {
            tenants: cfg.tenants.iter().map(|t| t.trim().to_owned()).collect(),
            audiences: cfg.audiences.clone(),
            keys,
            skew_secs: cfg.skew_secs,
        }
    }

    /// True for `https://sts.windows.net/{tenant}/` and
    /// `https://login.microsoftonline.com/{tenant}/v2.0` of a configured tenant (tenant IDs
    /// compared ignoring ASCII case; they are GUIDs) [unconfirmed, §3].
    fn issuer_accepted(&self, iss: &str) -> bool {
        let tenant = iss
            .strip_prefix("https://sts.windows.net/")
            .and_then(|rest| rest.strip_suffix('/'))
            .or_else(|| {
                iss.strip_prefix("https://login.microsoftonline.com/")
                    .and_then(|rest| rest.strip_suffix("/v2.0"))
            });
        tenant.is_some_and(|tenant| {
            !tenant.contains('/') && self.tenants.iter().any(|t| t.eq_ignore_ascii_case(tenant))
        })
    }
}

/// The JWS algorithms a token method accepts. Kept apart from the keys on purpose: `verify`
/// checks a token only against keys of its own kind, and this list decides which kinds may be
/// used at all, so a key that is present but not meant for a namespace's algorithms (an EC key
/// in an RS256-only JWKS, an HMAC secret left in a ring) can never accept a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AcceptedAlgs {
    rs256: bool,
    es256: bool,
    hs256: bool,
}

impl AcceptedAlgs {
    /// Event Grid's rule for both methods [doc: §3, §4].
    const RS256_ONLY: AcceptedAlgs = AcceptedAlgs {
        rs256: true,
        es256: false,
        hs256: false,
    };

    /// From `custom_jwt.algorithms`. Names are case-sensitive as in JOSE (RFC 7518 §3.1);
    /// anything else is ignored here because `Namespace::validate` refuses it first.
    fn from_names(names: &[String]) -> Self {
        let has = |alg: &str| names.iter().any(|n| n == alg);
        AcceptedAlgs {
            rs256: has("RS256"),
            es256: has("ES256"),
            hs256: has("HS256"),
        }
    }

    fn accepts(self, alg: &str) -> bool {
        match alg {
            "RS256" => self.rs256,
            "ES256" => self.es256,
            "HS256" => self.hs256,
            _ => false,
        }
    }
}

/// Custom-JWT settings with their keys loaded (PEM issuer certificates and/or a JWKS, and the
/// HMAC secrets when HS256 is enabled).
#[derive(Debug, Clone)]
pub struct CustomJwtVerifier {
    issuer: String,
    keys: KeyRing,
    skew_secs: u64,
    algorithms: AcceptedAlgs,
}

impl CustomJwtVerifier {
    /// `keys` holds whatever the caller loaded for this namespace; only those of an algorithm
    /// listed in `cfg.algorithms` are ever used (see `AcceptedAlgs`).
    pub fn new(cfg: &CustomJwtCfg, keys: KeyRing) -> Self {
        CustomJwtVerifier {
            issuer: cfg.issuer.clone(),
            keys,
            skew_secs: cfg.skew_secs,
            algorithms: AcceptedAlgs::from_names(&cfg.algorithms),
        }
    }
}

/// Compares an audience ignoring one trailing `/` on either side.
fn without_slash(s: &str) -> &str {
    s.strip_suffix('/').unwrap_or(s)
}

/// Size cap, UTF-8, and the protected header's `alg` (one of `algs`) and `typ`.
fn precheck(data: &[u8], algs: AcceptedAlgs, check_typ: bool) -> Result<&str, EgTokenError> {
    if data.len() > MAX_AUTH_DATA_LEN {
        return Err(EgTokenError::TooLarge);
    }
    let token = std::str::from_utf8(data).map_err(|_| TokenError::Malformed)?;
    if token.is_empty() {
        return Err(TokenError::Missing.into());
    }
    let header_b64 = token.split('.').next().unwrap_or_default();
    use base64::Engine as _;
    let header_json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| TokenError::Malformed)?;
    let header: Map<String, Value> =
        serde_json::from_slice(&header_json).map_err(|_| TokenError::Malformed)?;
    // Checked before any key is tried, so a namespace only ever verifies the algorithms it
    // listed: an RS256-only one never tries an ES256 token against a JWKS EC key the issuer did
    // not mean, nor an HS256 token at all. (A duplicated `alg` member, which this lenient parse
    // would resolve to the last one, is refused by `verify`'s strict header parse.) Where HS256
    // is accepted, `verify` checks it against the configured HMAC secrets only, never against a
    // public key's bytes.
    match header.get("alg").and_then(Value::as_str) {
        Some(alg) if algs.accepts(alg) => {}
        _ => return Err(EgTokenError::Algorithm),
    }
    if check_typ {
        match header.get("typ") {
            None => {}
            Some(Value::String(t))
                if t.eq_ignore_ascii_case("JWT") || t.eq_ignore_ascii_case("JWS") => {}
            Some(_) => return Err(EgTokenError::Type),
        }
    }
    Ok(token)
}

/// Reads `exp` (present and checked by `verify`, which requires it) and requires `nbf`.
fn times(claims: &Map<String, Value>) -> Result<u64, EgTokenError> {
    if !claims.contains_key("nbf") {
        return Err(EgTokenError::MissingClaim("nbf"));
    }
    claims
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or(EgTokenError::MissingClaim("exp"))
}

fn non_empty_string<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Verifies an Entra ID token (`OAUTH2-JWT`, §3): RS256 against the tenant keys; `aud` one of
/// the configured audiences (with or without trailing `/`); `iss` the v1 or v2 issuer of a
/// configured tenant; `exp` and `nbf` required, with skew. The authentication name is `oid`,
/// falling back to `sub` [unconfirmed]; Entra clients carry no attributes [hubmq].
pub fn verify_entra(
    data: impl AsRef<[u8]>,
    cfg: &EntraVerifier,
    now: u64,
) -> Result<VerifiedToken, EgTokenError> {
    let token = precheck(data.as_ref(), AcceptedAlgs::RS256_ONLY, false)?;
    let audience = |aud: &str| {
        cfg.audiences
            .iter()
            .any(|a| without_slash(a) == without_slash(aud))
    };
    let opts = VerifyOptions {
        now,
        skew_secs: cfg.skew_secs,
        audience: &audience,
        require_exp: true,
    };
    let claims = verify(token, &cfg.keys, &opts)?;
    let expires_at = times(&claims)?;
    match claims.get("iss") {
        None => return Err(EgTokenError::MissingClaim("iss")),
        Some(Value::String(iss)) if cfg.issuer_accepted(iss) => {}
        Some(_) => return Err(EgTokenError::WrongIssuer),
    }
    let name = non_empty_string(&claims, "oid")
        .or_else(|| non_empty_string(&claims, "sub"))
        .ok_or(EgTokenError::MissingClaim("oid or sub"))?;
    Ok(VerifiedToken {
        identity: ClientIdentity {
            authentication_name: name.to_owned(),
            attributes: Attributes::new(),
            auth_kind: AuthKind::Entra {
                oid: name.to_owned(),
            },
        },
        expires_at,
        skew_secs: cfg.skew_secs,
    })
}

/// Claims that never become attributes (§4).
const RESERVED_CLAIMS: [&str; 5] = ["iss", "sub", "aud", "exp", "nbf"];

/// Verifies a custom-issuer token (`CUSTOM-JWT`, §4): an `alg` of the namespace's `algorithms`
/// (RS256 unless the hubmq extension lists ES256 / HS256 too); `typ` `JWT`, `JWS` or absent
/// [unconfirmed]; `iss` equal to the configured issuer; `aud` (string or array) holding one of
/// `hostnames` with or without a trailing `/` (host names compared ignoring ASCII case);
/// `sub`, `exp` and `nbf` required. `sub` is the authentication name; every other claim that is
/// an int32, a string or an array of strings becomes an attribute, other types are ignored.
pub fn verify_custom_jwt(
    data: impl AsRef<[u8]>,
    cfg: &CustomJwtVerifier,
    hostnames: &[String],
    now: u64,
) -> Result<VerifiedToken, EgTokenError> {
    let token = precheck(data.as_ref(), cfg.algorithms, true)?;
    let audience = |aud: &str| {
        hostnames
            .iter()
            .any(|h| without_slash(h).eq_ignore_ascii_case(without_slash(aud)))
    };
    let opts = VerifyOptions {
        now,
        skew_secs: cfg.skew_secs,
        audience: &audience,
        require_exp: true,
    };
    let claims = verify(token, &cfg.keys, &opts)?;
    let expires_at = times(&claims)?;
    match claims.get("iss") {
        None => return Err(EgTokenError::MissingClaim("iss")),
        Some(Value::String(iss)) if *iss == cfg.issuer => {}
        Some(_) => return Err(EgTokenError::WrongIssuer),
    }
    let name = match claims.get("sub") {
        None => return Err(EgTokenError::MissingClaim("sub")),
        Some(Value::String(sub))
            if !sub.is_empty() && sub.chars().count() <= MAX_AUTHENTICATION_NAME_CHARS =>
        {
            sub.clone()
        }
        Some(_) => {
            return Err(EgTokenError::BadClaim(
                "sub must be a string of 1-128 characters",
            ))
        }
    };
    Ok(VerifiedToken {
        identity: ClientIdentity {
            authentication_name: name,
            attributes: claim_attributes(&claims),
            auth_kind: AuthKind::CustomJwt,
        },
        expires_at,
        skew_secs: cfg.skew_secs,
    })
}

/// The claims that become attributes (§4): every one but the reserved claims.
fn claim_attributes(claims: &Map<String, Value>) -> Attributes {
    json_attributes(claims, &RESERVED_CLAIMS)
}

/// JSON members as client attributes, by the rule custom-JWT claims and webhook replies share
/// (§4, §5): an **int32**, a **string** or an **array of strings** (an empty array counts) is
/// kept; anything else (int64, float — even `5.0` —, bool, object, null, an array holding a
/// non-string) is ignored, not an error. Members named in `skip` are left out.
pub(crate) fn json_attributes(members: &Map<String, Value>, skip: &[&str]) -> Attributes {
    let mut attributes = Attributes::new();
    for (name, value) in members {
        if skip.contains(&name.as_str()) {
            continue;
        }
        let attr = match value {
            Value::String(s) => AttrValue::Str(s.clone()),
            Value::Number(n) => match n.as_i64().and_then(|v| i32::try_from(v).ok()) {
                Some(v) => AttrValue::Int(i64::from(v)),
                None => continue,
            },
            Value::Array(items) => {
                let strings: Option<Vec<String>> = items
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect();
                match strings {
                    Some(strings) => AttrValue::StrArray(strings),
                    None => continue,
                }
            }
            _ => continue,
        };
        attributes.insert(name.clone(), attr);
    }
    attributes
}

#[cfg(test)]
pub(crate) mod tests;
