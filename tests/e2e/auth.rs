//! Authentication at the door: tokens in the query, in the `Authorization` header and in the
//! CONNECT password (TCP); 401 with a reason for missing / expired / bad-signature /
//! wrong-audience tokens; CONNACK "not authorized" on TCP; both access keys; public endpoints
//! as audiences; anonymous hubs; `/healthz`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::json;

use crate::harness::{http_get, now_secs, Broker, Raw};
use crate::rq::{qos::*, v4_opts, v5_opts, Via, ALL_VIAS, V4, V5};
use crate::wire::{self, Connect};

fn hub_path(hub: &str, token: Option<&str>) -> String {
    match token {
        Some(t) => format!("/clients/mqtt/hubs/{hub}?access_token={t}"),
        None => format!("/clients/mqtt/hubs/{hub}"),
    }
}

/// Upgrades with `token` in the query; returns the refusal (status, body), panicking on a 101.
fn refused(b: &Broker, hub: &str, token: Option<&str>) -> (u16, String) {
    match Raw::ws(b.http, &hub_path(hub, token), &[]) {
        Ok(_) => panic!("upgrade with token {token:?} was accepted"),
        Err(r) => r,
    }
}

fn assert_401_saying(answer: (u16, String), word: &str) {
    let (status, body) = answer;
    assert_eq!(status, 401, "body: {body}");
    assert!(
        body.to_ascii_lowercase().contains(word),
        "401 body should say `{word}`: {body:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_token_connects_rumqttc_v4_and_v5_over_every_transport() {
    let b = Broker::start();
    let t = b.token("chat", Some("alice"), &[], &[]);
    for via in ALL_VIAS {
        let c = V5::connect(v5_opts(&b, via, &format!("v5-{via:?}"), "chat", Some(&t))).await;
        assert_eq!(
            c.connack.code,
            rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success,
            "{via:?}"
        );
        c.disconnect().await;
        let c = V4::connect(v4_opts(&b, via, &format!("v4-{via:?}"), "chat", Some(&t))).await;
        assert_eq!(
            c.connack.code,
            rumqttc::ConnectReturnCode::Success,
            "{via:?}"
        );
        c.disconnect().await;
    }
}

#[test]
fn missing_token_is_refused_with_401_missing() {
    let b = Broker::start();
    assert_401_saying(refused(&b, "chat", None), "missing");
}

#[test]
fn expired_token_is_refused_with_401_expired() {
    let b = Broker::start();
    // An hour ago: well past the 5-minute clock-skew allowance.
    let t = b.token_with(
        json!({"aud": b.aud("chat"), "exp": now_secs() - 3600}),
        &b.keys[0],
    );
    assert_401_saying(refused(&b, "chat", Some(&t)), "expired");
}

#[test]
fn token_signed_with_an_unknown_key_is_refused_with_401_signature() {
    let b = Broker::start();
    let t = b.token_with(
        json!({"aud": b.aud("chat"), "exp": now_secs() + 600}),
        "not-a-configured-key",
    );
    assert_401_saying(refused(&b, "chat", Some(&t)), "signature");
    // A valid token with one signature byte changed.
    let good = b.token("chat", None, &[], &[]);
    let (head, sig) = good.rsplit_once('.').expect("three parts");
    let mut sig = URL_SAFE_NO_PAD.decode(sig).expect("base64url signature");
    sig[0] ^= 1;
    let tampered = format!("{head}.{}", URL_SAFE_NO_PAD.encode(sig));
    assert_401_saying(refused(&b, "chat", Some(&tampered)), "signature");
}

#[test]
fn token_for_another_audience_is_refused_with_401_audience() {
    let b = Broker::start();
    let other_host = b.token_with(
        json!({"aud": "http://elsewhere.example:9999/clients/mqtt/hubs/chat", "exp": now_secs() + 600}),
        &b.keys[0],
    );
    assert_401_saying(refused(&b, "chat", Some(&other_host)), "audience");
    // Right host, other hub: a token for `other` must not open `chat`.
    let other_hub = b.token("other", None, &[], &[]);
    assert_401_saying(refused(&b, "chat", Some(&other_hub)), "audience");
}

#[test]
fn bad_token_in_the_header_is_refused_like_one_in_the_query() {
    let b = Broker::start();
    let expired = b.token_with(
        json!({"aud": b.aud("chat"), "exp": now_secs() - 3600}),
        &b.keys[0],
    );
    let auth = format!("Bearer {expired}");
    let answer = match Raw::ws(b.http, &hub_path("chat", None), &[("Authorization", &auth)]) {
        Ok(_) => panic!("expired header token accepted"),
        Err(r) => r,
    };
    assert_401_saying(answer, "expired");
}

#[test]
fn malformed_and_unsafe_tokens_are_refused_with_401() {
    let b = Broker::start();
    let aud = b.aud("chat");
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(json!({"aud": aud, "exp": now_secs() + 600}).to_string())
    );
    let cases = [
        ("garbage", "not.a.jwt".to_owned()),
        ("alg none", unsigned),
        ("no exp", b.token_with(json!({"aud": aud}), &b.keys[0])),
        (
            "no aud",
            b.token_with(json!({"exp": now_secs() + 600}), &b.keys[0]),
        ),
        // A string nbf must not be skipped (the jsonwebtoken CVE the spec mentions).
        (
            "string nbf",
            b.token_with(
                json!({"aud": aud, "exp": now_secs() + 600, "nbf": "2999-01-01"}),
                &b.keys[0],
            ),
        ),
        (
            "future nbf",
            b.token_with(
                json!({"aud": aud, "exp": now_secs() + 7200, "nbf": now_secs() + 3600}),
                &b.keys[0],
            ),
        ),
    ];
    for (what, token) in cases {
        let (status, body) = refused(&b, "chat", Some(&token));
        assert_eq!(status, 401, "{what}: {body}");
        assert!(!body.trim().is_empty(), "{what}: 401 without a reason");
    }
}

