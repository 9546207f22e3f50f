//! Pure construction of upstream requests (webpubsub-upstream.md §3–§8): the resolved URL, the
//! binary-mode CloudEvents headers, the `ce-signature` HMAC and the JSON bodies of `connect`,
//! `connected` and `disconnected`. Nothing here does I/O or reads a clock it was not given, so
//! every byte on the wire is unit-testable.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::hmac;
use serde_json::{json, Map, Value};

use super::{HttpRequest, Method};

/// Header value of `Content-Type` for system events.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// Resolves `{hub}` and `{event}` in a URL template, percent-escaping the substituted values
/// (everything but RFC 3986 unreserved characters), so an event name cannot add path segments.
pub fn resolve_url(template: &str, hub: &str, event: &str) -> String {
    template
        .replace("{hub}", &escape(hub))
        .replace("{event}", &escape(event))
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `ce-signature`: one `sha256=<hex>` per access key, HMAC-SHA256 keyed with the key string's
/// UTF-8 bytes over the connection id, joined with `,` (§4.3).
pub fn signature(keys: &[String], connection_id: &str) -> String {
    keys.iter()
        .map(|k| {
            let key = hmac::Key::new(hmac::HMAC_SHA256, k.as_bytes());
            let tag = hmac::sign(&key, connection_id.as_bytes());
            let mut s = String::with_capacity(7 + 64);
            s.push_str("sha256=");
            for b in tag.as_ref() {
                s.push_str(&format!("{b:02x}"));
            }
            s
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// RFC 3339 UTC with whole seconds: `2024-07-16T08:00:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Attributes shared by every event of one client (§4.1).
#[derive(Debug, Clone)]
pub struct Common<'a> {
    pub hub: &'a str,
    pub connection_id: &'a str,
    pub physical_id: &'a str,
    /// Absent on `connect`.
    pub session_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    /// Absent on `connect` (§4.1).
    pub state: Option<&'a str>,
    pub event_id: u64,
    pub keys: &'a [String],
    pub public_host: &'a str,
    pub time: SystemTime,
    /// Static bearer token for `auth.type = bearer`.
    pub bearer: Option<&'a str>,
}

/// The §4.1 headers for an event, in the order the spec lists them.
pub fn headers(
    c: &Common<'_>,
    ce_type: &str,
    event_name: &str,
    content_type: &str,
) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = Vec::with_capacity(20);
    let mut add = |k: &str, v: &str| h.push((k.to_owned(), v.to_owned()));
    add("WebHook-Request-Origin", c.public_host);
    add("Content-Type", content_type);
    add("ce-specversion", "1.0");
    add("ce-awpsversion", "1.0");
    add("ce-type", ce_type);
    add(
        "ce-source",
        &format!(
            "/hubs/{}/client/{}/{}",
            c.hub, c.connection_id, c.physical_id
        ),
    );
    add("ce-id", &c.event_id.to_string());
    add("ce-time", &rfc3339(c.time));
    add("ce-signature", &signature(c.keys, c.connection_id));
    add("ce-hub", c.hub);
    add("ce-connectionId", c.connection_id);
    add("ce-eventName", event_name);
    add("ce-subprotocol", "mqtt");
    add("ce-physicalConnectionId", c.physical_id);
    if let Some(s) = c.session_id {
        add("ce-sessionId", s);
    }
    // Omitted rather than empty: the SDKs read absent as "none" (§4.1).
    if let Some(u) = c.user_id.filter(|u| !u.is_empty()) {
        add("ce-userId", u);
    }
    if let Some(s) = c.state.filter(|s| !s.is_empty()) {
        add("ce-connectionState", s);
    }
    if let Some(t) = c.bearer {
        add("Authorization", &format!("Bearer {t}"));
    }
    h
}

/// What the `connect` body is made of (§5.2).
#[derive(Debug, Clone, Default)]
pub struct ConnectInfo {
    /// 4 = 3.1.1, 5 = 5.0.
    pub protocol_version: u8,
    pub clean_start: bool,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
    /// v5 CONNECT user properties in packet order (empty for 3.1.1 → `null`).
    pub user_properties: Vec<(String, String)>,
    /// Token claims, every value as a list.
    pub claims: Vec<(String, Vec<String>)>,
    /// Upgrade URL query (without `access_token`).
    pub query: Vec<(String, String)>,
    /// Upgrade request headers (without `Authorization` / `Cookie`).
    pub headers: Vec<(String, String)>,
    pub subprotocols: Vec<String>,
    /// DER client certificates, leaf first.
    pub client_certificates: Vec<Vec<u8>>,
}

/// Groups repeated names into `{"name": ["v1", "v2"]}`, first-seen order of values kept.
fn multi_map<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        if let Value::Array(a) = m
            .entry(k.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            a.push(Value::String(v.to_owned()));
        }
    }
    Value::Object(m)
}

