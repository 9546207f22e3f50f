//! The Event Grid namespace as configured: plain data mirroring the `[eventgrid.namespaces.X]`
//! tables of `config.md` (and the Azure resource model behind them, `eventgrid-mqtt.md` §3–§6),
//! deserializable with serde so the binary can read its TOML straight into it, plus `validate`,
//! which enforces the documented limits and syntax and names the offending item in its error.
//! Nothing here is compiled for speed; `policy::CompiledNamespace` does that.
//!
//! One file per part of the model: `namespace` (the namespace table, its quotas and webhook),
//! `jwt` (the `entra` and `custom_jwt` settings), `clients` (registered clients, their
//! attributes and certificate checks), `access` (client groups, topic spaces, permission
//! bindings, role assignments) and `validate` (`Namespace::validate`, the cross-item rules).
//! Client attribute values live in `eventgrid::attrs`, so that `query` and `topics` (which
//! `validate` uses) need not import this module. Everything is re-exported here, so `model::X`
//! is the path to use.

mod access;
mod clients;
mod jwt;
mod namespace;
mod validate;

use std::fmt;

pub use super::attrs::{AttrValue, Attributes};
pub use access::{
    Binding, ClientGroup, Permission, Role, RoleAssignment, TopicSpace, ALL_GROUP, NAMESPACE_SCOPE,
};
pub use clients::{
    normalize_thumbprint, ClientDef, ClientState, NameSource, ValidationScheme,
    MAX_ALLOWED_THUMBPRINTS,
};
pub use jwt::{CustomJwtCfg, EntraCfg};
pub use namespace::{Namespace, Quotas, WebhookCfg};

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

#[cfg(test)]
mod tests;
