//! Pure mapping of upstream answers (webpubsub-upstream.md §4.4, §5.3–§5.5, §8.3): an HTTP
//! response, or the reason there is none, becomes either an accepted `connect` (identity
//! overrides, CONNACK user properties, connection state) or a refusal with the CONNACK code for
//! the client's protocol version; a user event's answer becomes the message sent back to the
//! client.

use serde_json::Value;

use super::{CallError, HttpResponse};

/// Largest `ce-connectionState` kept (§4.4).
const MAX_STATE: usize = 4096;

/// What a response does to the session's connection state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateChange {
    Keep,
    Clear,
    Set(String),
}

/// Reads `ce-connectionState` from a blocking event's response (§4.4).
pub fn state_change(headers: &[(String, String)]) -> StateChange {
    let mut values = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("ce-connectionState"));
    let Some((_, v)) = values.next() else {
        return StateChange::Keep;
    };
    if values.next().is_some() {
        tracing::warn!("upstream sent several ce-connectionState headers; all ignored");
        return StateChange::Keep;
    }
    if v.is_empty() {
        StateChange::Clear
    } else if v.len() > MAX_STATE {
        tracing::warn!(len = v.len(), "ce-connectionState over 4 KiB ignored");
        StateChange::Keep
    } else {
        StateChange::Set(v.clone())
    }
}

/// A `connect` the upstream accepted. `None` fields keep the token's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    pub user_id: Option<String>,
    pub groups: Option<Vec<String>>,
    pub roles: Option<Vec<String>>,
    /// v5 CONNACK user properties.
    pub user_properties: Vec<(String, String)>,
    pub state: StateChange,
}

impl Accept {
    fn unchanged(state: StateChange) -> Accept {
        Accept {
            user_id: None,
            groups: None,
            roles: None,
            user_properties: Vec::new(),
            state,
        }
    }
}

/// A refused `connect`: the CONNACK code on the wire for the client's version, plus the v5
/// reason string and user properties (dropped for 3.1.1 by the caller's encoder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refuse {
    pub code: u8,
    pub reason: Option<String>,
    pub user_properties: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectDecision {
    Accept(Accept),
    Refuse(Refuse),
}

const V4_FAILURES: [u8; 5] = [1, 2, 3, 4, 5];
const V5_FAILURES: [u8; 21] = [
    0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99,
    0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];

/// The field `name` of a JSON object, matched case-insensitively (§5.3: `subProtocol`).
fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn strings(v: &Value) -> Option<Vec<String>> {
    Some(
        v.as_array()?
            .iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect(),
    )
}

fn user_props(v: Option<&Value>) -> Vec<(String, String)> {
    let Some(Value::Array(items)) = v else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|p| {
            let n = field(p, "name")?.as_str()?;
            let v = field(p, "value")?.as_str()?;
            Some((n.to_owned(), v.to_owned()))
        })
        .collect()
}

fn refuse(v5: bool, code_v5: u8, code_v4: u8, reason: String) -> ConnectDecision {
    ConnectDecision::Refuse(Refuse {
        code: if v5 { code_v5 } else { code_v4 },
        reason: v5.then_some(reason),
        user_properties: Vec::new(),
    })
}

/// Maps the outcome of a `connect` call for a client of protocol level 4 or 5.
pub fn map_connect(v5: bool, res: &Result<HttpResponse, CallError>) -> ConnectDecision {
    let r = match res {
        Ok(r) => r,
        Err(CallError::Timeout) => return refuse(v5, 0x88, 3, "upstream timeout".into()),
        Err(e) => return refuse(v5, 0x88, 3, format!("upstream unavailable: {e}")),
    };
    let body: Option<Value> = if r.body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice(&r.body).ok()
    };
    if (200..300).contains(&r.status) {
        let state = state_change(&r.headers);
        if r.body.iter().all(u8::is_ascii_whitespace) {
            return ConnectDecision::Accept(Accept::unchanged(state));
        }
        let Some(b) = body.filter(Value::is_object) else {
            return refuse(v5, 0x80, 3, "upstream returned malformed JSON".into());
        };
        if let Some(sp) = field(&b, "subprotocol").and_then(Value::as_str) {
            if sp != "mqtt" {
                tracing::warn!(
                    subprotocol = sp,
                    "upstream connect chose a subprotocol other than mqtt; ignored"
                );
            }
        }
        let mqtt = field(&b, "mqtt");
        return ConnectDecision::Accept(Accept {
            user_id: field(&b, "userId")
                .and_then(Value::as_str)
                .map(str::to_owned),
            groups: field(&b, "groups").and_then(strings),
            roles: field(&b, "roles").and_then(strings),
            user_properties: mqtt
                .map(|m| user_props(field(m, "userProperties")))
                .unwrap_or_default(),
            state,
        });
    }
    // Failure: an `mqtt` body wins over the status (§5.4).
    if let Some(m) = body.as_ref().and_then(|b| field(b, "mqtt")) {
        if let Some(code) = field(m, "code").and_then(Value::as_u64) {
            let valid = if v5 {
                V5_FAILURES.iter().any(|c| u64::from(*c) == code)
            } else {
                V4_FAILURES.iter().any(|c| u64::from(*c) == code)
            };
            let code = match (valid, v5) {
                (true, _) => code as u8,
                (false, true) => 0x80,
                (false, false) => 3,
            };
            return ConnectDecision::Refuse(Refuse {
                code,
                reason: if v5 {
                    field(m, "reason")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                } else {
                    None
                },
                user_properties: if v5 {
                    user_props(field(m, "userProperties"))
                } else {
                    Vec::new()
                },
            });
        }
    }
    let (c5, c4) = match r.status {
        400 => (0x86, 4),
        401 | 403 => (0x87, 5),
        429 => (0x97, 3),
        503 => (0x88, 3),
        _ => (0x80, 3),
    };
    refuse(v5, c5, c4, format!("upstream returned {}", r.status))
}

