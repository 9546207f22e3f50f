//! Event Grid mode (`eventgrid-mqtt.md`): a broker serving namespace `factory` on its own TCP
//! and HTTP listeners, clients authenticating with `OAUTH2-JWT` (Entra) and `CUSTOM-JWT` tokens
//! signed at test time with a fresh RSA key (openssl makes it; ring signs). Enhanced auth, AUTH
//! re-authentication and token expiry run through MQTT.js and paho-mqtt v5 (the scenario runners
//! in `tests/clients/`); exact reason codes and the mode's limits through the byte-level client.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::clients::{codes, payloads, require, Client, Proc, BOTH};
use crate::harness::{now_secs, wait_until, Broker};
use crate::raw::Raw;
use crate::wire::{self, PropValue, V4, V5};

const NS: &str = "factory";
const TENANT: &str = "00000000-0000-0000-0000-00000000e9e9";
const ISSUER: &str = "https://issuer.example.net";
const HOST: &str = "factory.example.net";
/// Entra principals (the tokens' `oid`) and their role assignments in `config`.
const PUB_OID: &str = "11111111-0000-0000-0000-00000000000a";
const SUB_OID: &str = "11111111-0000-0000-0000-00000000000b";
const ALL_OID: &str = "11111111-0000-0000-0000-00000000000c";

/// `max_client_sessions_per_authentication_name` of the test namespace.
const QUOTA: usize = 40;

const AUTH_METHOD: u8 = 0x15;
const AUTH_DATA: u8 = 0x16;
const SUBSCRIPTION_ID: u8 = 0x0B;

/// The RSA key pairs of this test process: `signer` is configured, `stranger` is not.
struct Keys {
    dir: PathBuf,
    signer: ring::signature::RsaKeyPair,
    stranger: ring::signature::RsaKeyPair,
    /// The signer's public key as PEM (custom JWT) and as a JWKS (Entra).
    public_pem: PathBuf,
    jwks: PathBuf,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("openssl {args:?}: {e} (is openssl installed?)"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn pem_body(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(pem);
    let b64: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("PEM base64")
}

fn rsa_key(dir: &Path, name: &str) -> (ring::signature::RsaKeyPair, PathBuf) {
    let private = dir.join(format!("{name}.pem"));
    let p = private.to_str().expect("utf-8 path");
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        p,
    ]);
    let public = dir.join(format!("{name}.pub.pem"));
    openssl(&[
        "pkey",
        "-in",
        p,
        "-pubout",
        "-out",
        public.to_str().expect("utf-8 path"),
    ]);
    let der = pem_body(&std::fs::read(&private).expect("read key"));
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).expect("PKCS#8 RSA key");
    (pair, public)
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hubmq-e2e-eg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (signer, public_pem) = rsa_key(&dir, "signer");
        let (stranger, _) = rsa_key(&dir, "stranger");
        let out = openssl(&[
            "rsa",
            "-pubin",
            "-in",
            public_pem.to_str().expect("utf-8 path"),
            "-noout",
            "-modulus",
        ]);
        let hex = String::from_utf8_lossy(&out);
        let hex = hex.trim().trim_start_matches("Modulus=");
        let n: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex modulus"))
            .collect();
        let jwk = json!({"keys": [{"kty": "RSA", "use": "sig", "kid": "k1", "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(n), "e": "AQAB"}]});
        let jwks = dir.join("entra-jwks.json");
        std::fs::write(&jwks, jwk.to_string()).expect("write jwks");
        Keys {
            dir,
            signer,
            stranger,
            public_pem,
            jwks,
        }
    })
}

fn sign(header: &Value, claims: &Value, key: &ring::signature::RsaKeyPair) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .expect("RSA signs");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn rs256(claims: &Value) -> String {
    sign(
        &json!({"alg": "RS256", "typ": "JWT"}),
        claims,
        &keys().signer,
    )
}

/// An Entra token for `oid`, valid for `ttl` seconds from now.
fn entra(oid: &str, ttl: u64) -> String {
    rs256(&entra_claims(oid, ttl))
}

fn entra_claims(oid: &str, ttl: u64) -> Value {
    let now = now_secs();
    json!({"aud": "https://eventgrid.azure.net/", "iss": format!("https://sts.windows.net/{TENANT}/"),
        "oid": oid, "sub": format!("sub-{oid}"), "appid": "e2e", "iat": now - 5, "nbf": now - 5, "exp": now + ttl})
}

/// A custom-JWT token for `sub` with extra claims (they become attributes).
fn custom(sub: &str, extra: Value) -> String {
    rs256(&custom_claims(sub, extra))
}

fn custom_claims(sub: &str, extra: Value) -> Value {
    let now = now_secs();
    let mut c = json!({"iss": ISSUER, "sub": sub, "aud": HOST, "nbf": now - 5, "exp": now + 3600});
    if let (Some(map), Value::Object(more)) = (c.as_object_mut(), extra) {
        map.extend(more);
    }
    c
}

/// The broker: Web PubSub listeners as usual (the harness wants them) plus namespace `factory`
/// on TCP and HTTP. Skew 0 so expiry tests need not wait five minutes.
fn broker() -> Broker {
    broker_with("")
}

/// Quotas of the test namespace: the per-session CONNECT and SUBSCRIBE rates (1/s and 5/s by
/// default) are lifted so tests may reconnect and subscribe at will; `rate_quotas_*` tests them.
const RELAXED_QUOTAS: &str = "session_connects_per_second = 0\nsession_subscribes_per_second = 0\n";

/// [`broker`] with more listeners (`extra`, TOML) for the namespace.
fn broker_with(extra_listeners: &str) -> Broker {
    broker_full(extra_listeners, RELAXED_QUOTAS)
}

/// [`broker_with`] with `quotas` as the body of the namespace's `quotas` table.
fn broker_full(extra_listeners: &str, quotas: &str) -> Broker {
    broker_cfg(Tweaks {
        listeners: extra_listeners,
        quotas,
        ..Tweaks::default()
    })
}

/// Additions to the test broker's configuration.
#[derive(Default)]
struct Tweaks<'a> {
    /// More `[[listeners]]` (TOML).
    listeners: &'a str,
    /// The body of the namespace's `quotas` table.
    quotas: &'a str,
    /// More keys of the namespace table itself.
    ns_keys: &'a str,
    /// More keys of its `custom_jwt` table.
    custom_keys: &'a str,
    /// Whole tables appended to the namespace's configuration.
    tables: &'a str,
}

/// The most general form: `ns_tables` (whole TOML tables) appended to the namespace config.
fn broker_cfg(t: Tweaks<'_>) -> Broker {
    let k = keys();
    let (extra_listeners, quotas, ns_keys, custom_keys, ns_tables) =
        (t.listeners, t.quotas, t.ns_keys, t.custom_keys, t.tables);
    let extra = format!(
        r#"
{extra_listeners}

[[listeners]]
kind = "tcp"
bind = "127.0.0.1:0"
namespace = "{NS}"

[[listeners]]
kind = "http"
bind = "127.0.0.1:0"
namespace = "{NS}"

[eventgrid.namespaces.{NS}]
hostnames = ["{HOST}"]
max_client_sessions_per_authentication_name = {QUOTA}
{ns_keys}

[eventgrid.namespaces.{NS}.quotas]
{quotas}

[eventgrid.namespaces.{NS}.entra]
tenants = ["{TENANT}"]
jwks_file = "{jwks}"
skew_secs = 0

[eventgrid.namespaces.{NS}.custom_jwt]
issuer = "{ISSUER}"
public_key_files = ["{pem}"]
skew_secs = 0
{custom_keys}

[[eventgrid.namespaces.{NS}.clients]]
authentication_name = "device-1"
attributes = {{ type = "sensor", floor = 2 }}

[[eventgrid.namespaces.{NS}.client_groups]]
name = "sensors"
query = "attributes.type = 'sensor' and attributes.floor <= 5"

[[eventgrid.namespaces.{NS}.client_groups]]
name = "operators"
query = "attributes.role IN ['operator', 'admin']"

[[eventgrid.namespaces.{NS}.topic_spaces]]
name = "devices"
templates = ["devices/${{client.authenticationName}}/#"]

[[eventgrid.namespaces.{NS}.topic_spaces]]
name = "fleet"
templates = ["fleet/#"]

[[eventgrid.namespaces.{NS}.topic_spaces]]
name = "alerts"
templates = ["alerts/+/high"]

[[eventgrid.namespaces.{NS}.permission_bindings]]
name = "own-devices-pub"
client_group = "$all"
topic_space = "devices"
permission = "Publisher"

[[eventgrid.namespaces.{NS}.permission_bindings]]
name = "own-devices-sub"
client_group = "$all"
topic_space = "devices"
permission = "Subscriber"

[[eventgrid.namespaces.{NS}.permission_bindings]]
name = "sensors-pub"
client_group = "sensors"
topic_space = "fleet"
permission = "Publisher"

[[eventgrid.namespaces.{NS}.permission_bindings]]
name = "operators-sub"
client_group = "operators"
topic_space = "fleet"
permission = "Subscriber"

[[eventgrid.namespaces.{NS}.role_assignments]]
principal = "{PUB_OID}"
role = "EventGrid TopicSpaces Publisher"
scope = "fleet"

[[eventgrid.namespaces.{NS}.role_assignments]]
principal = "{SUB_OID}"
role = "EventGrid TopicSpaces Subscriber"
scope = "fleet"

[[eventgrid.namespaces.{NS}.role_assignments]]
principal = "{ALL_OID}"
role = "EventGrid TopicSpaces Publisher"
scope = "namespace"

[[eventgrid.namespaces.{NS}.role_assignments]]
principal = "{ALL_OID}"
role = "EventGrid TopicSpaces Subscriber"
scope = "namespace"

{ns_tables}
"#,
        jwks = k.jwks.display(),
        pem = k.public_pem.display(),
    );
    Broker::start_with(&extra)
}

