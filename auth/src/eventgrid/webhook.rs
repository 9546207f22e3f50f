//! The sans-I/O half of Event Grid **custom webhook authentication** (`eventgrid-mqtt.md` §5):
//! what the broker knows at CONNECT turned into the JSON body it POSTs to the configured webhook
//! (`request_body`), and the webhook's HTTP answer turned into an allow / deny decision or a
//! "server unavailable" error (`parse_response`). The HTTP call itself (URL, `Authorization:
//! Bearer` header, timeout, HTTP/2) belongs to `net`; nothing here does I/O or reads the clock.
//!
//! Reason codes, applied by the caller:
//! - `WebhookDecision::Deny` (and an `expiration` already in the past) → CONNACK
//!   **0x87 Not authorized** (v5) / **0x05** (v3.1.1) [doc], lifecycle `ClientAuthenticationError`.
//! - Every `WebhookError` → CONNACK **0x88 Server unavailable** (v5) / **0x03** (v3.1.1) [doc],
//!   lifecycle `ServerError`. The caller maps its own transport failures and timeouts to
//!   `WebhookError::Timeout` / `WebhookError::Transport`, which answer the same.
//!
//! A webhook-authenticated client gets `AuthKind::Registered`: the webhook's reply stands in for a
//! client resource, so authorization is the §6 model (client groups and permission bindings),
//! with the reply's name and attributes feeding group queries and template variables.
//! The webhook is asked only at CONNECT; there is no webhook re-authentication, so an AUTH packet
//! on such a connection is not a refresh (MQTT 5 §4.12: DISCONNECT 0x82), and when the reply's
//! `expiration` passes the broker disconnects with 0x87 as in §3 step 5 [unconfirmed].

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::model::{Attributes, MAX_AUTHENTICATION_NAME_CHARS};
use super::policy::{AuthKind, ClientIdentity};

/// v5 CONNACK reason for a webhook deny or an expired decision: 0x87 Not authorized [doc].
pub const REASON_DENIED: u8 = 0x87;
/// v3.1.1 CONNACK return code for a webhook deny: 0x05 Not authorized [doc].
pub const RETURN_CODE_DENIED_V3: u8 = 0x05;
/// v5 CONNACK reason when the webhook cannot give a decision: 0x88 Server unavailable [doc].
pub const REASON_SERVER_UNAVAILABLE: u8 = 0x88;
/// v3.1.1 CONNACK return code when the webhook cannot give a decision: 0x03 Server unavailable.
pub const RETURN_CODE_SERVER_UNAVAILABLE_V3: u8 = 0x03;

/// The only HTTP status whose body is read: Microsoft documents both allow and deny as
/// `200 OK` [doc]. Anything else (a 401 because the broker's bearer token was refused, a 500 from
/// a crashed function, a 204 with no body) is the webhook failing, not a decision.
const STATUS_OK: u16 = 200;

/// Longest excerpt of an unexpected `decision` value kept in the error, so a misbehaving webhook
/// cannot make the broker log an arbitrarily long string.
const MAX_DECISION_EXCERPT_CHARS: usize = 64;

/// What the broker knows at CONNECT, turned into the webhook's JSON request body by
/// `request_body` (§5). `None` (or an empty `user_properties`) means the CONNECT did not carry
/// the field; `Some` of an empty value is sent as an empty value.
///
/// `Debug` hides the password and authentication data: this value passes through logs.
#[derive(Clone, Copy, Default)]
pub struct WebhookRequest<'a> {
    /// The CONNECT Client Identifier.
    pub client_id: &'a str,
    pub user_name: Option<&'a str>,
    /// Raw password bytes (MQTT allows binary); sent base64-encoded.
    pub password: Option<&'a [u8]>,
    /// v5 Authentication Method (0x15).
    pub authentication_method: Option<&'a str>,
    /// v5 Authentication Data (0x16), raw bytes; sent base64-encoded.
    pub authentication_data: Option<&'a [u8]>,
    /// The TLS client certificate, PEM.
    pub client_certificate_pem: Option<&'a str>,
    /// The other certificates the client presented (without its own), PEM, concatenated.
    pub client_certificate_chain_pem: Option<&'a str>,
    /// v5 CONNECT User Properties, in packet order (names may repeat).
    pub user_properties: &'a [(String, String)],
}

impl std::fmt::Debug for WebhookRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |v: Option<&[u8]>| v.map(|b| format!("<{} bytes>", b.len()));
        f.debug_struct("WebhookRequest")
            .field("client_id", &self.client_id)
            .field("user_name", &self.user_name)
            .field("password", &redacted(self.password))
            .field("authentication_method", &self.authentication_method)
            .field("authentication_data", &redacted(self.authentication_data))
            .field(
                "client_certificate_pem",
                &self.client_certificate_pem.is_some(),
            )
            .field(
                "client_certificate_chain_pem",
                &self.client_certificate_chain_pem.is_some(),
            )
            .field("user_properties", &self.user_properties.len())
            .finish()
    }
}

