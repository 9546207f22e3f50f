//! The hubmq configuration file: TOML types with a default for every key, loading, validation
//! with one-line errors that name the file, key and reason, the embedded no-file defaults, and
//! the masked "effective config" for `--print-config`.
//!
//! The contract is `shared/spec/config.md`. Everything here runs at start-up or on reload (never
//! on a worker's hot path); it reads the files the config names (keys, certificates) so a bad
//! path fails `--check-config` instead of the first TLS handshake. It does not bind sockets:
//! "port in use" is found when the listeners are bound.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use hubmq_auth::eventgrid::{CompiledNamespace, Namespace};
use hubmq_auth::KeyRing;
use serde::{Deserialize, Deserializer, Serialize};

/// The whole configuration file. Every table and key has a default, so an empty file is valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: Server,
    pub listeners: Vec<Listener>,
    pub auth: Auth,
    pub limits: Limits,
    pub hubs: BTreeMap<String, Hub>,
    /// Settings shared by every hub's upstream event handlers.
    pub upstream: UpstreamCfg,
    pub metrics: MetricsCfg,
    pub log: Log,
    /// Event Grid namespaces (`eventgrid-mqtt.md`) as written (for `--print-config`); the
    /// typed form, checked by `validate`, is `eventgrid_namespaces`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eventgrid: Option<toml::Value>,
    /// `[eventgrid.namespaces.*]`, parsed and validated (key files readable and loadable).
    #[serde(skip)]
    pub eventgrid_namespaces: BTreeMap<String, Namespace>,
    /// The random access key generated because no key was configured; `main` prints it with a
    /// ready client URL. Also present in `auth.access_keys`.
    #[serde(skip)]
    pub generated_key: Option<String>,
    /// The file this was loaded from (`None` for embedded defaults), for reload on SIGHUP.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Worker threads (one per core). `None` = available parallelism, see [`Server::worker_count`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Accepted token audiences (`scheme://host[:port]`). Empty = derived from the listeners,
    /// see [`Config::accepted_endpoints`].
    pub public_endpoints: Vec<String>,
    /// Serve only declared hubs (others → 404).
    pub strict_hubs: bool,
    /// Sockets that have not finished the HTTP head or sent CONNECT within this are closed.
    pub connect_timeout_secs: u64,
    /// Allowed clock skew for token `exp` / `nbf`.
    pub token_skew_secs: u64,
    /// On SIGTERM: time given to connections to flush before exit.
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerKind {
    /// HTTP: MQTT over WebSocket, REST API, /metrics, /healthz.
    Http,
    /// HTTP over TLS.
    Https,
    /// MQTT over TCP.
    Tcp,
    /// MQTT over TLS.
    Tls,
}

impl ListenerKind {
    pub fn is_tls(self) -> bool {
        matches!(self, ListenerKind::Https | ListenerKind::Tls)
    }

    pub fn is_http(self) -> bool {
        matches!(self, ListenerKind::Http | ListenerKind::Https)
    }

    fn as_str(self) -> &'static str {
        match self {
            ListenerKind::Http => "http",
            ListenerKind::Https => "https",
            ListenerKind::Tcp => "tcp",
            ListenerKind::Tls => "tls",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub kind: ListenerKind,
    /// `IP:port`; port 0 asks the kernel for an ephemeral port.
    #[serde(deserialize_with = "socket_addr")]
    pub bind: SocketAddr,
    /// PEM certificate chain (https / tls only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// PEM private key (https / tls only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Serve this Event Grid namespace instead of Web PubSub hubs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// PEM CA certificate(s) that client certificates must chain to (https / tls only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
    /// Mutual TLS: ask for (`optional`) or demand (`required`) a client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<ClientAuth>,
}

/// Whether a TLS listener asks clients for a certificate (needs `client_ca`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    Optional,
    Required,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// HS256 keys; any of them validates a token (primary + secondary for rotation).
    pub access_keys: Vec<String>,
    /// Files each holding one key (content trimmed), read at load.
    pub access_key_files: Vec<PathBuf>,
    /// PEM public keys for RS256 / ES256 tokens (extension).
    pub jwt_public_key_files: Vec<PathBuf>,
    /// Keys read from `access_key_files`, in order.
    #[serde(skip)]
    pub file_keys: Vec<String>,
}