fn eg_addr(b: &Broker, kind: &str) -> SocketAddr {
    let want = format!("{kind}@{NS}");
    b.listeners
        .iter()
        .find(|(k, _)| *k == want)
        .map(|(_, a)| *a)
        .unwrap_or_else(|| panic!("no {want} listener in {:?}", b.listeners))
}

fn auth_props(method: &str, token: &str) -> Vec<u8> {
    let mut p = wire::prop_str(AUTH_METHOD, method);
    p.push(AUTH_DATA);
    p.extend_from_slice(&(token.len() as u16).to_be_bytes());
    p.extend_from_slice(token.as_bytes());
    p
}

fn v5_connect(client_id: &str, method: &str, token: &str) -> wire::Connect {
    let mut c = wire::Connect::v5(client_id);
    c.props = auth_props(method, token);
    c
}

/// Sends `c` on a fresh TCP connection to the namespace and returns the CONNACK.
fn try_connect(b: &Broker, c: &wire::Connect) -> (Raw, wire::ConnAck) {
    let mut raw = Raw::tcp(eg_addr(b, "tcp"));
    raw.send(&c.encode());
    let ack = wire::connack(c.version, &raw.read_packet());
    (raw, ack)
}

/// A connected v5 client; panics unless CONNACK 0x00.
fn connect(b: &Broker, client_id: &str, method: &str, token: &str) -> Raw {
    let (raw, ack) = try_connect(b, &v5_connect(client_id, method, token));
    assert_eq!(ack.code, 0, "{client_id}: CONNACK refused: {ack:?}");
    raw
}

fn subscribe(raw: &mut Raw, pkid: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    raw.send(&wire::subscribe(V5, pkid, filters));
    wire::suback_codes(V5, &raw.read_packet_skip_ping())
}

/// PUBLISH QoS 1 and the PUBACK reason code.
fn publish1(raw: &mut Raw, topic: &str, payload: &str, pkid: u16) -> u8 {
    raw.send(&wire::publish(
        V5,
        topic,
        payload.as_bytes(),
        1,
        false,
        pkid,
        &[],
    ));
    let (first, id, rc) = wire::ack(&raw.read_packet_skip_ping());
    assert_eq!((first, id), (0x40, pkid), "expected PUBACK {pkid}");
    rc
}

/// The next PUBLISH (topic, payload), acknowledged when QoS 1.
fn next_message(raw: &mut Raw) -> (String, String) {
    let p = raw.read_packet_skip_ping();
    let m = wire::publish_of(V5, &p);
    if m.qos == 1 {
        raw.send(&wire::puback(m.pkid));
    }
    (m.topic, String::from_utf8_lossy(&m.payload).into_owned())
}

fn auth_packet(reason: u8, method: &str, token: &str) -> Vec<u8> {
    let props = auth_props(method, token);
    let mut body = vec![reason];
    wire::put_varint(&mut body, props.len());
    body.extend_from_slice(&props);
    wire::packet(0xF0, &body)
}

#[test]
fn entra_connect_is_accepted_with_the_modes_connack_properties() {
    let b = broker();
    let mut c = v5_connect("app-1", "OAUTH2-JWT", &entra(ALL_OID, 3600));
    c.keepalive = 0;
    let (_raw, ack) = try_connect(&b, &c);
    assert_eq!(ack.code, 0, "{ack:?}");
    let expect = [
        (AUTH_METHOD, PropValue::Str("OAUTH2-JWT".into())),
        (0x24, PropValue::Byte(1)),
        (wire::prop::RETAIN_AVAILABLE, PropValue::Byte(1)),
        (wire::prop::MAX_PACKET_SIZE, PropValue::U32(524_288)),
        (wire::prop::TOPIC_ALIAS_MAX, PropValue::U16(10)),
        (wire::prop::WILDCARD_AVAILABLE, PropValue::Byte(1)),
        (0x29, PropValue::Byte(0)),
        (wire::prop::SHARED_AVAILABLE, PropValue::Byte(0)),
        (0x21, PropValue::U16(1000)),
        // Keep-alive 0 ("none") becomes the mode's maximum, and the client is told.
        (wire::prop::SERVER_KEEP_ALIVE, PropValue::U16(1160)),
    ];
    for (id, value) in expect {
        assert_eq!(ack.prop(id), Some(&value), "property {id:#x} in {ack:?}");
    }
}

#[test]
fn connect_refusals_carry_the_specs_reason_codes() {
    let b = broker();
    let now = now_secs();
    let mut claims = entra_claims(ALL_OID, 3600);
    claims["aud"] = json!("https://someone-else.example/");
    let wrong_aud = rs256(&claims);
    let mut claims = entra_claims(ALL_OID, 3600);
    claims["exp"] = json!(now - 60);
    let expired = rs256(&claims);
    let mut claims = entra_claims(ALL_OID, 3600);
    claims["nbf"] = json!(now + 600);
    let not_yet = rs256(&claims);
    let bad_sig = sign(
        &json!({"alg": "RS256", "typ": "JWT"}),
        &entra_claims(ALL_OID, 3600),
        &keys().stranger,
    );
    let mut claims = entra_claims(ALL_OID, 3600);
    claims["iss"] = json!("https://sts.windows.net/99999999-0000-0000-0000-000000000000/");
    let unknown_issuer = rs256(&claims);
    let hs256 = crate::harness::sign_hs256(&entra_claims(ALL_OID, 3600), "secret");
    let mut claims = custom_claims("dev-1", json!({}));
    claims["iss"] = json!("https://other-issuer.example.net");
    let custom_wrong_issuer = rs256(&claims);
    let mut claims = custom_claims("dev-1", json!({}));
    claims["aud"] = json!("not-our-host.example");
    let custom_wrong_aud = rs256(&claims);
    // An Entra token under the custom method fails as "invalid issuer" (§4).
    let entra_as_custom = entra(ALL_OID, 3600);

    let cases: Vec<(&str, wire::Connect, u8)> = vec![
        (
            "wrong aud",
            v5_connect("r1", "OAUTH2-JWT", &wrong_aud),
            0x87,
        ),
        ("expired", v5_connect("r2", "OAUTH2-JWT", &expired), 0x87),
        (
            "not yet valid",
            v5_connect("r3", "OAUTH2-JWT", &not_yet),
            0x87,
        ),
        (
            "bad signature",
            v5_connect("r4", "OAUTH2-JWT", &bad_sig),
            0x87,
        ),
        (
            "unknown issuer",
            v5_connect("r5", "OAUTH2-JWT", &unknown_issuer),
            0x87,
        ),
        ("HS256", v5_connect("r6", "OAUTH2-JWT", &hs256), 0x87),
        (
            "custom wrong issuer",
            v5_connect("r7", "CUSTOM-JWT", &custom_wrong_issuer),
            0x87,
        ),
        (
            "custom wrong aud",
            v5_connect("r8", "CUSTOM-JWT", &custom_wrong_aud),
            0x87,
        ),
        (
            "entra token as custom",
            v5_connect("r9", "CUSTOM-JWT", &entra_as_custom),
            0x87,
        ),
        ("unknown method", v5_connect("r10", "SAS", "x"), 0x8C),
        (
            "data over 8 KB",
            v5_connect("r11", "OAUTH2-JWT", &"a".repeat(9000)),
            0x95,
        ),
        ("no credentials", wire::Connect::v5("r12"), 0x87),
        (
            "user property",
            {
                let mut c = v5_connect("r13", "OAUTH2-JWT", &entra(ALL_OID, 3600));
                c.props.extend(wire::prop_pair("k", "v"));
                c
            },
            0x83,
        ),
        (
            "client id over 128",
            v5_connect(&"c".repeat(129), "OAUTH2-JWT", &entra(ALL_OID, 3600)),
            0x85,
        ),
        (
            "v3.1.1 with the JWT as password",
            {
                let mut c = wire::Connect::v4("r14");
                c.username = Some("r14".into());
                c.password = Some(entra(ALL_OID, 3600));
                c
            },
            0x05,
        ),
        (
            "v3.1.1 empty client id",
            {
                let mut c = wire::Connect::v4("");
                c.password = Some(entra(ALL_OID, 3600));
                c.username = Some("x".into());
                c
            },
            0x02,
        ),
    ];
    for (what, c, code) in cases {
        let (mut raw, ack) = try_connect(&b, &c);
        assert_eq!(ack.code, code, "{what}: {ack:?}");
        raw.expect_closed();
    }
}

/// Runs one scenario script against the namespace over TCP (or WebSocket `/mqtt`).
fn eg_run(client: Client, b: &Broker, ws: bool, sub: &str, flags: Vec<String>) -> Proc {
    let url = if ws {
        format!("ws://{}/mqtt", eg_addr(b, "http"))
    } else {
        format!("mqtt://{}", eg_addr(b, "tcp"))
    };
    let mut args = vec![
        sub.to_owned(),
        "--url".into(),
        url,
        "--protocol".into(),
        "5".into(),
    ];
    args.extend(flags);
    Proc::spawn(client, args)
}