fn user_props_json(props: &[(String, String)]) -> Value {
    if props.is_empty() {
        return Value::Null;
    }
    Value::Array(
        props
            .iter()
            .map(|(n, v)| json!({"name": n, "value": v}))
            .collect(),
    )
}

/// PEM text of one DER certificate, 64-column base64 lines.
pub fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(chunk));
        s.push('\n');
    }
    s.push_str("-----END CERTIFICATE-----\n");
    s
}

/// SHA-1 of the DER certificate, 40 lowercase hex digits.
pub fn thumbprint(der: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The `connect` JSON body (§5.2).
pub fn connect_body(i: &ConnectInfo) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let claims = {
        let mut m = Map::new();
        for (k, vs) in &i.claims {
            m.insert(
                k.clone(),
                Value::Array(vs.iter().cloned().map(Value::String).collect()),
            );
        }
        Value::Object(m)
    };
    let body = json!({
        "mqtt": {
            "protocolVersion": i.protocol_version,
            "cleanStart": i.clean_start,
            "username": i.username,
            "password": i.password.as_ref().map(|p| b64.encode(p)),
            "userProperties": user_props_json(&i.user_properties),
        },
        "claims": claims,
        "query": multi_map(i.query.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        "headers": multi_map(i.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        "subprotocols": i.subprotocols,
        "clientCertificates": i.client_certificates.iter().map(|der| json!({
            "thumbprint": thumbprint(der),
            "content": pem(der),
        })).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// How the last physical connection of a session ended (§7).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloseInfo {
    pub reason: Option<String>,
    pub initiated_by_client: bool,
    /// (code, user properties of a client-sent v5 DISCONNECT) when a DISCONNECT was exchanged.
    pub packet: Option<(u8, Vec<(String, String)>)>,
}

/// The `disconnected` JSON body (§7).
pub fn disconnected_body(c: &CloseInfo) -> Vec<u8> {
    let packet = match &c.packet {
        None => Value::Null,
        Some((code, props)) => json!({"code": code, "userProperties": user_props_json(props)}),
    };
    let body = json!({
        "reason": c.reason,
        "mqtt": {"initiatedByClient": c.initiated_by_client, "disconnectPacket": packet},
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The system events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SystemEvent {
    Connect,
    Connected,
    Disconnected,
}

impl SystemEvent {
    pub fn name(self) -> &'static str {
        match self {
            SystemEvent::Connect => "connect",
            SystemEvent::Connected => "connected",
            SystemEvent::Disconnected => "disconnected",
        }
    }
}

/// A system event request: POST to the template URL with §4.1 headers and `body`.
pub fn system_request(
    template: &str,
    c: &Common<'_>,
    ev: SystemEvent,
    body: Vec<u8>,
    timeout: Duration,
) -> HttpRequest {
    let name = ev.name();
    HttpRequest {
        method: Method::Post,
        url: resolve_url(template, c.hub, name),
        headers: headers(
            c,
            &format!("azure.webpubsub.sys.{name}"),
            name,
            JSON_CONTENT_TYPE,
        ),
        body,
        timeout,
    }
}

/// Whether `s` may be sent as an HTTP header name (RFC 9110 token).
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// Whether `s` may be sent as an HTTP header value (visible ASCII, space and tab).
pub fn is_header_value(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// Whether `s` looks like a MIME type `type/subtype[; params]` (v5 Content Type check, §8.1).
pub fn is_mime_type(s: &str) -> bool {
    let essence = s.split(';').next().unwrap_or("").trim();
    match essence.split_once('/') {
        Some((t, sub)) => is_token(t) && is_token(sub) && is_header_value(s),
        None => false,
    }
}

/// A user event request (§8.2): payload as body, Content Type as `Content-Type`, each user
/// property as `mqtt-{name}` (repeated names joined with `, `, HTTP's list form; names or values
/// that are not valid header tokens/values are skipped).
pub fn user_event_request(
    template: &str,
    c: &Common<'_>,
    event: &str,
    payload: &[u8],
    content_type: Option<&str>,
    user_properties: &[(String, String)],
    timeout: Duration,
) -> HttpRequest {
    let mut h = headers(
        c,
        &format!("azure.webpubsub.user.{event}"),
        event,
        content_type.unwrap_or("application/octet-stream"),
    );
    for (n, v) in user_properties {
        if !is_token(n) || !is_header_value(v) {
            tracing::warn!(name = %n, "user property not sendable as an HTTP header; skipped");
            continue;
        }
        let name = format!("mqtt-{n}");
        match h.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(&name)) {
            Some((_, existing)) => {
                existing.push_str(", ");
                existing.push_str(v);
            }
            None => h.push((name, v.clone())),
        }
    }
    HttpRequest {
        method: Method::Post,
        url: resolve_url(template, c.hub, event),
        headers: h,
        body: payload.to_vec(),
        timeout,
    }
}

/// The validation request (§3): OPTIONS on the template with `{event}` = `validate`.
pub fn validation_request(url: &str, public_host: &str) -> HttpRequest {
    HttpRequest {
        method: Method::Options,
        url: url.to_owned(),
        headers: vec![
            ("WebHook-Request-Origin".into(), public_host.to_owned()),
            ("ce-awpsversion".into(), "1.0".into()),
        ],
        body: Vec::new(),
        timeout: Duration::from_secs(10),
    }
}

/// Whether a validation response allows `origin` (§3): 2xx and `WebHook-Allowed-Origin` `*` or
/// the origin, repeated or comma-separated, case-insensitive.
pub fn validation_passes(status: u16, headers: &[(String, String)], origin: &str) -> bool {
    (200..300).contains(&status)
        && headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("WebHook-Allowed-Origin"))
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .any(|v| v == "*" || v.eq_ignore_ascii_case(origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "primary-key-for-docs-0123456789abcdef";
    const K2: &str = "secondary-key-for-docs-0123456789abcd";
    const S1: &str = "sha256=df08613203d733d1c4a914a66cb4d07c4f1c7fbffffc63cfbd41ced488cec23a";
    const S2: &str = "sha256=34a9e310eea61e6b53e6e0a426ee0c5ebb44cc90bee9846b1efef76aca52b06e";

    fn common<'a>(keys: &'a [String]) -> Common<'a> {
        Common {
            hub: "chat",
            connection_id: "client1",
            physical_id: "Xq3vPq0bQm2cS0d3Zr8e1w",
            session_id: None,
            user_id: None,
            state: None,
            event_id: 0,
            keys,
            public_host: "hubmq.example.com",
            time: UNIX_EPOCH + Duration::from_secs(1_721_116_800),
            bearer: None,
        }
    }

    #[test]
    fn signature_matches_the_spec_vector_for_each_key() {
        assert_eq!(signature(&[K1.into()], "client1"), S1);
        assert_eq!(signature(&[K2.into()], "client1"), S2);
        assert_eq!(
            signature(&[K1.into(), K2.into()], "client1"),
            format!("{S1},{S2}")
        );
    }

    #[test]
    fn formats_rfc3339_utc() {
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_721_116_800)),
            "2024-07-16T08:00:00Z"
        );
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn url_template_values_are_percent_escaped() {
        assert_eq!(
            resolve_url(
                "https://up.example.com/events/{hub}/{event}",
                "chat",
                "connect"
            ),
            "https://up.example.com/events/chat/connect"
        );
        assert_eq!(
            resolve_url("http://h/e?hub={hub}&e={event}", "chat", "a b/c"),
            "http://h/e?hub=chat&e=a%20b%2Fc"
        );
    }

    #[test]
    fn connect_headers_follow_the_worked_example() {
        let keys = vec![K1.to_owned(), K2.to_owned()];
        let r = system_request(
            "https://up.example.com/events/{hub}/{event}",
            &common(&keys),
            SystemEvent::Connect,
            b"{}".to_vec(),
            Duration::from_secs(10),
        );
        assert_eq!(r.url, "https://up.example.com/events/chat/connect");
        let expect = [
            ("WebHook-Request-Origin", "hubmq.example.com"),
            ("Content-Type", "application/json; charset=utf-8"),
            ("ce-specversion", "1.0"),
            ("ce-awpsversion", "1.0"),
            ("ce-type", "azure.webpubsub.sys.connect"),
            (
                "ce-source",
                "/hubs/chat/client/client1/Xq3vPq0bQm2cS0d3Zr8e1w",
            ),
            ("ce-id", "0"),
            ("ce-time", "2024-07-16T08:00:00Z"),
            ("ce-signature", &format!("{S1},{S2}")),
            ("ce-hub", "chat"),
            ("ce-connectionId", "client1"),
            ("ce-eventName", "connect"),
            ("ce-subprotocol", "mqtt"),
            ("ce-physicalConnectionId", "Xq3vPq0bQm2cS0d3Zr8e1w"),
        ];
        let got: Vec<(&str, &str)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, expect);
    }

    #[test]
    fn later_events_carry_session_user_and_state_and_omit_empty_ones() {
        let keys = vec![K1.to_owned()];
        let mut c = common(&keys);
        c.session_id = Some("4TnL0pJkR9y2e6bW1cQv8A");
        c.user_id = Some("user1");
        c.state = Some("eyJ0ZW5hbnQiOiJ0MSJ9");
        c.event_id = 1;
        let h = headers(
            &c,
            "azure.webpubsub.sys.connected",
            "connected",
            JSON_CONTENT_TYPE,
        );
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("ce-sessionId"), Some("4TnL0pJkR9y2e6bW1cQv8A"));
        assert_eq!(get("ce-userId"), Some("user1"));
        assert_eq!(get("ce-connectionState"), Some("eyJ0ZW5hbnQiOiJ0MSJ9"));
        assert_eq!(get("ce-id"), Some("1"));
        c.user_id = Some("");
        c.state = None;
        let h = headers(&c, "t", "connected", JSON_CONTENT_TYPE);
        assert!(!h
            .iter()
            .any(|(k, _)| k == "ce-userId" || k == "ce-connectionState"));
    }

    #[test]
    fn connect_body_has_every_required_field() {
        let info = ConnectInfo {
            protocol_version: 5,
            clean_start: true,
            username: Some("device-7".into()),
            password: Some(b"s3cret".to_vec()),
            user_properties: vec![("fw".into(), "1.2.0".into())],
            claims: vec![("role".into(), vec!["a".into(), "b".into()])],
            query: vec![
                ("tenant".into(), "t1".into()),
                ("tenant".into(), "t2".into()),
            ],
            headers: vec![("Sec-WebSocket-Protocol".into(), "mqtt".into())],
            subprotocols: vec!["mqtt".into()],
            client_certificates: vec![],
        };
        let v: Value = serde_json::from_slice(&connect_body(&info)).expect("json");
        assert_eq!(
            v,
            json!({"mqtt":{"protocolVersion":5,"cleanStart":true,"username":"device-7",
                "password":"czNjcmV0","userProperties":[{"name":"fw","value":"1.2.0"}]},
                "claims":{"role":["a","b"]},"query":{"tenant":["t1","t2"]},
                "headers":{"Sec-WebSocket-Protocol":["mqtt"]},"subprotocols":["mqtt"],
                "clientCertificates":[]})
        );
        let empty: Value =
            serde_json::from_slice(&connect_body(&ConnectInfo::default())).expect("json");
        assert_eq!(empty["mqtt"]["username"], Value::Null);
        assert_eq!(empty["mqtt"]["password"], Value::Null);
        assert_eq!(empty["mqtt"]["userProperties"], Value::Null);
        assert_eq!(empty["claims"], json!({}));
        assert_eq!(empty["subprotocols"], json!([]));
    }

    #[test]
    fn client_certificates_are_pem_with_sha1_thumbprints() {
        let der = b"not really a certificate".to_vec();
        let p = pem(&der);
        assert!(p.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(p.ends_with("-----END CERTIFICATE-----\n"));
        // sha1("abc") is a well-known vector.
        assert_eq!(
            thumbprint(b"abc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn disconnected_body_matches_the_examples() {
        let client = CloseInfo {
            reason: None,
            initiated_by_client: true,
            packet: Some((0, vec![("why".into(), "shutdown".into())])),
        };
        let v: Value = serde_json::from_slice(&disconnected_body(&client)).expect("json");
        assert_eq!(
            v,
            json!({"reason":null,"mqtt":{"initiatedByClient":true,
                "disconnectPacket":{"code":0,"userProperties":[{"name":"why","value":"shutdown"}]}}})
        );
        let lost = CloseInfo {
            reason: Some("connection lost".into()),
            ..CloseInfo::default()
        };
        let v: Value = serde_json::from_slice(&disconnected_body(&lost)).expect("json");
        assert_eq!(
            v,
            json!({"reason":"connection lost","mqtt":{"initiatedByClient":false,"disconnectPacket":null}})
        );
    }

    #[test]
    fn user_event_maps_publish_fields_to_headers() {
        let keys = vec![K1.to_owned()];
        let r = user_event_request(
            "https://up.example.com/events/{hub}/{event}",
            &common(&keys),
            "getTime",
            br#"{"tz":"UTC"}"#,
            Some("application/json"),
            &[
                ("trace".into(), "abc".into()),
                ("trace".into(), "def".into()),
                ("bad name".into(), "x".into()),
            ],
            Duration::from_secs(30),
        );
        assert_eq!(r.url, "https://up.example.com/events/chat/getTime");
        let get = |n: &str| {
            r.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("Content-Type"), Some("application/json"));
        assert_eq!(get("ce-type"), Some("azure.webpubsub.user.getTime"));
        assert_eq!(get("ce-eventName"), Some("getTime"));
        assert_eq!(get("mqtt-trace"), Some("abc, def"));
        assert!(get("mqtt-bad name").is_none());
        assert_eq!(r.body, br#"{"tz":"UTC"}"#);
        let r = user_event_request(
            "http://h/{event}",
            &common(&keys),
            "e",
            b"",
            None,
            &[],
            Duration::ZERO,
        );
        assert_eq!(
            r.headers
                .iter()
                .find(|(k, _)| k == "Content-Type")
                .map(|(_, v)| v.as_str()),
            Some("application/octet-stream")
        );
    }

    #[test]
    fn validation_accepts_star_or_origin_in_any_form() {
        let h = |v: &str| vec![("webhook-allowed-origin".to_owned(), v.to_owned())];
        assert!(validation_passes(200, &h("*"), "hubmq.example.com"));
        assert!(validation_passes(
            200,
            &h("a.com, HUBMQ.example.com"),
            "hubmq.example.com"
        ));
        assert!(!validation_passes(200, &h("a.com"), "hubmq.example.com"));
        assert!(!validation_passes(404, &h("*"), "hubmq.example.com"));
        assert!(!validation_passes(200, &[], "hubmq.example.com"));
        let r = validation_request("http://h/chat/validate", "hubmq.example.com");
        assert_eq!(r.method, Method::Options);
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| k == "ce-awpsversion" && v == "1.0"));
    }

    #[test]
    fn mime_types_are_checked() {
        assert!(is_mime_type("application/json"));
        assert!(is_mime_type("text/plain; charset=utf-8"));
        assert!(!is_mime_type("json"));
        assert!(!is_mime_type("a b/c"));
        assert!(!is_mime_type("text/"));
    }
}
