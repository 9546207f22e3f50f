//! The namespace table itself (`[eventgrid.namespaces.X]`), with its rate quotas and webhook
//! settings, the serde defaults of its scalar settings and the name lookups the rest of the
//! crate uses (`topic_space_index`, `group_index`).

use serde::Deserialize;

use super::access::{Binding, ClientGroup, RoleAssignment, TopicSpace, ALL_GROUP};
use super::clients::{ClientDef, NameSource};
use super::jwt::{CustomJwtCfg, EntraCfg};
use super::{DEFAULT_MAX_SESSION_EXPIRY_HOURS, DEFAULT_SESSIONS_PER_AUTHENTICATION_NAME};

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

impl Namespace {
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
