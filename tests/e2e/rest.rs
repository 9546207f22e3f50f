//! The Web PubSub REST data plane driven by the official server SDKs — Python
//! `azure-messaging-webpubsubservice` (`tests/clients/sdk_py.py`) and JS `@azure/web-pubsub`
//! (`tests/clients/sdk_js.js`) — with a connection string naming the broker, against real MQTT
//! clients (rumqttc v5): SDK client URLs, sends to all / user / connection / group with
//! `excluded` and `filter`, payload kinds, group membership, permissions, close operations,
//! exists checks, wrong keys, and the raw HTTP error shapes.
//!
//! "Not delivered" is proven with a fence: after the sends of a step, a send to all follows on
//! the same (per-worker, first-in-first-out) command path, and every client's messages up to the
//! fence must be exactly the expected ones.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
use serde_json::{json, Value};

use crate::harness::{http_request, Broker};
use crate::rq::{qos::*, v5_opts, Via, V5};

const JOIN: &str = "webpubsub.joinLeaveGroup";
const SEND: &str = "webpubsub.sendToGroup";
const SERVER_TOPIC: &str = "$webpubsub/server/messages";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sdk {
    Py,
    Js,
}

const BOTH: [Sdk; 2] = [Sdk::Py, Sdk::Js];

impl Sdk {
    fn missing(self) -> Option<String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        match self {
            Sdk::Py => {
                let ok = Command::new("python3")
                    .args(["-c", "import azure.messaging.webpubsubservice"])
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false);
                (!ok).then(|| {
                    "python3 cannot import azure.messaging.webpubsubservice (pip install -r tests/clients/requirements.txt)".to_owned()
                })
            }
            Sdk::Js => {
                let ok = root
                    .join("tests/clients/node_modules/@azure/web-pubsub")
                    .is_dir()
                    && Command::new("node").arg("--version").output().is_ok();
                (!ok).then(|| {
                    "node or @azure/web-pubsub missing (npm ci in tests/clients)".to_owned()
                })
            }
        }
    }
}

/// True when the SDKs can run; under CI a missing SDK fails the test, elsewhere it is a skip.
fn require(test: &str, sdks: &[Sdk]) -> bool {
    let missing: Vec<String> = sdks.iter().filter_map(|s| s.missing()).collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{test}: server SDKs missing under CI: {}",
            missing.join("; ")
        );
    }
    eprintln!("SKIPPED {test}: {}", missing.join("; "));
    false
}

fn connection_string(b: &Broker, key: &str) -> String {
    format!(
        "Endpoint=http://127.0.0.1;Port={};AccessKey={key};Version=1.0;",
        b.http.port()
    )
}