/// The JSON body to POST (`Content-Type: application/json`), one object:
///
/// ```text
/// {
///   "clientId": "<string>",                       always
///   "userName": "<string>",                       if the CONNECT had a User Name
///   "password": "<base64>",                       if it had a Password
///   "authenticationMethod": "<string>",           v5, if present
///   "authenticationData": "<base64>",             v5, if present
///   "clientCertificate": "<PEM>",                 if the client presented a certificate
///   "clientCertificateChain": "<PEM>",            if it presented further certificates
///   "userProperties": [{"name": "<string>", "value": "<string>"}, …]   v5, if any
/// }
/// ```
///
/// Field names and the base64 encoding are Microsoft's [doc]. Base64 is the standard alphabet
/// with padding (RFC 4648 §4), what .NET's `Convert.FromBase64String` — the webhook samples'
/// runtime — expects. Absent fields are omitted rather than sent as `null`, because Microsoft
/// marks every field but `clientId` optional and a webhook that checks "field present" must not
/// see a v3.1.1 client as having an empty authentication method. `userProperties` is not in
/// Microsoft's current payload table (the spec lists it): it is an array of name/value objects
/// rather than a JSON object because MQTT user properties are ordered and may repeat a name
/// [hubmq]; a webhook that does not know the field ignores it. Key order is not significant.
pub fn request_body(r: &WebhookRequest) -> Vec<u8> {
    let mut body = Map::new();
    body.insert("clientId".into(), r.client_id.into());
    if let Some(user_name) = r.user_name {
        body.insert("userName".into(), user_name.into());
    }
    if let Some(password) = r.password {
        body.insert("password".into(), STANDARD.encode(password).into());
    }
    if let Some(method) = r.authentication_method {
        body.insert("authenticationMethod".into(), method.into());
    }
    if let Some(data) = r.authentication_data {
        body.insert("authenticationData".into(), STANDARD.encode(data).into());
    }
    if let Some(pem) = r.client_certificate_pem {
        body.insert("clientCertificate".into(), pem.into());
    }
    if let Some(pem) = r.client_certificate_chain_pem {
        body.insert("clientCertificateChain".into(), pem.into());
    }
    if !r.user_properties.is_empty() {
        let properties = r
            .user_properties
            .iter()
            .map(|(name, value)| {
                let mut pair = Map::new();
                pair.insert("name".into(), name.as_str().into());
                pair.insert("value".into(), value.as_str().into());
                Value::Object(pair)
            })
            .collect();
        body.insert("userProperties".into(), Value::Array(properties));
    }
    // `Value`'s `Display` cannot fail (unlike `serde_json::to_vec`), so no error path is needed.
    Value::Object(body).to_string().into_bytes()
}

/// The webhook's verdict on a CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookDecision {
    /// Accept the client as `identity` (`AuthKind::Registered`: client groups and permission
    /// bindings apply, with the reply's attributes). `expires_at` (unix seconds) is when the
    /// decision lapses: the broker then disconnects with 0x87 [unconfirmed]; `None` = never.
    Allow {
        identity: ClientIdentity,
        expires_at: Option<u64>,
    },
    /// Refuse with CONNACK 0x87 (v5) / 0x05 (v3.1.1) — `REASON_DENIED` /
    /// `RETURN_CODE_DENIED_V3`. `reason` is the webhook's `errorReason` (empty when it gave
    /// none) or hubmq's note for an already-expired allow; it is for logs, not for the client.
    Deny { reason: String },
}

/// Why the webhook gave no usable decision. Every variant answers CONNACK **0x88 Server
/// unavailable** (v5) / 0x03 (v3.1.1): Microsoft maps "timeout, crash, platform or broker error"
/// there (§5), and a reply that breaks the documented contract is the webhook's fault, not the
/// client's — the client's credentials were never judged, so "Not authorized" would be wrong and
/// would hide an outage behind what looks like bad credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The webhook answered with an HTTP status other than 200.
    #[error("webhook answered HTTP {0}")]
    Status(u16),
    /// The body is not a JSON object.
    #[error("webhook reply is not a JSON object")]
    NotJson,
    /// The reply has no string `decision`.
    #[error("webhook reply lacks a decision")]
    MissingDecision,
    /// `decision` is neither `allow` nor `deny` (excerpt of at most 64 characters).
    #[error("webhook decision {0:?} is neither allow nor deny")]
    UnknownDecision(String),
    /// An allow without a string `clientAuthenticationName`.
    #[error("webhook allow lacks clientAuthenticationName")]
    MissingName,
    /// `clientAuthenticationName` is empty or longer than 128 characters.
    #[error("webhook clientAuthenticationName must be 1-128 characters")]
    BadName,
    /// A field of the named reply key has a type the contract does not allow.
    #[error("webhook reply field {0} has the wrong type")]
    BadField(&'static str),
    /// No answer in time (set by the caller that owns the timer).
    #[error("webhook did not answer in time")]
    Timeout,
    /// The request could not be made or the answer not read (set by the caller).
    #[error("webhook request failed: {0}")]
    Transport(String),
}

