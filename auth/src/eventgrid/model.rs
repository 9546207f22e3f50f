//! The Event Grid namespace as configured: plain data mirroring the `[eventgrid.namespaces.X]`
//! tables of `config.md` (and the Azure resource model behind them, `eventgrid-mqtt.md` §3–§6),
//! deserializable with serde so the binary can read its TOML straight into it, plus `validate`,
//! which enforces the documented limits and syntax and names the offending item in its error.
//! Nothing here is compiled for speed; `policy::CompiledNamespace` does that.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;

use super::{query, topics};

/// Client groups per namespace (`$all` not counted) [doc].
pub const MAX_CLIENT_GROUPS: usize = 10;
/// Topic spaces per namespace [doc].
pub const MAX_TOPIC_SPACES: usize = 10;
/// Topic templates per topic space [doc].
pub const MAX_TEMPLATES_PER_TOPIC_SPACE: usize = 10;
/// Permission bindings per namespace [doc].
pub const MAX_PERMISSION_BINDINGS: usize = 100;
/// Issuer certificates for custom JWT (two, for rotation) [doc].
pub const MAX_CUSTOM_JWT_KEY_FILES: usize = 2;
/// The `alg` values `custom_jwt.algorithms` may list: Event Grid's RS256 [doc] plus ES256 and
/// HS256 [hubmq extension].
pub const CUSTOM_JWT_ALGORITHMS: [&str; 3] = ["RS256", "ES256", "HS256"];
/// Shortest custom-JWT HMAC secret, in bytes: RFC 7518 §3.2 requires an HS256 key of at least
/// the hash size (256 bits); a shorter one can be brute-forced from a single token.
pub const MIN_HMAC_SECRET_BYTES: usize = 32;
/// Client authentication names are 1–128 characters [doc].
pub const MAX_AUTHENTICATION_NAME_CHARS: usize = 128;
/// The attributes of one client total under 4 KB [doc]; counted here as the UTF-8 bytes of keys
/// and values (integers as decimal text) [unconfirmed: Microsoft does not say how it counts].
pub const MAX_CLIENT_ATTRIBUTE_BYTES: usize = 4 * 1024;
/// Default JWT clock skew, seconds [unconfirmed].
pub const DEFAULT_SKEW_SECS: u64 = 300;
/// The Entra audience Event Grid documents [doc].
pub const DEFAULT_ENTRA_AUDIENCE: &str = "https://eventgrid.azure.net/";
/// `maximumClientSessionsPerAuthenticationName`: default and range [unconfirmed].
pub const DEFAULT_SESSIONS_PER_AUTHENTICATION_NAME: u32 = 1;
pub const MAX_SESSIONS_PER_AUTHENTICATION_NAME: u32 = 100;
/// `maximumSessionExpiryInHours`: default 1, at most 8 [doc].
pub const DEFAULT_MAX_SESSION_EXPIRY_HOURS: u32 = 1;
pub const MAX_SESSION_EXPIRY_HOURS: u32 = 8;

