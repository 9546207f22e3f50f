//! Connection and session life cycle: client identifiers (assigned, empty, refused), protocol
//! level 3, persistent sessions that queue QoS>0 messages while offline, session takeover
//! (0x8E on v5), wills (sent on abnormal close, not on DISCONNECT, only with permission, v5
//! delay honoured), and keep-alive expiry (0x8D on v5).

use crate::harness::{hex, wait_until, Broker, Raw};
use crate::rq::{qos::*, v4_opts, v5_opts, Via, V4, V5};
use crate::wire::{self, prop, Connect, PropValue, Will, V4 as P4, V5 as P5};
use std::time::Duration;

const JOIN: &str = "webpubsub.joinLeaveGroup";
const SEND: &str = "webpubsub.sendToGroup";

#[test]
fn v5_empty_client_id_gets_an_assigned_id() {
    let b = Broker::start();
    let t = b.token("chat", None, &[], &[]);
    let mut raw = Raw::tcp(b.tcp);
    raw.send(&Connect::v5("").auth("chat", Some(&t)).encode());
    let ack = wire::connack(P5, &raw.read_packet());
    assert_eq!(ack.code, 0);
    match ack.prop(prop::ASSIGNED_CLIENT_ID) {
        Some(PropValue::Str(id)) => assert!(!id.is_empty()),
        other => panic!("no Assigned Client Identifier: {other:?} in {ack:?}"),
    }
}

#[test]
fn v4_empty_client_id_needs_clean_session() {
    let b = Broker::start();
    let t = b.token("chat", None, &[], &[]);
    let mut ok = Raw::tcp(b.tcp);
    ok.send(&Connect::v4("").auth("chat", Some(&t)).encode());
    ok.expect(&[0x20, 0x02, 0x00, 0x00]);
    let mut refused = Raw::tcp(b.tcp);
    let mut c = Connect::v4("").auth("chat", Some(&t));
    c.clean = false;
    refused.send(&c.encode());
    // Return code 2: identifier rejected [MQTT-3.1.3-8].
    refused.expect(&[0x20, 0x02, 0x00, 0x02]);
    refused.expect_closed();
}

