//! Publish/subscribe semantics: topics are groups; delivery across transports and versions;
//! QoS 1 and 2 flows (byte-exact and through rumqttc); delivered QoS = min(publish, granted);
//! permission denials with their reason codes; groups joined from token claims; wildcard,
//! shared-subscription, retain and topic-alias refusals; v5 property forwarding; WebSocket
//! framing (packets split over and coalesced into frames).
//!
//! "Not delivered" is proven without waiting: after the message that must not arrive, an
//! allowed marker message follows on the same path, and the subscriber's next message must be
//! the marker.

use rumqttc::v5::mqttbytes::v5::{PubAckReason, PubRecReason, SubscribeReasonCode as Sub5};

use crate::harness::{hex, Broker, OP_BINARY, OP_CONTINUATION};
use crate::rq::{qos::*, v4_opts, v5_opts, Via, V4, V5};
use crate::wire::{self, prop, Connect, PropValue, V4 as P4, V5 as P5};

const JOIN: &str = "webpubsub.joinLeaveGroup";
const SEND: &str = "webpubsub.sendToGroup";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_reaches_subscribers_of_every_transport_and_version() {
    let b = Broker::start();
    let t = b.token("chat", None, &[JOIN, SEND], &[]);
    let mut s5ws = V5::connect(v5_opts(&b, Via::WsQuery, "s5ws", "chat", Some(&t))).await;
    let mut s5h = V5::connect(v5_opts(&b, Via::WsHeader, "s5h", "chat", Some(&t))).await;
    let mut s5tcp = V5::connect(v5_opts(&b, Via::Tcp, "s5tcp", "chat", Some(&t))).await;
    let mut s4ws = V4::connect(v4_opts(&b, Via::WsQuery, "s4ws", "chat", Some(&t))).await;
    let mut s4tcp = V4::connect(v4_opts(&b, Via::Tcp, "s4tcp", "chat", Some(&t))).await;
    for s in [&mut s5ws, &mut s5h, &mut s5tcp] {
        assert_eq!(
            s.subscribe("room", V5Q1).await.return_codes,
            vec![Sub5::Success(V5Q1)]
        );
    }
    for s in [&mut s4ws, &mut s4tcp] {
        assert_eq!(
            s.subscribe("room", Q1).await.return_codes,
            vec![rumqttc::SubscribeReasonCode::Success(Q1)]
        );
    }

    let p4 = V4::connect(v4_opts(&b, Via::Tcp, "p4", "chat", Some(&t))).await;
    p4.publish("room", Q0, b"from-v4-tcp").await;
    let p5 = V5::connect(v5_opts(&b, Via::WsQuery, "p5", "chat", Some(&t))).await;
    p5.publish("room", V5Q0, b"from-v5-ws").await;

    for s in [&mut s5ws, &mut s5h, &mut s5tcp] {
        for want in [&b"from-v4-tcp"[..], b"from-v5-ws"] {
            let m = s.recv().await;
            assert_eq!(
                (&m.topic[..], &m.payload[..], m.qos),
                (&b"room"[..], want, V5Q0)
            );
        }
    }
    for s in [&mut s4ws, &mut s4tcp] {
        for want in [&b"from-v4-tcp"[..], b"from-v5-ws"] {
            let m = s.recv().await;
            assert_eq!(
                (m.topic.as_str(), &m.payload[..], m.qos),
                ("room", want, Q0)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_is_acknowledged_and_delivered_at_qos1() {
    let b = Broker::start();
    let t = b.token("chat", None, &[JOIN, SEND], &[]);
    let mut s5 = V5::connect(v5_opts(&b, Via::Tcp, "s5", "chat", Some(&t))).await;
    s5.subscribe("q1", V5Q1).await;
    let mut s4 = V4::connect(v4_opts(&b, Via::WsQuery, "s4", "chat", Some(&t))).await;
    s4.subscribe("q1", Q1).await;

    let mut p = V5::connect(v5_opts(&b, Via::WsHeader, "p", "chat", Some(&t))).await;
    p.publish("q1", V5Q1, b"one").await;
    let reason = p
        .next_where("PUBACK", |pk| match pk {
            rumqttc::v5::mqttbytes::v5::Packet::PubAck(a) => Some(a.reason),
            _ => None,
        })
        .await;
    assert_eq!(reason, PubAckReason::Success);
    let m = s5.recv().await;
    assert_eq!((&m.payload[..], m.qos), (&b"one"[..], V5Q1));
    let m = s4.recv().await;
    assert_eq!((&m.payload[..], m.qos), (&b"one"[..], Q1));
}

#[test]
fn qos2_flows_are_exact_on_the_wire_both_ways() {
    let b = Broker::start();
    let t = b.token("chat", None, &[JOIN, SEND], &[]);
    let mut sub = b.raw(false, "chat", Some(&t), Connect::v4("sub"));
    sub.send(&wire::subscribe(P4, 1, &[("g", 2)]));
    sub.expect(&[0x90, 0x03, 0x00, 0x01, 0x02]); // SUBACK pkid 1, granted QoS 2

    let mut publ = b.raw(true, "chat", Some(&t), Connect::v4("pub"));
    publ.send(&wire::publish(P4, "g", b"exactly-once", 2, false, 7, &[]));
    publ.expect(&[0x50, 0x02, 0x00, 0x07]); // PUBREC 7
    publ.send(&wire::pubrel(7));
    publ.expect(&[0x70, 0x02, 0x00, 0x07]); // PUBCOMP 7

    let p = sub.read_packet();
    let m = wire::publish_of(P4, &p);
    assert_eq!(
        (m.qos, m.topic.as_str(), &m.payload[..]),
        (2, "g", &b"exactly-once"[..]),
        "{}",
        hex(&p)
    );
    sub.send(&wire::pubrec(m.pkid));
    let pk = m.pkid.to_be_bytes();
    sub.expect(&[0x62, 0x02, pk[0], pk[1]]); // PUBREL
    sub.send(&wire::pubcomp(m.pkid));
    // The flow is finished: a ping is answered and nothing else (no redelivery) comes first.
    sub.send(&wire::PINGREQ);
    sub.expect(&wire::PINGRESP);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_through_rumqttc_v5_is_delivered_once() {
    let b = Broker::start();
    let t = b.token("chat", None, &[JOIN, SEND], &[]);
    let mut s = V5::connect(v5_opts(&b, Via::WsQuery, "s", "chat", Some(&t))).await;
    s.subscribe("q2", V5Q2).await;
    let mut p = V5::connect(v5_opts(&b, Via::Tcp, "p", "chat", Some(&t))).await;
    p.publish("q2", V5Q2, b"first").await;
    p.publish("q2", V5Q2, b"second").await;
    for _ in 0..2 {
        p.next_where("PUBCOMP", |pk| match pk {
            rumqttc::v5::mqttbytes::v5::Packet::PubComp(c) => Some(c.pkid),
            _ => None,
        })
        .await;
    }
    for want in [&b"first"[..], b"second"] {
        let m = s.recv().await;
        assert_eq!((&m.payload[..], m.qos, m.dup), (want, V5Q2, false));
    }
    // Once each: the marker comes next, not a duplicate.
    p.publish("q2", V5Q0, b"marker").await;
    assert_eq!(&s.recv().await.payload[..], b"marker");
}

#[test]
fn delivered_qos_is_the_minimum_of_publish_and_granted() {
    let b = Broker::start();
    let t = b.token("chat", None, &[JOIN, SEND], &[]);
    let mut publ = b.raw(false, "chat", Some(&t), Connect::v5("pub"));
    for (granted, published, delivered) in
        [(0u8, 2u8, 0u8), (1, 2, 1), (2, 1, 1), (2, 0, 0), (1, 1, 1)]
    {
        let group = format!("g{granted}{published}");
        let mut sub = b.raw(
            false,
            "chat",
            Some(&t),
            Connect::v5(&format!("s{granted}{published}")),
        );
        sub.send(&wire::subscribe(P5, 1, &[(&group, granted)]));
        assert_eq!(wire::suback_codes(P5, &sub.read_packet()), vec![granted]);
        publ.send(&wire::publish(P5, &group, b"x", published, false, 1, &[]));
        match published {
            1 => assert_eq!(wire::ack(&publ.read_packet()).0, 0x40),
            2 => {
                assert_eq!(wire::ack(&publ.read_packet()).0, 0x50);
                publ.send(&wire::pubrel(1));
                assert_eq!(wire::ack(&publ.read_packet()).0, 0x70);
            }
            _ => {}
        }
        let m = wire::publish_of(P5, &sub.read_packet());
        assert_eq!(m.qos, delivered, "granted {granted}, published {published}");
    }
}

#[test]
fn subscribe_without_permission_is_refused_with_0x87_or_0x80() {
    let b = Broker::start();
    let none = b.token("chat", None, &[], &[]);
    let mut v5 = b.raw(false, "chat", Some(&none), Connect::v5("n5"));
    v5.send(&wire::subscribe(P5, 1, &[("g", 1)]));
    assert_eq!(wire::suback_codes(P5, &v5.read_packet()), vec![0x87]);
    let mut v4 = b.raw(true, "chat", Some(&none), Connect::v4("n4"));
    v4.send(&wire::subscribe(P4, 1, &[("g", 1)]));
    v4.expect(&[0x90, 0x03, 0x00, 0x01, 0x80]);

    // A group-scoped role allows that group only; codes are per filter.
    let scoped = b.token("chat", None, &["webpubsub.joinLeaveGroup.a"], &[]);
    let mut s5 = b.raw(true, "chat", Some(&scoped), Connect::v5("sc5"));
    s5.send(&wire::subscribe(P5, 2, &[("a", 1), ("b", 1)]));
    assert_eq!(wire::suback_codes(P5, &s5.read_packet()), vec![0x01, 0x87]);
    let mut s4 = b.raw(false, "chat", Some(&scoped), Connect::v4("sc4"));
    s4.send(&wire::subscribe(P4, 2, &[("a", 1), ("b", 1)]));
    s4.expect(&[0x90, 0x04, 0x00, 0x02, 0x01, 0x80]);
    // The refused connections stay usable.
    v5.send(&wire::PINGREQ);
    v5.expect(&wire::PINGRESP);
    v4.send(&wire::PINGREQ);
    v4.expect(&wire::PINGRESP);
}

#[test]
fn publish_without_permission_is_refused_on_v5_and_dropped_on_v4() {
    let b = Broker::start();
    let reader = b.token("chat", None, &[JOIN], &[]);
    let mut sub = b.raw(false, "chat", Some(&reader), Connect::v5("sub"));
    sub.send(&wire::subscribe(P5, 1, &[("secret", 1), ("ok", 1)]));
    assert_eq!(wire::suback_codes(P5, &sub.read_packet()), vec![1, 1]);

    let scoped = b.token("chat", None, &["webpubsub.sendToGroup.ok"], &[]);
    // v5: PUBACK / PUBREC carry 0x87; QoS 0 is dropped silently.
    let mut p5 = b.raw(true, "chat", Some(&scoped), Connect::v5("p5"));
    p5.send(&wire::publish(P5, "secret", b"no-q1", 1, false, 1, &[]));
    assert_eq!(wire::ack(&p5.read_packet()), (0x40, 1, 0x87));
    p5.send(&wire::publish(P5, "secret", b"no-q2", 2, false, 2, &[]));
    assert_eq!(wire::ack(&p5.read_packet()), (0x50, 2, 0x87));
    p5.send(&wire::publish(P5, "secret", b"no-q0", 0, false, 0, &[]));
    p5.send(&wire::publish(P5, "ok", b"marker-5", 1, false, 3, &[]));
    assert_eq!(wire::ack(&p5.read_packet()), (0x40, 3, 0x00));
    assert_eq!(
        wire::publish_of(P5, &sub.read_packet()).payload,
        b"marker-5"
    );

    // v3.1.1: acknowledged normally, message dropped.
    let mut p4 = b.raw(false, "chat", Some(&scoped), Connect::v4("p4"));
    p4.send(&wire::publish(P4, "secret", b"no-q1", 1, false, 1, &[]));
    p4.expect(&[0x40, 0x02, 0x00, 0x01]);
    p4.send(&wire::publish(P4, "secret", b"no-q2", 2, false, 2, &[]));
    p4.expect(&[0x50, 0x02, 0x00, 0x02]);
    p4.send(&wire::pubrel(2));
    p4.expect(&[0x70, 0x02, 0x00, 0x02]);
    p4.send(&wire::publish(P4, "ok", b"marker-4", 1, false, 3, &[]));
    p4.expect(&[0x40, 0x02, 0x00, 0x03]);
    let m = wire::publish_of(P5, &sub.read_packet());
    assert_eq!((m.topic.as_str(), &m.payload[..]), ("ok", &b"marker-4"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_v5_sees_not_authorized_puback() {
    let b = Broker::start();
    let t = b.token("chat", None, &[], &[]);
    let mut p = V5::connect(v5_opts(&b, Via::WsQuery, "p", "chat", Some(&t))).await;
    p.publish("g", V5Q1, b"x").await;
    let reason = p
        .next_where("PUBACK", |pk| match pk {
            rumqttc::v5::mqttbytes::v5::Packet::PubAck(a) => Some(a.reason),
            _ => None,
        })
        .await;
    assert_eq!(reason, PubAckReason::NotAuthorized);
    p.publish("g", V5Q2, b"y").await;
    let reason = p
        .next_where("PUBREC", |pk| match pk {
            rumqttc::v5::mqttbytes::v5::Packet::PubRec(a) => Some(a.reason),
            _ => None,
        })
        .await;
    assert_eq!(reason, PubRecReason::NotAuthorized);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_groups_are_joined_at_connect_without_subscribe_permission() {
    let b = Broker::start();
    // `webpubsub.group` (what the SDKs emit), as an array; no roles at all.
    let t1 = b.token("chat", None, &[], &["g1", "g2"]);
    let mut s1 = V5::connect(v5_opts(&b, Via::WsQuery, "s1", "chat", Some(&t1))).await;
    // `group` (what the docs say), as a single string, over TCP and 3.1.1.
    let t2 = b.token_with(
        serde_json::json!({"aud": b.aud("chat"), "exp": crate::harness::now_secs() + 600, "group": "g3"}),
        &b.keys[0],
    );
    let mut s2 = V4::connect(v4_opts(&b, Via::Tcp, "s2", "chat", Some(&t2))).await;

    let pt = b.token("chat", None, &[SEND], &[]);
    let p = V5::connect(v5_opts(&b, Via::Tcp, "p", "chat", Some(&pt))).await;
    p.publish("g2", V5Q1, b"to-g2").await;
    p.publish("g3", V5Q1, b"to-g3").await;
    p.publish("g1", V5Q1, b"to-g1").await;
    let m = s1.recv().await;
    assert_eq!((&m.topic[..], &m.payload[..]), (&b"g2"[..], &b"to-g2"[..]));
    let m = s1.recv().await;
    assert_eq!((&m.topic[..], &m.payload[..]), (&b"g1"[..], &b"to-g1"[..]));
    let m = s2.recv().await;
    assert_eq!((m.topic.as_str(), &m.payload[..]), ("g3", &b"to-g3"[..]));
}

#[test]
fn wildcard_and_shared_filters_are_refused() {
    let b = Broker::start();
    let t = b.token("chat", None, &[JOIN], &[]);
    let mut v5 = b.raw(false, "chat", Some(&t), Connect::v5("w5"));
    v5.send(&wire::subscribe(
        P5,
        1,
        &[("a/+", 0), ("#", 0), ("$share/grp/a", 0), ("plain", 0)],
    ));
    assert_eq!(
        wire::suback_codes(P5, &v5.read_packet()),
        vec![0xA2, 0xA2, 0x9E, 0x00]
    );
    let mut v4 = b.raw(true, "chat", Some(&t), Connect::v4("w4"));
    v4.send(&wire::subscribe(
        P4,
        1,
        &[("a/+", 0), ("a/#", 0), ("plain", 0)],
    ));
    v4.expect(&[0x90, 0x05, 0x00, 0x01, 0x80, 0x80, 0x00]);
}

#[test]
fn v5_connack_advertises_what_is_not_supported() {
    let b = Broker::start_with("[limits]\nmax_packet_size = 65536\n");
    let t = b.token("chat", None, &[], &[]);
    let mut raw = crate::harness::Raw::tcp(b.tcp);
    raw.send(&Connect::v5("caps").auth("chat", Some(&t)).encode());
    let ack = wire::connack(P5, &raw.read_packet());
    assert_eq!(ack.code, 0);
    assert_eq!(
        ack.prop(prop::RETAIN_AVAILABLE),
        Some(&PropValue::Byte(0)),
        "{ack:?}"
    );
    assert_eq!(
        ack.prop(prop::WILDCARD_AVAILABLE),
        Some(&PropValue::Byte(0)),
        "{ack:?}"
    );
    assert_eq!(
        ack.prop(prop::SHARED_AVAILABLE),
        Some(&PropValue::Byte(0)),
        "{ack:?}"
    );
    // Absent means 0 (MQTT 5 §3.2.2.3.8), so either form is right.
    assert!(
        matches!(
            ack.prop(prop::TOPIC_ALIAS_MAX),
            None | Some(PropValue::U16(0))
        ),
        "{ack:?}"
    );
    assert_eq!(
        ack.prop(prop::MAX_PACKET_SIZE),
        Some(&PropValue::U32(65536)),
        "{ack:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_v5_reads_the_same_connack_properties() {
    let b = Broker::start();
    let t = b.token("chat", None, &[], &[]);
    let c = V5::connect(v5_opts(&b, Via::WsQuery, "caps", "chat", Some(&t))).await;
    let props = c
        .connack
        .properties
        .clone()
        .expect("v5 CONNACK has properties");
    assert_eq!(props.retain_available, Some(0));
    assert_eq!(props.wildcard_subscription_available, Some(0));
    assert_eq!(props.shared_subscription_available, Some(0));
    assert!(matches!(props.topic_alias_max, None | Some(0)));
    // Default limits.max_packet_size = 1 MiB.
    assert_eq!(props.max_packet_size, Some(1_048_576));
}

#[test]
fn retain_flag_is_cleared_and_nothing_is_retained() {
    let b = Broker::start();
    let t = b.token("chat", None, &[JOIN, SEND], &[]);
    let mut sub = b.raw(false, "chat", Some(&t), Connect::v5("sub"));
    sub.send(&wire::subscribe(P5, 1, &[("news", 1)]));
    wire::suback_codes(P5, &sub.read_packet());
    let mut publ = b.raw(true, "chat", Some(&t), Connect::v4("pub"));
    publ.send(&wire::publish(P4, "news", b"retained?", 1, true, 1, &[]));
    publ.expect(&[0x40, 0x02, 0x00, 0x01]);
    let m = wire::publish_of(P5, &sub.read_packet());
    assert_eq!((&m.payload[..], m.retain), (&b"retained?"[..], false));

    // A later subscriber gets no retained copy: its first message is the marker.
    let mut late = b.raw(false, "chat", Some(&t), Connect::v4("late"));
    late.send(&wire::subscribe(P4, 1, &[("news", 1)]));
    late.expect(&[0x90, 0x03, 0x00, 0x01, 0x01]);
    publ.send(&wire::publish(P4, "news", b"marker", 0, false, 0, &[]));
    let m = wire::publish_of(P4, &late.read_packet());
    assert_eq!(&m.payload[..], b"marker");
}

#[test]
fn publish_with_topic_alias_is_disconnected_with_0x94() {
    let mut b = Broker::start();
    let t = b.token("chat", None, &[SEND], &[]);
    let mut c = b.raw(false, "chat", Some(&t), Connect::v5("alias"));
    c.send(&wire::publish(
        P5,
        "g",
        b"x",
        0,
        false,
        0,
        &wire::prop_u16(prop::TOPIC_ALIAS, 1),
    ));
    c.expect_disconnect(0x94);
    b.assert_alive();
}

#[test]
fn v5_publish_properties_reach_v5_subscribers_and_v4_gets_payload_only() {
    let b = Broker::start();
    let t = b.token("chat", None, &[JOIN, SEND], &[]);
    let mut s5 = b.raw(true, "chat", Some(&t), Connect::v5("s5"));
    s5.send(&wire::subscribe(P5, 1, &[("props", 1)]));
    wire::suback_codes(P5, &s5.read_packet());
    let mut s4 = b.raw(false, "chat", Some(&t), Connect::v4("s4"));
    s4.send(&wire::subscribe(P4, 1, &[("props", 1)]));
    s4.expect(&[0x90, 0x03, 0x00, 0x01, 0x01]);

    let props = [
        wire::prop_u8(prop::PAYLOAD_FORMAT, 1),
        wire::prop_u32(prop::MESSAGE_EXPIRY, 3600),
        wire::prop_str(prop::CONTENT_TYPE, "application/json"),
        wire::prop_str(0x08, "reply/here"), // response topic
        {
            let mut c = vec![0x09u8]; // correlation data
            c.extend_from_slice(&[0, 3, 1, 2, 3]);
            c
        },
        wire::prop_pair("k1", "v1"),
        wire::prop_pair("k2", "v2"),
    ]
    .concat();
    let mut publ = b.raw(false, "chat", Some(&t), Connect::v5("p"));
    publ.send(&wire::publish(P5, "props", b"{}", 1, false, 1, &props));
    assert_eq!(wire::ack(&publ.read_packet()).2, 0);

    let m = wire::publish_of(P5, &s5.read_packet());
    let find = |id: u8| {
        m.props
            .iter()
            .filter(|(i, _)| *i == id)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(find(prop::PAYLOAD_FORMAT), vec![PropValue::Byte(1)]);
    assert_eq!(
        find(prop::CONTENT_TYPE),
        vec![PropValue::Str("application/json".into())]
    );
    assert_eq!(find(0x08), vec![PropValue::Str("reply/here".into())]);
    assert_eq!(find(0x09), vec![PropValue::Bin(vec![1, 2, 3])]);
    assert_eq!(
        find(prop::USER_PROPERTY),
        vec![
            PropValue::Pair("k1".into(), "v1".into()),
            PropValue::Pair("k2".into(), "v2".into())
        ],
        "user properties in order"
    );
    // Expiry is forwarded as the remaining lifetime (MQTT 5 §3.3.2.3.3), so at most the original.
    match find(prop::MESSAGE_EXPIRY).as_slice() {
        [PropValue::U32(left)] => assert!(*left <= 3600 && *left > 0, "expiry {left}"),
        other => panic!("message expiry not forwarded: {other:?}"),
    }
    assert!(find(prop::TOPIC_ALIAS).is_empty());
    assert_eq!(&m.payload[..], b"{}");

    let m4 = wire::publish_of(P4, &s4.read_packet());
    assert_eq!((m4.topic.as_str(), &m4.payload[..]), ("props", &b"{}"[..]));
}

#[test]
fn unsubscribe_leaves_the_group() {
    let b = Broker::start();
    let t = b.token("chat", None, &[JOIN, SEND], &[]);
    let mut sub = b.raw(false, "chat", Some(&t), Connect::v5("sub"));
    sub.send(&wire::subscribe(P5, 1, &[("gone", 0), ("stay", 0)]));
    assert_eq!(wire::suback_codes(P5, &sub.read_packet()), vec![0, 0]);
    sub.send(&wire::unsubscribe(P5, 2, &["gone"]));
    let p = sub.read_packet();
    assert_eq!(&p[..4], &[0xB0, 0x04, 0x00, 0x02], "UNSUBACK {}", hex(&p));
    assert_eq!(p[5], 0x00, "UNSUBACK reason success: {}", hex(&p));

    let mut publ = b.raw(true, "chat", Some(&t), Connect::v4("p"));
    publ.send(&wire::publish(P4, "gone", b"not-for-you", 0, false, 0, &[]));
    publ.send(&wire::publish(P4, "stay", b"marker", 0, false, 0, &[]));
    let m = wire::publish_of(P5, &sub.read_packet());
    assert_eq!((m.topic.as_str(), &m.payload[..]), ("stay", &b"marker"[..]));
}

#[test]
fn websocket_frames_may_split_and_coalesce_packets() {
    let b = Broker::start();
    let t = b.token("chat", None, &[JOIN], &[]);
    let path = format!("/clients/mqtt/hubs/chat?access_token={t}");
    let mut ws = crate::harness::Raw::ws(b.http, &path, &[]).expect("upgrade");
    let connect = Connect::v4("frames").encode();
    // CONNECT spread over two binary messages, the second one fragmented (RFC 6455 §5.4).
    ws.send_frame(true, OP_BINARY, &connect[..5], true);
    ws.send_frame(false, OP_BINARY, &connect[5..9], true);
    ws.send_frame(true, OP_CONTINUATION, &connect[9..], true);
    ws.expect(&[0x20, 0x02, 0x00, 0x00]);
    // SUBSCRIBE and PINGREQ in one frame.
    let mut both = wire::subscribe(P4, 9, &[("g", 0)]);
    both.extend_from_slice(&wire::PINGREQ);
    ws.send_frame(true, OP_BINARY, &both, true);
    ws.expect(&[0x90, 0x03, 0x00, 0x09, 0x00, 0xD0, 0x00]);
}
