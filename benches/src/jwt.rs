//! Mints the HS256 client access tokens hubmq expects (Web PubSub style), so a benchmark can
//! run against a hub that requires tokens: `aud` = the client endpoint URL, `exp`/`iat`
//! numeric, and roles that allow joining and sending to any group.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// Roles a benchmark client needs: subscribe (join) and publish (send) on any group.
pub const BENCH_ROLES: [&str; 2] = ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"];

/// An HS256 JWT for `audience`, valid for `ttl_secs` from now.
pub fn mint_hs256(key: &str, audience: &str, ttl_secs: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let header = B64URL.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "aud": audience,
        "iat": now,
        "exp": now + ttl_secs,
        "role": BENCH_ROLES,
    });
    let claims = B64URL.encode(claims.to_string());
    let signing_input = format!("{header}.{claims}");
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    let sig = B64URL.encode(ring::hmac::sign(&k, signing_input.as_bytes()).as_ref());
    format!("{signing_input}.{sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_token_verifies_and_carries_claims() {
        let t = mint_hs256("secret", "http://127.0.0.1:1/clients/mqtt/hubs/bench", 60);
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret");
        let sig = B64URL.decode(parts[2]).unwrap();
        ring::hmac::verify(&k, format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["aud"], "http://127.0.0.1:1/clients/mqtt/hubs/bench");
        assert!(claims["exp"].as_u64().unwrap() > claims["iat"].as_u64().unwrap());
        assert_eq!(claims["role"][1], "webpubsub.sendToGroup");
    }
}