#[test]
fn protocol_level_3_is_refused_with_0x01() {
    let mut b = Broker::start();
    let t = b.token("chat", None, &[], &[]);
    // MQTT 3.1 CONNECT: protocol name "MQIsdp", level 3, clean session, user + password.
    let mut body = vec![0, 6];
    body.extend_from_slice(b"MQIsdp");
    body.extend_from_slice(&[3, 0xC2, 0, 60, 0, 3]);
    body.extend_from_slice(b"old");
    body.extend_from_slice(&(4u16).to_be_bytes());
    body.extend_from_slice(b"chat");
    body.extend_from_slice(&(t.len() as u16).to_be_bytes());
    body.extend_from_slice(t.as_bytes());
    let mut raw = Raw::tcp(b.tcp);
    raw.send(&wire::packet(0x10, &body));
    raw.expect(&[0x20, 0x02, 0x00, 0x01]); // unacceptable protocol version
    raw.expect_closed();
    b.assert_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_persistent_session_receives_messages_queued_while_offline() {
    let b = Broker::start();
    let t = b.token("chat", Some("dora"), &[JOIN, SEND], &[]);
    let opts = |b: &Broker| {
        let mut o = v5_opts(b, Via::WsQuery, "dora-1", "chat", Some(&t));
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(600));
        o
    };
    let mut first = V5::connect(opts(&b)).await;
    first.subscribe("inbox", V5Q1).await;
    first.disconnect().await;

    let mut p = V5::connect(v5_opts(&b, Via::Tcp, "sender", "chat", Some(&t))).await;
    for i in 0..3u8 {
        p.publish("inbox", V5Q1, &[b'm', b'0' + i]).await;
    }
    // QoS 0 sent while offline may be dropped; QoS 1 must be kept.
    for _ in 0..3 {
        p.next_where("PUBACK", |pk| match pk {
            rumqttc::v5::mqttbytes::v5::Packet::PubAck(a) => Some(a.pkid),
            _ => None,
        })
        .await;
    }

    let mut again = V5::connect(opts(&b)).await;
    assert!(again.connack.session_present, "session_present must be 1");
    for want in [&b"m0"[..], b"m1", b"m2"] {
        let m = again.recv().await;
        assert_eq!(
            (&m.topic[..], &m.payload[..], m.qos),
            (&b"inbox"[..], want, V5Q1)
        );
    }
    // Membership survived too: a live message arrives without a new SUBSCRIBE.
    p.publish("inbox", V5Q1, b"live").await;
    assert_eq!(&again.recv().await.payload[..], b"live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_persistent_session_receives_messages_queued_while_offline() {
    let b = Broker::start();
    let t = b.token("chat", None, &[JOIN, SEND], &[]);
    let opts = |b: &Broker| {
        let mut o = v4_opts(b, Via::Tcp, "pers-4", "chat", Some(&t));
        o.set_clean_session(false);
        o
    };
    let mut first = V4::connect(opts(&b)).await;
    first.subscribe("inbox", Q2).await;
    first.disconnect().await;

    let mut p = b.raw(true, "chat", Some(&t), Connect::v4("sender"));
    p.send(&wire::publish(P4, "inbox", b"q1", 1, false, 1, &[]));
    p.expect(&[0x40, 0x02, 0x00, 0x01]);
    p.send(&wire::publish(P4, "inbox", b"q2", 2, false, 2, &[]));
    p.expect(&[0x50, 0x02, 0x00, 0x02]);
    p.send(&wire::pubrel(2));
    p.expect(&[0x70, 0x02, 0x00, 0x02]);

    let mut again = V4::connect(opts(&b)).await;
    assert!(again.connack.session_present, "session_present must be 1");
    let m = again.recv().await;
    assert_eq!((&m.payload[..], m.qos), (&b"q1"[..], Q1));
    let m = again.recv().await;
    assert_eq!((&m.payload[..], m.qos), (&b"q2"[..], Q2));
}

#[test]
fn offline_queue_is_bounded_and_refuses_the_newest() {
    let b = Broker::start_with("[limits]\nsession_queue_messages = 3\n");
    let t = b.token("chat", None, &[JOIN, SEND], &[]);
    let mut c = Connect::v5("bounded");
    c.clean = false;
    c.props = wire::prop_u32(prop::SESSION_EXPIRY, 600);
    let mut first = b.raw(false, "chat", Some(&t), c.clone());
    first.send(&wire::subscribe(P5, 1, &[("inbox", 1)]));
    wire::suback_codes(P5, &first.read_packet());
    first.send(&wire::DISCONNECT);
    first.expect_closed();

    let mut p = b.raw(true, "chat", Some(&t), Connect::v5("sender"));
    for i in 0..5u16 {
        p.send(&wire::publish(
            P5,
            "inbox",
            format!("m{i}").as_bytes(),
            1,
            false,
            i + 1,
            &[],
        ));
        let (kind, pkid, _) = wire::ack(&p.read_packet());
        assert_eq!((kind, pkid), (0x40, i + 1));
    }
    let mut again = b.raw(false, "chat", Some(&t), c);
    // The three oldest QoS 1 messages were kept; the two that did not fit were refused.
    for i in 0..3u16 {
        let m = wire::publish_of(P5, &again.read_packet());
        assert_eq!(String::from_utf8_lossy(&m.payload), format!("m{i}"));
        again.send(&wire::puback(m.pkid));
    }
    p.send(&wire::publish(P5, "inbox", b"live", 0, false, 0, &[]));
    let m = wire::publish_of(P5, &again.read_packet());
    assert_eq!(&m.payload[..], b"live", "m3/m4 must not have been queued");
}

#[test]
fn v5_session_with_zero_expiry_ends_at_disconnect() {
    let b = Broker::start();
    let t = b.token("chat", None, &[JOIN], &[]);
    // clean start 0 but no Session Expiry Interval (= 0): the session ends with the connection.
    let mut c = Connect::v5("short-lived");
    c.clean = false;
    let mut first = b.raw(false, "chat", Some(&t), c.clone());
    first.send(&wire::subscribe(P5, 1, &[("g", 1)]));
    wire::suback_codes(P5, &first.read_packet());
    first.send(&wire::DISCONNECT);
    first.expect_closed();
    let mut again = Raw::tcp(b.tcp);
    again.send(&c.auth("chat", Some(&t)).encode());
    let ack = wire::connack(P5, &again.read_packet());
    assert_eq!((ack.code, ack.session_present), (0, false));
}

#[test]
fn clean_start_discards_the_old_session() {
    let b = Broker::start();
    let t = b.token("chat", None, &[JOIN, SEND], &[]);
    let mut c = Connect::v5("fresh");
    c.clean = false;
    c.props = wire::prop_u32(prop::SESSION_EXPIRY, 600);
    let mut first = b.raw(false, "chat", Some(&t), c.clone());
    first.send(&wire::subscribe(P5, 1, &[("g", 1)]));
    wire::suback_codes(P5, &first.read_packet());
    first.send(&wire::DISCONNECT);
    first.expect_closed();

    // Reconnect with clean start: no session, no membership.
    let mut clean = Raw::tcp(b.tcp);
    let mut c2 = Connect::v5("fresh").auth("chat", Some(&t));
    c2.clean = true;
    clean.send(&c2.encode());
    let ack = wire::connack(P5, &clean.read_packet());
    assert_eq!((ack.code, ack.session_present), (0, false));
    clean.send(&wire::subscribe(P5, 1, &[("marker", 0)]));
    wire::suback_codes(P5, &clean.read_packet());
    let mut p = b.raw(true, "chat", Some(&t), Connect::v4("p"));
    p.send(&wire::publish(P4, "g", b"old-group", 0, false, 0, &[]));
    p.send(&wire::publish(P4, "marker", b"marker", 0, false, 0, &[]));
    let m = wire::publish_of(P5, &clean.read_packet());
    assert_eq!(&m.payload[..], b"marker");
}

#[test]
fn takeover_disconnects_the_old_v5_connection_with_0x8e() {
    let b = Broker::start();
    let t = b.token("chat", None, &[JOIN, SEND], &[]);
    // Several rounds, alternating transports, so old and new connections land on different
    // workers at least some of the time.
    let mut old = b.raw(false, "chat", Some(&t), Connect::v5("twin"));
    for round in 0..4 {
        let new = b.raw(round % 2 == 0, "chat", Some(&t), Connect::v5("twin"));
        old.expect_disconnect(0x8E);
        old = new;
    }
    // The survivor works.
    old.send(&wire::PINGREQ);
    old.expect(&wire::PINGRESP);
}

#[test]
fn takeover_closes_the_old_v4_connection() {
    let b = Broker::start();
    let t = b.token("chat", None, &[], &[]);
    let mut old = b.raw(true, "chat", Some(&t), Connect::v4("twin4"));
    let mut new = b.raw(false, "chat", Some(&t), Connect::v4("twin4"));
    old.expect_closed();
    new.send(&wire::PINGREQ);
    new.expect(&wire::PINGRESP);
}

#[test]
fn same_client_id_in_another_hub_is_not_a_takeover() {
    let b = Broker::start();
    let ta = b.token("huba", None, &[], &[]);
    let tb = b.token("hubb", None, &[], &[]);
    let mut a = b.raw(false, "huba", Some(&ta), Connect::v5("same"));
    let _b = b.raw(false, "hubb", Some(&tb), Connect::v5("same"));
    a.send(&wire::PINGREQ);
    a.expect(&wire::PINGRESP);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_moves_with_takeover() {
    let b = Broker::start();
    let t = b.token("chat", None, &[JOIN, SEND], &[]);
    let opts = |b: &Broker, via| {
        let mut o = v5_opts(b, via, "mover", "chat", Some(&t));
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(600));
        o
    };
    let mut old = V5::connect(opts(&b, Via::Tcp)).await;
    old.subscribe("g", V5Q1).await;
    let mut new = V5::connect(opts(&b, Via::WsQuery)).await;
    assert!(new.connack.session_present);
    let e = old.closed().await;
    assert!(
        e.contains("SessionTakenOver"),
        "old connection ended with: {e}"
    );
    let p = V5::connect(v5_opts(&b, Via::Tcp, "p", "chat", Some(&t))).await;
    p.publish("g", V5Q1, b"after-takeover").await;
    assert_eq!(&new.recv().await.payload[..], b"after-takeover");
}

fn will(topic: &str, payload: &[u8], props: Vec<u8>) -> Will {
    Will {
        topic: topic.into(),
        payload: payload.to_vec(),
        qos: 1,
        retain: false,
        props,
    }
}

/// A subscriber to `groups` over TCP v5, CONNACK and SUBACK checked.
fn listener(b: &Broker, id: &str, groups: &[&str]) -> Raw {
    let t = b.token("chat", None, &[JOIN], &[]);
    let mut s = b.raw(false, "chat", Some(&t), Connect::v5(id));
    let filters: Vec<(&str, u8)> = groups.iter().map(|g| (*g, 1)).collect();
    s.send(&wire::subscribe(P5, 1, &filters));
    assert!(wire::suback_codes(P5, &s.read_packet())
        .iter()
        .all(|c| *c < 0x80));
    s
}

#[test]
fn will_is_published_on_abnormal_close() {
    let b = Broker::start();
    let mut sub = listener(&b, "watch", &["wills"]);
    let t = b.token("chat", None, &[SEND], &[]);
    for (ws, version) in [(false, P4), (true, P5), (true, P4), (false, P5)] {
        let mut c = Connect::new(version, &format!("dying-{ws}-{version}"));
        c.will = Some(will(
            "wills",
            format!("gone-{ws}-{version}").as_bytes(),
            Vec::new(),
        ));
        let dying = b.raw(ws, "chat", Some(&t), c);
        drop(dying); // socket closed without DISCONNECT
        let p = sub.read_packet();
        let m = wire::publish_of(P5, &p);
        assert_eq!(
            (m.topic.as_str(), m.payload.clone()),
            ("wills", format!("gone-{ws}-{version}").into_bytes()),
            "{}",
            hex(&p)
        );
        if m.qos == 1 {
            sub.send(&wire::puback(m.pkid));
        }
    }
}

#[test]
fn will_is_not_published_after_disconnect_nor_without_permission() {
    let b = Broker::start();
    let mut sub = listener(&b, "watch", &["wills", "marker"]);
    let sender = b.token("chat", None, &[SEND], &[]);
    let mut c = Connect::v5("polite");
    c.will = Some(will("wills", b"polite-will", Vec::new()));
    let mut polite = b.raw(false, "chat", Some(&sender), c);
    polite.send(&wire::DISCONNECT);
    polite.expect_closed();

    // No sendToGroup for `wills`: the will is dropped even on an abnormal close.
    let mut c = Connect::v4("unprivileged");
    c.will = Some(will("wills", b"forbidden-will", Vec::new()));
    let scoped = b.token("chat", None, &["webpubsub.sendToGroup.marker"], &[]);
    let unprivileged = b.raw(true, "chat", Some(&scoped), c);
    // The gauge proves when the broker has handled the close: first see it count the listener
    // and this connection (polite's is gone), then see it drop to the listener alone.
    let total = || b.connections_per_worker().values().sum::<f64>();
    wait_until(
        "hubmq_connections to count listener + unprivileged",
        Duration::from_secs(10),
        || total() == 2.0,
    );
    drop(unprivileged);
    wait_until(
        "the dropped connection to leave hubmq_connections",
        Duration::from_secs(10),
        || total() == 1.0,
    );

    let mut m = b.raw(false, "chat", Some(&scoped), Connect::v4("marker-sender"));
    m.send(&wire::publish(P4, "marker", b"marker", 0, false, 0, &[]));
    let got = wire::publish_of(P5, &sub.read_packet());
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("marker", &b"marker"[..])
    );
}