impl Auth {
    /// Every HS256 key: `access_keys` then the keys from `access_key_files`.
    pub fn all_keys(&self) -> impl Iterator<Item = &str> {
        self.access_keys
            .iter()
            .chain(&self.file_keys)
            .map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest MQTT packet accepted (v5 CONNACK advertises it); 128 B ..= 256 MiB - 1.
    pub max_packet_size: u32,
    /// Keep alive requested by clients is lowered to this (v5 `Server Keep Alive`).
    pub max_keepalive_secs: u16,
    pub max_session_expiry_secs: u32,
    /// Session expiry for v3.1.1 persistent sessions (which cannot ask for one).
    pub default_session_expiry_secs: u32,
    /// Per-connection outbound queue bound; QoS 0 beyond it is dropped.
    pub outbound_queue_bytes: usize,
    /// Offline queue bounds of a persistent session.
    pub session_queue_messages: usize,
    pub session_queue_bytes: usize,
    pub max_connections: usize,
    /// v5 Receive Maximum we advertise: in-flight QoS 1/2 a client may send us.
    pub receive_maximum: u16,
    /// Outbound in-flight QoS 1/2 window per connection (also bounded by the client's Receive
    /// Maximum).
    pub max_inflight: u16,
    pub will_payload_max: usize,
    /// Largest WebSocket frame; `None` = `max_packet_size + 16`, see [`Limits::max_ws_frame`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ws_frame: Option<usize>,
    pub max_http_head: usize,
    /// Longest topic (= group name) in bytes.
    pub max_topic_len: usize,
}

impl Limits {
    /// The WebSocket frame bound: the configured one, or the largest packet plus the longest
    /// frame header (14 bytes, RFC 6455 §5.2) rounded up.
    // Part of the config API for the WebSocket codec settings; allowed until main wires it.
    #[allow(dead_code)]
    pub fn max_ws_frame(&self) -> usize {
        self.max_ws_frame
            .unwrap_or(self.max_packet_size as usize + 16)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hub {
    /// Let connections without a token in (no roles, no user id).
    pub anonymous_connect: bool,
    /// Upstream handlers, in order; the first whose filters match handles an event.
    pub event_handlers: Vec<EventHandler>,
    /// Keys for this hub's tokens instead of `[auth]`'s. Empty = use `[auth]`.
    pub access_keys: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SystemEvent {
    Connect,
    Connected,
    Disconnected,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventHandler {
    /// `{hub}` and `{event}` are substituted.
    pub url_template: String,
    #[serde(default)]
    pub system_events: Vec<SystemEvent>,
    /// `"*"`, `""` (none) or a comma list of event names.
    #[serde(default)]
    pub user_event_pattern: String,
    #[serde(default = "default_handler_timeout_ms")]
    pub timeout_ms: u64,
    /// How hubmq authenticates to the handler; absent = none (a `?code=` in the URL still works).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<HandlerAuth>,
}

/// `auth = { type = "bearer", token = "..." }` (hubmq's stand-in for Azure's managed identity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandlerAuth {
    /// `"none"` or `"bearer"`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// `[upstream]`: settings of the upstream client, for every hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamCfg {
    /// Sent as `WebHook-Request-Origin` (host name only). Empty = the host of the first
    /// accepted public endpoint.
    pub public_host: String,
    /// OPTIONS abuse-protection handshake before the first event to each URL.
    pub validate_webhooks: bool,
    /// Threads serving blocking upstream calls (connect, user events).
    pub threads: usize,
    /// Bound of each upstream request queue.
    pub queue: usize,
}

impl Default for UpstreamCfg {
    fn default() -> Self {
        UpstreamCfg {
            public_host: String::new(),
            validate_webhooks: true,
            threads: 4,
            queue: 1024,
        }
    }
}

impl Config {
    /// The `WebHook-Request-Origin` value: `upstream.public_host`, else the host (no scheme,
    /// no port) of the first accepted endpoint, else `localhost`.
    pub fn upstream_public_host(&self) -> String {
        if !self.upstream.public_host.trim().is_empty() {
            return self.upstream.public_host.trim().to_owned();
        }
        self.accepted_endpoints()
            .first()
            .and_then(|e| e.split_once("://").map(|(_, rest)| rest.to_owned()))
            .map(|authority| {
                let authority = authority.split('/').next().unwrap_or("").to_owned();
                match authority.strip_prefix('[') {
                    Some(v6) => v6.split(']').next().unwrap_or("").to_owned(),
                    None => authority.split(':').next().unwrap_or("").to_owned(),
                }
            })
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsCfg {
    /// Served on every http/https listener.
    pub path: String,
    /// Optional dedicated plain-HTTP listener for metrics only.
    #[serde(
        deserialize_with = "opt_socket_addr",
        skip_serializing_if = "Option::is_none"
    )]
    pub bind: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// A `tracing` filter (`info`, `info,hubmq_net=debug`); `RUST_LOG` / `HUBMQ_LOG` win.
    pub level: String,
    pub format: LogFormat,
}

/// A configuration problem, shown as one line: `FILE: KEY: REASON`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name (or "<embedded>", "<string>").
    pub origin: String,
    /// Dotted key path such as `listeners[1].bind`; empty when the whole file is at fault.
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.origin, self.reason)
        } else {
            write!(f, "{}: {}: {}", self.origin, self.key, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

/// The hub-name rule of the Web PubSub contract, shared with the network layer.
pub use hubmq_net::valid_hub_name;

impl Default for Config {
    /// File defaults: what an empty file gives (no key, no hubs).
    fn default() -> Self {
        Config {
            server: Server::default(),
            listeners: default_listeners(),
            auth: Auth::default(),
            limits: Limits::default(),
            hubs: BTreeMap::new(),
            upstream: UpstreamCfg::default(),
            metrics: MetricsCfg::default(),
            log: Log::default(),
            eventgrid: None,
            eventgrid_namespaces: BTreeMap::new(),
            generated_key: None,
            path: None,
        }
    }
}

impl Default for Server {
    fn default() -> Self {
        Server {
            workers: None,
            public_endpoints: Vec::new(),
            strict_hubs: false,
            connect_timeout_secs: 10,
            token_skew_secs: 300,
            shutdown_grace_secs: 10,
        }
    }
}

impl Server {
    /// Configured workers, else one per available core (1 if that cannot be read).
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packet_size: 1024 * 1024,
            max_keepalive_secs: 1160,
            max_session_expiry_secs: 86_400,
            default_session_expiry_secs: 3600,
            outbound_queue_bytes: 1024 * 1024,
            session_queue_messages: 1000,
            session_queue_bytes: 1024 * 1024,
            max_connections: 1_000_000,
            receive_maximum: 1000,
            max_inflight: 100,
            will_payload_max: 2000,
            max_ws_frame: None,
            max_http_head: 16 * 1024,
            max_topic_len: 1024,
        }
    }
}

impl Default for MetricsCfg {
    fn default() -> Self {
        MetricsCfg {
            path: "/metrics".to_owned(),
            bind: None,
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

fn default_listeners() -> Vec<Listener> {
    let plain = |kind, bind: &str| Listener {
        kind,
        bind: bind.parse().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
        cert: None,
        key: None,
        namespace: None,
        client_ca: None,
        client_auth: None,
    };
    vec![
        plain(ListenerKind::Http, "0.0.0.0:8080"),
        plain(ListenerKind::Tcp, "0.0.0.0:1883"),
    ]
}

fn default_handler_timeout_ms() -> u64 {
    10_000
}

/// Hard ceiling of the MQTT remaining length (MQTT 5 §1.5.5): 268,435,455 bytes.
const MQTT_MAX_PACKET: u32 = 268_435_455;

impl Config {
    /// Embedded defaults used when no file is given: listeners on 0.0.0.0:8080 (http) and
    /// 0.0.0.0:1883 (tcp), a `demo` hub, `http://localhost:8080` as the public endpoint and a
    /// freshly generated access key (see [`Config::generated_key`]).
    pub fn embedded() -> Config {
        let mut config = Config::default();
        config.server.public_endpoints = vec!["http://localhost:8080".to_owned()];
        config.hubs.insert("demo".to_owned(), Hub::default());
        config.generate_key_if_none();
        config
    }

    /// Loads and validates a file. Relative paths inside it (certificates, key files) are taken
    /// relative to the file's directory, so a config works whatever the working directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            key: String::new(),
            reason: format!("cannot read: {e}"),
        })?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty());
        let mut config = Config::parse(&text, &origin, base)?;
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// `load(path)` when a path is given, [`Config::embedded`] otherwise.
    pub fn load_or_embedded(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(path) => Config::load(path),
            None => Ok(Config::embedded()),
        }
    }