/// One Event Grid namespace (`[eventgrid.namespaces.NAME]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespace {
    /// Host names of the namespace; the accepted CUSTOM-JWT audiences (the listener's host is
    /// added by the caller).
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// `OAUTH2-JWT` (Microsoft Entra ID) settings; absent = that method is refused (0x8C).
    #[serde(default)]
    pub entra: Option<EntraCfg>,
    /// `CUSTOM-JWT` settings; absent = that method is refused (0x8C).
    #[serde(default)]
    pub custom_jwt: Option<CustomJwtCfg>,
    /// Registered clients (certificate / username authentication).
    #[serde(default)]
    pub clients: Vec<ClientDef>,
    /// Azure's `alternativeAuthenticationNameSources` (§5): where a client certificate's
    /// authentication name comes from when the CONNECT Username is empty, tried in order.
    /// Empty (the default) = certificate clients must send the name as Username.
    #[serde(default)]
    pub alternative_authentication_name_sources: Vec<NameSource>,
    #[serde(default)]
    pub client_groups: Vec<ClientGroup>,
    #[serde(default)]
    pub topic_spaces: Vec<TopicSpace>,
    #[serde(default)]
    pub permission_bindings: Vec<Binding>,
    /// RBAC for Entra identities.
    #[serde(default)]
    pub role_assignments: Vec<RoleAssignment>,
    /// `maximumClientSessionsPerAuthenticationName` (1–100).
    #[serde(default = "default_sessions_per_name")]
    pub max_client_sessions_per_authentication_name: u32,
    /// `maximumSessionExpiryInHours` (1–8).
    #[serde(default = "default_session_expiry_hours")]
    pub max_session_expiry_hours: u32,
    /// Retained messages on or off (§7; on by default) [hubmq]. Off: Retain Available = 0 and a
    /// retained PUBLISH is refused (v5 DISCONNECT 0x9A).
    #[serde(default = "default_true")]
    pub retain: bool,
    /// Throughput units scaling the quotas of §7 [hubmq].
    #[serde(default = "default_throughput_units")]
    pub throughput_units: u32,
    /// Rate quotas (§7); the defaults are the documented values for one throughput unit.
    #[serde(default)]
    pub quotas: Quotas,
    /// Custom webhook authentication (§5): asked about every CONNECT that neither a JWT method
    /// nor a registered client certificate settles.
    #[serde(default)]
    pub webhook: Option<WebhookCfg>,
}

/// `[eventgrid.namespaces.X.quotas]`: the rate quotas of §7, per second; 0 = no limit. The
/// namespace-wide ones are per throughput unit (multiplied by `throughput_units`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quotas {
    /// CONNECT attempts per second in the namespace (per TU); over → CONNACK 0x89.
    pub connects_per_second: u32,
    /// CONNECT attempts per second per session name; over → CONNACK 0x9F.
    pub session_connects_per_second: u32,
    /// Inbound PUBLISHes (and bytes) per second in the namespace (per TU).
    pub publishes_per_second: u32,
    pub publish_bytes_per_second: u32,
    /// Inbound PUBLISHes (and bytes) per second per session; over → PUBACK 0x97.
    pub session_publishes_per_second: u32,
    pub session_publish_bytes_per_second: u32,
    /// SUBSCRIBE + UNSUBSCRIBE packets per second in the namespace (per TU) and per session.
    pub subscribes_per_second: u32,
    pub session_subscribes_per_second: u32,
    /// Outbound PUBLISHes (and bytes) per second per session: deliveries beyond it wait in
    /// the session's queue, none is dropped for it [hubmq].
    pub session_deliveries_per_second: u32,
    pub session_delivery_bytes_per_second: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            connects_per_second: 200,
            session_connects_per_second: 1,
            publishes_per_second: 1000,
            publish_bytes_per_second: 1024 * 1024,
            session_publishes_per_second: 1000,
            session_publish_bytes_per_second: 1024 * 1024,
            subscribes_per_second: 200,
            session_subscribes_per_second: 5,
            session_deliveries_per_second: 100,
            session_delivery_bytes_per_second: 1024 * 1024,
        }
    }
}

/// `[eventgrid.namespaces.X.webhook]`: where CONNECTs are sent for a decision (§5).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookCfg {
    /// `http://` or `https://` URL the JSON request is POSTed to.
    pub url: String,
    /// Sent as `Authorization: Bearer …` (hubmq's stand-in for Azure's managed identity).
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// Past this the client gets Server unavailable (0x88 / 3).
    #[serde(default = "default_webhook_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_webhook_timeout_ms() -> u64 {
    5000
}

fn default_sessions_per_name() -> u32 {
    DEFAULT_SESSIONS_PER_AUTHENTICATION_NAME
}
fn default_session_expiry_hours() -> u32 {
    DEFAULT_MAX_SESSION_EXPIRY_HOURS
}
fn default_true() -> bool {
    true
}
fn default_throughput_units() -> u32 {
    1
}
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
    fn validate(&self) -> Result<(), ConfigError> {
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

/// A client attribute value: string, integer or array of strings [doc].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum AttrValue {
    Int(i64),
    Str(String),
    StrArray(Vec<String>),
}

