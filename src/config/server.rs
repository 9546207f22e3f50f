//! `[server]`, `[[listeners]]` and `[auth]`: the types, their defaults, their validation, and the
//! endpoints (token audiences, client URLs) derived from them.

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{range, socket_addr, Config};

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

/// The listener kinds are the network layer's own type (it derives the TOML names).
pub use hubmq_net::ListenerKind;

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

impl From<ClientAuth> for hubmq_net::tls::ClientAuthMode {
    fn from(mode: ClientAuth) -> Self {
        match mode {
            ClientAuth::Optional => hubmq_net::tls::ClientAuthMode::Optional,
            ClientAuth::Required => hubmq_net::tls::ClientAuthMode::Required,
        }
    }
}

pub(super) fn default_listeners() -> Vec<Listener> {
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

impl Config {
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

    pub(super) fn validate_server(&self) -> Result<(), (String, String)> {
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

    pub(super) fn validate_listeners(&self) -> Result<(), (String, String)> {
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
                            format!("required for a {} listener", l.kind.name()),
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
                        l.kind.name()
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
                            l.kind.name()
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

    pub(super) fn validate_auth(&mut self) -> Result<(), (String, String)> {
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
}

/// Two binds clash when the ports match (non-zero) and the addresses are equal or one is a
/// wildcard (a wildcard bind takes the port on every address, IPv4 and IPv6 alike on Linux).
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// The file must be readable and look like PEM; the real parse happens in TLS / auth set-up.
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