fn flags(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn reauth_extends_a_session_past_the_first_tokens_expiry_and_expiry_disconnects_others() {
    let test =
        "reauth_extends_a_session_past_the_first_tokens_expiry_and_expiry_disconnects_others";
    if !require(test, &BOTH) {
        return;
    }
    let b = broker();
    let mut runs = Vec::new();
    for client in BOTH {
        // Both tokens expire 8 s from now (skew 0); one client refreshes 2 s after CONNACK.
        // Long enough for four interpreters to start on a loaded machine before it expires.
        let short = entra(ALL_OID, 8);
        let fresh = entra(ALL_OID, 600);
        let mut refreshed = flags(&format!(
            "connect --client-id reauth-{n} --auth-method OAUTH2-JWT --reauth-after 2 --hold 10 --timeout 25",
            n = client.name()
        ));
        refreshed.remove(0);
        refreshed.extend([
            "--auth-data".into(),
            short.clone(),
            "--reauth-data".into(),
            fresh,
        ]);
        let mut plain = flags(&format!(
            "--client-id expires-{n} --auth-method OAUTH2-JWT --hold 14 --timeout 25",
            n = client.name()
        ));
        plain.extend(["--auth-data".into(), short]);
        runs.push((
            client,
            "refreshed",
            eg_run(client, &b, false, "connect", refreshed),
        ));
        runs.push((client, "plain", eg_run(client, &b, false, "connect", plain)));
    }
    for (client, what, p) in runs {
        let r = p.finish();
        let context = format!("{} {what}", client.name());
        assert_eq!(r["connected"], true, "{context}: {r}");
        assert_eq!(
            r["connack_properties"]["authentication_method"], "OAUTH2-JWT",
            "{context}: {r}"
        );
        if what == "refreshed" {
            let auths = r["auth_packets"].as_array().cloned().unwrap_or_default();
            assert_eq!(auths.len(), 1, "{context}: one AUTH answer expected: {r}");
            assert_eq!(auths[0]["reason_code"], 0, "{context}: {r}");
            assert_eq!(
                auths[0]["authentication_method"], "OAUTH2-JWT",
                "{context}: {r}"
            );
            assert_eq!(r["server_disconnect"], Value::Null, "{context}: {r}");
        } else {
            assert_eq!(
                r["server_disconnect"]["reason_code"], 0x87,
                "{context}: {r}"
            );
            assert_eq!(
                r["server_disconnect"]["reason_string"], "token expired",
                "{context}: {r}"
            );
        }
    }
}

#[test]
fn publisher_only_cannot_subscribe_and_subscriber_only_cannot_publish() {
    let test = "publisher_only_cannot_subscribe_and_subscriber_only_cannot_publish";
    if !require(test, &BOTH) {
        return;
    }
    let b = broker();
    for (i, client) in BOTH.into_iter().enumerate() {
        let ws = i == 1; // MQTT.js over WebSocket at /mqtt, paho over TCP
        let context = client.name();
        let topic = format!("fleet/{}/status", client.name().replace('.', ""));
        // The subscriber holds the Subscriber role: granted QoS 1, then waits for one message.
        let mut f = flags(&format!(
            "--client-id sub-{i} --auth-method OAUTH2-JWT --topic {topic} --qos 1 --count 1 --timeout 15"
        ));
        f.extend(["--auth-data".into(), entra(SUB_OID, 600)]);
        let mut sub = eg_run(client, &b, ws, "sub", f);
        let ready = sub.wait_ready();
        assert_eq!(codes(&ready["suback"]), vec![1], "{context}: {ready}");

        // The publisher-only principal may not subscribe...
        let mut f = flags(&format!(
            "--client-id pubsub-{i} --auth-method OAUTH2-JWT --topic {topic} --qos 1 --count 1 --timeout 3"
        ));
        f.extend(["--auth-data".into(), entra(PUB_OID, 600)]);
        let mut denied = eg_run(client, &b, ws, "sub", f);
        let ready = denied.wait_ready();
        assert_eq!(codes(&ready["suback"]), vec![0x87], "{context}: {ready}");
        drop(denied);

        // ...and the subscriber-only one may not publish.
        let mut f = flags(&format!(
            "--client-id subpub-{i} --auth-method OAUTH2-JWT --topic {topic} --qos 1 --message denied --timeout 10"
        ));
        f.extend(["--auth-data".into(), entra(SUB_OID, 600)]);
        let r = eg_run(client, &b, ws, "pub", f).finish();
        assert_eq!(codes(&r["acks"]), vec![0x87], "{context}: {r}");

        let mut f = flags(&format!(
            "--client-id pub-{i} --auth-method OAUTH2-JWT --topic {topic} --qos 1 --message allowed --timeout 10"
        ));
        f.extend(["--auth-data".into(), entra(PUB_OID, 600)]);
        let r = eg_run(client, &b, ws, "pub", f).finish();
        assert_eq!(codes(&r["acks"]), vec![0], "{context}: {r}");
        let got = sub.finish();
        assert_eq!(payloads(&got), vec!["allowed"], "{context}: {got}");
    }
}

#[test]
fn template_variables_isolate_clients_from_one_another() {
    let b = broker();
    let mut alice = connect(&b, "alice-1", "CUSTOM-JWT", &custom("alice", json!({})));
    let mut bob = connect(&b, "bob-1", "CUSTOM-JWT", &custom("bob", json!({})));
    assert_eq!(
        subscribe(
            &mut alice,
            1,
            &[
                ("devices/alice/#", 1),
                ("devices/bob/#", 1),
                ("devices/+/cmd", 1)
            ]
        ),
        vec![0x01, 0x87, 0x87]
    );
    assert_eq!(
        subscribe(&mut bob, 1, &[("devices/bob/cmd", 1)]),
        vec![0x01]
    );
    assert_eq!(
        publish1(&mut alice, "devices/bob/cmd", "from alice", 1),
        0x87
    );
    // Second sessions of the same names publish, so each ack and delivery stay apart.
    let mut bob2 = connect(&b, "bob-2", "CUSTOM-JWT", &custom("bob", json!({})));
    assert_eq!(publish1(&mut bob2, "devices/bob/cmd", "from bob", 1), 0x00);
    assert_eq!(
        next_message(&mut bob),
        ("devices/bob/cmd".into(), "from bob".into())
    );
    let mut alice2 = connect(&b, "alice-2", "CUSTOM-JWT", &custom("alice", json!({})));
    assert_eq!(publish1(&mut alice2, "devices/alice/t", "mine", 2), 0x00);
    assert_eq!(
        next_message(&mut alice),
        ("devices/alice/t".into(), "mine".into())
    );
}

#[test]
fn client_group_queries_select_the_right_clients() {
    let b = broker();
    let mut watcher = connect(
        &b,
        "op-1",
        "CUSTOM-JWT",
        &custom("op", json!({"role": "operator"})),
    );
    assert_eq!(subscribe(&mut watcher, 1, &[("fleet/#", 1)]), vec![0x01]);
    let mut low = connect(
        &b,
        "s-low",
        "CUSTOM-JWT",
        &custom("s-low", json!({"type": "sensor", "floor": 3})),
    );
    let mut high = connect(
        &b,
        "s-high",
        "CUSTOM-JWT",
        &custom("s-high", json!({"type": "sensor", "floor": 9})),
    );
    let mut actuator = connect(
        &b,
        "a-1",
        "CUSTOM-JWT",
        &custom("a-1", json!({"type": "actuator", "floor": 1})),
    );
    assert_eq!(publish1(&mut high, "fleet/s-high", "no", 1), 0x87);
    assert_eq!(publish1(&mut actuator, "fleet/a-1", "no", 1), 0x87);
    assert_eq!(publish1(&mut low, "fleet/s-low", "yes", 1), 0x00);
    assert_eq!(
        next_message(&mut watcher),
        ("fleet/s-low".into(), "yes".into())
    );
    // Sensors publish to the fleet but are not operators: no subscription there.
    assert_eq!(subscribe(&mut low, 2, &[("fleet/#", 1)]), vec![0x87]);
}

#[test]
fn wildcard_subscriptions_deliver_across_workers_once_per_session() {
    let b = broker();
    let token = entra(ALL_OID, 3600);
    let filters: [&[&str]; 6] = [
        &["fleet/+/status"],
        &["fleet/#"],
        &["fleet/7/status"],
        &["fleet/+/status", "fleet/#"],
        &["alerts/+/high"],
        &["fleet/+/status"],
    ];
    let mut subs = Vec::new();
    for (i, fs) in filters.iter().enumerate() {
        let mut raw = connect(&b, &format!("w-{i}"), "OAUTH2-JWT", &token);
        let list: Vec<(&str, u8)> = fs.iter().map(|f| (*f, 1)).collect();
        assert_eq!(subscribe(&mut raw, 1, &list), vec![1; fs.len()], "{fs:?}");
        subs.push(raw);
    }
    // The kernel spreads connections over both workers' listeners; prove both hold some.
    wait_until(
        "subscribers on both workers",
        Duration::from_secs(10),
        || {
            let per = b.connections_per_worker();
            per.len() >= 2 && per.values().all(|n| *n > 0.0)
        },
    );
    let mut publisher = connect(&b, "w-pub", "OAUTH2-JWT", &token);
    assert_eq!(publish1(&mut publisher, "fleet/7/status", "s", 1), 0);
    assert_eq!(publish1(&mut publisher, "fleet/7/other", "o", 2), 0);
    assert_eq!(publish1(&mut publisher, "alerts/7/high", "a", 3), 0);
    let expected: [&[(&str, &str)]; 6] = [
        &[("fleet/7/status", "s")],
        &[("fleet/7/status", "s"), ("fleet/7/other", "o")],
        &[("fleet/7/status", "s")],
        // Two matching filters, one copy.
        &[("fleet/7/status", "s"), ("fleet/7/other", "o")],
        &[("alerts/7/high", "a")],
        &[("fleet/7/status", "s")],
    ];
    // A marker every subscriber... only some can receive; instead end with a message each
    // one's filter matches, so an unexpected extra copy shows up before it.
    assert_eq!(publish1(&mut publisher, "fleet/7/status", "end", 4), 0);
    assert_eq!(publish1(&mut publisher, "alerts/9/high", "end", 5), 0);
    for (i, (raw, want)) in subs.iter_mut().zip(expected).enumerate() {
        let mut got = Vec::new();
        loop {
            let (topic, payload) = next_message(raw);
            if payload == "end" {
                break;
            }
            got.push((topic, payload));
        }
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(t, p)| (t.to_string(), p.to_string()))
            .collect();
        assert_eq!(got, want, "subscriber {i} ({:?})", filters[i]);
    }
}