    /// Parses and validates TOML text; `origin` names it in errors. Relative paths are taken
    /// relative to the working directory.
    // Used by tests and embedders; the binary itself always loads a file.
    #[allow(dead_code)]
    pub fn from_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        Config::parse(text, origin, None)
    }

    fn parse(text: &str, origin: &str, base: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| toml_error(origin, text, &e))?;
        if let Some(base) = base {
            config.resolve_paths(base);
        }
        config.validate().map_err(|(key, reason)| ConfigError {
            origin: origin.to_owned(),
            key,
            reason,
        })?;
        config.generate_key_if_none();
        Ok(config)
    }

    /// With no way at all to check a token (no HS256 key, no key file, no public key), a
    /// random key is generated so a newcomer can still mint tokens from the start-up log.
    fn generate_key_if_none(&mut self) {
        let auth = &self.auth;
        if auth.access_keys.is_empty()
            && auth.file_keys.is_empty()
            && auth.jwt_public_key_files.is_empty()
        {
            let key = generate_key();
            self.auth.access_keys.push(key.clone());
            self.generated_key = Some(key);
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let join = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for l in &mut self.listeners {
            l.cert
                .iter_mut()
                .chain(l.key.iter_mut())
                .chain(l.client_ca.iter_mut())
                .for_each(join);
        }
        self.auth.access_key_files.iter_mut().for_each(join);
        self.auth.jwt_public_key_files.iter_mut().for_each(join);
    }

    /// The effective configuration as TOML with every secret replaced by `"***"`.
    pub fn effective_toml(&self) -> String {
        let mut shown = self.clone();
        mask(&mut shown.auth.access_keys);
        for hub in shown.hubs.values_mut() {
            mask(&mut hub.access_keys);
            for h in &mut hub.event_handlers {
                if let Some(t) = h.auth.as_mut().and_then(|a| a.token.as_mut()) {
                    *t = "***".to_owned();
                }
            }
        }
        // Event Grid webhook bearer tokens sit in the raw `[eventgrid]` table.
        if let Some(namespaces) = shown
            .eventgrid
            .as_mut()
            .and_then(|eg| eg.get_mut("namespaces"))
            .and_then(toml::Value::as_table_mut)
        {
            for (_, ns) in namespaces.iter_mut() {
                if let Some(t) = ns
                    .get_mut("webhook")
                    .and_then(|w| w.get_mut("bearer_token"))
                {
                    *t = toml::Value::String("***".to_owned());
                }
                // So are custom-JWT HS256 secrets (each entry masked, so the count still shows).
                if let Some(secrets) = ns
                    .get_mut("custom_jwt")
                    .and_then(|c| c.get_mut("hmac_secrets"))
                    .and_then(toml::Value::as_array_mut)
                {
                    for s in secrets {
                        *s = toml::Value::String("***".to_owned());
                    }
                }
            }
        }
        // Show what the server will actually run with rather than "unset".
        shown.server.workers = Some(self.server.worker_count());
        let mut text = String::from("# hubmq effective configuration (secrets masked)\n");
        match toml::to_string(&shown) {
            Ok(body) => text.push_str(&body),
            // Serialising plain structs of strings and numbers cannot fail; if it ever does, say
            // so in the output rather than panic in a diagnostic command.
            Err(e) => text.push_str(&format!("# cannot render configuration: {e}\n")),
        }
        text
    }

    /// Hub settings by name, matched case-insensitively as hub names are.
    pub fn hub(&self, name: &str) -> Option<&Hub> {
        self.hubs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, h)| h)
    }

    /// The endpoint to put in client URLs and token audiences: the first public endpoint, or
    /// derived from the first http(s) listener (`http://localhost:{port}` for a wildcard or
    /// loopback bind). A listener on port 0 has no known port until bound; then the caller should
    /// derive from the bound address instead.
    pub fn public_endpoint_for(&self) -> String {
        if let Some(first) = self.server.public_endpoints.first() {
            return first.trim_end_matches('/').to_owned();
        }
        self.listeners
            .iter()
            .find(|l| l.kind.is_http())
            .map(|l| listener_endpoint(l, true))
            .unwrap_or_else(|| "http://localhost:8080".to_owned())
    }

    /// Token audiences to accept: the configured public endpoints, or when none are configured
    /// every http(s) listener's address (plus `localhost` and `127.0.0.1` for wildcard/loopback
    /// binds, since that is what a local client dials).
    // Part of the config API for the token audience check; allowed until main wires it.
    #[allow(dead_code)]
    pub fn accepted_endpoints(&self) -> Vec<String> {
        if !self.server.public_endpoints.is_empty() {
            return self
                .server
                .public_endpoints
                .iter()
                .map(|e| e.trim_end_matches('/').to_owned())
                .collect();
        }
        let mut out = Vec::new();
        for l in self.listeners.iter().filter(|l| l.kind.is_http()) {
            for e in [listener_endpoint(l, true), listener_endpoint(l, false)] {
                if !out.contains(&e) {
                    out.push(e);
                }
            }
        }
        out
    }

    fn validate(&mut self) -> Result<(), (String, String)> {
        self.validate_server()?;
        self.validate_eventgrid()?;
        self.validate_listeners()?;
        self.validate_auth()?;
        self.limits.validate()?;
        self.validate_hubs()?;
        range("upstream.threads", self.upstream.threads as u64, 1, 64)?;
        range("upstream.queue", self.upstream.queue as u64, 1, 1_000_000)?;
        if self.upstream.public_host.contains(['/', ':', ' ']) {
            return Err((
                "upstream.public_host".into(),
                "a host name only (no scheme, port or path)".into(),
            ));
        }
        self.validate_metrics()?;
        if self.log.level.trim().is_empty() {
            return Err((
                "log.level".into(),
                "must not be empty (e.g. \"info\")".into(),
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err((
                "log.level".into(),
                format!("invalid filter {:?}: {e}", self.log.level),
            ));
        }
        Ok(())
    }

    fn validate_server(&self) -> Result<(), (String, String)> {
        let s = &self.server;
        if let Some(w) = s.workers {
            range("server.workers", w as u64, 1, 1024)?;
        }
        for (i, e) in s.public_endpoints.iter().enumerate() {
            if !valid_endpoint(e) {
                return Err((
                    format!("server.public_endpoints[{i}]"),
                    format!("invalid endpoint {e:?} (expected http[s]://host[:port])"),
                ));
            }
        }
        range(
            "server.connect_timeout_secs",
            s.connect_timeout_secs,
            1,
            3600,
        )?;
        range("server.token_skew_secs", s.token_skew_secs, 0, 86_400)?;
        range("server.shutdown_grace_secs", s.shutdown_grace_secs, 0, 3600)?;
        Ok(())
    }

    fn validate_listeners(&self) -> Result<(), (String, String)> {
        if self.listeners.is_empty() {
            return Err(("listeners".into(), "at least one listener is needed".into()));
        }
        let mut binds: Vec<(String, SocketAddr)> = Vec::new();
        for (i, l) in self.listeners.iter().enumerate() {
            let key = format!("listeners[{i}]");
            if let Some(other) = binds.iter().find(|(_, b)| overlaps(*b, l.bind)) {
                return Err((
                    format!("{key}.bind"),
                    format!("address {} overlaps {} ({})", l.bind, other.0, other.1),
                ));
            }
            binds.push((key.clone(), l.bind));
            if l.kind.is_tls() {
                for (name, path) in [("cert", &l.cert), ("key", &l.key)] {
                    let Some(path) = path else {
                        return Err((
                            format!("{key}.{name}"),
                            format!("required for a {} listener", l.kind.as_str()),
                        ));
                    };
                    read_pem(path).map_err(|reason| (format!("{key}.{name}"), reason))?;
                }
            } else if l.cert.is_some() || l.key.is_some() {
                let name = if l.cert.is_some() { "cert" } else { "key" };
                return Err((
                    format!("{key}.{name}"),
                    format!(
                        "only https and tls listeners take a certificate, this one is {}",
                        l.kind.as_str()
                    ),
                ));
            }
            match (&l.client_ca, l.client_auth) {
                (None, None) => {}
                _ if !l.kind.is_tls() => {
                    return Err((
                        format!("{key}.client_auth"),
                        format!(
                            "only https and tls listeners take client certificates, this one is {}",
                            l.kind.as_str()
                        ),
                    ))
                }
                (Some(ca), Some(_)) => {
                    read_pem(ca).map_err(|reason| (format!("{key}.client_ca"), reason))?;
                }
                (None, Some(_)) => {
                    return Err((
                        format!("{key}.client_ca"),
                        "required when client_auth is set".into(),
                    ))
                }
                (Some(_), None) => {
                    return Err((
                        format!("{key}.client_auth"),
                        "required when client_ca is set (\"optional\" or \"required\")".into(),
                    ))
                }
            }
            if let Some(ns) = &l.namespace {
                if !self.has_eventgrid_namespace(ns) {
                    return Err((
                        format!("{key}.namespace"),
                        format!("unknown Event Grid namespace {ns:?} (no [eventgrid.namespaces.{ns}] table)"),
                    ));
                }
            }
        }
        if let Some(m) = self.metrics.bind {
            if let Some(other) = binds.iter().find(|(_, b)| overlaps(*b, m)) {
                return Err((
                    "metrics.bind".into(),
                    format!("address {m} overlaps {} ({})", other.0, other.1),
                ));
            }
        }
        Ok(())
    }

    fn has_eventgrid_namespace(&self, ns: &str) -> bool {
        self.eventgrid_namespaces.contains_key(ns)
    }

    /// Parses `[eventgrid]` into typed namespaces and checks each one: the model's documented
    /// limits, template and query syntax, and that its key files load.
    fn validate_eventgrid(&mut self) -> Result<(), (String, String)> {
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

    fn validate_auth(&mut self) -> Result<(), (String, String)> {
        for (i, k) in self.auth.access_keys.iter().enumerate() {
            if k.trim().is_empty() {
                return Err((format!("auth.access_keys[{i}]"), "empty key".into()));
            }
        }
        let mut file_keys = Vec::new();
        for (i, path) in self.auth.access_key_files.iter().enumerate() {
            let key = format!("auth.access_key_files[{i}]");
            let text = fs::read_to_string(path)
                .map_err(|e| (key.clone(), format!("cannot read {}: {e}", path.display())))?;
            let trimmed = text.trim();
            if trimmed.is_empty() {
                return Err((key, format!("{} is empty", path.display())));
            }
            file_keys.push(trimmed.to_owned());
        }
        self.auth.file_keys = file_keys;
        for (i, path) in self.auth.jwt_public_key_files.iter().enumerate() {
            read_pem(path).map_err(|reason| (format!("auth.jwt_public_key_files[{i}]"), reason))?;
        }
        Ok(())
    }

    fn validate_hubs(&self) -> Result<(), (String, String)> {
        let mut seen: Vec<&str> = Vec::new();
        for (name, hub) in &self.hubs {
            let key = format!("hubs.{name}");
            if !valid_hub_name(name) {
                return Err((
                    key,
                    "invalid hub name (1-128 letters, digits or _, starting with a letter)".into(),
                ));
            }
            if let Some(other) = seen.iter().find(|o| o.eq_ignore_ascii_case(name)) {
                return Err((
                    key,
                    format!("same hub as hubs.{other} (hub names ignore case)"),
                ));
            }
            seen.push(name);
            for (i, k) in hub.access_keys.iter().enumerate() {
                if k.trim().is_empty() {
                    return Err((format!("{key}.access_keys[{i}]"), "empty key".into()));
                }
            }
            for (i, h) in hub.event_handlers.iter().enumerate() {
                let hkey = format!("{key}.event_handlers[{i}]");
                let url = &h.url_template;
                if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 9 {
                    return Err((
                        format!("{hkey}.url_template"),
                        format!("{url:?} is not an http:// or https:// URL"),
                    ));
                }
                validate_url_template(url).map_err(|r| (format!("{hkey}.url_template"), r))?;
                range(&format!("{hkey}.timeout_ms"), h.timeout_ms, 1, 600_000)?;
                if let Some(a) = &h.auth {
                    let akey = format!("{hkey}.auth");
                    match a.kind.as_str() {
                        "none" => {}
                        "bearer" if a.token.as_deref().is_some_and(|t| !t.trim().is_empty()) => {}
                        "bearer" => return Err((akey, "type \"bearer\" needs a non-empty token".into())),
                        "ManagedIdentity" | "managedidentity" => {
                            return Err((akey, "managed identity is not supported by hubmq; use type = \"bearer\" with a static token".into()))
                        }
                        other => return Err((akey, format!("unknown type {other:?} (expected \"none\" or \"bearer\")"))),
                    }
                }
                let pattern = h.user_event_pattern.trim();
                if pattern != "*"
                    && !pattern.is_empty()
                    && pattern.split(',').any(|p| p.trim().is_empty())
                {
                    return Err((
                        format!("{hkey}.user_event_pattern"),
                        format!("{pattern:?}: expected \"*\", \"\" or a comma list of event names"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_metrics(&self) -> Result<(), (String, String)> {
        let path = &self.metrics.path;
        if !path.starts_with('/') || path.len() < 2 || path.contains(['?', '#', ' ']) {
            return Err((
                "metrics.path".into(),
                format!("{path:?} must be an absolute path such as \"/metrics\""),
            ));
        }
        // The data and admin routes must stay reachable.
        for taken in ["/clients/", "/api/", "/healthz", "/readyz", "/mqtt"] {
            let taken_trim = taken.trim_end_matches('/');
            if path.starts_with(taken) || path == taken_trim {
                return Err((
                    "metrics.path".into(),
                    format!("{path:?} collides with the {taken} route"),
                ));
            }
        }
        Ok(())
    }
}

impl Limits {
    fn validate(&self) -> Result<(), (String, String)> {
        let l = self;
        range(
            "limits.max_packet_size",
            l.max_packet_size.into(),
            128,
            MQTT_MAX_PACKET.into(),
        )?;
        range(
            "limits.max_keepalive_secs",
            l.max_keepalive_secs.into(),
            1,
            65_535,
        )?;
        range(
            "limits.max_session_expiry_secs",
            l.max_session_expiry_secs.into(),
            0,
            u32::MAX.into(),
        )?;
        range(
            "limits.default_session_expiry_secs",
            l.default_session_expiry_secs.into(),
            0,
            l.max_session_expiry_secs.into(),
        )?;
        let packet = u64::from(l.max_packet_size);
        // A queue smaller than one packet could never hold a largest message, which would then
        // always be dropped: refuse rather than lose messages silently.
        range(
            "limits.outbound_queue_bytes",
            l.outbound_queue_bytes as u64,
            packet,
            1 << 40,
        )?;
        range(
            "limits.session_queue_messages",
            l.session_queue_messages as u64,
            1,
            10_000_000,
        )?;
        range(
            "limits.session_queue_bytes",
            l.session_queue_bytes as u64,
            packet,
            1 << 40,
        )?;
        range(
            "limits.max_connections",
            l.max_connections as u64,
            1,
            100_000_000,
        )?;
        range(
            "limits.receive_maximum",
            l.receive_maximum.into(),
            1,
            65_535,
        )?;
        range("limits.max_inflight", l.max_inflight.into(), 1, 65_535)?;
        range(
            "limits.will_payload_max",
            l.will_payload_max as u64,
            0,
            packet,
        )?;
        if let Some(frame) = l.max_ws_frame {
            range("limits.max_ws_frame", frame as u64, 128, 1 << 31)?;
        }
        range(
            "limits.max_http_head",
            l.max_http_head as u64,
            1024,
            1 << 20,
        )?;
        range("limits.max_topic_len", l.max_topic_len as u64, 1, 65_535)?;
        Ok(())
    }
}

/// Range check with the error in the house format.
fn range(key: &str, value: u64, min: u64, max: u64) -> Result<(), (String, String)> {
    if value < min || value > max {
        return Err((
            key.to_owned(),
            format!("{value} is out of range ({min}..={max})"),
        ));
    }
    Ok(())
}

/// Two binds clash when the ports match (non-zero) and the addresses are equal or one is a
/// wildcard (a wildcard bind takes the port on every address, IPv4 and IPv6 alike on Linux).
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// The file must be readable and look like PEM; the real parse happens in TLS / auth set-up.
/// `[eventgrid]`: only the namespaces table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventGridCfg {
    #[serde(default)]
    namespaces: BTreeMap<String, Namespace>,
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

fn read_pem(path: &Path) -> Result<(), String> {
    let text = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !text.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(format!("{} is not a PEM file", path.display()));
    }
    Ok(())
}

/// `http[s]://host[:port]` with an optional trailing `/`, nothing after.
fn valid_endpoint(e: &str) -> bool {
    let rest = e
        .strip_prefix("http://")
        .or_else(|| e.strip_prefix("https://"));
    let Some(authority) = rest.map(|r| r.trim_end_matches('/')) else {
        return false;
    };
    if authority.is_empty() || authority.contains(['/', '?', '#', ' ', '@']) {
        return false;
    }
    // A port, if any, must be a number; IPv6 hosts are bracketed.
    match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => {
            !host.is_empty() && port.parse::<u16>().is_ok()
        }
        _ => true,
    }
}

/// `http://localhost:{port}` for wildcard / loopback binds when `localhost` is set, else the
/// literal address (`http://127.0.0.1:{port}` for those binds).
fn listener_endpoint(l: &Listener, localhost: bool) -> String {
    let scheme = if l.kind.is_tls() { "https" } else { "http" };
    let port = l.bind.port();
    let ip = l.bind.ip();
    let host = if ip.is_unspecified() || ip.is_loopback() {
        if localhost {
            "localhost".to_owned()
        } else {
            "127.0.0.1".to_owned()
        }
    } else {
        match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        }
    };
    format!("{scheme}://{host}:{port}")
}

/// Placeholders only in path and query; no Key Vault references or tunnels (§2 of
/// webpubsub-upstream.md).
fn validate_url_template(url: &str) -> Result<(), String> {
    if url.contains("{@") || url.to_ascii_lowercase().contains("keyvault") {
        return Err("Key Vault references are not supported by hubmq".into());
    }
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| {
            format!("{url:?} is not an http:// or https:// URL (tunnel:// is not supported)")
        })?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if authority.contains('{') || authority.contains('}') {
        return Err("placeholders are not allowed in the host part".into());
    }
    for p in rest.match_indices('{').map(|(i, _)| &rest[i..]) {
        if !(p.starts_with("{hub}") || p.starts_with("{event}")) {
            return Err("unknown placeholder (only {hub} and {event})".into());
        }
    }
    Ok(())
}

fn mask(keys: &mut [String]) {
    for k in keys {
        *k = "***".to_owned();
    }
}

/// 32 random bytes, base64: the same shape as an Azure access key.
fn generate_key() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    parse_socket_addr(&text).map_err(serde::de::Error::custom)
}

fn opt_socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    socket_addr(d).map(Some)
}

fn parse_socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        format!("invalid socket address {text:?} (expected IP:port such as 127.0.0.1:1883 or [::]:1883)")
    })
}