#[test]
fn v5_will_delay_is_cancelled_by_reconnecting_in_time() {
    let b = Broker::start();
    let mut sub = listener(&b, "watch", &["wills", "marker"]);
    let t = b.token("chat", None, &[SEND], &[]);
    // Several rounds over alternating transports, so the session resumes on the other worker
    // at least some of the time.
    for round in 0..4 {
        let id = format!("delayed{round}");
        let mut c = Connect::v5(&id);
        c.clean = false;
        c.props = wire::prop_u32(prop::SESSION_EXPIRY, 3600);
        // Delay far longer than the test: the reconnect below always comes first.
        c.will = Some(will(
            "wills",
            format!("too-early-{round}").as_bytes(),
            wire::prop_u32(prop::WILL_DELAY, 3600),
        ));
        let dropped = b.raw(round % 2 == 0, "chat", Some(&t), c.clone());
        drop(dropped);
        c.will = None;
        let mut back = b.raw(round % 2 == 1, "chat", Some(&t), c);
        back.send(&wire::publish(
            P5,
            "marker",
            format!("marker-{round}").as_bytes(),
            0,
            false,
            0,
            &[],
        ));
        let got = wire::publish_of(P5, &sub.read_packet());
        assert_eq!(
            String::from_utf8_lossy(&got.payload),
            format!("marker-{round}"),
            "[MQTT-3.1.3-9] a delayed will must not be sent when the session resumes in time"
        );
        if got.qos > 0 {
            sub.send(&wire::puback(got.pkid));
        }
    }
}