#[test]
fn mode_limits_and_refusals() {
    let b = broker();
    let token = entra(ALL_OID, 3600);
    let c = |id: &str| connect(&b, id, "OAUTH2-JWT", &token);

    let mut raw = c("lim-qos2");
    raw.send(&wire::publish(V5, "fleet/x", b"p", 2, false, 1, &[]));
    raw.expect_disconnect(0x9B);

    let mut raw = c("lim-alias-range");
    let alias11 = wire::prop_u16(wire::prop::TOPIC_ALIAS, 11);
    raw.send(&wire::publish(V5, "fleet/x", b"p", 0, false, 0, &alias11));
    raw.expect_disconnect(0x94);

    let mut raw = c("lim-alias-unknown");
    let alias2 = wire::prop_u16(wire::prop::TOPIC_ALIAS, 2);
    raw.send(&wire::publish(V5, "", b"p", 0, false, 0, &alias2));
    raw.expect_disconnect(0x94);

    // A topic alias set up once, then used alone: the subscriber sees the full topic.
    let mut sub = c("lim-alias-sub");
    assert_eq!(subscribe(&mut sub, 1, &[("fleet/alias", 1)]), vec![1]);
    let mut raw = c("lim-alias-ok");
    let alias1 = wire::prop_u16(wire::prop::TOPIC_ALIAS, 1);
    raw.send(&wire::publish(
        V5,
        "fleet/alias",
        b"one",
        1,
        false,
        1,
        &alias1,
    ));
    assert_eq!(wire::ack(&raw.read_packet()).2, 0);
    raw.send(&wire::publish(V5, "", b"two", 1, false, 2, &alias1));
    assert_eq!(wire::ack(&raw.read_packet()).2, 0);
    assert_eq!(next_message(&mut sub), ("fleet/alias".into(), "one".into()));
    let p = sub.read_packet_skip_ping();
    let m = wire::publish_of(V5, &p);
    assert_eq!(
        (m.topic.as_str(), &m.payload[..]),
        ("fleet/alias", &b"two"[..])
    );
    assert!(
        m.props.iter().all(|(id, _)| *id != wire::prop::TOPIC_ALIAS),
        "aliases are never forwarded: {:?}",
        m.props
    );

    let mut raw = c("lim-sub");
    let deep = vec!["l"; 16].join("/");
    assert_eq!(
        subscribe(
            &mut raw,
            1,
            &[("$share/g/fleet/#", 1), (&deep, 1), ("fleet/q2", 2)]
        ),
        vec![0x9E, 0x8F, 0x01],
        "shared, too deep, QoS 2 granted as 1"
    );
    let many: Vec<String> = (0..11).map(|i| format!("fleet/m/{i}")).collect();
    let list: Vec<(&str, u8)> = many.iter().map(|f| (f.as_str(), 1)).collect();
    let mut want = vec![1u8; 10];
    want.push(0x97);
    assert_eq!(
        subscribe(&mut raw, 2, &list),
        want,
        "10 filters per SUBSCRIBE"
    );
    // 11 held now (fleet/q2 and ten of these); 39 more fit, the 51st does not.
    let more: Vec<String> = (0..40).map(|i| format!("fleet/n/{i}")).collect();
    let mut codes_seen = Vec::new();
    for (i, chunk) in more.chunks(10).enumerate() {
        let list: Vec<(&str, u8)> = chunk.iter().map(|f| (f.as_str(), 1)).collect();
        codes_seen.extend(subscribe(&mut raw, 10 + i as u16, &list));
    }
    assert_eq!(codes_seen.iter().filter(|c| **c == 1).count(), 39);
    assert_eq!(
        codes_seen.last(),
        Some(&0x97),
        "50 subscriptions per session"
    );

    let mut raw = c("lim-subid");
    let mut body = 9u16.to_be_bytes().to_vec();
    let mut props = vec![SUBSCRIPTION_ID];
    wire::put_varint(&mut props, 5);
    wire::put_varint(&mut body, props.len());
    body.extend_from_slice(&props);
    body.extend_from_slice(&[0, 7]);
    body.extend_from_slice(b"fleet/x");
    body.push(1);
    raw.send(&wire::packet(0x82, &body));
    raw.expect_disconnect(0xA1);

    let mut raw = c("lim-bad-puback");
    raw.send(&wire::packet(0x40, &[0, 1, 0x80]));
    raw.expect_disconnect(0x83);
}

#[test]
fn session_names_belong_to_one_authentication_name() {
    let b = broker();
    let mut first = connect(&b, "shared-name", "CUSTOM-JWT", &custom("owner", json!({})));
    let (mut raw, ack) = try_connect(
        &b,
        &v5_connect("shared-name", "CUSTOM-JWT", &custom("intruder", json!({}))),
    );
    assert_eq!(ack.code, 0x87, "{ack:?}");
    raw.expect_closed();
    // The owner (names compare ignoring case) takes its own session over.
    let _second = connect(&b, "shared-name", "CUSTOM-JWT", &custom("OWNER", json!({})));
    first.expect_disconnect(0x8E);
    // QUOTA sessions per authentication name (shared-name is one); the next one is refused.
    let token = custom("owner", json!({}));
    let held: Vec<Raw> = (1..QUOTA)
        .map(|i| connect(&b, &format!("owner-{i}"), "CUSTOM-JWT", &token))
        .collect();
    let (mut raw, ack) = try_connect(&b, &v5_connect("owner-over", "CUSTOM-JWT", &token));
    assert_eq!(ack.code, 0x97, "{ack:?}");
    raw.expect_closed();
    // A session that ends frees its place.
    drop(held);
    wait_until("a freed session place", Duration::from_secs(10), || {
        let (_raw, ack) = try_connect(&b, &v5_connect("owner-over", "CUSTOM-JWT", &token));
        ack.code == 0
    });
}

#[test]
fn offline_queue_overflow_ends_the_session() {
    let b = broker();
    let token = entra(ALL_OID, 3600);
    for (name, count, present) in [("q-ok", 5usize, true), ("q-over", 101, false)] {
        let mut c = v5_connect(name, "OAUTH2-JWT", &token);
        c.clean = true;
        c.props
            .extend(wire::prop_u32(wire::prop::SESSION_EXPIRY, 600));
        let (mut raw, ack) = try_connect(&b, &c);
        assert_eq!(ack.code, 0);
        let topic = format!("fleet/{name}");
        assert_eq!(subscribe(&mut raw, 1, &[(&topic, 1)]), vec![1]);
        raw.send(&wire::DISCONNECT);
        raw.expect_closed();
        let mut publisher = connect(&b, &format!("{name}-pub"), "OAUTH2-JWT", &token);
        for i in 0..count {
            assert_eq!(
                publish1(&mut publisher, &topic, &i.to_string(), (i + 1) as u16),
                0
            );
        }
        let mut again = v5_connect(name, "OAUTH2-JWT", &token);
        again.clean = false;
        again
            .props
            .extend(wire::prop_u32(wire::prop::SESSION_EXPIRY, 600));
        let (mut raw, ack) = try_connect(&b, &again);
        assert_eq!(ack.code, 0);
        assert_eq!(ack.session_present, present, "{name}: {ack:?}");
        if present {
            for i in 0..count {
                assert_eq!(next_message(&mut raw), (topic.clone(), i.to_string()));
            }
        }
    }
}

#[test]
fn reauth_rules_on_the_wire() {
    let b = broker();
    // A re-authentication that narrows the rights drops the subscription it no longer covers.
    let mut op = connect(
        &b,
        "ra-op",
        "CUSTOM-JWT",
        &custom("op", json!({"role": "operator"})),
    );
    assert_eq!(
        subscribe(&mut op, 1, &[("fleet/#", 1), ("devices/op/#", 1)]),
        vec![1, 1]
    );
    op.send(&auth_packet(
        0x19,
        "CUSTOM-JWT",
        &custom("op", json!({"role": "visitor"})),
    ));
    let p = op.read_packet_skip_ping();
    // AUTH 0x00 with the method, byte for byte as in §9.
    let mut want = vec![0xF0, 0x0F, 0x00, 0x0D, AUTH_METHOD, 0x00, 0x0A];
    want.extend_from_slice(b"CUSTOM-JWT");
    assert_eq!(p, want);
    let mut sensor = connect(
        &b,
        "ra-sensor",
        "CUSTOM-JWT",
        &custom("sensor", json!({"type": "sensor", "floor": 1})),
    );
    assert_eq!(publish1(&mut sensor, "fleet/after", "dropped", 1), 0);
    let mut me = connect(&b, "ra-op-2", "CUSTOM-JWT", &custom("op", json!({})));
    assert_eq!(publish1(&mut me, "devices/op/x", "kept", 1), 0);
    assert_eq!(
        next_message(&mut op),
        ("devices/op/x".into(), "kept".into())
    );

    // Another identity, another method, a non-0x19 reason: all end the connection.
    let mut raw = connect(&b, "ra-other", "CUSTOM-JWT", &custom("one", json!({})));
    raw.send(&auth_packet(0x19, "CUSTOM-JWT", &custom("two", json!({}))));
    raw.expect_disconnect(0x87);
    let mut raw = connect(&b, "ra-method", "CUSTOM-JWT", &custom("one", json!({})));
    raw.send(&auth_packet(0x19, "OAUTH2-JWT", &entra(ALL_OID, 600)));
    raw.expect_disconnect(0x82);
    let mut raw = connect(&b, "ra-continue", "CUSTOM-JWT", &custom("one", json!({})));
    raw.send(&auth_packet(0x18, "CUSTOM-JWT", &custom("one", json!({}))));
    raw.expect_disconnect(0x82);
    let mut raw = connect(&b, "ra-bad", "OAUTH2-JWT", &entra(ALL_OID, 600));
    let mut claims = entra_claims(ALL_OID, 600);
    claims["exp"] = json!(now_secs() - 10);
    raw.send(&auth_packet(0x19, "OAUTH2-JWT", &rs256(&claims)));
    raw.expect_disconnect(0x87);
    // v3.1.1 sessions and v5 sessions share topics (§1: mixed versions).
    let _ = V4;
}

