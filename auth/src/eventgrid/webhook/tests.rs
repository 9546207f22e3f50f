//! Tests for the webhook request body and the reply → decision mapping.

use super::*;
use crate::eventgrid::AttrValue;
use serde_json::json;

const NOW: u64 = 1_700_000_000;

fn body_json(r: &WebhookRequest) -> Value {
    serde_json::from_slice(&request_body(r)).expect("request body is JSON")
}

fn allow_identity(reply: Value) -> (ClientIdentity, Option<u64>) {
    match parse_response(200, reply.to_string().as_bytes(), NOW) {
        Ok(WebhookDecision::Allow {
            identity,
            expires_at,
        }) => (identity, expires_at),
        other => panic!("expected allow, got {other:?}"),
    }
}

fn parse_err(status: u16, body: &[u8]) -> WebhookError {
    match parse_response(status, body, NOW) {
        Err(e) => {
            assert_eq!(e.reason(), REASON_SERVER_UNAVAILABLE);
            assert_eq!(e.v3_return_code(), RETURN_CODE_SERVER_UNAVAILABLE_V3);
            e
        }
        Ok(d) => panic!("expected an error, got {d:?}"),
    }
}

#[test]
fn request_body_for_v5_carries_every_field() {
    let properties = vec![
        ("site".to_owned(), "plant-7".to_owned()),
        ("site".to_owned(), "plant-8".to_owned()),
    ];
    let r = WebhookRequest {
        client_id: "dev-1",
        user_name: Some("alice"),
        password: Some(&[0xff, 0x00, b'a']),
        authentication_method: Some("SAS"),
        authentication_data: Some(b"token-bytes"),
        client_certificate_pem: Some(
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        ),
        client_certificate_chain_pem: Some(
            "-----BEGIN CERTIFICATE-----\nBB==\n-----END CERTIFICATE-----\n",
        ),
        user_properties: &properties,
    };
    assert_eq!(
        body_json(&r),
        json!({
            "clientId": "dev-1",
            "userName": "alice",
            "password": "/wBh",
            "authenticationMethod": "SAS",
            "authenticationData": "dG9rZW4tYnl0ZXM=",
            "clientCertificate": "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
            "clientCertificateChain": "-----BEGIN CERTIFICATE-----\nBB==\n-----END CERTIFICATE-----\n",
            "userProperties": [
                {"name": "site", "value": "plant-7"},
                {"name": "site", "value": "plant-8"}
            ]
        })
    );
}

#[test]
fn request_body_for_v3_omits_absent_fields() {
    let r = WebhookRequest {
        client_id: "dev-2",
        user_name: Some("bob"),
        password: Some(b"secret"),
        ..WebhookRequest::default()
    };
    assert_eq!(
        body_json(&r),
        json!({"clientId": "dev-2", "userName": "bob", "password": "c2VjcmV0"})
    );
}

#[test]
fn request_body_keeps_empty_but_present_password() {
    let r = WebhookRequest {
        client_id: "",
        password: Some(b""),
        ..WebhookRequest::default()
    };
    assert_eq!(body_json(&r), json!({"clientId": "", "password": ""}));
}

#[test]
fn request_debug_hides_secrets() {
    let r = WebhookRequest {
        client_id: "dev-3",
        password: Some(b"hunter2"),
        authentication_data: Some(b"jwt-here"),
        ..WebhookRequest::default()
    };
    let text = format!("{r:?}");
    assert!(
        !text.contains("hunter2") && !text.contains("jwt-here"),
        "{text}"
    );
    assert!(text.contains("<7 bytes>"), "{text}");
}