#[test]
fn secondary_access_key_is_accepted() {
    let b = Broker::start();
    let t = b.token_with(
        json!({"aud": b.aud("chat"), "exp": now_secs() + 600}),
        &b.keys[1],
    );
    let mut raw =
        Raw::ws(b.http, &hub_path("chat", Some(&t)), &[]).expect("101 with the secondary key");
    raw.send(&Connect::v5("k2").encode());
    assert_eq!(wire::connack(5, &raw.read_packet()).code, 0);
}

#[test]
fn query_token_wins_over_header_token() {
    let b = Broker::start();
    let good = b.token("chat", None, &[], &[]);
    let bad = b.token_with(
        json!({"aud": b.aud("chat"), "exp": now_secs() + 600}),
        "wrong-key",
    );
    let bad_header = format!("Bearer {bad}");
    Raw::ws(
        b.http,
        &hub_path("chat", Some(&good)),
        &[("Authorization", &bad_header)],
    )
    .expect("good query token with a bad header token must be accepted");
    let good_header = format!("Bearer {good}");
    let answer = match Raw::ws(
        b.http,
        &hub_path("chat", Some(&bad)),
        &[("Authorization", &good_header)],
    ) {
        Ok(_) => panic!("bad query token accepted because of the header"),
        Err(r) => r,
    };
    assert_401_saying(answer, "signature");
}

#[test]
fn configured_public_endpoint_is_an_accepted_audience_on_ws_and_tcp() {
    let b = Broker::start();
    let t = b.token_with(
        json!({"aud": b.public_aud("chat"), "exp": now_secs() + 600}),
        &b.keys[0],
    );
    let mut ws = Raw::ws(b.http, &hub_path("chat", Some(&t)), &[])
        .expect("101 for a public-endpoint audience");
    ws.send(&Connect::v4("pub-ws").encode());
    ws.expect(&[0x20, 0x02, 0x00, 0x00]);
    let mut tcp = Raw::tcp(b.tcp);
    tcp.send(&Connect::v4("pub-tcp").auth("chat", Some(&t)).encode());
    tcp.expect(&[0x20, 0x02, 0x00, 0x00]);
}