/// The message a user event's answer becomes (§8.3), before topic and correlation are added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventReply {
    pub succeeded: bool,
    pub status: u16,
    pub payload: Vec<u8>,
    pub content_type: Option<String>,
    /// `mqtt-*` response headers (prefix stripped), then `azure-status-code`.
    pub user_properties: Vec<(String, String)>,
    pub state: StateChange,
}

/// Maps a user event call: 2xx → `succeeded`, else `failed`; timeouts 504, transport 502.
pub fn map_user_event(res: &Result<HttpResponse, CallError>) -> EventReply {
    match res {
        Ok(r) => {
            let mut props: Vec<(String, String)> = r
                .headers
                .iter()
                .filter_map(|(k, v)| {
                    let n = k.get(..5)?;
                    n.eq_ignore_ascii_case("mqtt-")
                        .then(|| (k[5..].to_owned(), v.clone()))
                })
                .filter(|(k, _)| !k.is_empty())
                .collect();
            props.push(("azure-status-code".into(), r.status.to_string()));
            EventReply {
                succeeded: (200..300).contains(&r.status),
                status: r.status,
                payload: r.body.clone(),
                content_type: r
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                    .map(|(_, v)| v.clone()),
                user_properties: props,
                state: state_change(&r.headers),
            }
        }
        Err(e) => failed(if matches!(e, CallError::Timeout) {
            504
        } else {
            502
        }),
    }
}

