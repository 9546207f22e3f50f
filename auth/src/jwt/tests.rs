//! Tests for `verify` and `sign_hs256`, plus the end-to-end round trip through the minting,
//! audience, claims and roles modules.

use super::*;
use crate::testkeys::{self, require_openssl};
use crate::{client_audience_matches, client_claims, client_token, parse_endpoint, parse_roles};
use serde_json::json;

const NOW: u64 = 1_700_000_000;
const AUD: &str = "http://localhost:8080/clients/mqtt/hubs/chat";

fn b64(data: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Builds a token from raw header/payload JSON text (so tests can write duplicates, strings for
/// numbers, ...) signed HS256 with `key`.
fn hs_raw(header: &str, payload: impl AsRef<[u8]>, key: &str) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes()),
        input.as_bytes(),
    );
    format!("{input}.{}", b64(tag))
}

fn hs(payload: &Value, key: &str) -> String {
    hs_raw(r#"{"alg":"HS256","typ":"JWT"}"#, payload.to_string(), key)
}

fn good_claims() -> Value {
    json!({"aud": AUD, "iat": NOW, "exp": NOW + 3600, "sub": "alice"})
}

fn ring_with(keys: &[&str]) -> KeyRing {
    let mut ring = KeyRing::new();
    keys.iter().for_each(|k| ring.add_hmac(k));
    ring
}

fn aud_is_default(aud: &str) -> bool {
    aud == AUD
}

fn opts() -> VerifyOptions<'static> {
    VerifyOptions {
        now: NOW,
        skew_secs: 0,
        audience: &aud_is_default,
        require_exp: true,
    }
}

fn at(now: u64, skew_secs: u64) -> VerifyOptions<'static> {
    VerifyOptions {
        now,
        skew_secs,
        ..opts()
    }
}

// ---- HS256 and key rotation ----

#[test]
fn accepts_hs256_signed_with_primary_key() {
    let ring = ring_with(&["primary", "secondary"]);
    let claims = verify(&hs(&good_claims(), "primary"), &ring, &opts()).unwrap();
    assert_eq!(claims.get("sub"), Some(&json!("alice")));
}

#[test]
fn accepts_hs256_signed_with_secondary_key() {
    let ring = ring_with(&["primary", "secondary"]);
    assert!(verify(&hs(&good_claims(), "secondary"), &ring, &opts()).is_ok());
}