impl AttrValue {
    /// Bytes counted against `MAX_CLIENT_ATTRIBUTE_BYTES`.
    fn size(&self) -> usize {
        match self {
            AttrValue::Int(n) => n.to_string().len(),
            AttrValue::Str(s) => s.len(),
            AttrValue::StrArray(items) => items.iter().map(String::len).sum(),
        }
    }
}

/// Client attributes by name. A `BTreeMap` so iteration (and printing) is deterministic.
pub type Attributes = BTreeMap<String, AttrValue>;

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
fn validate_name_sources(sources: &[NameSource]) -> Result<(), ConfigError> {
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientGroup {
    pub name: String,
    /// Attribute query (`query.rs`).
    pub query: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpace {
    pub name: String,
    /// Topic templates (`topics.rs`), 1–10.
    pub templates: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Permission {
    Publisher,
    Subscriber,
}

/// Grants `permission` on `topic_space` to the members of `client_group` (`$all` allowed).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    pub name: String,
    pub client_group: String,
    pub topic_space: String,
    pub permission: Permission,
}

/// Grants an Entra principal a role, at namespace scope or on one topic space.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleAssignment {
    /// The token's `oid` (or `sub` when it has none).
    pub principal: String,
    /// A built-in role name, its role-definition ID, or its data action (see `Role::parse`).
    pub role: String,
    /// `"namespace"` or a topic space name.
    pub scope: String,
}

/// The scope word that means "every topic space".
pub const NAMESPACE_SCOPE: &str = "namespace";

/// The two data actions of §3, which is all a role can carry here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Publisher,
    Subscriber,
}

impl Role {
    /// Accepts, ignoring ASCII case (Azure compares role names and actions that way), the
    /// built-in role name, its role-definition GUID, or its data action.
    pub fn parse(text: &str) -> Option<Role> {
        const PUBLISHER: [&str; 3] = [
            "EventGrid TopicSpaces Publisher",
            "a12b0b94-b317-4dcd-84a8-502ce99884c6",
            "Microsoft.EventGrid/topicSpaces/publish/action",
        ];
        const SUBSCRIBER: [&str; 3] = [
            "EventGrid TopicSpaces Subscriber",
            "4b0f2fd7-60b4-4eca-896f-4435034f8bf5",
            "Microsoft.EventGrid/topicSpaces/subscribe/action",
        ];
        let text = text.trim();
        if PUBLISHER.iter().any(|p| p.eq_ignore_ascii_case(text)) {
            Some(Role::Publisher)
        } else if SUBSCRIBER.iter().any(|s| s.eq_ignore_ascii_case(text)) {
            Some(Role::Subscriber)
        } else {
            None
        }
    }

    pub fn permission(self) -> Permission {
        match self {
            Role::Publisher => Permission::Publisher,
            Role::Subscriber => Permission::Subscriber,
        }
    }
}

/// A configuration mistake: `item` locates it (`topic_spaces[1] "telemetry".templates[0]`),
/// `reason` says what is wrong. Displayed as `item: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub item: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.item, self.reason)
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(item: impl Into<String>, reason: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError {
        item: item.into(),
        reason: reason.into(),
    })
}

/// Names of client groups, topic spaces and bindings: 3–50 characters from `[A-Za-z0-9-]` [doc;
/// for bindings unconfirmed].
fn check_resource_name(item: &str, name: &str) -> Result<(), ConfigError> {
    let ok_chars = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !(3..=50).contains(&name.len()) || !ok_chars {
        return err(
            item,
            format!("name {name:?} must be 3-50 characters from A-Z, a-z, 0-9 and '-'"),
        );
    }
    Ok(())
}

/// Attribute keys are `[A-Za-z0-9_]+` [doc].
pub(crate) fn is_attribute_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Inserts `name` into `seen` (ASCII case folded: Azure resource names are case-insensitive);
/// false if it was there already.
fn first_use(seen: &mut BTreeSet<String>, name: &str) -> bool {
    seen.insert(name.to_ascii_lowercase())
}

