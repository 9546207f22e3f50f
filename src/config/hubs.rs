//! `[hubs.*]` (Web PubSub hubs and their upstream event handlers) and `[upstream]` (the
//! upstream client shared by every hub).

use serde::{Deserialize, Serialize};

use super::{range, valid_hub_name, Config};

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

fn default_handler_timeout_ms() -> u64 {
    10_000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SystemEvent {
    Connect,
    Connected,
    Disconnected,
}

impl From<SystemEvent> for hubmq_net::upstream::SystemEvent {
    fn from(event: SystemEvent) -> Self {
        match event {
            SystemEvent::Connect => hubmq_net::upstream::SystemEvent::Connect,
            SystemEvent::Connected => hubmq_net::upstream::SystemEvent::Connected,
            SystemEvent::Disconnected => hubmq_net::upstream::SystemEvent::Disconnected,
        }
    }
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

    /// Hub settings by name, matched case-insensitively as hub names are.
    pub fn hub(&self, name: &str) -> Option<&Hub> {
        self.hubs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, h)| h)
    }

    pub(super) fn validate_hubs(&self) -> Result<(), (String, String)> {
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

    pub(super) fn validate_upstream(&self) -> Result<(), (String, String)> {
        range("upstream.threads", self.upstream.threads as u64, 1, 64)?;
        range("upstream.queue", self.upstream.queue as u64, 1, 1_000_000)?;
        if self.upstream.public_host.contains(['/', ':', ' ']) {
            return Err((
                "upstream.public_host".into(),
                "a host name only (no scheme, port or path)".into(),
            ));
        }
        Ok(())
    }
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
