//! The upstream event handler end to end (webpubsub-upstream.md): hubmq in front of a real
//! upstream built with the official `@azure/web-pubsub-express` handler
//! (`tests/clients/upstream_express.js`), and a tiny Python upstream
//! (`tests/clients/upstream_raw.py`) that records raw headers and body bytes for exact checks.
//! MQTT clients are the byte-level [`Raw`] client over WebSocket and TCP, v3.1.1 and v5.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

use crate::harness::{wait_until, Broker, Raw};
use crate::wire::{self, prop, Connect, PropValue, V4, V5};

const HUB: &str = "chat";
const EVENT_DEADLINE: Duration = Duration::from_secs(15);

/// A running upstream process and the JSON lines it printed.
struct Upstream {
    child: Child,
    port: u16,
    events: Arc<Mutex<Vec<Value>>>,
}

impl Upstream {
    fn spawn(mut cmd: Command) -> Upstream {
        let mut child = cmd
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn upstream: {e}"));
        let Some(out) = child.stdout.take() else {
            panic!("upstream stdout not captured")
        };
        let events = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = events.clone();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if let Some(p) = v.get("port").and_then(Value::as_u64) {
                    let _ = tx.send(p as u16);
                } else {
                    sink.lock().unwrap_or_else(|p| p.into_inner()).push(v);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("upstream did not print its port: {e}"));
        Upstream {
            child,
            port,
            events,
        }
    }