#[test]
fn websocket_clients_connect_at_mqtt_and_other_paths_are_not_found() {
    let b = broker();
    let addr = eg_addr(&b, "http");
    let mut raw = Raw::ws(addr, "/mqtt", &[]).unwrap_or_else(|(s, body)| panic!("{s} {body}"));
    raw.send(&v5_connect("ws-1", "OAUTH2-JWT", &entra(ALL_OID, 600)).encode());
    let ack = wire::connack(V5, &raw.read_packet());
    assert_eq!(ack.code, 0, "{ack:?}");
    match Raw::ws(addr, "/clients/mqtt/hubs/chat", &[]) {
        Err((404, _)) => {}
        Err((s, body)) => panic!("expected 404, got {s} {body}"),
        Ok(_) => panic!("a Web PubSub path upgraded on a namespace listener"),
    }
    let _ = &keys().dir;
}

/// `paho_client.py` over mqtts to the namespace's TLS listener, with the client certificate
/// when `cert`; returns its JSON report.
fn paho_cert(dir: &Path, addr: SocketAddr, args: &[&str], cert: bool) -> Value {
    let mut cmd = Command::new("python3");
    cmd.arg("tests/clients/paho_client.py")
        .args(args)
        .args([
            "--url",
            &format!("mqtts://localhost:{}", addr.port()),
            "--timeout",
            "15",
        ])
        .arg("--ca-file")
        .arg(dir.join("server.pem"));
    if cert {
        cmd.arg("--cert-file")
            .arg(dir.join("client.pem"))
            .arg("--key-file")
            .arg(dir.join("client.key"));
    }
    let out = cmd
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run paho_client.py");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "paho output is not JSON ({e}): {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn registered_clients_authenticate_with_a_certificate_and_their_username() {
    if !require(
        "registered_clients_authenticate_with_a_certificate_and_their_username",
        &[Client::Paho],
    ) {
        return;
    }
    let Some(dir) = crate::upstream::make_mtls_files() else {
        return;
    };
    // Optional client certificates: JWT clients need none, certificate clients bring one.
    let listeners = format!(
        "[[listeners]]\nkind = \"tls\"\nbind = \"127.0.0.1:0\"\nnamespace = \"{NS}\"\n\
         cert = \"{d}/server.pem\"\nkey = \"{d}/server.key\"\nclient_ca = \"{d}/ca.pem\"\n\
         client_auth = \"optional\"\n",
        d = dir.display()
    );
    // Without a Username the name comes from the certificate's subject CN (§5).
    let b = broker_cfg(Tweaks {
        listeners: &listeners,
        quotas: RELAXED_QUOTAS,
        ns_keys: "alternative_authentication_name_sources = [\"ClientCertificateSubject\"]",
        ..Tweaks::default()
    });
    let addr = eg_addr(&b, "tls");
    let r = paho_cert(
        &dir,
        addr,
        &[
            "pub",
            "--protocol",
            "5",
            "--client-id",
            "cert-no-user",
            "--topic",
            "fleet/device-1",
            "--qos",
            "1",
            "--message",
            "m",
        ],
        true,
    );
    assert_eq!(codes(&r["acks"]), vec![0], "name from the subject CN: {r}");
    for protocol in ["4", "5"] {
        // The certificate's subject CN is device-1, a registered sensor: it may publish to the
        // fleet (binding sensors-pub) on either protocol version.
        let id = format!("cert-ok-{protocol}");
        let r = paho_cert(
            &dir,
            addr,
            &[
                "pub",
                "--protocol",
                protocol,
                "--client-id",
                &id,
                "--username",
                "device-1",
                "--topic",
                "fleet/device-1",
                "--qos",
                "1",
                "--message",
                "m",
            ],
            true,
        );
        assert_eq!(codes(&r["acks"]), vec![0], "v{protocol}: {r}");
        let id = format!("cert-name-{protocol}");
        let r = paho_cert(
            &dir,
            addr,
            &[
                "connect",
                "--protocol",
                protocol,
                "--client-id",
                &id,
                "--username",
                "device-2",
            ],
            true,
        );
        let refused = if protocol == "5" { 0x87 } else { 0x05 };
        assert_eq!(r["connected"], false, "v{protocol} unregistered name: {r}");
        assert_eq!(
            r["reason_code"], refused,
            "v{protocol} unregistered name: {r}"
        );
        let id = format!("cert-none-{protocol}");
        let r = paho_cert(
            &dir,
            addr,
            &[
                "connect",
                "--protocol",
                protocol,
                "--client-id",
                &id,
                "--username",
                "device-1",
            ],
            false,
        );
        assert_eq!(
            r["reason_code"], refused,
            "v{protocol} without certificate: {r}"
        );
    }

    // Removing the client from the configuration ends its live connection (0x87) on reload.
    let mut cmd = Command::new("python3");
    cmd.arg("tests/clients/paho_client.py")
        .args([
            "connect",
            "--protocol",
            "5",
            "--client-id",
            "cert-held",
            "--username",
            "device-1",
        ])
        .args(["--hold", "20", "--timeout", "25"])
        .args(["--url", &format!("mqtts://localhost:{}", addr.port())])
        .arg("--ca-file")
        .arg(dir.join("server.pem"))
        .arg("--cert-file")
        .arg(dir.join("client.pem"))
        .arg("--key-file")
        .arg(dir.join("client.key"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped());
    let child = cmd.spawn().expect("spawn paho");
    wait_until("the held connection is up", Duration::from_secs(20), || {
        b.logs().contains("client_session_name=cert-held")
    });
    let path = b.config_path();
    let text = std::fs::read_to_string(&path).expect("read config");
    std::fs::write(
        &path,
        text.replace(
            "authentication_name = \"device-1\"",
            "authentication_name = \"device-9\"",
        ),
    )
    .expect("write config");
    b.signal("HUP");
    let out = child.wait_with_output().expect("paho ends");
    let r: Value = serde_json::from_slice(&out.stdout).expect("paho JSON");
    assert_eq!(r["server_disconnect"]["reason_code"], 0x87, "{r}");
}

/// The next PUBLISH as (topic, payload, retain flag), acknowledged when QoS 1.
fn next_with_flag(raw: &mut Raw) -> (String, String, bool) {
    let p = raw.read_packet_skip_ping();
    let m = wire::publish_of(V5, &p);
    if m.qos == 1 {
        raw.send(&wire::puback(m.pkid));
    }
    (
        m.topic,
        String::from_utf8_lossy(&m.payload).into_owned(),
        m.retain,
    )
}

#[test]
fn retained_messages_reach_new_subscribers_with_the_retain_flag() {
    let b = broker();
    let token = entra(ALL_OID, 3600);
    let mut publisher = connect(&b, "ret-pub", "OAUTH2-JWT", &token);
    let retained = |raw: &mut Raw, topic: &str, payload: &[u8], pkid: u16| -> u8 {
        raw.send(&wire::publish(V5, topic, payload, 1, true, pkid, &[]));
        wire::ack(&raw.read_packet_skip_ping()).2
    };
    assert_eq!(retained(&mut publisher, "fleet/r/1", b"a", 1), 0);
    assert_eq!(retained(&mut publisher, "fleet/r/2", b"b", 2), 0);
    // Over 64 KB: refused with 0x97 and not stored.
    assert_eq!(
        retained(&mut publisher, "fleet/r/3", &vec![b'x'; 65 * 1024], 3),
        0x97
    );

    let mut early = connect(&b, "ret-early", "OAUTH2-JWT", &token);
    assert_eq!(subscribe(&mut early, 1, &[("fleet/r/+", 1)]), vec![1]);
    let mut got = vec![next_with_flag(&mut early), next_with_flag(&mut early)];
    got.sort();
    assert_eq!(
        got,
        vec![
            ("fleet/r/1".into(), "a".into(), true),
            ("fleet/r/2".into(), "b".into(), true)
        ]
    );
    // A live retained PUBLISH reaches current subscribers without the flag, and replaces.
    assert_eq!(retained(&mut publisher, "fleet/r/1", b"c", 4), 0);
    assert_eq!(
        next_with_flag(&mut early),
        ("fleet/r/1".into(), "c".into(), false)
    );
    // An empty payload deletes (and is still delivered live).
    assert_eq!(retained(&mut publisher, "fleet/r/2", b"", 5), 0);
    assert_eq!(
        next_with_flag(&mut early),
        ("fleet/r/2".into(), String::new(), false)
    );

    let mut late = connect(&b, "ret-late", "OAUTH2-JWT", &token);
    // Retain Handling 2 (bits 4-5): no retained messages; then 0: the one left.
    assert_eq!(
        subscribe(&mut late, 1, &[("fleet/r/#", 1 | (2 << 4))]),
        vec![1]
    );
    assert_eq!(subscribe(&mut late, 2, &[("fleet/+/1", 1)]), vec![1]);
    assert_eq!(
        next_with_flag(&mut late),
        ("fleet/r/1".into(), "c".into(), true)
    );
    // Nothing else was queued: the next message is a live one.
    assert_eq!(publish1(&mut publisher, "fleet/r/9", "live", 6), 0);
    assert_eq!(
        next_with_flag(&mut late),
        ("fleet/r/9".into(), "live".into(), false)
    );
}

#[test]
fn rate_quotas_refuse_with_the_specs_codes() {
    let b = broker_full(
        "",
        "session_connects_per_second = 1\nsession_publishes_per_second = 5\n\
         session_subscribes_per_second = 1\npublishes_per_second = 0\nsubscribes_per_second = 0\n",
    );
    let token = entra(ALL_OID, 3600);
    // A second CONNECT for the same session within a second: 0x9F; the first stays up.
    let mut first = connect(&b, "rq-1", "OAUTH2-JWT", &token);
    let (mut raw, ack) = try_connect(&b, &v5_connect("rq-1", "OAUTH2-JWT", &token));
    assert_eq!(ack.code, 0x9F, "{ack:?}");
    raw.expect_closed();
    first.send(&wire::PINGREQ);
    assert_eq!(first.read_packet(), wire::PINGRESP.to_vec());

    // SUBSCRIBE at 1/s: of three back-to-back packets the first passes and the rest are over
    // (a refill needs a whole second, so even a stalled broker refuses at least one).
    let mut bytes = Vec::new();
    for pkid in 1..=3u16 {
        bytes.extend(wire::subscribe(V5, pkid, &[("fleet/q", 1)]));
    }
    first.send(&bytes);
    let got: Vec<Vec<u8>> = (0..3)
        .map(|_| wire::suback_codes(V5, &first.read_packet_skip_ping()))
        .collect();
    assert_eq!(got[0], vec![1]);
    assert!(got[1..].contains(&vec![0x97]), "{got:?}");
    assert!(
        got.iter().all(|g| *g == vec![1] || *g == vec![0x97]),
        "{got:?}"
    );

    // PUBLISH at 5/s: five pass, the next ones get PUBACK 0x97, and once the refusals reach
    // the quota again (twice the quota in all) the connection ends with 0x96. Sent in one
    // write; a broker stalled long enough to refill may let one or two more through.
    let mut bytes = Vec::new();
    for pkid in 1..=20u16 {
        bytes.extend(wire::publish(V5, "fleet/q", b"m", 1, false, pkid, &[]));
    }
    first.send(&bytes);
    let mut acks = Vec::new();
    loop {
        let p = first.read_packet_skip_ping();
        match p[0] & 0xF0 {
            0x40 => acks.push(wire::ack(&p).2),
            // Our own subscription delivers the accepted messages.
            0x30 => first.send(&wire::puback(wire::publish_of(V5, &p).pkid)),
            0xE0 => {
                assert_eq!(wire::disconnect_reason(&p), 0x96, "sustained overrun");
                break;
            }
            _ => panic!("unexpected packet {}", crate::harness::hex(&p)),
        }
    }
    assert_eq!(acks[..5], [0u8; 5], "{acks:x?}");
    assert!(
        acks.iter().filter(|c| **c == 0x97).count() >= 5,
        "at least five refusals, then 0x96: {acks:x?}"
    );
    assert!(acks.iter().all(|c| *c == 0 || *c == 0x97), "{acks:x?}");
}

#[test]
fn namespace_connect_rate_is_shared_out_across_workers() {
    // 2 CONNECTs/s for the namespace = 1 per worker per second (two workers). Eight at once:
    // one per worker passes (a stall long enough to refill may let a few more in).
    let b = broker_full(
        "",
        "connects_per_second = 2\nsession_connects_per_second = 0\n",
    );
    let token = entra(ALL_OID, 3600);
    let mut conns: Vec<Raw> = (0..8).map(|_| Raw::tcp(eg_addr(&b, "tcp"))).collect();
    for (i, raw) in conns.iter_mut().enumerate() {
        raw.send(&v5_connect(&format!("nc-{i}"), "OAUTH2-JWT", &token).encode());
    }
    let codes_seen: Vec<u8> = conns
        .iter_mut()
        .map(|raw| wire::connack(V5, &raw.read_packet()).code)
        .collect();
    let accepted = codes_seen.iter().filter(|c| **c == 0).count();
    assert!(
        (1..=4).contains(&accepted),
        "about one per worker: {codes_seen:x?}"
    );
    assert!(
        codes_seen.iter().all(|c| *c == 0 || *c == 0x89),
        "{codes_seen:x?}"
    );
}

/// A tiny authentication webhook on a loopback port: answers by the request's `userName`
/// (`ok`, `expiring`, `deny`, `500`, `slow`) and keeps every request body and
/// `Authorization` header it saw.
struct Webhook {
    addr: SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>,
}

impl Webhook {
    fn start() -> Webhook {
        use std::io::{Read as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind webhook");
        let addr = listener.local_addr().expect("webhook addr");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let record = record.clone();
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (head_len, length) = loop {
                        let Ok(n) = stream.read(&mut chunk) else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (i + 4, length);
                        }
                    };
                    while buf.len() < head_len + length {
                        let Ok(n) = stream.read(&mut chunk) else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let head = String::from_utf8_lossy(&buf[..head_len]).to_string();
                    let auth = head
                        .lines()
                        .find_map(|l| {
                            l.to_lowercase()
                                .starts_with("authorization:")
                                .then(|| l["authorization:".len()..].trim().to_owned())
                        })
                        .unwrap_or_default();
                    let body: Value = serde_json::from_slice(&buf[head_len..head_len + length])
                        .unwrap_or(Value::Null);
                    let user = body["userName"].as_str().unwrap_or("").to_owned();
                    record
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((auth, body));
                    let (status, reply) = match user.as_str() {
                        "ok" => (
                            200,
                            json!({"decision": "allow", "clientAuthenticationName": "hooked",
                            "attributes": {"type": "sensor", "floor": 1}}),
                        ),
                        "expiring" => (
                            200,
                            json!({"decision": "allow", "clientAuthenticationName": "hooked",
                            "expiration": now_secs() + 2}),
                        ),
                        "deny" => (200, json!({"decision": "deny", "errorReason": "not today"})),
                        "slow" => {
                            std::thread::sleep(Duration::from_secs(3));
                            (
                                200,
                                json!({"decision": "allow", "clientAuthenticationName": "late"}),
                            )
                        }
                        _ => (500, json!({})),
                    };
                    let text = reply.to_string();
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                        text.len()
                    );
                });
            }
        });
        Webhook { addr, seen }
    }
}