#[test]
fn rejects_hs256_signed_with_unknown_key() {
    let ring = ring_with(&["primary", "secondary"]);
    assert_eq!(
        verify(&hs(&good_claims(), "tertiary"), &ring, &opts()),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn uses_access_key_bytes_verbatim_not_base64_decoded() {
    // A typical access key is base64 text; the HMAC secret is that text, not its decoding.
    let key = "dGhpcyBpcyBhIGtleQ==";
    let ring = ring_with(&[key]);
    assert!(verify(&hs(&good_claims(), key), &ring, &opts()).is_ok());
    let decoded = "this is a key";
    assert_eq!(
        verify(&hs(&good_claims(), decoded), &ring, &opts()),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn rejects_tampered_payload() {
    let ring = ring_with(&["k"]);
    let token = hs(&good_claims(), "k");
    let parts: Vec<&str> = token.split('.').collect();
    let forged =
        b64(json!({"aud": AUD, "iat": NOW, "exp": NOW + 3600, "sub": "mallory"}).to_string());
    let tampered = format!("{}.{}.{}", parts[0], forged, parts[2]);
    assert_eq!(
        verify(&tampered, &ring, &opts()),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn rejects_truncated_signature() {
    let ring = ring_with(&["k"]);
    let token = hs(&good_claims(), "k");
    // Three characters off a 43-character signature leaves a well-formed 30-byte value.
    let cut = &token[..token.len() - 3];
    assert_eq!(verify(cut, &ring, &opts()), Err(TokenError::BadSignature));
    let (unsigned, _) = token.rsplit_once('.').unwrap();
    assert_eq!(
        verify(&format!("{unsigned}."), &ring, &opts()),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn sign_hs256_emits_the_sdk_header() {
    let token = sign_hs256(&json!({"a": 1}), "k");
    // base64url of {"alg":"HS256","typ":"JWT"}, what PyJWT and jsonwebtoken both send.
    assert!(
        token.starts_with("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."),
        "{token}"
    );
    assert_eq!(token.split('.').nth(1), Some(b64(r#"{"a":1}"#).as_str()));
}

#[test]
fn sign_hs256_matches_openssl_hmac() {
    if !require_openssl("sign_hs256_matches_openssl_hmac") {
        return;
    }
    let key = "Qk5jR2x0c2VjcmV0a2V5Zm9ydGVzdHM=";
    let token = sign_hs256(&json!({"aud": AUD, "exp": 1}), key);
    let (input, sig) = token.rsplit_once('.').unwrap();
    let reference =
        testkeys::openssl_hmac_sha256(key, input.as_bytes()).expect("openssl dgst -hmac");
    assert_eq!(sig, b64(reference));
}

// ---- algorithm handling ----

#[test]
fn rejects_alg_none() {
    let ring = ring_with(&["k"]);
    let payload = b64(good_claims().to_string());
    for header in [
        r#"{"alg":"none"}"#,
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"None"}"#,
        r#"{"alg":"NONE"}"#,
    ] {
        let unsigned = format!("{}.{payload}.", b64(header));
        assert_eq!(
            verify(&unsigned, &ring, &opts()),
            Err(TokenError::UnsupportedAlgorithm),
            "{header}"
        );
        // Even carrying a valid HS256 MAC over the same input.
        let signed = hs_raw(header, good_claims().to_string(), "k");
        assert_eq!(
            verify(&signed, &ring, &opts()),
            Err(TokenError::UnsupportedAlgorithm),
            "{header}"
        );
    }
}

#[test]
fn rejects_unknown_and_miscased_algorithms() {
    let ring = ring_with(&["k"]);
    for alg in ["HS512", "HS384", "hs256", "PS256", "EdDSA", ""] {
        let token = hs_raw(
            &format!(r#"{{"alg":"{alg}"}}"#),
            good_claims().to_string(),
            "k",
        );
        assert_eq!(
            verify(&token, &ring, &opts()),
            Err(TokenError::UnsupportedAlgorithm),
            "{alg}"
        );
    }
}

#[test]
fn rejects_hs256_when_no_hmac_key_is_configured() {
    assert_eq!(
        verify(&hs(&good_claims(), ""), &KeyRing::new(), &opts()),
        Err(TokenError::UnsupportedAlgorithm)
    );
}

#[test]
fn rejects_rs256_and_es256_when_only_hmac_keys_exist() {
    let ring = ring_with(&["k"]);
    for alg in ["RS256", "ES256"] {
        let token = hs_raw(
            &format!(r#"{{"alg":"{alg}"}}"#),
            good_claims().to_string(),
            "k",
        );
        assert_eq!(
            verify(&token, &ring, &opts()),
            Err(TokenError::UnsupportedAlgorithm),
            "{alg}"
        );
    }
}

#[test]
fn rejects_hs256_signed_with_rsa_public_key_as_secret() {
    if !require_openssl("rejects_hs256_signed_with_rsa_public_key_as_secret") {
        return;
    }
    let rsa = testkeys::rsa_2048().expect("rsa key");
    let mut ring = KeyRing::new();
    ring.add_public_pem(&rsa.public_pem).unwrap();
    // The classic confusion attack: the public key text used as an HMAC secret.
    let forged = hs(&good_claims(), &rsa.public_pem);
    assert_eq!(
        verify(&forged, &ring, &opts()),
        Err(TokenError::UnsupportedAlgorithm)
    );
    // With an unrelated HMAC key also configured, the forged MAC is simply wrong.
    ring.add_hmac("real-access-key");
    assert_eq!(
        verify(&forged, &ring, &opts()),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn accepts_extra_header_fields() {
    // The Python SDK merges caller-supplied `jwt_headers` into the header.
    let ring = ring_with(&["k"]);
    let header = r#"{"alg":"HS256","typ":"JWT","kid":"key-1","x-custom":[1,2]}"#;
    assert!(verify(
        &hs_raw(header, good_claims().to_string(), "k"),
        &ring,
        &opts()
    )
    .is_ok());
    let no_typ = r#"{"alg":"HS256"}"#;
    assert!(verify(
        &hs_raw(no_typ, good_claims().to_string(), "k"),
        &ring,
        &opts()
    )
    .is_ok());
}

#[test]
fn rejects_bad_header_fields() {
    let ring = ring_with(&["k"]);
    for header in [
        r#"{"alg":"HS256","crit":["exp"]}"#,
        r#"{"alg":"HS256","typ":1}"#,
        r#"{"alg":"HS256","kid":null}"#,
        r#"{"alg":["HS256"]}"#,
        r#"{"typ":"JWT"}"#,
        r#"{"alg":"none","alg":"HS256"}"#,
        r#"{"alg":"HS256","alg":"HS256"}"#,
        r#"["HS256"]"#,
        r#"{"alg":"HS256"} x"#,
    ] {
        let token = hs_raw(header, good_claims().to_string(), "k");
        assert_eq!(
            verify(&token, &ring, &opts()),
            Err(TokenError::Malformed),
            "{header}"
        );
    }
}

// ---- RS256 / ES256 with keys generated at test time ----

/// A token signed by openssl with `key`; `raw_ecdsa` converts an EC DER signature to `r || s`.
fn openssl_token(alg: &str, claims: &Value, key: &testkeys::TestKey, raw_ecdsa: bool) -> String {
    let input = format!(
        "{}.{}",
        b64(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#)),
        b64(claims.to_string())
    );
    let mut sig = key
        .sign_sha256(input.as_bytes())
        .expect("openssl dgst -sign");
    if raw_ecdsa {
        sig = testkeys::ecdsa_der_to_raw(&sig).expect("ECDSA-Sig-Value");
    }
    format!("{input}.{}", b64(sig))
}

#[test]
fn accepts_rs256_from_openssl_key() {
    if !require_openssl("accepts_rs256_from_openssl_key") {
        return;
    }
    let rsa = testkeys::rsa_2048().expect("rsa key");
    let mut ring = KeyRing::new();
    ring.add_public_pem(&rsa.public_pem).unwrap();
    let token = openssl_token("RS256", &good_claims(), rsa, false);
    assert_eq!(
        verify(&token, &ring, &opts()).unwrap().get("sub"),
        Some(&json!("alice"))
    );
}

#[test]
fn accepts_rs256_from_any_configured_rsa_key() {
    if !require_openssl("accepts_rs256_from_any_configured_rsa_key") {
        return;
    }
    let (rsa, other) = (
        testkeys::rsa_2048().expect("rsa"),
        testkeys::rsa_2048_other().expect("rsa"),
    );
    let mut ring = KeyRing::new();
    ring.add_public_pem(&other.public_pem).unwrap();
    let token = openssl_token("RS256", &good_claims(), rsa, false);
    assert_eq!(
        verify(&token, &ring, &opts()),
        Err(TokenError::BadSignature)
    );
    ring.add_public_pem(&rsa.public_pem).unwrap();
    assert!(verify(&token, &ring, &opts()).is_ok());
}

#[test]
fn accepts_es256_raw_signature_from_openssl_key() {
    if !require_openssl("accepts_es256_raw_signature_from_openssl_key") {
        return;
    }
    let ec = testkeys::ec_p256().expect("ec key");
    let mut ring = KeyRing::new();
    ring.add_public_pem(&ec.public_pem).unwrap();
    let token = openssl_token("ES256", &good_claims(), ec, true);
    assert!(verify(&token, &ring, &opts()).is_ok());
    // JWS wants raw r||s; the DER form openssl emits is not a valid JWS signature.
    let der_form = openssl_token("ES256", &good_claims(), ec, false);
    assert_eq!(
        verify(&der_form, &ring, &opts()),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn public_keys_only_verify_their_own_algorithm() {
    if !require_openssl("public_keys_only_verify_their_own_algorithm") {
        return;
    }
    let (rsa, ec) = (
        testkeys::rsa_2048().expect("rsa"),
        testkeys::ec_p256().expect("ec"),
    );
    let mut rsa_only = KeyRing::new();
    rsa_only.add_public_pem(&rsa.public_pem).unwrap();
    let es = openssl_token("ES256", &good_claims(), ec, true);
    assert_eq!(
        verify(&es, &rsa_only, &opts()),
        Err(TokenError::UnsupportedAlgorithm)
    );

    let mut ec_only = KeyRing::new();
    ec_only.add_public_pem(&ec.public_pem).unwrap();
    let rs = openssl_token("RS256", &good_claims(), rsa, false);
    assert_eq!(
        verify(&rs, &ec_only, &opts()),
        Err(TokenError::UnsupportedAlgorithm)
    );

    // An RS256 signature relabelled ES256 (and the reverse) fails on the signature.
    let mut both = rsa_only.clone();
    both.add_public_pem(&ec.public_pem).unwrap();
    let relabel = |token: &str, alg: &str| {
        let mut parts = token.splitn(2, '.');
        let _ = parts.next();
        format!(
            "{}.{}",
            b64(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#)),
            parts.next().unwrap_or("")
        )
    };
    assert_eq!(
        verify(&relabel(&rs, "ES256"), &both, &opts()),
        Err(TokenError::BadSignature)
    );
    assert_eq!(
        verify(&relabel(&es, "RS256"), &both, &opts()),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn loads_openssl_public_keys_and_refuses_unsupported_ones() {
    if !require_openssl("loads_openssl_public_keys_and_refuses_unsupported_ones") {
        return;
    }
    let mut ring = KeyRing::new();
    ring.add_public_pem(&testkeys::rsa_2048().expect("rsa").public_pem)
        .unwrap();
    ring.add_public_pem(&testkeys::ec_p256().expect("ec").public_pem)
        .unwrap();
    assert!(ring.has_public_keys());
    assert_eq!(ring.hmac_keys().count(), 0);

    let small = testkeys::rsa_1024().expect("rsa 1024");
    assert_eq!(
        ring.add_public_pem(&small.public_pem),
        Err(crate::KeyError::RsaKeySize)
    );
    let p384 = testkeys::other_key(&["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"])
        .expect("p384");
    assert_eq!(
        ring.add_public_pem(&p384.public_pem),
        Err(crate::KeyError::UnsupportedCurve)
    );
    if let Some(ed) = testkeys::other_key(&["-algorithm", "ED25519"]) {
        assert_eq!(
            ring.add_public_pem(&ed.public_pem),
            Err(crate::KeyError::UnsupportedAlgorithm)
        );
    }
}

// ---- time claims ----

#[test]
fn expiry_boundary_without_skew() {
    let ring = ring_with(&["k"]);
    let token = hs(&json!({"aud": AUD, "exp": 1000}), "k");
    assert!(verify(&token, &ring, &at(999, 0)).is_ok());
    assert_eq!(
        verify(&token, &ring, &at(1000, 0)),
        Err(TokenError::Expired)
    );
}

#[test]
fn expiry_boundary_with_skew() {
    let ring = ring_with(&["k"]);
    let token = hs(&json!({"aud": AUD, "exp": 1000}), "k");
    assert!(verify(&token, &ring, &at(1299, 300)).is_ok());
    assert_eq!(
        verify(&token, &ring, &at(1300, 300)),
        Err(TokenError::Expired)
    );
}

#[test]
fn not_before_boundary_without_and_with_skew() {
    let ring = ring_with(&["k"]);
    let token = hs(&json!({"aud": AUD, "exp": 5000, "nbf": 1000}), "k");
    assert_eq!(
        verify(&token, &ring, &at(999, 0)),
        Err(TokenError::NotYetValid)
    );
    assert!(verify(&token, &ring, &at(1000, 0)).is_ok());
    assert!(verify(&token, &ring, &at(700, 300)).is_ok());
    assert_eq!(
        verify(&token, &ring, &at(699, 300)),
        Err(TokenError::NotYetValid)
    );
}

#[test]
fn huge_times_do_not_overflow() {
    let ring = ring_with(&["k"]);
    let token = hs(&json!({"aud": AUD, "exp": u64::MAX, "nbf": 0}), "k");
    assert!(verify(&token, &ring, &at(u64::MAX - 1, u64::MAX)).is_ok());
}

#[test]
fn missing_exp_is_refused_only_when_required() {
    let ring = ring_with(&["k"]);
    let token = hs(&json!({"aud": AUD, "iat": NOW}), "k");
    assert_eq!(
        verify(&token, &ring, &opts()),
        Err(TokenError::MissingExpiry)
    );
    assert!(verify(
        &token,
        &ring,
        &VerifyOptions {
            require_exp: false,
            ..opts()
        }
    )
    .is_ok());
}

#[test]
fn rejects_string_time_claims() {
    let ring = ring_with(&["k"]);
    for (payload, what) in [
        (
            json!({"aud": AUD, "exp": "9999999999"}),
            "exp must be an integer",
        ),
        (
            json!({"aud": AUD, "exp": NOW + 60, "nbf": "0"}),
            "nbf must be an integer",
        ),
        (
            json!({"aud": AUD, "exp": NOW + 60, "iat": "now"}),
            "iat must be an integer",
        ),
    ] {
        assert_eq!(
            verify(&hs(&payload, "k"), &ring, &opts()),
            Err(TokenError::BadClaim(what))
        );
    }
    // With require_exp off, a string exp still does not pass as "no expiry".
    let relaxed = VerifyOptions {
        require_exp: false,
        ..opts()
    };
    let token = hs(&json!({"aud": AUD, "exp": "1"}), "k");
    assert_eq!(
        verify(&token, &ring, &relaxed),
        Err(TokenError::BadClaim("exp must be an integer"))
    );
}

#[test]
fn rejects_fractional_negative_and_null_time_claims() {
    let ring = ring_with(&["k"]);
    for exp in [
        json!(1.5e9),
        json!(-1),
        json!(null),
        json!(true),
        json!([NOW + 60]),
    ] {
        let token = hs(&json!({"aud": AUD, "exp": exp}), "k");
        assert_eq!(
            verify(&token, &ring, &opts()),
            Err(TokenError::BadClaim("exp must be an integer")),
            "{exp}"
        );
    }
}

// ---- audience ----

#[test]
fn accepts_aud_as_string_or_array() {
    let ring = ring_with(&["k"]);
    let as_array = hs(
        &json!({"aud": ["http://other/x", AUD], "exp": NOW + 60}),
        "k",
    );
    assert!(verify(&as_array, &ring, &opts()).is_ok());
    let single = hs(&json!({"aud": [AUD], "exp": NOW + 60}), "k");
    assert!(verify(&single, &ring, &opts()).is_ok());
}

#[test]
fn calls_the_audience_predicate_for_each_entry() {
    let ring = ring_with(&["k"]);
    let seen = std::cell::RefCell::new(Vec::new());
    let record = |aud: &str| {
        seen.borrow_mut().push(aud.to_owned());
        false
    };
    let token = hs(&json!({"aud": ["a", "b"], "exp": NOW + 60}), "k");
    let result = verify(
        &token,
        &ring,
        &VerifyOptions {
            audience: &record,
            ..opts()
        },
    );
    assert_eq!(result, Err(TokenError::WrongAudience));
    assert_eq!(*seen.borrow(), ["a", "b"]);
}

#[test]
fn rejects_wrong_missing_or_empty_audience() {
    let ring = ring_with(&["k"]);
    for payload in [
        json!({"aud": "http://localhost:8080/clients/mqtt/hubs/other", "exp": NOW + 60}),
        json!({"aud": [], "exp": NOW + 60}),
        json!({"exp": NOW + 60}),
    ] {
        assert_eq!(
            verify(&hs(&payload, "k"), &ring, &opts()),
            Err(TokenError::WrongAudience),
            "{payload}"
        );
    }
}

#[test]
fn rejects_non_string_audience() {
    let ring = ring_with(&["k"]);
    for aud in [json!(1), json!({"u": AUD}), json!([AUD, 2]), json!(null)] {
        let token = hs(&json!({"aud": aud, "exp": NOW + 60}), "k");
        assert!(
            matches!(verify(&token, &ring, &opts()), Err(TokenError::BadClaim(_))),
            "{aud}"
        );
    }
}

// ---- shape ----

#[test]
fn empty_token_is_missing() {
    assert_eq!(
        verify("", &ring_with(&["k"]), &opts()),
        Err(TokenError::Missing)
    );
}

#[test]
fn rejects_malformed_compact_serialisation() {
    let ring = ring_with(&["k"]);
    let good = hs(&good_claims(), "k");
    let (input, sig) = good.rsplit_once('.').unwrap();
    let padded_sig = format!("{input}.{sig}=");
    let oversized = format!("{good}{}", "A".repeat(MAX_TOKEN_LEN));
    for token in [
        "abc",
        "a.b",
        "a.b.c.d",
        &format!("{good}.extra"),
        "!!!.e30.sig",
        &padded_sig,
        &format!("{input}.{}", "*".repeat(8)),
        &oversized,
    ] {
        assert_eq!(
            verify(token, &ring, &opts()),
            Err(TokenError::Malformed),
            "{token:.60}"
        );
    }
}

#[test]
fn rejects_payload_that_is_not_one_json_object() {
    let ring = ring_with(&["k"]);
    for payload in ["[1,2]", "\"x\"", "{\"aud\":1", "{} {}", "not json"] {
        let token = hs_raw(r#"{"alg":"HS256"}"#, payload, "k");
        assert_eq!(
            verify(&token, &ring, &opts()),
            Err(TokenError::Malformed),
            "{payload}"
        );
    }
    // Invalid UTF-8 inside a string, and a lone surrogate escape.
    let token = hs_raw(r#"{"alg":"HS256"}"#, b"{\"aud\":\"\xff\"}", "k");
    assert_eq!(verify(&token, &ring, &opts()), Err(TokenError::Malformed));
    let token = hs_raw(r#"{"alg":"HS256"}"#, r#"{"aud":"\ud800"}"#, "k");
    assert_eq!(verify(&token, &ring, &opts()), Err(TokenError::Malformed));
}

#[test]
fn rejects_duplicate_claims() {
    let ring = ring_with(&["k"]);
    let payload = format!(
        r#"{{"aud":"{AUD}","exp":{},"sub":"alice","sub":"admin"}}"#,
        NOW + 60
    );
    let token = hs_raw(r#"{"alg":"HS256"}"#, payload, "k");
    assert_eq!(
        verify(&token, &ring, &opts()),
        Err(TokenError::BadClaim("duplicate claim"))
    );
    let payload = format!(r#"{{"aud":"{AUD}","exp":{},"exp":{}}}"#, NOW - 10, NOW + 60);
    let token = hs_raw(r#"{"alg":"HS256"}"#, payload, "k");
    assert_eq!(
        verify(&token, &ring, &opts()),
        Err(TokenError::BadClaim("duplicate claim"))
    );
}

#[test]
fn describe_gives_short_texts() {
    assert_eq!(TokenError::Expired.describe(), "token expired");
    assert_eq!(
        TokenError::BadSignature.describe(),
        "invalid token signature"
    );
    assert_eq!(TokenError::WrongAudience.describe(), "wrong token audience");
    assert_eq!(TokenError::Missing.describe(), "missing access token");
    assert_eq!(
        TokenError::BadClaim("nbf must be an integer").describe(),
        "nbf must be an integer"
    );
    assert_eq!(
        TokenError::NotYetValid.to_string(),
        TokenError::NotYetValid.describe()
    );
}

// ---- minting round trip ----

#[test]
fn client_token_round_trips_with_python_sdk_audience() {
    let key = "Sm9obkRvZUFjY2Vzc0tleUZvclRlc3Rpbmc=";
    let token = client_token(
        "HTTP://LocalHost:8080/",
        "Chat",
        Some("user1"),
        &[
            "webpubsub.sendToGroup.room.1".to_string(),
            "webpubsub.joinLeaveGroup".to_string(),
        ],
        &["room.1".to_string()],
        NOW,
        60,
        key,
    );
    let payload = URL_SAFE_NO_PAD
        .decode(token.split('.').nth(1).unwrap())
        .unwrap();
    let raw: Value = serde_json::from_slice(&payload).unwrap();
    // Exactly the Python SDK's claims: lower-cased endpoint, no trailing '/', hub case kept.
    assert_eq!(
        raw,
        json!({
            "aud": "http://localhost:8080/clients/mqtt/hubs/Chat",
            "iat": NOW,
            "exp": NOW + 3600,
            "sub": "user1",
            "role": ["webpubsub.sendToGroup.room.1", "webpubsub.joinLeaveGroup"],
            "webpubsub.group": ["room.1"],
        })
    );

    let mut ring = KeyRing::new();
    ring.add_hmac("old-secondary");
    ring.add_hmac(key);
    let endpoints: Vec<_> = ["http://localhost:8080", "http://127.0.0.1:8080"]
        .iter()
        .filter_map(|e| parse_endpoint(e))
        .collect();
    let audience = |aud: &str| client_audience_matches(aud, "chat", &endpoints);
    let opts = VerifyOptions {
        now: NOW + 10,
        skew_secs: 300,
        audience: &audience,
        require_exp: true,
    };
    let claims = verify(&token, &ring, &opts).unwrap();
    let client = client_claims(&claims).unwrap();
    assert_eq!(client.user_id.as_deref(), Some("user1"));
    assert_eq!(client.groups, ["room.1"]);
    assert_eq!(client.expires_at, Some(NOW + 3600));
    assert!(client.custom.is_empty());
    let roles = parse_roles(&client.roles);
    assert!(roles.join_any && !roles.send_any);
    assert_eq!(roles.send_groups, ["room.1"]);

    // The same token is refused for another hub and once expired.
    let other_hub = |aud: &str| client_audience_matches(aud, "other", &endpoints);
    let other = VerifyOptions {
        audience: &other_hub,
        ..opts
    };
    assert_eq!(
        verify(&token, &ring, &other),
        Err(TokenError::WrongAudience)
    );
    let late = VerifyOptions {
        now: NOW + 3600 + 300,
        audience: &audience,
        ..other
    };
    assert_eq!(verify(&token, &ring, &late), Err(TokenError::Expired));
}

#[test]
fn client_token_omits_empty_optional_claims() {
    let token = client_token("https://h", "hub", None, &[], &[], NOW, 1, "k");
    let payload = URL_SAFE_NO_PAD
        .decode(token.split('.').nth(1).unwrap())
        .unwrap();
    let raw: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        raw,
        json!({"aud": "https://h/clients/mqtt/hubs/hub", "iat": NOW, "exp": NOW + 60})
    );
    let token = client_token("https://h", "hub", Some(""), &[], &[], NOW, 1, "k");
    assert!(!token.is_empty());
    let payload = URL_SAFE_NO_PAD
        .decode(token.split('.').nth(1).unwrap())
        .unwrap();
    assert!(!String::from_utf8_lossy(&payload).contains("sub"));
}