impl Namespace {
    /// Checks the documented limits and the syntax of every query and template. The first
    /// problem found is returned, naming the item (`client_groups[2] "sensors".query: ...`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(w) = &self.webhook {
            let url = w.url.trim();
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 9 {
                return err(
                    "webhook.url",
                    format!("{url:?} is not an http:// or https:// URL"),
                );
            }
            if !(1..=60_000).contains(&w.timeout_ms) {
                return err("webhook.timeout_ms", "must be 1..=60000".to_owned());
            }
        }
        for (i, host) in self.hostnames.iter().enumerate() {
            if host.trim().is_empty() || host.contains(['/', ' ']) {
                return err(
                    format!("hostnames[{i}]"),
                    format!("{host:?} is not a host name"),
                );
            }
        }
        if !(1..=MAX_SESSIONS_PER_AUTHENTICATION_NAME)
            .contains(&self.max_client_sessions_per_authentication_name)
        {
            return err(
                "max_client_sessions_per_authentication_name",
                format!("must be 1-{MAX_SESSIONS_PER_AUTHENTICATION_NAME}"),
            );
        }
        if !(1..=MAX_SESSION_EXPIRY_HOURS).contains(&self.max_session_expiry_hours) {
            return err(
                "max_session_expiry_hours",
                format!("must be 1-{MAX_SESSION_EXPIRY_HOURS}"),
            );
        }
        if self.throughput_units == 0 {
            return err("throughput_units", "must be at least 1");
        }
        validate_name_sources(&self.alternative_authentication_name_sources)?;
        self.validate_auth()?;
        self.validate_clients()?;
        self.validate_groups()?;
        self.validate_topic_spaces()?;
        self.validate_bindings()?;
        self.validate_roles()
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        if let Some(entra) = &self.entra {
            if entra.tenants.is_empty() || entra.tenants.iter().any(|t| t.trim().is_empty()) {
                return err("entra.tenants", "list at least one tenant ID, none empty");
            }
            if entra.audiences.is_empty() || entra.audiences.iter().any(|a| a.is_empty()) {
                return err("entra.audiences", "list at least one audience, none empty");
            }
            if entra.jwks_file.is_none() && entra.public_key_files.is_empty() {
                return err("entra", "needs jwks_file or public_key_files");
            }
        }
        if let Some(custom) = &self.custom_jwt {
            custom.validate()?;
        }
        Ok(())
    }

    fn validate_clients(&self) -> Result<(), ConfigError> {
        let mut seen = BTreeSet::new();
        for (i, client) in self.clients.iter().enumerate() {
            let name = &client.authentication_name;
            let item = format!("clients[{i}] {name:?}");
            let chars = name.chars().count();
            if !(1..=MAX_AUTHENTICATION_NAME_CHARS).contains(&chars) {
                return err(
                    item,
                    format!(
                        "authentication_name must be 1-{MAX_AUTHENTICATION_NAME_CHARS} characters"
                    ),
                );
            }
            // Unique ignoring case [doc]; full Unicode lowercase, as authentication compares.
            if !seen.insert(name.to_lowercase()) {
                return err(
                    item,
                    "authentication_name is used twice (names ignore case)",
                );
            }
            client.validate_certificate_fields(&item)?;
            let mut total = 0;
            for (key, value) in &client.attributes {
                if !is_attribute_key(key) {
                    return err(
                        format!("{item}.attributes.{key}"),
                        "attribute names use only A-Z, a-z, 0-9 and '_'",
                    );
                }
                total += key.len() + value.size();
            }
            if total >= MAX_CLIENT_ATTRIBUTE_BYTES {
                return err(
                    format!("{item}.attributes"),
                    "attributes must total under 4 KB",
                );
            }
        }
        Ok(())
    }

    fn validate_groups(&self) -> Result<(), ConfigError> {
        if self.client_groups.len() > MAX_CLIENT_GROUPS {
            return err(
                "client_groups",
                format!("at most {MAX_CLIENT_GROUPS} client groups (besides the built-in $all)"),
            );
        }
        let mut seen = BTreeSet::new();
        for (i, group) in self.client_groups.iter().enumerate() {
            let item = format!("client_groups[{i}] {:?}", group.name);
            check_resource_name(&item, &group.name)?;
            if !first_use(&mut seen, &group.name) {
                return err(item, "name is used twice");
            }
            if let Err(e) = query::Query::parse(&group.query) {
                return err(format!("{item}.query"), e.to_string());
            }
        }
        Ok(())
    }

    fn validate_topic_spaces(&self) -> Result<(), ConfigError> {
        if self.topic_spaces.len() > MAX_TOPIC_SPACES {
            return err(
                "topic_spaces",
                format!("at most {MAX_TOPIC_SPACES} topic spaces"),
            );
        }
        let mut seen = BTreeSet::new();
        for (i, space) in self.topic_spaces.iter().enumerate() {
            let item = format!("topic_spaces[{i}] {:?}", space.name);
            check_resource_name(&item, &space.name)?;
            if !first_use(&mut seen, &space.name) {
                return err(item, "name is used twice");
            }
            if space.templates.is_empty() || space.templates.len() > MAX_TEMPLATES_PER_TOPIC_SPACE {
                return err(
                    format!("{item}.templates"),
                    format!("a topic space holds 1-{MAX_TEMPLATES_PER_TOPIC_SPACE} templates"),
                );
            }
            for (j, text) in space.templates.iter().enumerate() {
                if let Err(e) = topics::Template::parse(text) {
                    return err(format!("{item}.templates[{j}] {text:?}"), e.to_string());
                }
            }
        }
        Ok(())
    }

    fn validate_bindings(&self) -> Result<(), ConfigError> {
        if self.permission_bindings.len() > MAX_PERMISSION_BINDINGS {
            return err(
                "permission_bindings",
                format!("at most {MAX_PERMISSION_BINDINGS} permission bindings"),
            );
        }
        let mut seen = BTreeSet::new();
        for (i, binding) in self.permission_bindings.iter().enumerate() {
            let item = format!("permission_bindings[{i}] {:?}", binding.name);
            check_resource_name(&item, &binding.name)?;
            if !first_use(&mut seen, &binding.name) {
                return err(item, "name is used twice");
            }
            if self.group_index(&binding.client_group).is_none() {
                return err(
                    format!("{item}.client_group"),
                    format!("no client group named {:?}", binding.client_group),
                );
            }
            if self.topic_space_index(&binding.topic_space).is_none() {
                return err(
                    format!("{item}.topic_space"),
                    format!("no topic space named {:?}", binding.topic_space),
                );
            }
        }
        Ok(())
    }

    fn validate_roles(&self) -> Result<(), ConfigError> {
        for (i, assignment) in self.role_assignments.iter().enumerate() {
            let item = format!("role_assignments[{i}]");
            if assignment.principal.trim().is_empty() {
                return err(format!("{item}.principal"), "must not be empty");
            }
            if Role::parse(&assignment.role).is_none() {
                return err(
                    format!("{item}.role"),
                    format!(
                        "{:?} is not \"EventGrid TopicSpaces Publisher\" or \"EventGrid TopicSpaces Subscriber\" (or their ID or data action)",
                        assignment.role
                    ),
                );
            }
            if !assignment.scope.eq_ignore_ascii_case(NAMESPACE_SCOPE)
                && self.topic_space_index(&assignment.scope).is_none()
            {
                return err(
                    format!("{item}.scope"),
                    format!(
                        "{:?} is neither \"namespace\" nor a topic space name",
                        assignment.scope
                    ),
                );
            }
        }
        Ok(())
    }

    /// Index of the topic space called `name` (ASCII case ignored, like Azure resource names).
    pub fn topic_space_index(&self, name: &str) -> Option<usize> {
        self.topic_spaces
            .iter()
            .position(|s| s.name.eq_ignore_ascii_case(name))
    }

    /// `Some(None)` for the built-in `$all`, `Some(Some(i))` for a configured group, `None` if
    /// there is no such group.
    pub fn group_index(&self, name: &str) -> Option<Option<usize>> {
        if name == ALL_GROUP {
            return Some(None);
        }
        self.client_groups
            .iter()
            .position(|g| g.name.eq_ignore_ascii_case(name))
            .map(Some)
    }
}

impl ClientDef {
    /// `allowed_thumbprints` goes with `ThumbprintMatch` only, 1–2 well-formed entries.
    fn validate_certificate_fields(&self, item: &str) -> Result<(), ConfigError> {
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

/// The built-in client group holding every client [doc].
pub const ALL_GROUP: &str = "$all";

#[cfg(test)]
mod tests;
