//! The token settings of a namespace: `entra` (`OAUTH2-JWT`) and `custom_jwt` (`CUSTOM-JWT`),
//! with their serde defaults and the custom-JWT consistency rules (algorithms, key sources,
//! HMAC secrets).

use std::fmt;

use serde::Deserialize;

use super::{
    err, ConfigError, CUSTOM_JWT_ALGORITHMS, DEFAULT_ENTRA_AUDIENCE, DEFAULT_SKEW_SECS,
    MAX_CUSTOM_JWT_KEY_FILES, MIN_HMAC_SECRET_BYTES,
};

fn default_skew() -> u64 {
    DEFAULT_SKEW_SECS
}
fn default_entra_audiences() -> Vec<String> {
    vec![DEFAULT_ENTRA_AUDIENCE.to_owned()]
}

/// `[eventgrid.namespaces.X.entra]`: Entra ID tokens (`OAUTH2-JWT`, RS256 only).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntraCfg {
    /// Tenant IDs whose v1 and v2 issuers are accepted.
    pub tenants: Vec<String>,
    /// Accepted `aud` values, each compared with and without a trailing `/`.
    #[serde(default = "default_entra_audiences")]
    pub audiences: Vec<String>,
    /// JWKS file with the tenant's signing keys (read by the caller).
    #[serde(default)]
    pub jwks_file: Option<String>,
    /// PEM public keys or certificates, as an alternative to a JWKS file [hubmq].
    #[serde(default)]
    pub public_key_files: Vec<String>,
    #[serde(default = "default_skew")]
    pub skew_secs: u64,
}

fn default_custom_jwt_algorithms() -> Vec<String> {
    vec!["RS256".to_owned()]
}

/// `[eventgrid.namespaces.X.custom_jwt]`: tokens from another identity provider (`CUSTOM-JWT`).
/// `Debug` is written by hand so the HMAC secrets never reach a log.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomJwtCfg {
    /// Must equal the token's `iss` exactly.
    pub issuer: String,
    /// PEM public keys or certificates, at most 2.
    #[serde(default)]
    pub public_key_files: Vec<String>,
    /// JWKS file [hubmq extension].
    #[serde(default)]
    pub jwks_file: Option<String>,
    /// Accepted `alg` values, from `CUSTOM_JWT_ALGORITHMS`; default `["RS256"]`, the only one
    /// Event Grid accepts (§4). ES256 (EC P-256 keys from the PEM / JWKS files) and HS256
    /// (shared secrets) are a hubmq extension.
    #[serde(default = "default_custom_jwt_algorithms")]
    pub algorithms: Vec<String>,
    /// HS256 shared secrets (their UTF-8 bytes are the key), two or more for rotation; allowed,
    /// and needed with `hmac_secret_files`, exactly when `algorithms` lists HS256 [hubmq].
    #[serde(default)]
    pub hmac_secrets: Vec<String>,
    /// Files each holding one HS256 secret (surrounding whitespace trimmed; read by the caller),
    /// to keep secrets out of the configuration file [hubmq].
    #[serde(default)]
    pub hmac_secret_files: Vec<String>,
    #[serde(default = "default_skew")]
    pub skew_secs: u64,
    /// Accept v3.1.1 clients that put the token in the CONNECT Password (no Authentication
    /// Method exists there) [hubmq extension, off by default: §4].
    #[serde(default)]
    pub allow_v311_password: bool,
}

impl fmt::Debug for CustomJwtCfg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomJwtCfg")
            .field("issuer", &self.issuer)
            .field("public_key_files", &self.public_key_files)
            .field("jwks_file", &self.jwks_file)
            .field("algorithms", &self.algorithms)
            .field("hmac_secrets", &self.hmac_secrets.len())
            .field("hmac_secret_files", &self.hmac_secret_files)
            .field("skew_secs", &self.skew_secs)
            .field("allow_v311_password", &self.allow_v311_password)
            .finish()
    }
}

impl CustomJwtCfg {
    /// True when `algorithms` lists `alg` (exact, case-sensitive JOSE name).
    pub fn accepts_algorithm(&self, alg: &str) -> bool {
        self.algorithms.iter().any(|a| a == alg)
    }

    /// True when an algorithm verified with a public key (RS256, ES256) is listed.
    pub fn uses_public_keys(&self) -> bool {
        self.accepts_algorithm("RS256") || self.accepts_algorithm("ES256")
    }

    /// `algorithms`, the HMAC secrets and which key sources the listed algorithms need.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.issuer.is_empty() {
            return err("custom_jwt.issuer", "must not be empty");
        }
        if self.algorithms.is_empty() {
            return err(
                "custom_jwt.algorithms",
                "list at least one of RS256, ES256, HS256",
            );
        }
        for (i, alg) in self.algorithms.iter().enumerate() {
            if !CUSTOM_JWT_ALGORITHMS.contains(&alg.as_str()) {
                return err(
                    format!("custom_jwt.algorithms[{i}]"),
                    format!("{alg:?} is not one of RS256, ES256, HS256"),
                );
            }
            if self.algorithms[..i].contains(alg) {
                return err(
                    format!("custom_jwt.algorithms[{i}]"),
                    format!("{alg:?} is listed twice"),
                );
            }
        }
        if self.public_key_files.len() > MAX_CUSTOM_JWT_KEY_FILES {
            return err(
                "custom_jwt.public_key_files",
                format!("at most {MAX_CUSTOM_JWT_KEY_FILES} issuer certificates"),
            );
        }
        let has_public = self.jwks_file.is_some() || !self.public_key_files.is_empty();
        if self.uses_public_keys() && !has_public {
            return err("custom_jwt", "needs public_key_files or jwks_file");
        }
        if !self.uses_public_keys() && has_public {
            // A key that can never be used is a mistake worth reporting, not ignoring.
            let item = if self.public_key_files.is_empty() {
                "custom_jwt.jwks_file"
            } else {
                "custom_jwt.public_key_files"
            };
            return err(
                item,
                "only used by RS256 or ES256, which algorithms does not list",
            );
        }
        if self.accepts_algorithm("HS256") {
            if self.hmac_secrets.is_empty() && self.hmac_secret_files.is_empty() {
                return err(
                    "custom_jwt.hmac_secrets",
                    "HS256 is listed: set hmac_secrets or hmac_secret_files",
                );
            }
        } else {
            for (item, list) in [
                ("custom_jwt.hmac_secrets", &self.hmac_secrets),
                ("custom_jwt.hmac_secret_files", &self.hmac_secret_files),
            ] {
                if !list.is_empty() {
                    return err(item, "only allowed when algorithms lists HS256");
                }
            }
        }
        for (i, secret) in self.hmac_secrets.iter().enumerate() {
            if secret.len() < MIN_HMAC_SECRET_BYTES {
                // The secret itself is never echoed.
                return err(
                    format!("custom_jwt.hmac_secrets[{i}]"),
                    format!("must be at least {MIN_HMAC_SECRET_BYTES} bytes (RFC 7518 §3.2)"),
                );
            }
        }
        for (i, path) in self.hmac_secret_files.iter().enumerate() {
            if path.trim().is_empty() {
                return err(format!("custom_jwt.hmac_secret_files[{i}]"), "empty path");
            }
        }
        Ok(())
    }
}
