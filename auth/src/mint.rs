//! Minting client access tokens and URLs exactly as the Python server SDK
//! (`get_client_access_token(..., client_protocol="MQTT")`) builds them, so `hubmq token`, the
//! REST `:generateToken` operation and tests hand out what an Azure SDK would.

use serde_json::{Map, Value};

use crate::audience::MQTT_CLIENT_PATH;
use crate::jwt::sign_hs256;

/// The endpoint the way the Python SDK prepares it: lower-cased, trailing `/` stripped.
fn python_endpoint(endpoint: &str) -> String {
    endpoint.to_lowercase().trim_end_matches('/').to_owned()
}

/// An MQTT client token: `aud` = lower-cased endpoint without trailing `/` +
/// `/clients/mqtt/hubs/` + hub (hub case kept), `iat` = now, `exp` = now + minutes × 60, `sub` only
/// when `user` is a non-empty string, `role` and `webpubsub.group` arrays only when non-empty.
#[allow(clippy::too_many_arguments)] // the SDK's own parameter list; a struct would only rename it
pub fn client_token(
    endpoint: &str,
    hub: &str,
    user: Option<&str>,
    roles: &[String],
    groups: &[String],
    now: u64,
    minutes: u64,
    key: &str,
) -> String {
    let mut claims = Map::new();
    let aud = format!("{}{MQTT_CLIENT_PATH}{hub}", python_endpoint(endpoint));
    claims.insert("aud".into(), Value::String(aud));
    claims.insert("iat".into(), now.into());
    claims.insert(
        "exp".into(),
        now.saturating_add(minutes.saturating_mul(60)).into(),
    );
    if let Some(user) = user.filter(|u| !u.is_empty()) {
        claims.insert("sub".into(), user.into());
    }
    if !roles.is_empty() {
        claims.insert("role".into(), roles.into());
    }
    if !groups.is_empty() {
        claims.insert("webpubsub.group".into(), groups.into());
    }
    sign_hs256(&Value::Object(claims), key)
}

/// The WebSocket client URL for an http(s) endpoint, Python-SDK style: lower-cased endpoint,
/// trailing `/` stripped, `http`→`ws` / `https`→`wss`, then `/clients/mqtt/hubs/{hub}` (no query).
/// `None` when the endpoint is not http or https.
pub fn client_base_url(endpoint: &str, hub: &str) -> Option<String> {
    let endpoint = python_endpoint(endpoint);
    let rest = endpoint
        .strip_prefix("http://")
        .map(|rest| ("ws://", rest))
        .or_else(|| {
            endpoint
                .strip_prefix("https://")
                .map(|rest| ("wss://", rest))
        });
    let (scheme, rest) = rest?;
    if rest.is_empty() {
        return None;
    }
    Some(format!("{scheme}{rest}{MQTT_CLIENT_PATH}{hub}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_swaps_scheme_and_lower_cases_endpoint() {
        assert_eq!(
            client_base_url("http://localhost:8080", "Chat").as_deref(),
            Some("ws://localhost:8080/clients/mqtt/hubs/Chat")
        );
        assert_eq!(
            client_base_url("HTTPS://MQ.Example.com/", "chat").as_deref(),
            Some("wss://mq.example.com/clients/mqtt/hubs/chat")
        );
    }

    #[test]
    fn base_url_refuses_non_http_endpoints() {
        assert_eq!(client_base_url("ws://h", "x"), None);
        assert_eq!(client_base_url("localhost", "x"), None);
        assert_eq!(client_base_url("http://", "x"), None);
    }
}