impl WebhookError {
    /// The v5 CONNACK reason code: always 0x88 Server unavailable (see the type's doc).
    pub fn reason(&self) -> u8 {
        REASON_SERVER_UNAVAILABLE
    }

    /// The v3.1.1 CONNACK return code: always 0x03 Server unavailable.
    pub fn v3_return_code(&self) -> u8 {
        RETURN_CODE_SERVER_UNAVAILABLE_V3
    }
}

/// Maps the webhook's HTTP answer to a decision (§5):
/// - `200` + `{"decision":"allow","clientAuthenticationName":"…","attributes":{…},
///   "expiration":<unix seconds>}` → `Allow`. The name is required, 1–128 characters, kept in
///   its original case. `attributes` is optional (absent or `null` = none) and follows the
///   custom-JWT claim rule. `expiration` is optional (absent or `null` = never); an integer, or a
///   string of one because Microsoft's sample shows `"<unix time format>"` in quotes. One at or
///   before `now` turns the allow into `Deny` — the credential has already expired, which
///   Microsoft maps to Not authorized. No clock skew is added here; a caller that wants some
///   passes an earlier `now`.
/// - `200` + `{"decision":"deny","errorReason":"…"}` → `Deny` (`errorReason` optional).
/// - `decision` is matched ignoring ASCII case (`Allow`, `DENY`) [hubmq]: the values are
///   documented in lower case, but a .NET webhook serializing an enum writes `Allow`, and
///   refusing that with "server unavailable" would help nobody.
/// - Any other status, a body that is not a JSON object, a missing or unknown decision, or a
///   documented field of the wrong type → `Err`, answered with 0x88. Unknown fields are ignored.
pub fn parse_response(status: u16, body: &[u8], now: u64) -> Result<WebhookDecision, WebhookError> {
    if status != STATUS_OK {
        return Err(WebhookError::Status(status));
    }
    let reply: Map<String, Value> =
        serde_json::from_slice(body).map_err(|_| WebhookError::NotJson)?;
    let decision = reply
        .get("decision")
        .and_then(Value::as_str)
        .ok_or(WebhookError::MissingDecision)?;
    if decision.eq_ignore_ascii_case("deny") {
        let reason = match reply.get("errorReason") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(reason)) => reason.clone(),
            Some(_) => return Err(WebhookError::BadField("errorReason")),
        };
        return Ok(WebhookDecision::Deny { reason });
    }
    if !decision.eq_ignore_ascii_case("allow") {
        let excerpt = decision.chars().take(MAX_DECISION_EXCERPT_CHARS).collect();
        return Err(WebhookError::UnknownDecision(excerpt));
    }
    let name = match reply.get("clientAuthenticationName") {
        None | Some(Value::Null) => return Err(WebhookError::MissingName),
        Some(Value::String(name)) => name,
        Some(_) => return Err(WebhookError::BadField("clientAuthenticationName")),
    };
    if name.is_empty() || name.chars().count() > MAX_AUTHENTICATION_NAME_CHARS {
        return Err(WebhookError::BadName);
    }
    let attributes = match reply.get("attributes") {
        None | Some(Value::Null) => Attributes::new(),
        Some(Value::Object(attributes)) => reply_attributes(attributes),
        Some(_) => return Err(WebhookError::BadField("attributes")),
    };
    let expires_at = expiration(reply.get("expiration"))?;
    if let Some(at) = expires_at {
        if at <= i128::from(now) {
            return Ok(WebhookDecision::Deny {
                reason: format!("webhook allow expired at {at} (now {now})"),
            });
        }
    }
    Ok(WebhookDecision::Allow {
        identity: ClientIdentity {
            authentication_name: name.clone(),
            attributes,
            auth_kind: AuthKind::Registered,
        },
        // Positive and above `now` here, so it fits a u64; saturate rather than fail anyway.
        expires_at: expires_at.map(|at| u64::try_from(at).unwrap_or(u64::MAX)),
    })
}

/// `expiration` as unix seconds: absent / `null` → `None`; an integer or a decimal string of one
/// → `Some` (i128 so a negative or huge value is still compared, not rejected: a time before
/// 1970 is simply in the past); anything else is a broken reply.
fn expiration(value: Option<&Value>) -> Result<Option<i128>, WebhookError> {
    let bad = WebhookError::BadField("expiration");
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .map(Some)
            .ok_or(bad),
        Some(Value::String(s)) => s.trim().parse::<i128>().map(Some).map_err(|_| bad),
        Some(_) => Err(bad),
    }
}

/// The reply's `attributes` object as client attributes, by the custom-JWT claim rule
/// (`token::json_attributes`); no names are reserved, the object holds attributes only.
fn reply_attributes(attributes: &Map<String, Value>) -> Attributes {
    super::token::json_attributes(attributes, &[])
}

#[cfg(test)]
mod tests;