#[test]
fn webhook_authentication_allows_denies_and_fails_closed() {
    let hook = Webhook::start();
    let tables = format!(
        "[eventgrid.namespaces.{NS}.webhook]\nurl = \"http://{}/auth\"\nbearer_token = \"hook-token\"\ntimeout_ms = 500\n",
        hook.addr
    );
    let b = broker_cfg(Tweaks {
        quotas: RELAXED_QUOTAS,
        tables: &tables,
        ..Tweaks::default()
    });
    let with_user = |version: u8, id: &str, user: &str| {
        let mut c = wire::Connect::new(version, id);
        c.username = Some(user.to_owned());
        c.password = Some("pw".to_owned());
        c
    };
    // Allowed with attributes: a sensor, so it may publish to the fleet (binding sensors-pub).
    let (mut ok, ack) = try_connect(&b, &with_user(V5, "wh-ok", "ok"));
    assert_eq!(ack.code, 0, "{ack:?}");
    assert_eq!(publish1(&mut ok, "fleet/hooked", "m", 1), 0);
    // AUTH re-authentication is for the JWT methods only.
    ok.send(&auth_packet(0x19, "CUSTOM-JWT", "x"));
    ok.expect_disconnect(0x82);
    {
        let seen = hook.seen.lock().unwrap_or_else(|e| e.into_inner());
        let (auth, body) = &seen[0];
        assert_eq!(auth, "Bearer hook-token");
        assert_eq!(body["clientId"], "wh-ok");
        assert_eq!(body["userName"], "ok");
        assert_eq!(body["password"], "cHc=", "base64 of pw");
    }
    for (version, refused, unavailable) in [(V5, 0x87, 0x88), (V4, 0x05, 0x03)] {
        let (mut raw, ack) = try_connect(
            &b,
            &with_user(version, &format!("wh-deny-{version}"), "deny"),
        );
        assert_eq!(ack.code, refused, "v{version} deny: {ack:?}");
        raw.expect_closed();
        let (mut raw, ack) =
            try_connect(&b, &with_user(version, &format!("wh-500-{version}"), "500"));
        assert_eq!(ack.code, unavailable, "v{version} 500: {ack:?}");
        raw.expect_closed();
    }
    let (mut raw, ack) = try_connect(&b, &with_user(V5, "wh-slow", "slow"));
    assert_eq!(ack.code, 0x88, "timeout: {ack:?}");
    raw.expect_closed();
    // The webhook's expiration ends the connection like a token's exp.
    let (mut raw, ack) = try_connect(&b, &with_user(V5, "wh-exp", "expiring"));
    assert_eq!(ack.code, 0, "{ack:?}");
    let p = raw.read_packet_skip_ping();
    assert_eq!(
        wire::disconnect_reason(&p),
        0x87,
        "{}",
        crate::harness::hex(&p)
    );
    // JWT clients never reach the webhook.
    let before = hook.seen.lock().unwrap_or_else(|e| e.into_inner()).len();
    let _jwt = connect(&b, "wh-jwt", "OAUTH2-JWT", &entra(ALL_OID, 600));
    assert_eq!(
        hook.seen.lock().unwrap_or_else(|e| e.into_inner()).len(),
        before
    );
}