#[test]
fn tcp_bad_token_gets_connack_not_authorized_then_close() {
    let b = Broker::start();
    let bad = b.token_with(
        json!({"aud": b.aud("chat"), "exp": now_secs() + 600}),
        "wrong-key",
    );
    // 3.1.1: return code 5 = not authorized.
    let mut v4 = Raw::tcp(b.tcp);
    v4.send(&Connect::v4("t4").auth("chat", Some(&bad)).encode());
    v4.expect(&[0x20, 0x02, 0x00, 0x05]);
    v4.expect_closed();
    // 5.0: reason 0x87 Not authorized.
    let mut v5 = Raw::tcp(b.tcp);
    v5.send(&Connect::v5("t5").auth("chat", Some(&bad)).encode());
    let ack = wire::connack(5, &v5.read_packet());
    assert_eq!((ack.session_present, ack.code), (false, 0x87));
    v5.expect_closed();
    // No token at all on a hub that is not anonymous.
    let mut none = Raw::tcp(b.tcp);
    none.send(&Connect::v5("t0").auth("chat", None).encode());
    assert_eq!(wire::connack(5, &none.read_packet()).code, 0x87);
    none.expect_closed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_bad_token_is_refused_for_rumqttc() {
    let b = Broker::start();
    let expired = b.token_with(
        json!({"aud": b.aud("chat"), "exp": now_secs() - 3600}),
        &b.keys[0],
    );
    let e5 = V5::try_connect(v5_opts(&b, Via::Tcp, "r5", "chat", Some(&expired)))
        .await
        .err()
        .expect("refused");
    assert!(e5.contains("NotAuthorized"), "{e5}");
    let e4 = V4::try_connect(v4_opts(&b, Via::Tcp, "r4", "chat", Some(&expired)))
        .await
        .err()
        .expect("refused");
    assert!(e4.contains("NotAuthorized"), "{e4}");
}

#[test]
fn tcp_username_may_be_hub_equals_name() {
    let b = Broker::start();
    let t = b.token("chat", None, &[], &[]);
    let mut c = Connect::v5("hub-eq");
    c.username = Some("hub=chat".into());
    c.password = Some(t);
    let mut raw = Raw::tcp(b.tcp);
    raw.send(&c.encode());
    assert_eq!(wire::connack(5, &raw.read_packet()).code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_hub_connects_without_token_and_has_no_roles() {
    let b = Broker::start();
    for via in [Via::Tcp, Via::WsQuery] {
        let mut c = V5::connect(v5_opts(&b, via, &format!("anon-{via:?}"), "anon", None)).await;
        let ack = c.subscribe("g", V5Q0).await;
        assert_eq!(
            ack.return_codes,
            vec![rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::NotAuthorized],
            "an anonymous connection starts with no roles ({via:?})"
        );
    }
    let mut c4 = V4::connect(v4_opts(&b, Via::Tcp, "anon-v4", "anon", None)).await;
    let ack = c4.subscribe("g", Q0).await;
    assert_eq!(
        ack.return_codes,
        vec![rumqttc::SubscribeReasonCode::Failure]
    );
}

#[test]
fn healthz_answers_200() {
    let b = Broker::start();
    let (status, _) = http_get(b.http, "/healthz");
    assert_eq!(status, 200);
}

#[test]
fn invalid_hub_name_is_refused_with_400() {
    let b = Broker::start();
    for hub in ["1starts-with-digit", "has-dash", "x".repeat(129).as_str()] {
        let t = b.token(hub, None, &[], &[]);
        let (status, body) = match Raw::ws(b.http, &hub_path(hub, Some(&t)), &[]) {
            Ok(_) => panic!("hub {hub:?} accepted"),
            Err(r) => r,
        };
        assert_eq!(status, 400, "hub {hub:?}: {body}");
        assert!(!body.trim().is_empty(), "400 without a reason");
    }
}

#[test]
fn hub_names_match_case_insensitively() {
    let b = Broker::start();
    // Token for `Chat`, URL says `chat`: the same hub.
    let t = b.token_with(
        json!({"aud": b.aud("Chat"), "exp": now_secs() + 600}),
        &b.keys[0],
    );
    Raw::ws(b.http, &hub_path("chat", Some(&t)), &[]).expect("hub names are case-insensitive");
}
