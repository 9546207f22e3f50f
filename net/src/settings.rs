//! Everything the network layer needs to run, resolved from configuration by the binary.
//! Built on the main thread; shared read-only by all workers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hubmq_auth::KeyRing;
use hubmq_core::limits::Limits;

/// A listener's kind; also the `kind` key of `[[listeners]]` (hence serde).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerKind {
    /// HTTP: WebSocket MQTT, the REST API, /metrics, /healthz.
    Http,
    /// HTTP over TLS.
    Https,
    /// MQTT over a raw TCP socket.
    Tcp,
    /// MQTT over TLS.
    Tls,
}

impl ListenerKind {
    pub fn name(self) -> &'static str {
        match self {
            ListenerKind::Http => "http",
            ListenerKind::Https => "https",
            ListenerKind::Tcp => "tcp",
            ListenerKind::Tls => "tls",
        }
    }

    pub fn is_http(self) -> bool {
        matches!(self, ListenerKind::Http | ListenerKind::Https)
    }

    pub fn is_tls(self) -> bool {
        matches!(self, ListenerKind::Https | ListenerKind::Tls)
    }
}

#[derive(Clone)]
pub struct ListenerSpec {
    pub kind: ListenerKind,
    pub addr: SocketAddr,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Mutual TLS (tls / https only): connections get their own config that captures the
    /// client's certificate chain.
    pub client_auth: Option<Arc<crate::io::tls::ClientAuth>>,
    /// Serve this Event Grid namespace (by name) instead of Web PubSub hubs.
    pub namespace: Option<String>,
}

/// Per-hub settings; hubs that are not declared use `HubSettings::default()`.
#[derive(Clone, Default)]
pub struct HubSettings {
    pub anonymous_connect: bool,
    /// Hub-specific keys; `None` = the server's keys.
    pub keys: Option<Arc<KeyRing>>,
}

#[derive(Clone)]
pub struct Settings {
    pub workers: usize,
    pub listeners: Vec<ListenerSpec>,
    pub limits: Limits,
    /// Start-up value; at run time read `Shared::control.auth()` (SIGHUP may replace it).
    pub keys: Arc<KeyRing>,
    /// Accepted token audience authorities besides the Host a client dialled:
    /// (scheme "http"|"https", "host[:port]").
    pub public_endpoints: Vec<(String, String)>,
    /// Declared hubs by lower-case name. Start-up value; at run time read
    /// `Shared::control.auth()` (SIGHUP may replace it).
    pub hubs: HashMap<String, HubSettings>,
    pub strict_hubs: bool,
    pub connect_timeout: Duration,
    pub token_skew_secs: u64,
    pub max_http_head: usize,
    pub max_connections: usize,
    pub metrics_path: String,
    pub metrics: Option<hubmq_metrics::Exporter>,
    /// Upstream event handlers (restart to change).
    pub upstream: crate::upstream::UpstreamSettings,
    /// Event Grid namespaces (restart to change).
    pub eventgrid: Vec<NamespaceSettings>,
}

impl Settings {
    pub fn hub(&self, lower_name: &str) -> Option<&HubSettings> {
        self.hubs.get(lower_name)
    }
}

/// One namespace as configured, with its key files already read (by the binary).
#[derive(Clone)]
pub struct NamespaceSettings {
    pub name: String,
    pub model: hubmq_auth::eventgrid::Namespace,
    /// `entra.jwks_file` / `entra.public_key_files` loaded.
    pub entra_keys: KeyRing,
    /// `custom_jwt.public_key_files` / `custom_jwt.jwks_file` loaded.
    pub custom_keys: KeyRing,
    /// Accepted CUSTOM-JWT audiences: `hostnames` plus the hosts of the namespace's listeners.
    pub audiences: Vec<String>,
}