#[test]
fn v5_will_with_a_short_delay_is_sent_after_it() {
    let b = Broker::start();
    let mut sub = listener(&b, "watch", &["wills"]);
    let t = b.token("chat", None, &[SEND], &[]);
    let mut c = Connect::v5("late-will");
    c.props = wire::prop_u32(prop::SESSION_EXPIRY, 60);
    c.will = Some(will(
        "wills",
        b"delayed-will",
        wire::prop_u32(prop::WILL_DELAY, 1),
    ));
    drop(b.raw(false, "chat", Some(&t), c));
    let got = wire::publish_of(P5, &sub.read_packet());
    assert_eq!(&got.payload[..], b"delayed-will");
}

#[test]
fn keepalive_expiry_v5_sends_disconnect_0x8d() {
    let mut b = Broker::start();
    let t = b.token("chat", None, &[], &[]);
    let mut c = Connect::v5("sleepy");
    c.keepalive = 1;
    let mut raw = b.raw(false, "chat", Some(&t), c);
    // Silence: 1.5 × 1 s later the broker gives up.
    raw.expect_disconnect(0x8D);
    b.assert_alive();
}

#[test]
fn keepalive_expiry_v4_closes() {
    let b = Broker::start();
    let t = b.token("chat", None, &[], &[]);
    let mut c = Connect::v4("sleepy4");
    c.keepalive = 1;
    let mut raw = b.raw(true, "chat", Some(&t), c);
    raw.expect_closed();
}