/// Turns a TOML error into one line naming the key. toml reports a byte span but not the key
/// path once it has a span, so the path is rebuilt from the text: the table header in force at
/// the error (with an index for arrays of tables) plus the key on the error's line.
fn toml_error(origin: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let reason = e.message().trim().replace('\n', "; ");
    let Some(span) = e.span() else {
        return ConfigError {
            origin: origin.to_owned(),
            key: String::new(),
            reason,
        };
    };
    let at = span.start.min(text.len());
    let line_no = text[..at].matches('\n').count();
    let key = key_path_at(text, line_no);
    ConfigError {
        origin: origin.to_owned(),
        key,
        reason: format!("{reason} (line {})", line_no + 1),
    }
}

/// The dotted key path of the entry on line `line_no` (0-based), best effort.
fn key_path_at(text: &str, line_no: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut header = String::new();
    let mut array_counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in lines.iter().take(line_no + 1) {
        if let Some(h) = table_header(line) {
            header = match h {
                Header::Table(name) => name,
                Header::Array(name) => {
                    let n = array_counts.entry(name.clone()).or_insert(0);
                    *n += 1;
                    format!("{name}[{}]", *n - 1)
                }
            };
        }
    }
    let here = lines.get(line_no).copied().unwrap_or("");
    if table_header(here).is_some() {
        return header;
    }
    // The error may sit inside a multi-line value: walk back to the line holding `key =`.
    let key = lines
        .iter()
        .take(line_no + 1)
        .rev()
        .take_while(|l| table_header(l).is_none())
        .find_map(|l| {
            let (k, _) = l.split_once('=')?;
            let k = unquote_key(k);
            (!k.is_empty() && !k.starts_with('#')).then_some(k)
        });
    match (header.is_empty(), key) {
        (_, None) => header,
        (true, Some(k)) => k,
        (false, Some(k)) => format!("{header}.{k}"),
    }
}

enum Header {
    Table(String),
    Array(String),
}

fn table_header(line: &str) -> Option<Header> {
    let t = line.trim();
    let t = t.split_once('#').map_or(t, |(before, _)| before.trim_end());
    if let Some(inner) = t.strip_prefix("[[").and_then(|r| r.strip_suffix("]]")) {
        return Some(Header::Array(unquote_key(inner)));
    }
    let inner = t.strip_prefix('[')?.strip_suffix(']')?;
    // `[` also opens a multi-line array value line such as `["a", "b"]`; a header name has no
    // quotes-with-commas, so require something key-like.
    if inner.contains(',') || inner.trim().is_empty() {
        return None;
    }
    Some(Header::Table(unquote_key(inner)))
}

/// `hubs."chat" ` → `hubs.chat`.
fn unquote_key(k: &str) -> String {
    k.split('.')
        .map(|part| part.trim().trim_matches('"').trim_matches('\''))
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests;
