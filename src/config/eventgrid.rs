//! `[eventgrid.namespaces.*]`: Event Grid namespaces, parsed into the `hubmq_auth` model and
//! checked, and the key rings (Entra, custom JWT) their authentication needs.

use std::collections::BTreeMap;
use std::fs;

use hubmq_auth::eventgrid::{CompiledNamespace, Namespace};
use hubmq_auth::KeyRing;
use serde::Deserialize;

use super::Config;

/// `[eventgrid]`: only the namespaces table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventGridCfg {
    #[serde(default)]
    namespaces: BTreeMap<String, Namespace>,
}

impl Config {
    pub(super) fn has_eventgrid_namespace(&self, ns: &str) -> bool {
        self.eventgrid_namespaces.contains_key(ns)
    }

    /// Parses `[eventgrid]` into typed namespaces and checks each one: the model's documented
    /// limits, template and query syntax, and that its key files load.
    pub(super) fn validate_eventgrid(&mut self) -> Result<(), (String, String)> {
        let Some(raw) = &self.eventgrid else {
            return Ok(());
        };
        let eg: EventGridCfg = raw
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| ("eventgrid".to_owned(), one_line(&e.to_string())))?;
        for (name, ns) in &eg.namespaces {
            let key = format!("eventgrid.namespaces.{name}");
            if !valid_namespace_name(name) {
                return Err((
                    key,
                    "invalid namespace name (3-50 letters, digits or '-')".into(),
                ));
            }
            ns.validate()
                .map_err(|e| (format!("{key}.{}", e.item), e.reason.clone()))?;
            CompiledNamespace::compile(ns)
                .map_err(|e| (format!("{key}.{}", e.item), e.reason.clone()))?;
            namespace_keys(ns).map_err(|(k, reason)| (format!("{key}.{k}"), reason))?;
        }
        self.eventgrid_namespaces = eg.namespaces;
        Ok(())
    }
}

/// Namespace names follow Azure's resource rule: 3-50 characters, letters, digits and '-'.
fn valid_namespace_name(name: &str) -> bool {
    (3..=50).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A multi-line parser message on one line (config errors are one line).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Loads a JWKS file and PEM public-key files into one key ring; `what` names the table for
/// errors (`entra`, `custom_jwt`). Whether a ring without public keys is acceptable is the
/// caller's decision (a custom-JWT namespace may be HS256 only).
fn load_keys(what: &str, jwks: Option<&str>, pems: &[String]) -> Result<KeyRing, (String, String)> {
    let mut ring = KeyRing::new();
    if let Some(path) = jwks {
        let key = format!("{what}.jwks_file");
        let text = fs::read_to_string(path)
            .map_err(|e| (key.clone(), format!("cannot read {path}: {e}")))?;
        ring.add_jwks_json(&text)
            .map_err(|e| (key, format!("{path}: {e}")))?;
    }
    for (i, path) in pems.iter().enumerate() {
        let key = format!("{what}.public_key_files[{i}]");
        let text = fs::read_to_string(path)
            .map_err(|e| (key.clone(), format!("cannot read {path}: {e}")))?;
        ring.add_public_pem(&text)
            .map_err(|e| (key, format!("{path}: {e}")))?;
    }
    Ok(ring)
}

/// The Entra and custom-JWT key rings of a namespace (empty when the method is off). The
/// custom-JWT ring also holds the HS256 secrets when `algorithms` lists HS256, and only then;
/// which algorithm may use which key is enforced again by the verifier.
pub fn namespace_keys(ns: &Namespace) -> Result<(KeyRing, KeyRing), (String, String)> {
    let no_public_key = || "no signing key: set jwks_file or public_key_files".to_owned();
    let entra = match &ns.entra {
        Some(e) => {
            let ring = load_keys("entra", e.jwks_file.as_deref(), &e.public_key_files)?;
            if !ring.has_public_keys() {
                return Err(("entra".to_owned(), no_public_key()));
            }
            ring
        }
        None => KeyRing::new(),
    };
    let custom = match &ns.custom_jwt {
        Some(c) => {
            let mut ring = load_keys("custom_jwt", c.jwks_file.as_deref(), &c.public_key_files)?;
            if c.uses_public_keys() && !ring.has_public_keys() {
                return Err(("custom_jwt".to_owned(), no_public_key()));
            }
            if c.accepts_algorithm("HS256") {
                add_hmac_secrets(&mut ring, &c.hmac_secrets, &c.hmac_secret_files)?;
                if ring.hmac_keys().next().is_none() {
                    return Err((
                        "custom_jwt".to_owned(),
                        "no signing key: HS256 needs hmac_secrets or hmac_secret_files".into(),
                    ));
                }
            }
            ring
        }
        None => KeyRing::new(),
    };
    Ok((entra, custom))
}

/// Adds custom-JWT HS256 secrets: the configured strings as they are, and each file's content
/// with surrounding whitespace (a trailing newline) trimmed. Secrets are never echoed in errors.
fn add_hmac_secrets(
    ring: &mut KeyRing,
    secrets: &[String],
    files: &[String],
) -> Result<(), (String, String)> {
    use hubmq_auth::eventgrid::model::MIN_HMAC_SECRET_BYTES;
    for (i, secret) in secrets.iter().enumerate() {
        // `Namespace::validate` already refused these; checked again so no caller can slip a
        // short secret into a ring.
        if secret.len() < MIN_HMAC_SECRET_BYTES {
            return Err((
                format!("custom_jwt.hmac_secrets[{i}]"),
                format!("must be at least {MIN_HMAC_SECRET_BYTES} bytes"),
            ));
        }
        ring.add_hmac(secret);
    }
    for (i, path) in files.iter().enumerate() {
        let key = format!("custom_jwt.hmac_secret_files[{i}]");
        let text = fs::read_to_string(path)
            .map_err(|e| (key.clone(), format!("cannot read {path}: {e}")))?;
        let secret = text.trim();
        if secret.len() < MIN_HMAC_SECRET_BYTES {
            return Err((
                key,
                format!("{path}: the secret must be at least {MIN_HMAC_SECRET_BYTES} bytes"),
            ));
        }
        ring.add_hmac(secret);
    }
    Ok(())
}