/// A `/failed` answer with only a status (no handler: 404; timeout: 504; unreachable: 502).
pub fn failed(status: u16) -> EventReply {
    EventReply {
        succeeded: false,
        status,
        payload: Vec::new(),
        content_type: None,
        user_properties: vec![("azure-status-code".into(), status.to_string())],
        state: StateChange::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Result<HttpResponse, CallError> {
        Ok(HttpResponse {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.as_bytes().to_vec(),
        })
    }

    fn refused(d: ConnectDecision) -> Refuse {
        match d {
            ConnectDecision::Refuse(r) => r,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn accepted(d: ConnectDecision) -> Accept {
        match d {
            ConnectDecision::Accept(a) => a,
            other => panic!("expected acceptance, got {other:?}"),
        }
    }

    #[test]
    fn accepts_204_and_empty_2xx_unchanged() {
        let a = accepted(map_connect(true, &resp(204, &[], "")));
        assert_eq!(a, Accept::unchanged(StateChange::Keep));
        let a = accepted(map_connect(false, &resp(202, &[], " ")));
        assert_eq!(a.roles, None);
    }

    #[test]
    fn applies_the_worked_example_body() {
        let body = r#"{"userId":"user1","roles":["webpubsub.joinLeaveGroup","webpubsub.sendToGroup"],
            "groups":["room1"],"mqtt":{"userProperties":[{"name":"region","value":"eu"}]}}"#;
        let a = accepted(map_connect(
            true,
            &resp(200, &[("ce-connectionState", "eyJ0ZW5hbnQiOiJ0MSJ9")], body),
        ));
        assert_eq!(a.user_id.as_deref(), Some("user1"));
        assert_eq!(a.groups, Some(vec!["room1".to_owned()]));
        assert_eq!(a.roles.as_ref().map(Vec::len), Some(2));
        assert_eq!(a.user_properties, vec![("region".into(), "eu".into())]);
        assert_eq!(a.state, StateChange::Set("eyJ0ZW5hbnQiOiJ0MSJ9".into()));
    }

    #[test]
    fn empty_roles_array_removes_roles_and_names_ignore_case() {
        let a = accepted(map_connect(
            true,
            &resp(200, &[], r#"{"Roles":[],"subProtocol":"mqtt"}"#),
        ));
        assert_eq!(a.roles, Some(vec![]));
        assert_eq!(a.groups, None);
    }

    #[test]
    fn malformed_2xx_body_is_unspecified_failure() {
        let r = refused(map_connect(true, &resp(200, &[], "not json")));
        assert_eq!(r.code, 0x80);
        assert_eq!(refused(map_connect(false, &resp(200, &[], "{"))).code, 3);
    }

    #[test]
    fn mqtt_error_body_wins_over_status() {
        let body = r#"{"mqtt":{"code":135,"reason":"bad device credentials",
            "userProperties":[{"name":"hint","value":"rotate"}]}}"#;
        let r = refused(map_connect(true, &resp(401, &[], body)));
        assert_eq!(r.code, 0x87);
        assert_eq!(r.reason.as_deref(), Some("bad device credentials"));
        assert_eq!(r.user_properties, vec![("hint".into(), "rotate".into())]);
        // A v5 code sent to a 3.1.1 client is invalid → 3; no properties.
        let r = refused(map_connect(false, &resp(401, &[], body)));
        assert_eq!((r.code, r.reason, r.user_properties.len()), (3, None, 0));
        let r = refused(map_connect(
            false,
            &resp(500, &[], r#"{"mqtt":{"code":5}}"#),
        ));
        assert_eq!(r.code, 5);
        let r = refused(map_connect(true, &resp(400, &[], r#"{"mqtt":{"code":0}}"#)));
        assert_eq!(r.code, 0x80);
    }

    #[test]
    fn bare_statuses_follow_the_table() {
        let cases = [
            (400, 0x86, 4),
            (401, 0x87, 5),
            (403, 0x87, 5),
            (429, 0x97, 3),
            (503, 0x88, 3),
            (500, 0x80, 3),
            (502, 0x80, 3),
            (404, 0x80, 3),
            (302, 0x80, 3),
        ];
        for (status, c5, c4) in cases {
            let r = refused(map_connect(true, &resp(status, &[], "nope")));
            assert_eq!(r.code, c5, "v5 {status}");
            assert_eq!(r.reason, Some(format!("upstream returned {status}")));
            assert_eq!(
                refused(map_connect(false, &resp(status, &[], ""))).code,
                c4,
                "v4 {status}"
            );
        }
    }

    #[test]
    fn timeouts_and_transport_errors_are_server_unavailable() {
        let r = refused(map_connect(true, &Err(CallError::Timeout)));
        assert_eq!(
            (r.code, r.reason.as_deref()),
            (0x88, Some("upstream timeout"))
        );
        assert_eq!(
            refused(map_connect(false, &Err(CallError::Timeout))).code,
            3
        );
        let r = refused(map_connect(
            true,
            &Err(CallError::Unreachable("refused".into())),
        ));
        assert_eq!(r.code, 0x88);
        assert_eq!(
            refused(map_connect(true, &Err(CallError::ValidationFailed))).code,
            0x88
        );
    }

    #[test]
    fn connection_state_rules() {
        let h = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect()
        };
        assert_eq!(state_change(&h(&[])), StateChange::Keep);
        assert_eq!(
            state_change(&h(&[("ce-connectionstate", "")])),
            StateChange::Clear
        );
        assert_eq!(
            state_change(&h(&[
                ("ce-connectionState", "a"),
                ("ce-connectionState", "b")
            ])),
            StateChange::Keep
        );
        let big = "x".repeat(MAX_STATE + 1);
        assert_eq!(
            state_change(&h(&[("ce-connectionState", &big)])),
            StateChange::Keep
        );
    }

    #[test]
    fn user_event_reply_follows_the_worked_examples() {
        let r = map_user_event(&resp(
            200,
            &[("content-type", "text/plain"), ("mqtt-served-by", "node-3")],
            "08:01:00",
        ));
        assert!(r.succeeded);
        assert_eq!(r.payload, b"08:01:00");
        assert_eq!(r.content_type.as_deref(), Some("text/plain"));
        assert_eq!(
            r.user_properties,
            vec![
                ("served-by".into(), "node-3".into()),
                ("azure-status-code".into(), "200".into())
            ]
        );
        let r = map_user_event(&resp(400, &[("Content-Type", "text/plain")], "unknown tz"));
        assert!(!r.succeeded);
        assert_eq!(
            r.user_properties,
            vec![("azure-status-code".into(), "400".into())]
        );
        let r = map_user_event(&Err(CallError::Timeout));
        assert_eq!((r.succeeded, r.status, r.payload.len()), (false, 504, 0));
        assert_eq!(
            map_user_event(&Err(CallError::Unreachable(String::new()))).status,
            502
        );
    }
}
