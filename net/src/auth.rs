//! Client authentication at the edge: token from the upgrade request (WebSocket) or from
//! CONNECT (TCP/TLS), verified against the hub's keys, compiled into an `Identity` whose roles
//! become the per-connection permission bitset.

use std::sync::Arc;

use hubmq_auth::{
    client_audience_matches, client_claims, parse_roles, verify, Roles, TokenError, VerifyOptions,
};
use hubmq_core::ids::HubId;
use hubmq_core::perm::Permissions;

use crate::worker::Worker;

/// Who a connection is, as far as the token (or the anonymous policy) says.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Hub as the client spelled it (for logs); `hub` is the interned case-insensitive id.
    pub hub_name: String,
    pub hub: HubId,
    pub user_id: Option<Arc<str>>,
    pub roles: Roles,
    /// Groups to join at connect.
    pub groups: Vec<String>,
    /// Every claim of the token, each value as a list (the upstream `connect` event's `claims`).
    pub claims: Vec<(String, Vec<String>)>,
    /// The WebSocket upgrade request, kept for the upstream `connect` event (only when the hub
    /// has event handlers).
    pub upgrade: Option<Arc<UpgradeInfo>>,
}

/// What the upstream `connect` event reports about the upgrade request (§5.2).
#[derive(Debug, Clone, Default)]
pub struct UpgradeInfo {
    /// Query parameters without `access_token`.
    pub query: Vec<(String, String)>,
    /// Headers without `Authorization` and `Cookie`.
    pub headers: Vec<(String, String)>,
    pub subprotocols: Vec<String>,
}

impl UpgradeInfo {
    pub fn from_head(head: &crate::io::http::Head, subprotocols: Vec<String>) -> UpgradeInfo {
        UpgradeInfo {
            query: head
                .query()
                .into_iter()
                .filter(|(k, _)| k != "access_token")
                .collect(),
            headers: head
                .headers
                .iter()
                .filter(|(k, _)| {
                    !k.eq_ignore_ascii_case("authorization") && !k.eq_ignore_ascii_case("cookie")
                })
                .cloned()
                .collect(),
            subprotocols,
        }
    }
}

/// Token claims as name → list of strings (arrays flattened, non-strings as JSON text).
fn claim_lists(claims: &serde_json::Map<String, serde_json::Value>) -> Vec<(String, Vec<String>)> {
    use serde_json::Value;
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    claims
        .iter()
        .map(|(k, v)| {
            let vs = match v {
                Value::Array(items) => items.iter().map(text).collect(),
                other => vec![text(other)],
            };
            (k.clone(), vs)
        })
        .collect()
}

/// Why authentication failed; `describe` is the text of the 401 body / v5 reason string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Token(TokenError),
    UnknownHub,
}

impl AuthFailure {
    pub fn describe(self) -> &'static str {
        match self {
            AuthFailure::Token(e) => e.describe(),
            AuthFailure::UnknownHub => "unknown hub",
        }
    }
}

/// Hub names: 1–128 letters, digits and `_`, starting with a letter (webpubsub-mqtt.md).
pub fn valid_hub_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Authenticates a client of `hub_name` (already validated) with an optional token.
/// `dialled` = (scheme, Host header) of the upgrade request, an accepted audience authority.
pub fn authenticate(
    w: &Worker,
    hub_name: &str,
    token: Option<&str>,
    dialled: Option<(&str, &str)>,
) -> Result<Identity, AuthFailure> {
    let settings = &w.shared.settings;
    let lower = hub_name.to_ascii_lowercase();
    // Keys and hub settings are reloadable (SIGHUP): one snapshot for this CONNECT.
    let auth = w.shared.control.auth();
    let hub_cfg = auth.hub(&lower);
    if settings.strict_hubs && hub_cfg.is_none() {
        return Err(AuthFailure::UnknownHub);
    }
    let hub = w.shared.registry.hub(&lower);
    let anonymous = hub_cfg.map(|h| h.anonymous_connect).unwrap_or(false);
    let token = match token {
        Some(t) if !t.is_empty() => t,
        _ if anonymous => {
            return Ok(Identity {
                hub_name: hub_name.to_owned(),
                hub,
                user_id: None,
                roles: Roles::default(),
                groups: Vec::new(),
                claims: Vec::new(),
                upgrade: None,
            })
        }
        _ => return Err(AuthFailure::Token(TokenError::Missing)),
    };
    let keys = hub_cfg.and_then(|h| h.keys.as_ref()).unwrap_or(&auth.keys);
    let mut authorities = settings.public_endpoints.clone();
    if let Some((scheme, host)) = dialled {
        authorities.push((scheme.to_owned(), host.to_owned()));
    }
    for l in &settings.listeners {
        if l.kind.is_http() {
            let scheme = if l.kind == crate::settings::ListenerKind::Https {
                "https"
            } else {
                "http"
            };
            authorities.push((scheme.to_owned(), l.addr.to_string()));
            authorities.push((scheme.to_owned(), format!("localhost:{}", l.addr.port())));
        }
    }
    let audience = |aud: &str| client_audience_matches(aud, hub_name, &authorities);
    let claims = verify(
        token,
        keys,
        &VerifyOptions {
            now: now_secs(),
            skew_secs: settings.token_skew_secs,
            audience: &audience,
            require_exp: true,
        },
    )
    .map_err(AuthFailure::Token)?;
    let c = client_claims(&claims).map_err(AuthFailure::Token)?;
    let roles = parse_roles(&c.roles);
    if !roles.unknown.is_empty() {
        tracing::debug!(roles = ?roles.unknown, "unknown roles ignored");
    }
    Ok(Identity {
        hub_name: hub_name.to_owned(),
        hub,
        user_id: c.user_id.map(Arc::from),
        roles,
        groups: c.groups,
        claims: claim_lists(&claims),
        upgrade: None,
    })
}

/// Roles → permission bitset; group-specific roles intern their groups.
pub fn compile_permissions(w: &Worker, hub: HubId, roles: &Roles) -> Permissions {
    let mut p = Permissions {
        send_any: roles.send_any,
        join_any: roles.join_any,
        ..Permissions::default()
    };
    for g in &roles.send_groups {
        p.send.insert(w.group(hub, g).id);
    }
    for g in &roles.join_groups {
        p.join.insert(w.group(hub, g).id);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_name_rules() {
        assert!(valid_hub_name("chat"));
        assert!(valid_hub_name("Chat_2"));
        assert!(!valid_hub_name(""));
        assert!(!valid_hub_name("2chat"));
        assert!(!valid_hub_name("_chat"));
        assert!(!valid_hub_name("ch-at"));
        assert!(!valid_hub_name(&"a".repeat(129)));
        assert!(valid_hub_name(&"a".repeat(128)));
    }
}