    /// The express upstream, or `None` (a skip outside CI) when node or the module is missing.
    fn express() -> Option<Upstream> {
        let module = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/clients/node_modules/@azure/web-pubsub-express");
        if !module.is_dir() {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "{} is missing (cd tests/clients && npm ci)",
                    module.display()
                );
            }
            eprintln!(
                "SKIPPED: {} is missing (cd tests/clients && npm ci)",
                module.display()
            );
            return None;
        }
        let mut cmd = Command::new("node");
        cmd.args(["upstream_express.js", HUB]);
        Some(Upstream::spawn(cmd))
    }

    fn raw() -> Upstream {
        let mut cmd = Command::new("python3");
        cmd.arg("upstream_raw.py");
        Upstream::spawn(cmd)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn events(&self) -> Vec<Value> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The first logged event matching `pred`, waiting for it.
    fn wait(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut found = None;
        wait_until(what, EVENT_DEADLINE, || {
            found = self.events().into_iter().find(|e| pred(e));
            found.is_some()
        });
        found.unwrap_or(Value::Null)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn handler_toml(url_template: &str, user_events: &str, timeout_ms: u64) -> String {
    format!(
        r#"[hubs.{HUB}]
[[hubs.{HUB}.event_handlers]]
url_template = "{url_template}"
system_events = ["connect", "connected", "disconnected"]
user_event_pattern = "{user_events}"
timeout_ms = {timeout_ms}
"#
    )
}

/// `sha256=<hex>` of HMAC-SHA256(key, connection id), as a validator computes it.
fn sig(key: &str, connection_id: &str) -> String {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    let tag = ring::hmac::sign(&k, connection_id.as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// A validator holding only `key` accepts the header (split on `,`, trimmed, any match).
fn signature_accepts(header: &str, key: &str, connection_id: &str) -> bool {
    let want = sig(key, connection_id);
    header
        .split(',')
        .any(|s| s.trim().eq_ignore_ascii_case(&want))
}

fn user_props(props: &[(u8, PropValue)]) -> Vec<(String, String)> {
    props
        .iter()
        .filter_map(|(_, v)| match v {
            PropValue::Pair(k, v) => Some((k.clone(), v.clone())),
            _ => None,
        })
        .collect()
}

/// CONNECT over WebSocket (token in the query plus `extra_query`) or TCP; returns the client
/// and its CONNACK.
fn connect(
    b: &Broker,
    ws: bool,
    token: Option<&str>,
    extra_query: &str,
    c: Connect,
) -> (Raw, wire::ConnAck) {
    let version = c.version;
    let mut raw = if ws {
        let mut path = format!("/clients/mqtt/hubs/{HUB}?{extra_query}");
        if let Some(t) = token {
            path.push_str(&format!("&access_token={t}"));
        }
        Raw::ws(b.http, &path, &[])
            .unwrap_or_else(|(s, body)| panic!("upgrade refused: {s} {body}"))
    } else {
        Raw::tcp(b.tcp)
    };
    let c = if ws { c } else { c.auth(HUB, token) };
    raw.send(&c.encode());
    let ack = wire::connack(version, &raw.read_packet());
    (raw, ack)
}

fn disconnect_with_property(k: &str, v: &str) -> Vec<u8> {
    let props = wire::prop_pair(k, v);
    let mut body = vec![0x00];
    wire::put_varint(&mut body, props.len());
    body.extend_from_slice(&props);
    wire::packet(0xE0, &body)
}

#[test]
fn express_accept_sets_user_groups_roles_and_reports_the_session_lifecycle() {
    let Some(up) = Upstream::express() else {
        return;
    };
    let b = Broker::start_with(&handler_toml(
        &up.url("/upstream/{event}"),
        "echo, fail",
        5000,
    ));
    // The token grants joining any group and a group; the upstream's answer replaces both.
    let token = b.token(
        HUB,
        Some("token-user"),
        &["webpubsub.joinLeaveGroup"],
        &["tokgroup"],
    );
    let mut conn = Connect::v5("acc-1");
    conn.username = Some("device-7".into());
    conn.password = Some("s3cret".into());
    conn.props = wire::prop_pair("fw", "1.2.0");
    let (mut c, ack) = connect(&b, true, Some(&token), "tenant=t1", conn);
    assert_eq!(ack.code, 0, "{ack:?}");
    assert!(!ack.session_present);
    assert_eq!(user_props(&ack.props), vec![("region".into(), "eu".into())]);

    // The connect event as the official SDK parsed it.
    let ev = up.wait("connect event", |e| e["event"] == "connect");
    assert_eq!(ev["context"]["connectionId"], "acc-1");
    assert_eq!(ev["context"]["clientProtocol"], "mqtt");
    assert_eq!(ev["context"]["userId"], "token-user");
    assert_eq!(ev["context"]["origin"], "hubmq.test");
    assert_eq!(ev["mqtt"]["protocolVersion"], 5);
    assert_eq!(ev["mqtt"]["cleanStart"], true);
    assert_eq!(ev["mqtt"]["username"], "device-7");
    assert_eq!(ev["mqtt"]["password"], "czNjcmV0");
    assert_eq!(
        ev["mqtt"]["userProperties"],
        serde_json::json!([{"name":"fw","value":"1.2.0"}])
    );
    assert_eq!(ev["claims"]["sub"], serde_json::json!(["token-user"]));
    assert_eq!(
        ev["claims"]["role"],
        serde_json::json!(["webpubsub.joinLeaveGroup"])
    );
    assert_eq!(ev["queries"]["tenant"], serde_json::json!(["t1"]));
    assert!(ev["queries"].get("access_token").is_none(), "{ev}");
    assert_eq!(ev["subprotocols"], serde_json::json!(["mqtt"]));
    assert_eq!(ev["clientCertificates"], serde_json::json!([]));
    let signature = ev["context"]["signature"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for key in &b.keys {
        assert!(
            signature_accepts(&signature, key, "acc-1"),
            "{signature} with one key"
        );
    }
    let physical = ev["context"]["mqtt"]["physicalConnectionId"].clone();
    assert!(physical.as_str().is_some_and(|p| p.len() == 22), "{ev}");

    // Permissions now come from the upstream's roles: group `upg` only.
    c.send(&wire::subscribe(V5, 1, &[("upg", 1), ("tokgroup", 1)]));
    assert_eq!(wire::suback_codes(V5, &c.read_packet()), vec![1, 0x87]);
    c.send(&wire::publish(V5, "other", b"x", 1, false, 2, &[]));
    assert_eq!(wire::ack(&c.read_packet()), (0x40, 2, 0x87));
    c.send(&wire::publish(V5, "upg", b"hello", 1, false, 3, &[]));
    let mut got_ack = false;
    let mut got_msg = false;
    while !(got_ack && got_msg) {
        let p = c.read_packet_skip_ping();
        if p[0] == 0x40 {
            assert_eq!(wire::ack(&p), (0x40, 3, 0));
            got_ack = true;
        } else {
            let m = wire::publish_of(V5, &p);
            assert_eq!(
                (m.topic.as_str(), m.payload.as_slice()),
                ("upg", &b"hello"[..])
            );
            if m.qos > 0 {
                c.send(&wire::puback(m.pkid));
            }
            got_msg = true;
        }
    }

    // connected: the upstream's user id, the state its connect answer set, a session id.
    let ev = up.wait("connected event", |e| e["event"] == "connected");
    assert_eq!(ev["context"]["userId"], "up-user");
    assert_eq!(ev["context"]["states"]["tenant"], "t1");
    assert_eq!(ev["context"]["mqtt"]["physicalConnectionId"], physical);
    assert!(
        ev["context"]["mqtt"]["sessionId"]
            .as_str()
            .is_some_and(|s| s.len() == 22),
        "{ev}"
    );

    // A user event round trip carries the state too.
    let corr = {
        let mut p = vec![0x09, 0, 2, 1, 2];
        p.extend_from_slice(&wire::prop_str(prop::CONTENT_TYPE, "text/plain"));
        p
    };
    c.send(&wire::publish(
        V5,
        "$webpubsub/server/events/echo",
        b"ping",
        1,
        false,
        4,
        &corr,
    ));
    let m = wire::publish_of(V5, &c.read_packet_skip_ping());
    assert_eq!(m.topic, "$webpubsub/server/events/echo/succeeded");
    assert_eq!(m.payload, b"echo:ping");
    assert_eq!(m.qos, 1);
    assert!(
        m.props.contains(&(0x09, PropValue::Bin(vec![1, 2]))),
        "{:?}",
        m.props
    );
    assert!(user_props(&m.props).contains(&("azure-status-code".into(), "200".into())));
    c.send(&wire::puback(m.pkid));
    assert_eq!(wire::ack(&c.read_packet_skip_ping()), (0x40, 4, 0));
    let ev = up.wait("user event", |e| e["event"] == "user");
    assert_eq!(ev["name"], "echo");
    assert_eq!(ev["data"], "ping");
    assert_eq!(ev["context"]["states"]["tenant"], "t1");

    // The client ends the session (expiry 0) with a DISCONNECT carrying a user property.
    c.send(&disconnect_with_property("why", "shutdown"));
    c.expect_closed();
    let ev = up.wait("disconnected event", |e| e["event"] == "disconnected");
    assert_eq!(ev["context"]["userId"], "up-user");
    assert_eq!(ev["mqtt"]["initiatedByClient"], true);
    assert_eq!(ev["mqtt"]["disconnectPacket"]["code"], 0);
    assert_eq!(
        ev["mqtt"]["disconnectPacket"]["userProperties"],
        serde_json::json!([{"name":"why","value":"shutdown"}])
    );
    assert!(ev.get("reason").is_none_or(Value::is_null), "{ev}");
}

#[test]
fn express_rejections_and_bare_errors_map_to_connack_codes() {
    let Some(up) = Upstream::express() else {
        return;
    };
    let b = Broker::start_with(&handler_toml(&up.url("/upstream/{event}"), "", 5000));
    let token = b.token(HUB, None, &[], &[]);

    // failWith {mqtt:{code:135,...}}: v5 gets 0x87 with the reason string and user property.
    let (mut c, ack) = connect(&b, true, Some(&token), "", Connect::v5("rej-135"));
    assert_eq!(ack.code, 0x87);
    assert_eq!(
        ack.prop(prop::REASON_STRING),
        Some(&PropValue::Str("bad device credentials".into()))
    );
    assert_eq!(
        user_props(&ack.props),
        vec![("hint".into(), "rotate".into())]
    );
    c.expect_closed();
    // The same v5 code is invalid for 3.1.1 → 3; a 3.1.1 code 5 is passed through.
    let (_, ack) = connect(&b, true, Some(&token), "", Connect::v4("rej-135"));
    assert_eq!(ack.code, 3);
    let (_, ack) = connect(&b, false, Some(&token), "", Connect::v4("rej-5"));
    assert_eq!(ack.code, 5);

    // Bare HTTP errors without an MQTT body (§5.5).
    for (id, v5, v4) in [
        ("s401-a", 0x87, 5),
        ("s500-a", 0x80, 3),
        ("s400-a", 0x86, 4),
    ] {
        let (_, ack) = connect(&b, true, Some(&token), "", Connect::v5(id));
        assert_eq!(ack.code, v5, "{id} v5");
        assert_eq!(
            ack.prop(prop::REASON_STRING),
            Some(&PropValue::Str(format!("upstream returned {}", &id[1..4])))
        );
        let (_, ack) = connect(&b, false, Some(&token), "", Connect::v4(id));
        assert_eq!(ack.code, v4, "{id} v3.1.1");
    }
    // A refused connect never produces connected/disconnected.
    thread::sleep(Duration::from_millis(300));
    assert!(
        !up.events()
            .iter()
            .any(|e| e["event"] == "connected" || e["event"] == "disconnected"),
        "{:?}",
        up.events()
    );
}

#[test]
fn unreachable_upstream_is_server_unavailable() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = dead.local_addr().expect("addr").port();
    drop(dead);
    let b = Broker::start_with(&handler_toml(
        &format!("http://127.0.0.1:{port}/upstream/{{event}}"),
        "",
        2000,
    ));
    let token = b.token(HUB, None, &[], &[]);
    let (_, ack) = connect(&b, true, Some(&token), "", Connect::v5("down-1"));
    assert_eq!(ack.code, 0x88);
    let (_, ack) = connect(&b, false, Some(&token), "", Connect::v4("down-2"));
    assert_eq!(ack.code, 3);
    // Hubs without handlers are not affected.
    let anon = b.raw(false, "anon", None, Connect::v4("free"));
    drop(anon);
    let metrics = b.metrics();
    assert!(
        metrics.contains("hubmq_upstream_requests_total{event=\"connect\",outcome=\"error\"}"),
        "{metrics}"
    );
}

#[test]
fn slow_upstream_times_out_while_other_clients_keep_working() {
    let Some(up) = Upstream::express() else {
        return;
    };
    // The express upstream answers `slow-*` after 5 s; the handler gives up after 2.
    let b = Broker::start_with(&handler_toml(&up.url("/upstream/{event}"), "", 2000));
    let token = b.token(HUB, None, &[], &[]);
    let done = Arc::new(AtomicBool::new(false));
    let slow = {
        let (http, done, token) = (b.http, done.clone(), token.clone());
        thread::spawn(move || {
            let mut raw = Raw::ws(
                http,
                &format!("/clients/mqtt/hubs/{HUB}?access_token={token}"),
                &[],
            )
            .unwrap_or_else(|(s, body)| panic!("upgrade refused: {s} {body}"));
            raw.send(&Connect::v5("slow-1").encode());
            let ack = wire::connack(V5, &raw.read_packet());
            done.store(true, Ordering::SeqCst);
            ack
        })
    };
    up.wait("slow connect reached the upstream", |e| {
        e["context"]["connectionId"] == "slow-1"
    });
    // Both workers keep serving: clients on a hub with and without upstream connect and talk.
    let pub_token = b.token(
        HUB,
        None,
        &["webpubsub.sendToGroup", "webpubsub.joinLeaveGroup"],
        &[],
    );
    for i in 0..4 {
        let (mut c, ack) = connect(
            &b,
            i % 2 == 0,
            Some(&pub_token),
            "",
            Connect::v4(&format!("fast-{i}")),
        );
        assert_eq!(ack.code, 0);
        c.send(&wire::subscribe(V4, 1, &[("g", 0)]));
        assert_eq!(wire::suback_codes(V4, &c.read_packet()), vec![0]);
        c.send(&wire::publish(V4, "g", b"x", 0, false, 0, &[]));
        assert_eq!(wire::publish_of(V4, &c.read_packet()).payload, b"x");
    }
    let mut anon = b.raw(true, "anon", None, Connect::v4("anon-fast"));
    anon.send(&wire::PINGREQ);
    assert_eq!(anon.read_packet(), vec![0xD0, 0x00]);
    assert!(
        !done.load(Ordering::SeqCst),
        "the slow client must still be waiting while the others were served"
    );
    let ack = slow.join().expect("slow client thread");
    assert_eq!(ack.code, 0x88);
    assert_eq!(
        ack.prop(prop::REASON_STRING),
        Some(&PropValue::Str("upstream timeout".into()))
    );
}

fn header<'a>(req: &'a Value, name: &str) -> Vec<&'a str> {
    req["headers"]
        .as_array()
        .map(|hs| {
            hs.iter()
                .filter(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
                .filter_map(|h| h[1].as_str())
                .collect()
        })
        .unwrap_or_default()
}

fn body(req: &Value) -> Vec<u8> {
    STANDARD
        .decode(req["body"].as_str().unwrap_or_default())
        .unwrap_or_default()
}

#[test]
fn raw_upstream_sees_exact_headers_and_bodies_and_user_event_mapping() {
    let up = Upstream::raw();
    let b = Broker::start_with(&handler_toml(
        &up.url("/events/{hub}/{event}"),
        "getTime,bad",
        5000,
    ));
    let token = b.token(HUB, Some("user0"), &[], &[]);
    let mut conn = Connect::v5("client1");
    conn.props = wire::prop_pair("fw", "1.2.0");
    let (mut c, ack) = connect(&b, false, Some(&token), "", conn);
    assert_eq!(ack.code, 0);

    let opts = up.wait("validation", |e| e["method"] == "OPTIONS");
    assert_eq!(opts["path"], "/events/chat/validate");
    assert_eq!(header(&opts, "WebHook-Request-Origin"), ["hubmq.test"]);
    assert_eq!(header(&opts, "ce-awpsversion"), ["1.0"]);

    let req = up.wait("connect", |e| e["path"] == "/events/chat/connect");
    let expect_sig = format!(
        "{},{}",
        sig(&b.keys[0], "client1"),
        sig(&b.keys[1], "client1")
    );
    for (name, value) in [
        ("WebHook-Request-Origin", "hubmq.test"),
        ("Content-Type", "application/json; charset=utf-8"),
        ("ce-specversion", "1.0"),
        ("ce-awpsversion", "1.0"),
        ("ce-type", "azure.webpubsub.sys.connect"),
        ("ce-id", "0"),
        ("ce-signature", expect_sig.as_str()),
        ("ce-hub", "chat"),
        ("ce-connectionId", "client1"),
        ("ce-eventName", "connect"),
        ("ce-subprotocol", "mqtt"),
        ("ce-userId", "user0"),
    ] {
        assert_eq!(header(&req, name), [value], "{name} in {req}");
    }
    let physical = header(&req, "ce-physicalConnectionId")[0].to_owned();
    assert_eq!(
        header(&req, "ce-source"),
        [format!("/hubs/chat/client/client1/{physical}").as_str()]
    );
    assert!(header(&req, "ce-sessionId").is_empty());
    assert!(header(&req, "ce-connectionState").is_empty());
    let time = header(&req, "ce-time")[0];
    assert!(
        time.len() == 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{time}"
    );
    let v: Value = serde_json::from_slice(&body(&req)).expect("connect body is JSON");
    assert_eq!(
        v["mqtt"],
        serde_json::json!({"protocolVersion":5,"cleanStart":true,"username":"chat",
            "password":STANDARD.encode(&token),"userProperties":[{"name":"fw","value":"1.2.0"}]})
    );
    assert_eq!(v["headers"], serde_json::json!({}));
    assert_eq!(v["query"], serde_json::json!({}));
    assert_eq!(v["subprotocols"], serde_json::json!([]));
    assert_eq!(v["clientCertificates"], serde_json::json!([]));
    assert_eq!(v["claims"]["sub"], serde_json::json!(["user0"]));

    // connected: session id, the upstream's user id and the state from the connect answer.
    let req = up.wait("connected", |e| e["path"] == "/events/chat/connected");
    assert_eq!(header(&req, "ce-id"), ["1"]);
    assert_eq!(header(&req, "ce-userId"), ["u1"]);
    assert_eq!(header(&req, "ce-connectionState"), ["eyJ0ZW5hbnQiOiJ0MSJ9"]);
    assert_eq!(header(&req, "ce-physicalConnectionId"), [physical.as_str()]);
    assert_eq!(header(&req, "ce-sessionId")[0].len(), 22);
    assert_eq!(body(&req), b"{}");

    // §9.8: a user event with content type, correlation data and a user property.
    let mut props = vec![0x09, 0, 2, 1, 2];
    props.extend_from_slice(&wire::prop_str(prop::CONTENT_TYPE, "application/json"));
    props.extend_from_slice(&wire::prop_pair("trace", "abc"));
    c.send(&wire::publish(
        V5,
        "$webpubsub/server/events/getTime",
        br#"{"tz":"UTC"}"#,
        1,
        false,
        7,
        &props,
    ));
    let m = wire::publish_of(V5, &c.read_packet_skip_ping());
    assert_eq!(m.topic, "$webpubsub/server/events/getTime/succeeded");
    assert_eq!(m.payload, b"08:01:00");
    assert_eq!(m.qos, 1);
    assert!(m
        .props
        .contains(&(prop::CONTENT_TYPE, PropValue::Str("text/plain".into()))));
    assert!(m.props.contains(&(0x09, PropValue::Bin(vec![1, 2]))));
    let ups = user_props(&m.props);
    assert!(
        ups.contains(&("served-by".into(), "node-3".into())),
        "{ups:?}"
    );
    assert!(
        ups.contains(&("azure-status-code".into(), "200".into())),
        "{ups:?}"
    );
    c.send(&wire::puback(m.pkid));
    assert_eq!(wire::ack(&c.read_packet_skip_ping()), (0x40, 7, 0));
    let req = up.wait("user event", |e| e["path"] == "/events/chat/getTime");
    assert_eq!(header(&req, "Content-Type"), ["application/json"]);
    assert_eq!(header(&req, "ce-type"), ["azure.webpubsub.user.getTime"]);
    assert_eq!(header(&req, "ce-eventName"), ["getTime"]);
    assert_eq!(header(&req, "mqtt-trace"), ["abc"]);
    assert_eq!(header(&req, "ce-connectionState"), ["eyJ0ZW5hbnQiOiJ0MSJ9"]);
    assert_eq!(header(&req, "ce-id"), ["2"]);
    assert_eq!(body(&req), br#"{"tz":"UTC"}"#);

    // §9.9: a failing event keeps the connection; no handler → 404; bad content type → 0x99.
    c.send(&wire::publish(
        V5,
        "$webpubsub/server/events/bad",
        b"x",
        0,
        false,
        0,
        &[],
    ));
    let m = wire::publish_of(V5, &c.read_packet_skip_ping());
    assert_eq!(m.topic, "$webpubsub/server/events/bad/failed");
    assert_eq!(m.payload, b"unknown tz");
    assert!(user_props(&m.props).contains(&("azure-status-code".into(), "400".into())));
    c.send(&wire::publish(
        V5,
        "$webpubsub/server/events/nobody",
        b"x",
        1,
        false,
        8,
        &[],
    ));
    let m = wire::publish_of(V5, &c.read_packet_skip_ping());
    assert_eq!(m.topic, "$webpubsub/server/events/nobody/failed");
    assert!(user_props(&m.props).contains(&("azure-status-code".into(), "404".into())));
    c.send(&wire::puback(m.pkid));
    assert_eq!(wire::ack(&c.read_packet_skip_ping()), (0x40, 8, 0));
    let bad_ct = wire::prop_str(prop::CONTENT_TYPE, "not a mime type");
    c.send(&wire::publish(
        V5,
        "$webpubsub/server/events/getTime",
        b"x",
        1,
        false,
        9,
        &bad_ct,
    ));
    assert_eq!(wire::ack(&c.read_packet_skip_ping()), (0x40, 9, 0x99));

    // A dropped link on an expiry-0 session → disconnected "connection lost", no packet.
    drop(c);
    let req = up.wait("disconnected", |e| e["path"] == "/events/chat/disconnected");
    let v: Value = serde_json::from_slice(&body(&req)).expect("disconnected body is JSON");
    assert_eq!(
        v,
        serde_json::json!({"reason":"connection lost","mqtt":{"initiatedByClient":false,"disconnectPacket":null}})
    );
    assert_eq!(
        header(&req, "ce-type"),
        ["azure.webpubsub.sys.disconnected"]
    );
    assert_eq!(header(&req, "ce-userId"), ["u1"]);
    // Validation ran once for the URL.
    let options = up
        .events()
        .iter()
        .filter(|e| e["method"] == "OPTIONS")
        .count();
    assert_eq!(options, 1);
}

#[test]
fn persistent_sessions_get_connected_once_and_disconnected_only_when_they_end() {
    let up = Upstream::raw();
    let b = Broker::start_with(&handler_toml(&up.url("/e/{event}"), "", 5000));
    let token = b.token(HUB, None, &[], &[]);
    let count = |path: &str| up.events().iter().filter(|e| e["path"] == path).count();
    let mut first = Connect::v5("p1");
    first.clean = false;
    first.props = wire::prop_u32(prop::SESSION_EXPIRY, 600);
    let (c, ack) = connect(&b, false, Some(&token), "", first.clone());
    assert_eq!((ack.code, ack.session_present), (0, false));
    up.wait("connected", |e| e["path"] == "/e/connected");
    drop(c);
    // The link dropped but the session persists: a reconnect resumes it, with a new `connect`
    // (ce-id 0 on the new physical connection) and no second `connected`.
    let (c, ack) = connect(&b, false, Some(&token), "", first);
    assert_eq!((ack.code, ack.session_present), (0, true));
    wait_until("second connect", EVENT_DEADLINE, || {
        count("/e/connect") == 2
    });
    let connects: Vec<Value> = up
        .events()
        .into_iter()
        .filter(|e| e["path"] == "/e/connect")
        .collect();
    assert_eq!(header(&connects[1], "ce-id"), ["0"]);
    assert_ne!(
        header(&connects[0], "ce-physicalConnectionId"),
        header(&connects[1], "ce-physicalConnectionId")
    );
    assert_eq!(count("/e/disconnected"), 0);
    drop(c);
    // Clean Start = 1 discards the stored session: `disconnected` for it, `connected` for the
    // new one.
    let (_c, ack) = connect(&b, false, Some(&token), "", Connect::v5("p1"));
    assert_eq!((ack.code, ack.session_present), (0, false));
    let req = up.wait("disconnected", |e| e["path"] == "/e/disconnected");
    let v: Value = serde_json::from_slice(&body(&req)).expect("json");
    // Whether the broker saw the dropped link before the new CONNECT is a race.
    assert!(
        v["reason"] == "connection lost" || v["reason"] == "session taken over",
        "{v}"
    );
    assert_eq!(v["mqtt"]["initiatedByClient"], false);
    wait_until("second connected", EVENT_DEADLINE, || {
        count("/e/connected") == 2
    });
    let connected: Vec<Value> = up
        .events()
        .into_iter()
        .filter(|e| e["path"] == "/e/connected")
        .collect();
    assert_ne!(
        header(&connected[0], "ce-sessionId"),
        header(&connected[1], "ce-sessionId"),
        "a new session gets a new id"
    );
}

/// Runs openssl with `args` in `dir`; false (with a printed reason) when it is missing outside CI.
fn openssl(dir: &Path, args: &[&str]) -> bool {
    let out = Command::new("openssl").args(args).current_dir(dir).output();
    match out {
        Ok(o) if o.status.success() => true,
        other if std::env::var_os("CI").is_none() => {
            println!("SKIPPED: openssl {args:?} failed: {other:?}");
            false
        }
        other => panic!("openssl {args:?} failed: {other:?}"),
    }
}

/// A CA, a client certificate it signed (`client.pem`/`client.key`) and a self-signed server
/// certificate for localhost (`server.pem`/`server.key`), made in a fresh temp dir.
pub(crate) fn make_mtls_files() -> Option<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "hubmq-mtls-{}-{}",
        std::process::id(),
        crate::harness::now_secs()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(
        dir.join("client.ext"),
        "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write client.ext");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: [Vec<&str>; 4] = [
        [
            &["req", "-x509"],
            &ec[..],
            &["-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat(),
        [
            &["req", "-new"],
            &ec[..],
            &["-keyout", "client.key", "-out", "client.csr"],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "client.pem",
            "-days",
            "1",
            "-extfile",
            "client.ext",
        ],
        [
            &["req", "-x509"],
            &ec[..],
            &["-keyout", "server.key", "-out", "server.pem"],
        ]
        .concat(),
    ];
    let extra: [&[&str]; 4] = [
        &[
            "-days",
            "1",
            "-subj",
            "/CN=hubmq-test-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        &["-subj", "/CN=device-1"],
        &[],
        &[
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
    ];
    for (step, more) in steps.iter().zip(extra) {
        if !openssl(&dir, &[&step[..], more].concat()) {
            return None;
        }
    }
    Some(dir)
}

/// `paho_client.py connect` over mqtts with the server certificate as CA and, when `client`,
/// the client certificate; returns its JSON report.
fn paho_mtls(dir: &Path, port: u16, client_id: &str, token: &str, client: bool) -> Value {
    let mut cmd = Command::new("python3");
    cmd.arg("tests/clients/paho_client.py")
        .args(["connect", "--url", &format!("mqtts://localhost:{port}")])
        .args(["--protocol", "5", "--client-id", client_id])
        .args(["--username", HUB, "--password", token, "--timeout", "15"])
        .arg("--ca-file")
        .arg(dir.join("server.pem"));
    if client {
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

fn mtls_listener(dir: &Path, mode: &str) -> String {
    format!(
        "[[listeners]]\nkind = \"tls\"\nbind = \"127.0.0.1:0\"\ncert = \"{d}/server.pem\"\n\
         key = \"{d}/server.key\"\nclient_ca = \"{d}/ca.pem\"\nclient_auth = \"{mode}\"\n",
        d = dir.display()
    )
}

/// The base64 lines of a PEM certificate, joined (BEGIN/END lines and line breaks dropped).
fn pem_base64(pem: &str) -> String {
    pem.lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect()
}

#[test]
fn mutual_tls_client_certificate_reaches_the_connect_event() {
    let Some(dir) = make_mtls_files() else {
        return;
    };
    let up = Upstream::raw();
    let mut b = Broker::start_with(&format!(
        "{}\n{}",
        handler_toml(&up.url("/events/{hub}/{event}"), "", 5000),
        mtls_listener(&dir, "optional")
    ));
    let port = b
        .listeners
        .iter()
        .find(|(k, _)| k == "tls")
        .map(|(_, a)| a.port())
        .unwrap_or_else(|| panic!("no tls listener in {:?}", b.listeners));
    let token = b.token(HUB, Some("dev"), &[], &[]);

    // With a certificate: the chain (just the leaf) in the connect body, PEM + SHA-1.
    let v = paho_mtls(&dir, port, "mtls-with", &token, true);
    assert_eq!(v["connected"], true, "{v}");
    let req = up.wait("connect with a certificate", |e| {
        e["path"] == "/events/chat/connect" && header(e, "ce-connectionId") == ["mtls-with"]
    });
    let ev: Value = serde_json::from_slice(&body(&req)).expect("connect body is JSON");
    let certs = ev["clientCertificates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(certs.len(), 1, "{ev}");
    let content = certs[0]["content"].as_str().unwrap_or_default();
    assert!(
        content.starts_with("-----BEGIN CERTIFICATE-----\n")
            && content.ends_with("-----END CERTIFICATE-----\n"),
        "{content}"
    );
    let client_pem = std::fs::read_to_string(dir.join("client.pem")).expect("client.pem");
    assert_eq!(pem_base64(content), pem_base64(&client_pem));
    let fp = Command::new("openssl")
        .args(["x509", "-fingerprint", "-sha1", "-noout", "-in"])
        .arg(dir.join("client.pem"))
        .output()
        .expect("openssl x509 -fingerprint");
    let fp = String::from_utf8_lossy(&fp.stdout);
    let want: String = fp
        .trim()
        .rsplit('=')
        .next()
        .unwrap_or_default()
        .replace(':', "")
        .to_ascii_lowercase();
    assert_eq!(want.len(), 40, "{fp}");
    assert_eq!(certs[0]["thumbprint"], want.as_str());

    // Optional mode: a client without a certificate connects; the list is empty.
    let v = paho_mtls(&dir, port, "mtls-without", &token, false);
    assert_eq!(v["connected"], true, "{v}");
    let req = up.wait("connect without a certificate", |e| {
        e["path"] == "/events/chat/connect" && header(e, "ce-connectionId") == ["mtls-without"]
    });
    let ev: Value = serde_json::from_slice(&body(&req)).expect("connect body is JSON");
    assert_eq!(ev["clientCertificates"], serde_json::json!([]), "{ev}");
    b.assert_alive();

    // Required mode: no certificate, no handshake; with one, the client connects.
    let mut strict = Broker::start_with(&format!(
        "{}\n{}",
        handler_toml(&up.url("/events/{hub}/{event}"), "", 5000),
        mtls_listener(&dir, "required")
    ));
    let port = strict
        .listeners
        .iter()
        .find(|(k, _)| k == "tls")
        .map(|(_, a)| a.port())
        .unwrap_or_else(|| panic!("no tls listener in {:?}", strict.listeners));
    let token = strict.token(HUB, Some("dev"), &[], &[]);
    let v = paho_mtls(&dir, port, "strict-without", &token, false);
    assert_eq!(v["connected"], false, "{v}");
    let v = paho_mtls(&dir, port, "strict-with", &token, true);
    assert_eq!(v["connected"], true, "{v}");
    strict.assert_alive();
}

#[test]
fn sighup_reloads_event_handlers() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = dead.local_addr().expect("addr").port();
    drop(dead);
    let b = Broker::start_with(&handler_toml(
        &format!("http://127.0.0.1:{port}/upstream/{{event}}"),
        "",
        2000,
    ));
    let token = b.token(HUB, None, &[], &[]);
    let (_, ack) = connect(&b, false, Some(&token), "", Connect::v5("hup-1"));
    assert_eq!(ack.code, 0x88, "the connect handler is down");

    // The handler list loses `connect`: after SIGHUP the hub's CONNECTs no longer wait for it.
    let path = b.config_path();
    let text = std::fs::read_to_string(&path).expect("read config");
    let edited = text.replace(
        r#"system_events = ["connect", "connected", "disconnected"]"#,
        r#"system_events = ["connected", "disconnected"]"#,
    );
    assert_ne!(text, edited);
    std::fs::write(&path, edited).expect("write config");
    b.signal("HUP");
    wait_until("the reload is logged", Duration::from_secs(10), || {
        b.logs().contains("event handlers changed")
    });
    let (_, ack) = connect(&b, false, Some(&token), "", Connect::v5("hup-2"));
    assert_eq!(ack.code, 0, "no connect handler after the reload");
}