#[test]
fn allow_keeps_int32_strings_and_string_arrays_only() {
    let (identity, expires_at) = allow_identity(json!({
        "decision": "allow",
        "clientAuthenticationName": "Device-A",
        "attributes": {
            "floor": 5,
            "neg": -1,
            "int32_max": 2_147_483_647,
            "int64": 2_147_483_648_i64,
            "float": 1.5,
            "float_whole": 5.0,
            "flag": true,
            "nothing": null,
            "object": {"a": 1},
            "sensors": ["motion", "humidity"],
            "empty_list": [],
            "mixed": ["a", 1],
            "numbers": [1, 2],
            "site": "plant-7"
        },
        "expiration": NOW + 3600
    }));
    let expected: Attributes = [
        ("floor", AttrValue::Int(5)),
        ("neg", AttrValue::Int(-1)),
        ("int32_max", AttrValue::Int(2_147_483_647)),
        (
            "sensors",
            AttrValue::StrArray(vec!["motion".into(), "humidity".into()]),
        ),
        ("empty_list", AttrValue::StrArray(vec![])),
        ("site", AttrValue::Str("plant-7".into())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(
        identity,
        ClientIdentity {
            authentication_name: "Device-A".into(),
            attributes: expected,
            auth_kind: AuthKind::Registered,
        }
    );
    assert_eq!(expires_at, Some(NOW + 3600));
}

#[test]
fn allow_without_expiration_or_attributes_never_lapses() {
    let (identity, expires_at) =
        allow_identity(json!({"decision": "allow", "clientAuthenticationName": "dev"}));
    assert_eq!(identity.authentication_name, "dev");
    assert!(identity.attributes.is_empty());
    assert_eq!(expires_at, None);

    let (_, expires_at) = allow_identity(json!({
        "decision": "allow", "clientAuthenticationName": "dev",
        "attributes": null, "expiration": null
    }));
    assert_eq!(expires_at, None);
}

#[test]
fn allow_accepts_expiration_as_numeric_string() {
    let (_, expires_at) = allow_identity(json!({
        "decision": "allow", "clientAuthenticationName": "dev",
        "expiration": (NOW + 60).to_string()
    }));
    assert_eq!(expires_at, Some(NOW + 60));
}

#[test]
fn allow_with_past_or_current_expiration_is_denied() {
    for at in [json!(NOW - 1), json!(NOW), json!(0), json!(-5), json!("1")] {
        let body = json!({
            "decision": "allow", "clientAuthenticationName": "dev", "expiration": at
        });
        match parse_response(200, body.to_string().as_bytes(), NOW) {
            Ok(WebhookDecision::Deny { reason }) => assert!(reason.contains("expired"), "{reason}"),
            other => panic!("expiration {at}: expected deny, got {other:?}"),
        }
    }
}

#[test]
fn deny_carries_error_reason() {
    let body = br#"{"decision":"deny","errorReason":"token revoked"}"#;
    assert_eq!(
        parse_response(200, body, NOW),
        Ok(WebhookDecision::Deny {
            reason: "token revoked".into()
        })
    );
    assert_eq!(
        parse_response(200, br#"{"decision":"deny"}"#, NOW),
        Ok(WebhookDecision::Deny {
            reason: String::new()
        })
    );
}

#[test]
fn decision_is_matched_ignoring_case() {
    let (identity, _) =
        allow_identity(json!({"decision": "Allow", "clientAuthenticationName": "dev"}));
    assert_eq!(identity.authentication_name, "dev");
    assert!(matches!(
        parse_response(200, br#"{"decision":"DENY"}"#, NOW),
        Ok(WebhookDecision::Deny { .. })
    ));
}

#[test]
fn allow_without_name_is_an_error() {
    assert_eq!(
        parse_err(200, br#"{"decision":"allow"}"#),
        WebhookError::MissingName
    );
    assert_eq!(
        parse_err(
            200,
            br#"{"decision":"allow","clientAuthenticationName":null}"#
        ),
        WebhookError::MissingName
    );
    assert_eq!(
        parse_err(
            200,
            br#"{"decision":"allow","clientAuthenticationName":""}"#
        ),
        WebhookError::BadName
    );
    assert_eq!(
        parse_err(200, br#"{"decision":"allow","clientAuthenticationName":7}"#),
        WebhookError::BadField("clientAuthenticationName")
    );
}

#[test]
fn name_longer_than_128_characters_is_an_error() {
    // 128 multi-byte characters are fine: the limit counts characters, not bytes.
    let (identity, _) = allow_identity(json!({
        "decision": "allow", "clientAuthenticationName": "é".repeat(128)
    }));
    assert_eq!(identity.authentication_name.chars().count(), 128);

    let body = json!({"decision": "allow", "clientAuthenticationName": "a".repeat(129)});
    assert_eq!(
        parse_err(200, body.to_string().as_bytes()),
        WebhookError::BadName
    );
}

#[test]
fn non_200_status_is_an_error() {
    let allow = br#"{"decision":"allow","clientAuthenticationName":"dev"}"#;
    for status in [500, 404, 401, 204, 201] {
        assert_eq!(parse_err(status, allow), WebhookError::Status(status));
    }
}

#[test]
fn garbage_body_is_an_error() {
    for body in [
        &b"not json"[..],
        b"",
        b"[]",
        b"\"allow\"",
        b"{\"decision\":",
    ] {
        assert_eq!(parse_err(200, body), WebhookError::NotJson, "{body:?}");
    }
    assert_eq!(parse_err(200, b"{}"), WebhookError::MissingDecision);
    assert_eq!(
        parse_err(200, br#"{"decision":true}"#),
        WebhookError::MissingDecision
    );
}

#[test]
fn unknown_decision_is_an_error() {
    assert_eq!(
        parse_err(200, br#"{"decision":"maybe"}"#),
        WebhookError::UnknownDecision("maybe".into())
    );
    let long = json!({"decision": "x".repeat(1000)});
    match parse_err(200, long.to_string().as_bytes()) {
        WebhookError::UnknownDecision(excerpt) => assert_eq!(excerpt.len(), 64),
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrongly_typed_fields_are_errors() {
    let cases = [
        (
            json!({"decision": "allow", "clientAuthenticationName": "d", "attributes": []}),
            "attributes",
        ),
        (
            json!({"decision": "allow", "clientAuthenticationName": "d", "expiration": 1.5e9}),
            "expiration",
        ),
        (
            json!({"decision": "allow", "clientAuthenticationName": "d", "expiration": "soon"}),
            "expiration",
        ),
        (json!({"decision": "deny", "errorReason": 3}), "errorReason"),
    ];
    for (body, field) in cases {
        assert_eq!(
            parse_err(200, body.to_string().as_bytes()),
            WebhookError::BadField(field)
        );
    }
}

#[test]
fn caller_side_failures_answer_server_unavailable() {
    for e in [
        WebhookError::Timeout,
        WebhookError::Transport("reset".into()),
    ] {
        assert_eq!(e.reason(), 0x88);
        assert_eq!(e.v3_return_code(), 0x03);
    }
    assert_eq!((REASON_DENIED, RETURN_CODE_DENIED_V3), (0x87, 0x05));
}

#[test]
fn webhook_identity_is_authorized_like_a_registered_client() {
    let (identity, _) =
        allow_identity(json!({"decision": "allow", "clientAuthenticationName": "Dev-1"}));
    let registered = ClientIdentity {
        authentication_name: "dev-1".into(),
        attributes: Attributes::new(),
        auth_kind: AuthKind::Registered,
    };
    assert!(identity.same_principal(&registered));
}