/// Runs one SDK operation with access key `keys[key]`; returns the script's JSON line.
fn call_with(b: &Broker, sdk: Sdk, key: &str, hub: &str, op: &str, args: Value) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (prog, script) = match sdk {
        Sdk::Py => ("python3", "tests/clients/sdk_py.py"),
        Sdk::Js => ("node", "tests/clients/sdk_js.js"),
    };
    // Arguments go through stdin: a 48 KiB payload in hex is too long for a command line.
    let out = tokio::task::block_in_place(|| {
        let mut child = Command::new(prog)
            .current_dir(root)
            .arg(script)
            .arg(connection_string(b, key))
            .arg(hub)
            .arg(op)
            .arg("-")
            .env("PYTHONWARNINGS", "ignore")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(args.to_string().as_bytes())?;
        }
        child.wait_with_output()
    })
    .unwrap_or_else(|e| panic!("{prog} {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "{sdk:?} {op} {args}: no JSON answer; stdout {stdout:?}; stderr {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// An operation that must succeed; returns its result.
fn ok(b: &Broker, sdk: Sdk, op: &str, args: Value) -> Value {
    let v = call_with(b, sdk, &b.keys[0], "chat", op, args.clone());
    assert_eq!(v["ok"], true, "{sdk:?} {op} {args}: {v}");
    v["result"].clone()
}

async fn client(b: &Broker, id: &str, user: Option<&str>, roles: &[&str], groups: &[&str]) -> V5 {
    let t = b.token("chat", user, roles, groups);
    V5::connect(v5_opts(b, Via::Tcp, id, "chat", Some(&t))).await
}

/// (topic, payload) of every message up to and including the fence `f`.
async fn until_fence(c: &mut V5, f: &str) -> Vec<(String, Vec<u8>)> {
    let mut got = Vec::new();
    loop {
        let m = c.recv().await;
        let item = (
            String::from_utf8_lossy(&m.topic).into_owned(),
            m.payload.to_vec(),
        );
        let done = item.1 == f.as_bytes();
        got.push(item);
        if done {
            return got;
        }
    }
}

fn server(p: &str) -> (String, Vec<u8>) {
    (SERVER_TOPIC.to_owned(), p.as_bytes().to_vec())
}

fn fence(b: &Broker, sdk: Sdk, name: &str) -> (String, Vec<u8>) {
    ok(b, sdk, "send_all", json!({"text": name}));
    server(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_client_urls_connect_mqtt_clients_with_roles_and_groups() {
    if !require("sdk_client_urls", &BOTH) {
        return;
    }
    let b = Broker::start();
    let mut n = 0;
    for sdk in BOTH {
        for key in 0..2 {
            for from_server in [false, true] {
                if from_server && sdk == Sdk::Js {
                    continue; // the JS SDK only calls :generateToken when it has no key
                }
                n += 1;
                let group = format!("g{n}");
                let args = json!({"user": format!("u{n}"), "roles": [SEND, JOIN], "groups": [group], "server": from_server});
                let v = call_with(&b, sdk, &b.keys[key], "chat", "token", args);
                assert_eq!(v["ok"], true, "{v}");
                let token = v["result"]["token"].as_str().unwrap_or_default().to_owned();
                let url = match v["result"]["url"].as_str() {
                    Some(u) => {
                        assert!(
                            u.starts_with(&format!(
                                "ws://127.0.0.1:{}/clients/mqtt/hubs/chat?access_token=",
                                b.http.port()
                            )),
                            "{u}"
                        );
                        u.to_owned()
                    }
                    None => b.ws_url("chat", Some(&token)),
                };
                let mut o = rumqttc::v5::MqttOptions::new(format!("sdk{n}"), url, b.http.port());
                o.set_transport(rumqttc::Transport::Ws);
                let mut c = V5::connect(o).await;
                // The token's group was joined at connect; the role lets it send to it.
                c.publish(&group, V5Q1, b"self").await;
                let m = c.recv().await;
                assert_eq!(
                    (&m.topic[..], &m.payload[..]),
                    (group.as_bytes(), &b"self"[..]),
                    "{sdk:?} key {key} server {from_server}"
                );
                // The user id is the token's: a send to the user reaches it.
                ok(
                    &b,
                    sdk,
                    "send_user",
                    json!({"user": format!("u{n}"), "text": "to-user"}),
                );
                let m = c.recv().await;
                assert_eq!(
                    (&m.topic[..], &m.payload[..]),
                    (SERVER_TOPIC.as_bytes(), &b"to-user"[..])
                );
            }
        }
    }
}

async fn sends_reach_exactly_their_targets(sdk: Sdk) {
    let b = Broker::start();
    let mut a1 = client(&b, "a1", Some("alice"), &[], &["room"]).await;
    let mut a2 = client(&b, "a2", Some("alice"), &[], &[]).await;
    let mut b1 = client(&b, "b1", Some("bob"), &[], &["room", "vip"]).await;
    let mut n1 = client(&b, "n1", None, &[], &["room"]).await;

    ok(
        &b,
        sdk,
        "send_group",
        json!({"group": "room", "text": "g-text", "excluded": ["b1"]}),
    );
    ok(
        &b,
        sdk,
        "send_user",
        json!({"user": "alice", "json": {"k": [1, "two"]}}),
    );
    ok(
        &b,
        sdk,
        "send_connection",
        json!({"conn": "b1", "hex": "00ff10fe"}),
    );
    ok(
        &b,
        sdk,
        "send_all",
        json!({"text": "f-1", "filter": "userId eq 'bob' or connectionId eq 'n1'"}),
    );
    ok(
        &b,
        sdk,
        "send_all",
        json!({"text": "f-2", "filter": "'vip' in groups or userId eq null"}),
    );
    ok(
        &b,
        sdk,
        "send_all",
        json!({"text": "ex", "excluded": ["a1", "n1"]}),
    );
    ok(
        &b,
        sdk,
        "send_group",
        json!({"group": "room", "text": "gf", "filter": "not (userId eq 'alice')"}),
    );
    let f = fence(&b, sdk, "fence");

    let room = |p: &str| ("room".to_owned(), p.as_bytes().to_vec());
    let json_bytes = br#"{"k": [1, "two"]}"#.to_vec();
    let json_compact = br#"{"k":[1,"two"]}"#.to_vec();
    let alice_json = (
        SERVER_TOPIC.to_owned(),
        if sdk == Sdk::Py {
            json_bytes
        } else {
            json_compact
        },
    );
    assert_eq!(
        until_fence(&mut a1, "fence").await,
        vec![room("g-text"), alice_json.clone(), f.clone()]
    );
    assert_eq!(
        until_fence(&mut a2, "fence").await,
        vec![alice_json, server("ex"), f.clone()]
    );
    assert_eq!(
        until_fence(&mut b1, "fence").await,
        vec![
            (SERVER_TOPIC.to_owned(), vec![0, 0xff, 0x10, 0xfe]),
            server("f-1"),
            server("f-2"),
            server("ex"),
            room("gf"),
            f.clone()
        ]
    );
    assert_eq!(
        until_fence(&mut n1, "fence").await,
        vec![room("g-text"), server("f-1"), server("f-2"), room("gf"), f]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_sends_reach_exactly_their_targets() {
    if require("python_sends", &[Sdk::Py]) {
        sends_reach_exactly_their_targets(Sdk::Py).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_sdk_sends_reach_exactly_their_targets() {
    if require("js_sends", &[Sdk::Js]) {
        sends_reach_exactly_their_targets(Sdk::Js).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_messages_carry_qos1_content_type_and_expiry() {
    if !require("rest_message_properties", &BOTH) {
        return;
    }
    let b = Broker::start();
    let mut c = client(&b, "c1", Some("u"), &[], &[]).await;
    // The Python SDK (1.3.0) has no TTL parameter on its sends; the JS one has.
    ok(
        &b,
        Sdk::Js,
        "send_connection",
        json!({"conn": "c1", "text": "héllo", "ttl": 60}),
    );
    let m = c.recv().await;
    assert_eq!(
        (&m.payload[..], m.qos, m.retain),
        ("héllo".as_bytes(), V5Q1, false)
    );
    let p = m.properties.unwrap_or_default();
    assert_eq!(p.content_type.as_deref(), Some("text/plain"));
    assert_eq!(p.payload_format_indicator, Some(1));
    assert!(matches!(p.message_expiry_interval, Some(1..=60)), "{p:?}");
    ok(
        &b,
        Sdk::Py,
        "send_connection",
        json!({"conn": "c1", "hex": "0102"}),
    );
    let m = c.recv().await;
    let p = m.properties.unwrap_or_default();
    assert_eq!(
        (p.content_type.as_deref(), p.payload_format_indicator),
        (Some("application/octet-stream"), None)
    );
    // A 48 KiB binary body (several TCP reads) arrives byte for byte, through both SDKs.
    let big: Vec<u8> = (0..48 * 1024).map(|i| (i * 7 % 256) as u8).collect();
    for sdk in BOTH {
        ok(
            &b,
            sdk,
            "send_connection",
            json!({"conn": "c1", "hex": big.iter().map(|b| format!("{b:02x}")).collect::<String>()}),
        );
        let m = c.recv().await;
        assert_eq!(
            m.payload.len(),
            big.len(),
            "{sdk:?} {:?} {:?} {:?}",
            m.topic,
            &m.payload[..m.payload.len().min(16)],
            m.properties
        );
        assert!(m.payload[..] == big[..], "{sdk:?}: payload changed");
    }
}

async fn group_membership_changes(sdk: Sdk) {
    let b = Broker::start();
    let mut x = client(&b, "x1", Some("ux"), &[], &[]).await;
    let mut y = client(&b, "y1", Some("uy"), &[], &[]).await;

    assert_eq!(ok(&b, sdk, "group_exists", json!({"group": "room"})), false);
    ok(
        &b,
        sdk,
        "add_connection_to_group",
        json!({"group": "room", "conn": "x1"}),
    );
    assert_eq!(ok(&b, sdk, "group_exists", json!({"group": "room"})), true);
    ok(
        &b,
        sdk,
        "add_user_to_group",
        json!({"group": "room", "user": "uy"}),
    );
    ok(
        &b,
        sdk,
        "send_group",
        json!({"group": "room", "text": "m1"}),
    );
    assert_eq!(&x.recv().await.payload[..], b"m1");
    assert_eq!(&y.recv().await.payload[..], b"m1");

    ok(
        &b,
        sdk,
        "remove_connection_from_group",
        json!({"group": "room", "conn": "x1"}),
    );
    ok(
        &b,
        sdk,
        "send_group",
        json!({"group": "room", "text": "m2", "excluded": ["nobody"]}),
    );
    let f = fence(&b, sdk, "f1");
    assert_eq!(until_fence(&mut x, "f1").await, vec![f.clone()]);
    assert_eq!(
        until_fence(&mut y, "f1").await,
        vec![("room".into(), b"m2".to_vec()), f]
    );

    ok(
        &b,
        sdk,
        "remove_user_from_group",
        json!({"group": "room", "user": "uy"}),
    );
    assert_eq!(ok(&b, sdk, "group_exists", json!({"group": "room"})), false);

    // Filtered adds and removes, and the "all groups" removes.
    ok(
        &b,
        sdk,
        "add_to_groups",
        json!({"groups": ["a", "b"], "filter": "userId eq 'ux'"}),
    );
    ok(
        &b,
        sdk,
        "add_user_to_group",
        json!({"group": "c", "user": "uy"}),
    );
    ok(
        &b,
        sdk,
        "send_group",
        json!({"group": "a", "text": "to-a", "excluded": ["none"]}),
    );
    ok(
        &b,
        sdk,
        "send_group",
        json!({"group": "c", "text": "to-c", "excluded": ["none"]}),
    );
    let f = fence(&b, sdk, "f2");
    assert_eq!(
        until_fence(&mut x, "f2").await,
        vec![("a".into(), b"to-a".to_vec()), f.clone()]
    );
    assert_eq!(
        until_fence(&mut y, "f2").await,
        vec![("c".into(), b"to-c".to_vec()), f]
    );
    ok(
        &b,
        sdk,
        "remove_from_groups",
        json!({"groups": ["a"], "filter": "startswith(userId, 'u')"}),
    );
    assert_eq!(ok(&b, sdk, "group_exists", json!({"group": "a"})), false);
    assert_eq!(ok(&b, sdk, "group_exists", json!({"group": "b"})), true);
    ok(
        &b,
        sdk,
        "remove_connection_from_all_groups",
        json!({"conn": "x1"}),
    );
    ok(
        &b,
        sdk,
        "remove_user_from_all_groups",
        json!({"user": "uy"}),
    );
    assert_eq!(ok(&b, sdk, "group_exists", json!({"group": "b"})), false);
    assert_eq!(ok(&b, sdk, "group_exists", json!({"group": "c"})), false);

    // Listing (2024-12-01) and adding an unknown connection.
    ok(
        &b,
        sdk,
        "add_connection_to_group",
        json!({"group": "l", "conn": "x1"}),
    );
    ok(
        &b,
        sdk,
        "add_connection_to_group",
        json!({"group": "l", "conn": "y1"}),
    );
    let list = ok(&b, sdk, "list_connections", json!({"group": "l"}));
    assert_eq!(
        list,
        json!([{"connectionId": "x1", "userId": "ux"}, {"connectionId": "y1", "userId": "uy"}])
    );
    // Paging: one per page, the nextLink (signed as its own aud, as the SDKs do) gives the rest.
    let page = |url: &str| -> Value {
        let host = b.http;
        let path = url
            .split_once(&host.to_string())
            .map_or(url, |x| x.1)
            .to_owned();
        let t = rest_token(&b, url);
        let r = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {t}\r\nConnection: close\r\n\r\n");
        let (status, text) = tokio::task::block_in_place(|| http_request(host, &r));
        assert_eq!(status, 200, "{text}");
        let body = text.split_once("\r\n\r\n").map_or("", |x| x.1);
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    let p1 = page(&format!(
        "http://{}/api/hubs/chat/groups/l/connections?api-version=2024-12-01&maxpagesize=1",
        b.http
    ));
    assert_eq!(
        p1["value"],
        json!([{"connectionId": "x1", "userId": "ux"}]),
        "{p1}"
    );
    let next = p1["nextLink"].as_str().unwrap_or_default().to_owned();
    let p2 = page(&next);
    assert_eq!(
        p2["value"],
        json!([{"connectionId": "y1", "userId": "uy"}]),
        "{p2}"
    );
    assert!(p2.get("nextLink").is_none(), "{p2}");
    let first = ok(&b, sdk, "list_connections", json!({"group": "l", "top": 1}));
    assert_eq!(first, json!([{"connectionId": "x1", "userId": "ux"}]));
    let v = call_with(
        &b,
        sdk,
        &b.keys[1],
        "chat",
        "add_connection_to_group",
        json!({"group": "l", "conn": "ghost"}),
    );
    assert_eq!(
        (v["ok"].clone(), v["status"].clone()),
        (json!(false), json!(404)),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_changes_group_membership() {
    if require("python_groups", &[Sdk::Py]) {
        group_membership_changes(Sdk::Py).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_sdk_changes_group_membership() {
    if require("js_groups", &[Sdk::Js]) {
        group_membership_changes(Sdk::Js).await;
    }
}

async fn publish_reason(c: &mut V5, topic: &str) -> PubAckReason {
    c.publish(topic, V5Q1, b"p").await;
    c.next_where("PUBACK", |p| match p {
        Packet::PubAck(a) => Some(a.reason),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_makes_a_denied_publish_succeed_and_revoke_denies_it_again() {
    if !require("grant_revoke", &BOTH) {
        return;
    }
    let b = Broker::start();
    let mut sub = client(&b, "sub", None, &[JOIN], &["room"]).await;
    let mut p = client(&b, "pub", Some("p"), &[], &[]).await;
    for sdk in BOTH {
        let perm = json!({"permission": "sendToGroup", "conn": "pub", "target": "room"});
        assert_eq!(
            publish_reason(&mut p, "room").await,
            PubAckReason::NotAuthorized
        );
        assert_eq!(ok(&b, sdk, "has_permission", perm.clone()), false);
        ok(&b, sdk, "grant_permission", perm.clone());
        assert_eq!(ok(&b, sdk, "has_permission", perm.clone()), true);
        assert_eq!(publish_reason(&mut p, "room").await, PubAckReason::Success);
        assert_eq!(&sub.recv().await.payload[..], b"p");
        // The grant is for `room` only.
        assert_eq!(
            publish_reason(&mut p, "other").await,
            PubAckReason::NotAuthorized
        );
        ok(&b, sdk, "revoke_permission", perm.clone());
        assert_eq!(ok(&b, sdk, "has_permission", perm.clone()), false);
        assert_eq!(
            publish_reason(&mut p, "room").await,
            PubAckReason::NotAuthorized
        );
    }
    // joinLeaveGroup for every group (no targetName), on an unknown connection: 404.
    let v = call_with(
        &b,
        Sdk::Py,
        &b.keys[1],
        "chat",
        "grant_permission",
        json!({"permission": "joinLeaveGroup", "conn": "ghost"}),
    );
    assert_eq!(v["status"], 404, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_operations_close_exactly_their_targets_and_exists_follows() {
    if !require("close_ops", &BOTH) {
        return;
    }
    let b = Broker::start();
    for (round, sdk) in BOTH.into_iter().enumerate() {
        let id = |s: &str| format!("{s}{round}");
        let mut c1 = client(&b, &id("c1"), Some(&id("u1")), &[], &[]).await;
        let mut c2 = client(&b, &id("c2"), Some(&id("u2")), &[], &[]).await;
        let mut c3 = client(&b, &id("c3"), Some(&id("u2")), &[], &[]).await;
        let mut c4 = client(&b, &id("c4"), Some(&id("u4")), &[], &[&id("grp")]).await;
        let mut c5 = client(&b, &id("c5"), Some(&id("u5")), &[], &[]).await;

        assert_eq!(
            ok(&b, sdk, "connection_exists", json!({"conn": id("c1")})),
            true
        );
        assert_eq!(ok(&b, sdk, "user_exists", json!({"user": id("u2")})), true);
        assert_eq!(ok(&b, sdk, "user_exists", json!({"user": "nobody"})), false);
        assert_eq!(
            ok(&b, sdk, "connection_exists", json!({"conn": "nobody"})),
            false
        );

        ok(
            &b,
            sdk,
            "close_connection",
            json!({"conn": id("c1"), "reason": "maintenance"}),
        );
        let why = c1.closed().await;
        assert!(
            why.contains("AdministrativeAction")
                || why.contains("maintenance")
                || why.to_lowercase().contains("disconnect"),
            "{why}"
        );
        ok(
            &b,
            sdk,
            "close_user",
            json!({"user": id("u2"), "excluded": [id("c3")]}),
        );
        c2.closed().await;
        ok(&b, sdk, "close_group", json!({"group": id("grp")}));
        c4.closed().await;
        // c3 (excluded) and c5 are still served.
        let f = fence(&b, sdk, "alive");
        assert_eq!(until_fence(&mut c3, "alive").await, vec![f.clone()]);
        assert_eq!(until_fence(&mut c5, "alive").await, vec![f]);
        crate::harness::wait_until(
            "closed sessions to be gone",
            crate::harness::IO_DEADLINE,
            || {
                ok(&b, sdk, "connection_exists", json!({"conn": id("c1")})) == false
                    && ok(&b, sdk, "user_exists", json!({"user": id("u4")})) == false
            },
        );
        assert_eq!(
            ok(&b, sdk, "user_exists", json!({"user": id("u2")})),
            true,
            "c3 still has u2"
        );
        ok(
            &b,
            sdk,
            "close_all",
            json!({"excluded": [id("c5")], "reason": "bye"}),
        );
        c3.closed().await;
        let f = fence(&b, sdk, "still");
        assert_eq!(until_fence(&mut c5, "still").await, vec![f]);
        ok(&b, sdk, "close_all", json!({}));
        c5.closed().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_signed_with_a_wrong_key_are_refused_401() {
    if !require("wrong_key", &BOTH) {
        return;
    }
    let b = Broker::start();
    for sdk in BOTH {
        let v = call_with(
            &b,
            sdk,
            "not-the-key",
            "chat",
            "send_all",
            json!({"text": "x"}),
        );
        assert_eq!(
            (v["ok"].clone(), v["status"].clone()),
            (json!(false), json!(401)),
            "{sdk:?}: {v}"
        );
        let v = call_with(
            &b,
            sdk,
            &b.keys[1],
            "chat",
            "send_all",
            json!({"text": "x"}),
        );
        assert_eq!(v["ok"], true, "{sdk:?} secondary key: {v}");
    }
}

fn rest_token(b: &Broker, url: &str) -> String {
    b.token_with(
        json!({"aud": url, "exp": crate::harness::now_secs() + 60}),
        &b.keys[0],
    )
}

#[test]
fn raw_http_errors_have_status_code_and_error_body() {
    let b = Broker::start();
    let host = b.http;
    let req = |method: &str, path: &str, auth: bool, extra: &str, body: &str| {
        let mut r = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
        if auth {
            r.push_str(&format!(
                "Authorization: Bearer {}\r\n",
                rest_token(&b, &format!("http://{host}/api/hubs/chat"))
            ));
        }
        r.push_str(extra);
        r.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        http_request(host, &r)
    };
    let v = "api-version=2024-12-01";
    let (s, _) = req("HEAD", "/api/health", false, "", "");
    assert_eq!(s, 200);
    let (s, text) = req("POST", &format!("/api/hubs/chat/nothing?{v}"), true, "", "");
    assert_eq!(s, 404, "{text}");
    assert!(
        text.contains("x-ms-error-code: NotFound") && text.contains(r#""code":"NotFound""#),
        "{text}"
    );
    let (s, text) = req(
        "POST",
        "/api/hubs/chat/:send",
        true,
        "Content-Type: text/plain\r\n",
        "x",
    );
    assert_eq!(s, 400, "{text}");
    assert!(text.contains(r#""target":"api-version""#), "{text}");
    let (s, text) = req(
        "POST",
        &format!("/api/hubs/chat/:send?{v}"),
        false,
        "Content-Type: text/plain\r\n",
        "x",
    );
    assert_eq!(s, 401, "{text}");
    let (s, text) = req(
        "POST",
        &format!("/api/hubs/chat/:send?{v}&filter=userId%20eq"),
        true,
        "Content-Type: text/plain\r\n",
        "x",
    );
    assert_eq!(s, 400, "{text}");
    assert!(
        text.contains("InvalidFilter") && text.contains("unexpected end of filter"),
        "{text}"
    );
    let (s, text) = req(
        "POST",
        &format!("/api/hubs/chat/:send?{v}"),
        true,
        "Content-Type: image/png\r\n",
        "x",
    );
    assert_eq!(s, 415, "{text}");
    let (s, text) = req(
        "POST",
        &format!("/api/hubs/chat/:send?{v}&messageTtlSeconds=301"),
        true,
        "Content-Type: text/plain\r\n",
        "x",
    );
    assert_eq!(s, 400, "{text}");
    let long = "g".repeat(1025);
    let (s, text) = req(
        "HEAD",
        &format!("/api/hubs/chat/groups/{long}?{v}"),
        true,
        "",
        "",
    );
    assert_eq!(s, 400, "{text}");
    let (s, text) = req(
        "PUT",
        &format!("/api/hubs/chat/permissions/admin/connections/c?{v}"),
        true,
        "",
        "",
    );
    assert_eq!(s, 400, "{text}");
    // A client that waits for 100 Continue before sending its body.
    {
        let t = rest_token(&b, &format!("http://{host}/api/hubs/chat"));
        let mut sock =
            std::net::TcpStream::connect(host).unwrap_or_else(|e| panic!("connect: {e}"));
        sock.set_read_timeout(Some(crate::harness::IO_DEADLINE))
            .unwrap_or_else(|e| panic!("{e}"));
        let head = format!("POST /api/hubs/chat/:send?{v} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {t}\r\nContent-Type: text/plain\r\nExpect: 100-continue\r\nConnection: close\r\nContent-Length: 5\r\n\r\n");
        std::io::Write::write_all(&mut sock, head.as_bytes())
            .unwrap_or_else(|e| panic!("write: {e}"));
        let mut first = [0u8; 25];
        std::io::Read::read_exact(&mut sock, &mut first)
            .unwrap_or_else(|e| panic!("read 100: {e}"));
        assert_eq!(&first[..], b"HTTP/1.1 100 Continue\r\n\r\n");
        std::io::Write::write_all(&mut sock, b"hello").unwrap_or_else(|e| panic!("write: {e}"));
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut sock, &mut text);
        assert!(text.starts_with("HTTP/1.1 202"), "{text}");
    }
    // A token for another hub: 403.
    let other = b.token_with(json!({"aud": format!("http://{host}/api/hubs/other"), "exp": crate::harness::now_secs() + 60}), &b.keys[0]);
    let r = format!("POST /api/hubs/chat/:send?{v} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAuthorization: Bearer {other}\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nx");
    let (s, text) = http_request(host, &r);
    assert_eq!(s, 403, "{text}");
    // Success with a per-hub token, and keep-alive: two requests on one connection.
    let t = rest_token(&b, &format!("http://{host}/api/hubs/chat"));
    let one = format!("POST /api/hubs/chat/:send?{v} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}");
    let two = format!("HEAD /api/hubs/chat/groups/g?{v} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {t}\r\nConnection: close\r\n\r\n");
    let mut sock = std::net::TcpStream::connect(host).unwrap_or_else(|e| panic!("connect: {e}"));
    sock.set_read_timeout(Some(crate::harness::IO_DEADLINE))
        .unwrap_or_else(|e| panic!("{e}"));
    std::io::Write::write_all(&mut sock, format!("{one}{two}").as_bytes())
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut text = String::new();
    let _ = std::io::Read::read_to_string(&mut sock, &mut text);
    assert!(text.starts_with("HTTP/1.1 202"), "{text}");
    assert!(
        text.contains("HTTP/1.1 404"),
        "second answer on the same connection: {text}"
    );
}

/// Server messages arrive at QoS 1 without a subscription; an explicit subscription to
/// `$webpubsub/server/messages` lowers their QoS, and unsubscribing restores QoS 1.
#[test]
fn server_messages_qos_follows_an_explicit_subscription() {
    use crate::wire::{self, Connect, V5 as P5};
    let b = Broker::start();
    let t = b.token("chat", None, &[], &[]);
    let mut c = b.raw(false, "chat", Some(&t), Connect::v5("sm-client"));
    let host = b.http;
    let send = |text: &str| {
        let url = format!(
            "http://{host}/api/hubs/chat/connections/sm-client/:send?api-version=2024-12-01"
        );
        let r = format!(
            "POST /api/hubs/chat/connections/sm-client/:send?api-version=2024-12-01 HTTP/1.1\r\n\
             Host: {host}\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\
             Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{text}",
            rest_token(&b, &url),
            text.len()
        );
        let (status, body) = http_request(host, &r);
        assert_eq!(status, 202, "{body}");
    };
    let topic = "$webpubsub/server/messages";

    send("default");
    let p = wire::publish_of(P5, &c.read_packet());
    assert_eq!(
        (p.topic.as_str(), p.qos, &p.payload[..]),
        (topic, 1, &b"default"[..])
    );
    c.send(&wire::puback(p.pkid));

    c.send(&wire::subscribe(P5, 1, &[(topic, 0)]));
    assert_eq!(wire::suback_codes(P5, &c.read_packet()), vec![0]);
    send("lowered");
    let p = wire::publish_of(P5, &c.read_packet());
    assert_eq!((p.qos, &p.payload[..]), (0, &b"lowered"[..]));

    c.send(&wire::unsubscribe(P5, 2, &[topic]));
    let _unsuback = c.read_packet();
    send("restored");
    let p = wire::publish_of(P5, &c.read_packet());
    assert_eq!((p.qos, &p.payload[..]), (1, &b"restored"[..]));
}
