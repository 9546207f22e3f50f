//! Registered clients: their attributes (typed in `eventgrid::attrs`), state and certificate
//! validation scheme, the certificate fields an authentication name may come from, thumbprint
//! normalization, and the per-client certificate checks `validate` runs.

use std::fmt;

use serde::Deserialize;

use super::{err, ConfigError};
use crate::eventgrid::attrs::Attributes;

/// Registered client resource.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientDef {
    /// 1–128 characters; unique and compared ignoring case, substituted in its original case.
    pub authentication_name: String,
    #[serde(default)]
    pub attributes: Attributes,
    #[serde(default)]
    pub state: ClientState,
    /// Which certificate field must equal the authentication name (§5); Azure's
    /// `validationScheme`, spelled as Azure spells it.
    #[serde(default)]
    pub validation_scheme: ValidationScheme,
    /// `allowedThumbprints`: hex SHA-256 of the DER certificate, 1–2 entries, only with
    /// `ThumbprintMatch`. Case and ':' separators are ignored (`normalize_thumbprint`).
    #[serde(default)]
    pub allowed_thumbprints: Vec<String>,
}

/// Thumbprints per client with `ThumbprintMatch`: 1–2, so one can be rotated [doc].
pub const MAX_ALLOWED_THUMBPRINTS: usize = 2;

/// How a client certificate proves the authentication name (Azure `validationScheme`, §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum ValidationScheme {
    /// The subject's common name (CN).
    #[default]
    SubjectMatchesAuthenticationName,
    /// A DNS name in the subject alternative names.
    DnsMatchesAuthenticationName,
    /// A URI in the subject alternative names.
    UriMatchesAuthenticationName,
    /// An IP address in the subject alternative names.
    IpMatchesAuthenticationName,
    /// An e-mail address (rfc822Name) in the subject alternative names.
    EmailMatchesAuthenticationName,
    /// The certificate's SHA-256 thumbprint is one of `allowed_thumbprints` (self-signed
    /// certificates; no CA involved).
    ThumbprintMatch,
}

impl ValidationScheme {
    /// The Azure spelling, as written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            ValidationScheme::SubjectMatchesAuthenticationName => {
                "SubjectMatchesAuthenticationName"
            }
            ValidationScheme::DnsMatchesAuthenticationName => "DnsMatchesAuthenticationName",
            ValidationScheme::UriMatchesAuthenticationName => "UriMatchesAuthenticationName",
            ValidationScheme::IpMatchesAuthenticationName => "IpMatchesAuthenticationName",
            ValidationScheme::EmailMatchesAuthenticationName => "EmailMatchesAuthenticationName",
            ValidationScheme::ThumbprintMatch => "ThumbprintMatch",
        }
    }

    /// True for the schemes that rely on a CA having vouched for the certificate's fields.
    pub fn needs_ca(self) -> bool {
        self != ValidationScheme::ThumbprintMatch
    }
}

impl fmt::Display for ValidationScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A certificate field the authentication name may be taken from (Azure
/// `alternativeAuthenticationNameSources` entries, §5), spelled as ARM spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum NameSource {
    /// The subject's common name (CN), not the whole DN (see `cert::CertInfo::name_from`).
    ClientCertificateSubject,
    /// The first DNS subject alternative name.
    ClientCertificateDns,
    /// The first URI subject alternative name.
    ClientCertificateUri,
    /// The first IP address subject alternative name, as `std::net` prints it.
    ClientCertificateIp,
    /// The first e-mail (rfc822Name) subject alternative name.
    ClientCertificateEmail,
}

impl NameSource {
    /// The ARM spelling, as written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            NameSource::ClientCertificateSubject => "ClientCertificateSubject",
            NameSource::ClientCertificateDns => "ClientCertificateDns",
            NameSource::ClientCertificateUri => "ClientCertificateUri",
            NameSource::ClientCertificateIp => "ClientCertificateIp",
            NameSource::ClientCertificateEmail => "ClientCertificateEmail",
        }
    }
}

impl fmt::Display for NameSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Each source may be listed once: a repeat could never be reached with a different outcome,
/// so it is most likely a typo for another source.
pub(super) fn validate_name_sources(sources: &[NameSource]) -> Result<(), ConfigError> {
    for (i, source) in sources.iter().enumerate() {
        if sources[..i].contains(source) {
            return err(
                format!("alternative_authentication_name_sources[{i}]"),
                format!("{source} is listed twice"),
            );
        }
    }
    Ok(())
}

/// A configured thumbprint in canonical form: 64 lowercase hex digits, ':' separators and
/// surrounding blanks removed (tools print them as `AB:CD:..` or `abcd..`). `None` when it is
/// not a SHA-256 thumbprint (a 40-digit SHA-1 one included: Event Grid pins SHA-256).
pub fn normalize_thumbprint(text: &str) -> Option<String> {
    let hex: String = text
        .trim()
        .chars()
        .filter(|&c| c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// A disabled client is refused at CONNECT (0x87).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum ClientState {
    #[default]
    Enabled,
    Disabled,
}
impl ClientDef {
    /// `allowed_thumbprints` goes with `ThumbprintMatch` only, 1–2 well-formed entries.
    pub(super) fn validate_certificate_fields(&self, item: &str) -> Result<(), ConfigError> {
        let thumbprints = &self.allowed_thumbprints;
        if self.validation_scheme != ValidationScheme::ThumbprintMatch {
            if !thumbprints.is_empty() {
                return err(
                    format!("{item}.allowed_thumbprints"),
                    format!(
                        "only used with validation_scheme = \"ThumbprintMatch\" (this client uses {:?})",
                        self.validation_scheme.as_str()
                    ),
                );
            }
            return Ok(());
        }
        if !(1..=MAX_ALLOWED_THUMBPRINTS).contains(&thumbprints.len()) {
            return err(
                format!("{item}.allowed_thumbprints"),
                format!(
                    "validation_scheme = \"ThumbprintMatch\" needs 1-{MAX_ALLOWED_THUMBPRINTS} thumbprints"
                ),
            );
        }
        for (j, text) in thumbprints.iter().enumerate() {
            if normalize_thumbprint(text).is_none() {
                return err(
                    format!("{item}.allowed_thumbprints[{j}]"),
                    format!(
                        "{text:?} is not a SHA-256 thumbprint (64 hex digits, ':' separators allowed)"
                    ),
                );
            }
        }
        Ok(())
    }
}