#[test]
fn sighup_reload_rechecks_live_sessions() {
    let b = broker();
    let mut op = connect(
        &b,
        "rl-op",
        "CUSTOM-JWT",
        &custom("op", json!({"role": "operator"})),
    );
    assert_eq!(
        subscribe(&mut op, 1, &[("fleet/#", 1), ("devices/op/#", 1)]),
        vec![1, 1]
    );

    // Operators lose their group: the binding no longer covers `op`.
    let path = b.config_path();
    let text = std::fs::read_to_string(&path).expect("read config");
    let narrowed = text.replace(
        "attributes.role IN ['operator', 'admin']",
        "attributes.role IN ['admin']",
    );
    assert_ne!(text, narrowed, "the test config names the operators query");
    std::fs::write(&path, narrowed).expect("write config");
    b.signal("HUP");
    wait_until(
        "the reload re-checked the session",
        Duration::from_secs(10),
        || {
            b.logs()
                .contains("subscriptions removed by a configuration change")
        },
    );

    // The fleet subscription is gone, the own-devices one stays, the connection is up.
    let mut sensor = connect(
        &b,
        "rl-sensor",
        "CUSTOM-JWT",
        &custom("s", json!({"type": "sensor", "floor": 1})),
    );
    assert_eq!(publish1(&mut sensor, "fleet/after-reload", "dropped", 1), 0);
    let mut op2 = connect(
        &b,
        "rl-op-2",
        "CUSTOM-JWT",
        &custom("op", json!({"role": "operator"})),
    );
    assert_eq!(publish1(&mut op2, "devices/op/x", "kept", 1), 0);
    assert_eq!(
        next_message(&mut op),
        ("devices/op/x".into(), "kept".into())
    );
    // New SUBSCRIBEs see the new rules too.
    assert_eq!(subscribe(&mut op2, 1, &[("fleet/#", 1)]), vec![0x87]);
}

#[test]
fn wills_are_published_only_with_publisher_permission_on_their_topic() {
    let b = broker();
    let with_will = |id: &str, token: &str, topic: &str| {
        let mut c = v5_connect(id, "CUSTOM-JWT", token);
        c.will = Some(wire::Will {
            topic: topic.to_owned(),
            payload: format!("will of {id}").into_bytes(),
            qos: 1,
            retain: false,
            props: Vec::new(),
        });
        c
    };
    let mut watcher = connect(&b, "will-watch", "OAUTH2-JWT", &entra(ALL_OID, 600));
    assert_eq!(subscribe(&mut watcher, 1, &[("fleet/#", 1)]), vec![1]);
    let mut own = connect(&b, "will-own", "CUSTOM-JWT", &custom("w2", json!({})));
    assert_eq!(subscribe(&mut own, 1, &[("devices/w2/#", 1)]), vec![1]);

    // w2 may not publish to the fleet: that will is dropped when the connection breaks...
    let token = custom("w2", json!({}));
    let (raw, ack) = try_connect(&b, &with_will("will-denied", &token, "fleet/w2/gone"));
    assert_eq!(ack.code, 0);
    drop(raw);
    wait_until(
        "the denied will is dropped",
        Duration::from_secs(10),
        || {
            b.logs().lines().any(|l| {
                l.contains("will dropped: no publish permission") && l.contains("fleet/w2/gone")
            })
        },
    );
    // ...while one on its own topic is published.
    let (raw, ack) = try_connect(&b, &with_will("will-allowed", &token, "devices/w2/gone"));
    assert_eq!(ack.code, 0);
    drop(raw);
    assert_eq!(
        next_message(&mut own),
        ("devices/w2/gone".into(), "will of will-allowed".into())
    );
    // A sensor's fleet will goes through; the watcher's first fleet message is that one, so
    // the denied will never arrived.
    let sensor = custom("s-will", json!({"type": "sensor", "floor": 1}));
    let (raw, ack) = try_connect(&b, &with_will("will-sensor", &sensor, "fleet/s-will/gone"));
    assert_eq!(ack.code, 0);
    drop(raw);
    assert_eq!(
        next_message(&mut watcher),
        ("fleet/s-will/gone".into(), "will of will-sensor".into())
    );
}

#[test]
fn v311_custom_jwt_in_the_password_is_an_opt_in_extension() {
    let token = custom("legacy", json!({}));
    let v311 = |id: &str| {
        let mut c = wire::Connect::v4(id);
        c.username = Some("legacy".into());
        c.password = Some(token.clone());
        c
    };
    // Off by default: a v3.1.1 client has no way to carry a JWT (§4).
    let b = broker();
    let (mut raw, ack) = try_connect(&b, &v311("legacy-off"));
    assert_eq!(ack.code, 0x05, "{ack:?}");
    raw.expect_closed();
    drop(b);

    let b = broker_cfg(Tweaks {
        quotas: RELAXED_QUOTAS,
        custom_keys: "allow_v311_password = true",
        ..Tweaks::default()
    });
    let (mut raw, ack) = try_connect(&b, &v311("legacy-on"));
    assert_eq!(ack.code, 0, "{ack:?}");
    // Its own topics, by template: v3.1.1 PUBACK and delivery to itself.
    raw.send(&wire::subscribe(V4, 1, &[("devices/legacy/#", 1)]));
    assert_eq!(wire::suback_codes(V4, &raw.read_packet()), vec![1]);
    raw.send(&wire::publish(
        V4,
        "devices/legacy/t",
        b"old",
        1,
        false,
        2,
        &[],
    ));
    let mut got_ack = false;
    let mut got_msg = false;
    while !(got_ack && got_msg) {
        let p = raw.read_packet_skip_ping();
        match p[0] & 0xF0 {
            0x40 => got_ack = true,
            0x30 => {
                let m = wire::publish_of(V4, &p);
                assert_eq!(
                    (m.topic.as_str(), &m.payload[..]),
                    ("devices/legacy/t", &b"old"[..])
                );
                raw.send(&wire::puback(m.pkid));
                got_msg = true;
            }
            _ => panic!("unexpected {}", crate::harness::hex(&p)),
        }
    }
    // A token that fails verification is refused with the v3.1.1 code.
    let mut bad = v311("legacy-bad");
    bad.password = Some(entra(ALL_OID, 600));
    let (mut raw, ack) = try_connect(&b, &bad);
    assert_eq!(ack.code, 0x05, "{ack:?}");
    raw.expect_closed();
}