#[test]
fn pings_keep_a_connection_alive() {
    let b = Broker::start();
    let t = b.token("chat", None, &[], &[]);
    let mut c = Connect::v5("awake");
    c.keepalive = 1;
    let mut raw = b.raw(false, "chat", Some(&t), c);
    // Each PINGREQ is answered; pings every ~0.5 s over ~3 s keep the session (the broker's
    // 1.5 s budget is reset by each one). The pacing sleep is the client's keep-alive duty,
    // not a wait for a condition.
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(500));
        raw.send(&wire::PINGREQ);
        raw.expect(&wire::PINGRESP);
    }
}

#[test]
fn server_keep_alive_is_returned_when_the_broker_lowers_it() {
    let b = Broker::start_with("[limits]\nmax_keepalive_secs = 30\n");
    let t = b.token("chat", None, &[], &[]);
    let mut c = Connect::v5("long").auth("chat", Some(&t));
    c.keepalive = 600;
    let mut raw = Raw::tcp(b.tcp);
    raw.send(&c.encode());
    let ack = wire::connack(P5, &raw.read_packet());
    assert_eq!(ack.code, 0);
    assert_eq!(
        ack.prop(prop::SERVER_KEEP_ALIVE),
        Some(&PropValue::U16(30)),
        "{ack:?}"
    );
}
