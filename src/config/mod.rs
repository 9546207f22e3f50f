//! The hubmq configuration file: TOML types with a default for every key, loading, validation
//! with one-line errors that name the file, key and reason, the embedded no-file defaults, and
//! the masked "effective config" for `--print-config`.
//!
//! The contract is `shared/spec/config.md`. Everything here runs at start-up or on reload (never
//! on a worker's hot path); it reads the files the config names (keys, certificates) so a bad
//! path fails `--check-config` instead of the first TLS handshake. It does not bind sockets:
//! "port in use" is found when the listeners are bound.
//!
//! One file per section of the file, each with its types, defaults and validation:
//! [`server`] (`[server]`, `[[listeners]]`, `[auth]`), [`limits`] (`[limits]`), [`hubs`]
//! (`[hubs.*]`, `[upstream]`), [`eventgrid`] (`[eventgrid.namespaces.*]` and their keys) and
//! [`ops`] (`[metrics]`, `[log]`). This file holds [`Config`] itself, loading, the validation
//! order, `--print-config` masking and the TOML error reporting.

mod eventgrid;
mod hubs;
mod limits;
mod ops;
mod server;

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hubmq_auth::eventgrid::Namespace;
use serde::{Deserialize, Deserializer, Serialize};

pub use eventgrid::namespace_keys;
pub use hubs::{Hub, UpstreamCfg};
pub use limits::Limits;
pub use ops::{Log, LogFormat, MetricsCfg};
use server::default_listeners;
pub use server::{Auth, Listener, Server};

// Every section type keeps its `config::Name` path; outside this module the binary names these
// only in its tests (or not at all), hence the allowances.
#[allow(unused_imports)]
pub use hubs::{EventHandler, HandlerAuth, SystemEvent};
#[allow(unused_imports)]
pub use server::{ClientAuth, ListenerKind};

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

    /// Checks every section in file order (Event Grid before the listeners that name its
    /// namespaces); the first problem found is the error.
    fn validate(&mut self) -> Result<(), (String, String)> {
        self.validate_server()?;
        self.validate_eventgrid()?;
        self.validate_listeners()?;
        self.validate_auth()?;
        self.limits.validate()?;
        self.validate_hubs()?;
        self.validate_upstream()?;
        self.validate_metrics()?;
        self.validate_log()?;
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