#[test]
fn outbound_quota_delays_deliveries_and_drops_none() {
    let b = broker_full(
        "",
        "session_connects_per_second = 0\nsession_subscribes_per_second = 0\n\
         session_deliveries_per_second = 5\n",
    );
    let token = entra(ALL_OID, 600);
    let mut sub = connect(&b, "out-sub", "OAUTH2-JWT", &token);
    assert_eq!(subscribe(&mut sub, 1, &[("fleet/slow", 1)]), vec![1]);
    let mut publisher = connect(&b, "out-pub", "OAUTH2-JWT", &token);
    let mut bytes = Vec::new();
    for i in 0..20u16 {
        bytes.extend(wire::publish(
            V5,
            "fleet/slow",
            i.to_string().as_bytes(),
            1,
            false,
            i + 1,
            &[],
        ));
    }
    publisher.send(&bytes);
    // All 20 arrive, in order, though only 5 a second may go out.
    for i in 0..20 {
        assert_eq!(next_message(&mut sub), ("fleet/slow".into(), i.to_string()));
    }
    wait_until(
        "the writer reported held-back deliveries",
        Duration::from_secs(10),
        || {
            b.metrics()
                .lines()
                .filter(|l| l.starts_with("hubmq_deliveries_delayed_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
                > 0.0
        },
    );
}

#[test]
fn self_signed_thumbprint_clients_connect_and_cannot_claim_ca_schemes() {
    if !require(
        "self_signed_thumbprint_clients_connect_and_cannot_claim_ca_schemes",
        &[Client::Paho],
    ) {
        return;
    }
    let Some(dir) = crate::upstream::make_mtls_files() else {
        return;
    };
    // A self-signed client certificate (not a CA, client auth only), pinned by thumbprint.
    let d = dir.display().to_string();
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-days", "1", "-subj", "/CN=device-1"])
        .args([
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=clientAuth",
        ])
        .args([
            "-keyout",
            &format!("{d}/pinned.key"),
            "-out",
            &format!("{d}/pinned.pem"),
        ])
        .output()
        .expect("run openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let fp = Command::new("openssl")
        .args([
            "x509",
            "-in",
            &format!("{d}/pinned.pem"),
            "-noout",
            "-fingerprint",
            "-sha256",
        ])
        .output()
        .expect("run openssl");
    let fp = String::from_utf8_lossy(&fp.stdout);
    let thumbprint = fp.trim().rsplit('=').next().unwrap_or_default().to_owned();
    assert_eq!(thumbprint.len(), 95, "openssl fingerprint: {fp}");

    let listeners = format!(
        "[[listeners]]\nkind = \"tls\"\nbind = \"127.0.0.1:0\"\nnamespace = \"{NS}\"\n\
         cert = \"{d}/server.pem\"\nkey = \"{d}/server.key\"\nclient_ca = \"{d}/ca.pem\"\n\
         client_auth = \"optional\"\n"
    );
    let tables = format!(
        "[[eventgrid.namespaces.{NS}.clients]]\nauthentication_name = \"gateway-7\"\n\
         validation_scheme = \"ThumbprintMatch\"\nallowed_thumbprints = [\"{thumbprint}\"]\n"
    );
    let b = broker_cfg(Tweaks {
        listeners: &listeners,
        quotas: RELAXED_QUOTAS,
        tables: &tables,
        ..Tweaks::default()
    });
    let addr = eg_addr(&b, "tls");
    let paho = |user: &str, id: &str| -> Value {
        let out = Command::new("python3")
            .arg("tests/clients/paho_client.py")
            .args([
                "pub",
                "--protocol",
                "5",
                "--client-id",
                id,
                "--username",
                user,
            ])
            .args([
                "--topic",
                &format!("devices/{user}/x"),
                "--qos",
                "1",
                "--message",
                "m",
            ])
            .args([
                "--url",
                &format!("mqtts://localhost:{}", addr.port()),
                "--timeout",
                "15",
            ])
            .args(["--ca-file", &format!("{d}/server.pem")])
            .args([
                "--cert-file",
                &format!("{d}/pinned.pem"),
                "--key-file",
                &format!("{d}/pinned.key"),
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run paho");
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("paho JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)))
    };
    // The pinned client gets in and may publish under its own name.
    let r = paho("gateway-7", "pin-ok");
    assert_eq!(codes(&r["acks"]), vec![0], "{r}");
    // The same self-signed certificate, though its CN says device-1, cannot pass for a
    // CA-verified client (SubjectMatchesAuthenticationName).
    let r = paho("device-1", "pin-claim");
    assert_eq!(r["connect"]["reason_code"], 0x87, "{r}");
}

#[test]
fn mqttjs_connects_over_wss_at_mqtt_with_an_entra_token() {
    if !require(
        "mqttjs_connects_over_wss_at_mqtt_with_an_entra_token",
        &[Client::MqttJs],
    ) {
        return;
    }
    let Some(dir) = crate::upstream::make_mtls_files() else {
        return;
    };
    let d = dir.display();
    let listeners = format!(
        "[[listeners]]\nkind = \"https\"\nbind = \"127.0.0.1:0\"\nnamespace = \"{NS}\"\n\
         cert = \"{d}/server.pem\"\nkey = \"{d}/server.key\"\n"
    );
    let b = broker_with(&listeners);
    let addr = eg_addr(&b, "https");
    let mut args = flags(&format!(
        "pubsub --url wss://localhost:{}/mqtt --protocol 5 --client-id wss-1 \
         --auth-method OAUTH2-JWT --topic fleet/wss --qos 1 --count 2 --message m{{i}} --timeout 15",
        addr.port()
    ));
    args.extend(["--auth-data".into(), entra(ALL_OID, 600)]);
    args.extend(["--ca-file".into(), format!("{d}/server.pem")]);
    let r = Proc::spawn(Client::MqttJs, args).finish();
    assert_eq!(payloads(&r), vec!["m0", "m1"], "{r}");
    assert_eq!(
        r["connack_properties"]["authentication_method"], "OAUTH2-JWT",
        "{r}"
    );
}

#[test]
fn no_local_applies_per_subscription_when_filters_overlap() {
    let b = broker();
    let token = entra(ALL_OID, 600);
    // No Local (bit 2) on the wildcard filter only: the own message still comes through the
    // other, overlapping subscription, once.
    let mut both = connect(&b, "nl-both", "OAUTH2-JWT", &token);
    assert_eq!(
        subscribe(&mut both, 1, &[("fleet/nl/#", 1 | 0x04), ("fleet/+/x", 1)]),
        vec![1, 1]
    );
    let mut only = connect(&b, "nl-only", "OAUTH2-JWT", &token);
    assert_eq!(
        subscribe(&mut only, 1, &[("fleet/nl/#", 1 | 0x04)]),
        vec![1]
    );
    both.send(&wire::publish(V5, "fleet/nl/x", b"own", 1, false, 1, &[]));
    let mut acked = false;
    let mut got = Vec::new();
    while !acked || got.is_empty() {
        let p = both.read_packet_skip_ping();
        match p[0] & 0xF0 {
            0x40 => acked = true,
            0x30 => {
                let m = wire::publish_of(V5, &p);
                both.send(&wire::puback(m.pkid));
                got.push(String::from_utf8_lossy(&m.payload).into_owned());
            }
            _ => panic!("unexpected {}", crate::harness::hex(&p)),
        }
    }
    // Exactly one copy of its own message reached `both`.
    assert_eq!(got, vec!["own"]);
    // The no-local-only subscriber gets `both`'s message, but not its own: after `self`, the
    // next message it sees is `both`'s marker.
    assert_eq!(next_message(&mut only), ("fleet/nl/x".into(), "own".into()));
    only.send(&wire::publish(V5, "fleet/nl/y", b"self", 1, false, 1, &[]));
    assert_eq!(wire::ack(&only.read_packet_skip_ping()).0, 0x40);
    assert_eq!(
        next_message(&mut both),
        ("fleet/nl/y".into(), "self".into())
    );
    // `both`'s marker matches only its No Local filter: it is not delivered back to it.
    assert_eq!(publish1(&mut both, "fleet/nl/z", "marker", 2), 0);
    assert_eq!(
        next_message(&mut only),
        ("fleet/nl/z".into(), "marker".into())
    );
}

#[test]
fn more_refusals_of_the_mode() {
    let b = broker();
    let token = entra(ALL_OID, 600);
    let c = |id: &str| connect(&b, id, "OAUTH2-JWT", &token);

    // Session expiry above the namespace maximum (1 h by default) is lowered and reported.
    let mut long = v5_connect("more-expiry", "OAUTH2-JWT", &token);
    long.props
        .extend(wire::prop_u32(wire::prop::SESSION_EXPIRY, 99_999));
    let (_raw, ack) = try_connect(&b, &long);
    assert_eq!(
        ack.prop(wire::prop::SESSION_EXPIRY),
        Some(&PropValue::U32(3600)),
        "{ack:?}"
    );

    // A will at QoS 2 is refused at CONNECT.
    let mut will2 = v5_connect("more-will2", "OAUTH2-JWT", &token);
    will2.will = Some(wire::Will {
        topic: "fleet/w".into(),
        payload: b"w".to_vec(),
        qos: 2,
        retain: false,
        props: Vec::new(),
    });
    let (mut raw, ack) = try_connect(&b, &will2);
    assert_eq!(ack.code, 0x9B, "{ack:?}");
    raw.expect_closed();

    // Property quotas on PUBLISH: PUBACK 0x83 at QoS 1, DISCONNECT 0x83 at QoS 0.
    let mut raw = c("more-props");
    let ct = wire::prop_str(wire::prop::CONTENT_TYPE, &"c".repeat(257));
    raw.send(&wire::publish(V5, "fleet/p", b"m", 1, false, 1, &ct));
    assert_eq!(wire::ack(&raw.read_packet_skip_ping()).2, 0x83);
    raw.send(&wire::publish(V5, "fleet/p", b"m", 0, false, 0, &ct));
    raw.expect_disconnect(0x83);

    // A topic name over 256 bytes: PUBACK 0x90 at QoS 1.
    let mut raw = c("more-topic");
    let topic = format!("fleet/{}", "t".repeat(260));
    assert_eq!(publish1(&mut raw, &topic, "m", 1), 0x90);

    // User properties on SUBSCRIBE: 0x83 per filter; on DISCONNECT: DISCONNECT 0x83.
    let mut raw = c("more-userprops");
    let props = wire::prop_pair("k", "v");
    let mut body = 5u16.to_be_bytes().to_vec();
    wire::put_varint(&mut body, props.len());
    body.extend_from_slice(&props);
    for f in ["fleet/a", "fleet/b"] {
        body.extend_from_slice(&(f.len() as u16).to_be_bytes());
        body.extend_from_slice(f.as_bytes());
        body.push(1);
    }
    raw.send(&wire::packet(0x82, &body));
    assert_eq!(
        wire::suback_codes(V5, &raw.read_packet_skip_ping()),
        vec![0x83, 0x83]
    );
    let mut body = vec![0x00];
    wire::put_varint(&mut body, props.len());
    body.extend_from_slice(&props);
    raw.send(&wire::packet(0xE0, &body));
    raw.expect_disconnect(0x83);

    // v3.1.1 has no negative PUBACK: a PUBLISH outside the rights closes the connection.
    let cert_less = custom("v3-user", json!({}));
    let b3 = broker_cfg(Tweaks {
        quotas: RELAXED_QUOTAS,
        custom_keys: "allow_v311_password = true",
        ..Tweaks::default()
    });
    let mut v3 = wire::Connect::v4("more-v3");
    v3.username = Some("v3-user".into());
    v3.password = Some(cert_less);
    let (mut raw, ack) = try_connect(&b3, &v3);
    assert_eq!(ack.code, 0, "{ack:?}");
    raw.send(&wire::publish(V4, "fleet/not-mine", b"m", 1, false, 1, &[]));
    raw.expect_closed();
}

#[test]
fn a_namespace_without_retain_refuses_retained_messages() {
    let b = broker_cfg(Tweaks {
        quotas: RELAXED_QUOTAS,
        ns_keys: "retain = false",
        ..Tweaks::default()
    });
    let token = entra(ALL_OID, 600);
    let (mut raw, ack) = try_connect(&b, &v5_connect("nr-1", "OAUTH2-JWT", &token));
    assert_eq!(
        ack.prop(wire::prop::RETAIN_AVAILABLE),
        Some(&PropValue::Byte(0))
    );
    raw.send(&wire::publish(V5, "fleet/r", b"m", 1, true, 1, &[]));
    raw.expect_disconnect(0x9A);
    let mut with_will = v5_connect("nr-2", "OAUTH2-JWT", &token);
    with_will.will = Some(wire::Will {
        topic: "fleet/w".into(),
        payload: b"w".to_vec(),
        qos: 1,
        retain: true,
        props: Vec::new(),
    });
    let (mut raw, ack) = try_connect(&b, &with_will);
    assert_eq!(ack.code, 0x9A, "{ack:?}");
    raw.expect_closed();
}
