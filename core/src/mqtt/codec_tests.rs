//! Tests of the MQTT codec: spec byte sequences for every packet type in both versions (one
//! byte or field per line), round trips, framing at every split point, fixed-header flag rules,
//! the short v5 forms, size limits, a deterministic mutation fuzz loop, and `mqttbytes` as an
//! independent oracle for the packets it gets right.

use bytes::{Bytes, BytesMut};

use super::*;

const V4: ProtocolVersion = ProtocolVersion::V4;
const V5: ProtocolVersion = ProtocolVersion::V5;
const MAX: usize = 1 << 20;

fn up(v: ProtocolVersion) -> Option<ProtocolVersion> {
    Some(v)
}

/// Decodes `bytes` as one complete packet; any leftover byte is a test failure.
fn decode_all(bytes: &[u8], version: Option<ProtocolVersion>) -> Result<Packet, CodecError> {
    let mut buf = BytesMut::from(bytes);
    match decode(&mut buf, version, MAX)? {
        Some(p) => {
            assert!(buf.is_empty(), "{} bytes left after {p:?}", buf.len());
            Ok(p)
        }
        None => panic!("incomplete packet: {bytes:02x?}"),
    }
}

fn encoded(p: &Packet, v: ProtocolVersion) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(p, v, &mut out);
    out.to_vec()
}

/// The spec bytes decode to `p` and `p` encodes back to exactly those bytes.
fn fixture(bytes: &[u8], version: ProtocolVersion, p: Packet) {
    let vin = if matches!(p, Packet::Connect(_)) {
        None
    } else {
        Some(version)
    };
    assert_eq!(decode_all(bytes, vin), Ok(p.clone()), "decode {bytes:02x?}");
    assert_eq!(encoded(&p, version), bytes, "encode {p:?}");
}

fn malformed(bytes: &[u8], version: Option<ProtocolVersion>) {
    let mut buf = BytesMut::from(bytes);
    match decode(&mut buf, version, MAX) {
        Err(CodecError::Malformed(_)) => {}
        other => panic!("expected Malformed for {bytes:02x?}, got {other:?}"),
    }
}

fn violation(bytes: &[u8], version: Option<ProtocolVersion>) {
    let mut buf = BytesMut::from(bytes);
    match decode(&mut buf, version, MAX) {
        Err(CodecError::ProtocolViolation(_)) => {}
        other => panic!("expected ProtocolViolation for {bytes:02x?}, got {other:?}"),
    }
}

fn s(x: &str) -> String {
    x.to_owned()
}

fn b(x: &[u8]) -> Bytes {
    Bytes::copy_from_slice(x)
}

// ---------------------------------------------------------------------------------------------
// CONNECT / CONNACK
// ---------------------------------------------------------------------------------------------

#[test]
fn v4_connect_with_will_and_credentials_matches_spec_layout() {
    #[rustfmt::skip]
    let bytes = [
        0x10,                               // CONNECT, flags 0
        0x1d,                               // remaining length 29
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name
        0x04,                               // protocol level 4 (3.1.1)
        0xce,                               // user name, password, will QoS 1, will flag, clean session
        0x00, 0x0a,                         // keep alive 10 s
        0x00, 0x03, b'c', b'i', b'd',       // client id "cid"
        0x00, 0x01, b'w',                   // will topic "w"
        0x00, 0x02, b'b', b'y',             // will payload "by"
        0x00, 0x01, b'u',                   // user name "u"
        0x00, 0x02, b'p', b'w',             // password "pw"
    ];
    let p = Packet::Connect(Connect {
        protocol: up(V4),
        clean_start: true,
        keep_alive: 10,
        client_id: s("cid"),
        username: Some(s("u")),
        password: Some(b(b"pw")),
        will: Some(LastWill {
            topic: s("w"),
            payload: b(b"by"),
            qos: QoS::AtLeastOnce,
            ..LastWill::default()
        }),
        props: ConnectProps::default(),
    });
    fixture(&bytes, V4, p);
}

#[test]
fn v5_connect_with_session_expiry_matches_spec_example() {
    #[rustfmt::skip]
    let bytes = [
        0x10,                               // CONNECT
        0x1c,                               // remaining length 28
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name
        0x05,                               // protocol level 5
        0xc2,                               // user name, password, clean start
        0x00, 0x0a,                         // keep alive 10 s
        0x05,                               // property length 5
        0x11, 0x00, 0x00, 0x00, 0x0a,       // session expiry interval 10
        0x00, 0x03, b'c', b'i', b'd',       // client id "cid"
        0x00, 0x01, b'u',                   // user name "u"
        0x00, 0x02, 0xff, 0x00,             // password: binary, not UTF-8
    ];
    let p = Packet::Connect(Connect {
        protocol: up(V5),
        clean_start: true,
        keep_alive: 10,
        client_id: s("cid"),
        username: Some(s("u")),
        password: Some(b(&[0xff, 0x00])),
        will: None,
        props: ConnectProps {
            session_expiry: Some(10),
            ..ConnectProps::default()
        },
    });
    fixture(&bytes, V5, p);
}

#[test]
fn v5_connect_with_will_properties_matches_bytes() {
    #[rustfmt::skip]
    let bytes = [
        0x10,                               // CONNECT
        0x24,                               // remaining length 36
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name
        0x05,                               // protocol level 5
        0x2c,                               // will retain, will QoS 1, will flag
        0x00, 0x3c,                         // keep alive 60 s
        0x00,                               // property length 0
        0x00, 0x00,                         // empty client id
        0x0e,                               // will property length 14
        0x18, 0x00, 0x00, 0x00, 0x05,       // will delay interval 5
        0x01, 0x01,                         // payload format: UTF-8
        0x03, 0x00, 0x04, b't', b'e', b'x', b't', // content type "text"
        0x00, 0x01, b'w',                   // will topic "w"
        0x00, 0x03, b'b', b'y', b'e',       // will payload "bye"
    ];
    let will = LastWill {
        topic: s("w"),
        payload: b(b"bye"),
        qos: QoS::AtLeastOnce,
        retain: true,
        delay: Some(5),
        props: PublishProps {
            payload_format: Some(1),
            content_type: Some(s("text")),
            ..PublishProps::default()
        },
    };
    let p = Packet::Connect(Connect {
        protocol: up(V5),
        keep_alive: 60,
        will: Some(will),
        ..Connect::default()
    });
    fixture(&bytes, V5, p);
}

#[test]
fn connect_level_3_is_unsupported_protocol() {
    #[rustfmt::skip]
    let bytes = [
        0x10, 0x10,                                     // CONNECT, remaining length 16
        0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', // "MQIsdp" (MQTT 3.1)
        0x03,                                           // level 3
        0x02, 0x00, 0x3c,                               // clean session, keep alive 60
        0x00, 0x02, b'i', b'd',                         // client id
    ];
    assert_eq!(
        decode_all(&bytes, None),
        Err(CodecError::UnsupportedProtocol(3))
    );
    #[rustfmt::skip]
    let mqtt3 = [
        0x10, 0x0c,                               // CONNECT, remaining length 12
        0x00, 0x04, b'M', b'Q', b'T', b'T',       // "MQTT"
        0x03,                                     // level 3
        0x02, 0x00, 0x3c,                         // flags, keep alive
        0x00, 0x00,                               // client id ""
    ];
    assert_eq!(
        decode_all(&mqtt3, None),
        Err(CodecError::UnsupportedProtocol(3))
    );
    assert_eq!(
        CodecError::UnsupportedProtocol(3).reason(),
        ReasonCode::UnsupportedProtocolVersion
    );
}

/// A v3.1.1 CONNECT with the given flags byte and body after the keep alive.
fn v4_connect(flags: u8, tail: &[u8]) -> Vec<u8> {
    let mut v = vec![
        0x10,
        (10 + tail.len()) as u8,
        0,
        4,
        b'M',
        b'Q',
        b'T',
        b'T',
        4,
        flags,
        0,
        60,
    ];
    v.extend_from_slice(tail);
    v
}

#[test]
fn rejects_connect_flag_violations() {
    let cid = [0x00, 0x01, b'c'];
    malformed(&v4_connect(0x03, &cid), None); // reserved bit 0 [MQTT-3.1.2-3]
    violation(&v4_connect(0x0a, &cid), None); // will QoS 1 without will flag [MQTT-3.1.2-11]
    violation(&v4_connect(0x22, &cid), None); // will retain without will flag [MQTT-3.1.2-15]
    let mut will = cid.to_vec();
    will.extend_from_slice(&[0x00, 0x01, b't', 0x00, 0x00]);
    malformed(&v4_connect(0x1e, &will), None); // will QoS 3
    let mut pw = cid.to_vec();
    pw.extend_from_slice(&[0x00, 0x01, b'p']);
    violation(&v4_connect(0x42, &pw), None); // password without user name on 3.1.1 [MQTT-3.1.2-22]
    malformed(&v4_connect(0x02, &[0x00, 0x01, b'c', 0x00]), None); // trailing byte
    malformed(&v4_connect(0x02, &[0x00, 0x02, b'c', 0x00]), None); // client id with U+0000
    malformed(&v4_connect(0x02, &[0x00, 0x01, 0xc3]), None); // client id not UTF-8
    malformed(&v4_connect(0x02, &[0x00, 0x05, b'c']), None); // client id longer than the packet
}

#[test]
fn v5_connect_allows_password_without_user_name() {
    #[rustfmt::skip]
    let bytes = [
        0x10, 0x10,                         // CONNECT, remaining length 16
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name
        0x05,                               // level 5
        0x42,                               // password, clean start
        0x00, 0x00,                         // keep alive 0
        0x00,                               // no properties
        0x00, 0x00,                         // client id ""
        0x00, 0x01, b'p',                   // password "p"
    ];
    let Ok(Packet::Connect(c)) = decode_all(&bytes, None) else {
        panic!()
    };
    assert_eq!((c.username, c.password), (None, Some(b(b"p"))));
}

#[test]
fn rejects_bad_connect_properties() {
    // CONNECT v5 with the given property block and an empty client id.
    let with_props = |props: &[u8]| {
        let mut v = vec![
            0x10,
            (13 + props.len()) as u8,
            0,
            4,
            b'M',
            b'Q',
            b'T',
            b'T',
            5,
            0x02,
            0,
            60,
        ];
        v.push(props.len() as u8);
        v.extend_from_slice(props);
        v.extend_from_slice(&[0x00, 0x00]);
        v
    };
    assert!(decode_all(&with_props(&[0x21, 0x00, 0x05]), None).is_ok()); // receive maximum 5
    violation(&with_props(&[0x21, 0x00, 0x00]), None); // receive maximum 0
    violation(&with_props(&[0x27, 0, 0, 0, 0]), None); // maximum packet size 0
    violation(&with_props(&[0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2]), None); // session expiry twice
    violation(&with_props(&[0x17, 0x02]), None); // request problem information 2
    violation(&with_props(&[0x16, 0x00, 0x01, 0xaa]), None); // auth data without auth method
    malformed(&with_props(&[0x23, 0x00, 0x01]), None); // topic alias is not a CONNECT property
    malformed(&with_props(&[0x7f, 0x00]), None); // unknown property identifier
    malformed(&with_props(&[0x11, 0x00, 0x00]), None); // property value cut by the property length
                                                       // Two user properties with the same name are fine, order kept.
    let users = [0x26, 0, 1, b'k', 0, 1, b'1', 0x26, 0, 1, b'k', 0, 1, b'2'];
    let Ok(Packet::Connect(c)) = decode_all(&with_props(&users), None) else {
        panic!()
    };
    assert_eq!(
        c.props.user_properties,
        vec![(s("k"), s("1")), (s("k"), s("2"))]
    );
}

#[test]
fn connack_fixtures() {
    // 3.1.1: session present 1, return code 0.
    fixture(
        &[0x20, 0x02, 0x01, 0x00],
        V4,
        Packet::ConnAck(ConnAck {
            session_present: true,
            ..ConnAck::default()
        }),
    );
    // 3.1.1: refused, not authorized (5).
    fixture(
        &[0x20, 0x02, 0x00, 0x05],
        V4,
        Packet::ConnAck(ConnAck {
            code: 5,
            ..ConnAck::default()
        }),
    );
    #[rustfmt::skip]
    let v5 = [
        0x20, 0x08,             // CONNACK, remaining length 8
        0x00,                   // no session present
        0x00,                   // reason: success
        0x05,                   // property length 5
        0x24, 0x01,             // maximum QoS 1
        0x22, 0x00, 0x0a,       // topic alias maximum 10
    ];
    let props = ConnAckProps {
        max_qos: Some(1),
        topic_alias_max: Some(10),
        ..ConnAckProps::default()
    };
    fixture(
        &v5,
        V5,
        Packet::ConnAck(ConnAck {
            props,
            ..ConnAck::default()
        }),
    );
    // v5 refusal 0x84 without properties.
    fixture(
        &[0x20, 0x03, 0x00, 0x84, 0x00],
        V5,
        Packet::ConnAck(ConnAck {
            code: 0x84,
            ..ConnAck::default()
        }),
    );
    malformed(&[0x20, 0x02, 0x02, 0x00], up(V4)); // reserved acknowledge flag
    malformed(&[0x20, 0x02, 0x00, 0x06], up(V4)); // return code 6
    malformed(&[0x20, 0x03, 0x00, 0x04, 0x00], up(V5)); // 0x04 is not a CONNACK reason
}

// ---------------------------------------------------------------------------------------------
// PUBLISH
// ---------------------------------------------------------------------------------------------

#[test]
fn publish_fixtures() {
    #[rustfmt::skip]
    let v4_qos0 = [
        0x30,                         // PUBLISH, QoS 0
        0x07,                         // remaining length 7
        0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
        b'h', b'i',                   // payload
    ];
    let p = Publish {
        topic: s("a/b"),
        payload: b(b"hi"),
        ..Publish::default()
    };
    fixture(&v4_qos0, V4, Packet::Publish(p));

    #[rustfmt::skip]
    let v4_qos1 = [
        0x3b,                         // PUBLISH, DUP, QoS 1, RETAIN
        0x09,                         // remaining length 9
        0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
        0x00, 0x0a,                   // packet id 10
        b'h', b'i',                   // payload
    ];
    let p = Publish {
        dup: true,
        qos: QoS::AtLeastOnce,
        retain: true,
        topic: s("a/b"),
        pkid: 10,
        payload: b(b"hi"),
        props: PublishProps::default(),
    };
    fixture(&v4_qos1, V4, Packet::Publish(p));

    #[rustfmt::skip]
    let v5_qos2 = [
        0x34,                         // PUBLISH, QoS 2
        0x0c,                         // remaining length 12
        0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
        0x00, 0x0a,                   // packet id 10
        0x02,                         // property length 2
        0x01, 0x01,                   // payload format indicator: UTF-8
        b'h', b'i',                   // payload
    ];
    let p = Publish {
        qos: QoS::ExactlyOnce,
        topic: s("a/b"),
        pkid: 10,
        payload: b(b"hi"),
        props: PublishProps {
            payload_format: Some(1),
            ..PublishProps::default()
        },
        ..Publish::default()
    };
    fixture(&v5_qos2, V5, Packet::Publish(p));

    #[rustfmt::skip]
    let v5_empty = [
        0x30, 0x03,  // PUBLISH QoS 0, remaining length 3
        0x00, 0x00,  // empty topic (used with a topic alias)
        0x00,        // property length 0, no payload
    ];
    fixture(&v5_empty, V5, Packet::Publish(Publish::default()));
}

#[test]
fn rejects_bad_publish() {
    malformed(&[0x36, 0x05, 0x00, 0x01, b't', 0x00, 0x01], up(V4)); // QoS 3
    malformed(&[0x38, 0x03, 0x00, 0x01, b't'], up(V4)); // QoS 0 with DUP [MQTT-3.3.1-2]
    violation(&[0x32, 0x05, 0x00, 0x01, b't', 0x00, 0x00], up(V4)); // packet id 0
    malformed(&[0x32, 0x04, 0x00, 0x01, b't', 0x00], up(V4)); // packet id cut short
    malformed(&[0x30, 0x04, 0x00, 0x03, b'a', b'b'], up(V4)); // topic longer than the packet
    malformed(&[0x30, 0x03, 0x00, 0x01, b't'], up(V5)); // v5 property length missing
    malformed(&[0x30, 0x05, 0x00, 0x01, b't', 0x03, 0x01], up(V5)); // property length beyond the packet
                                                                    // Property length 1 but the Topic Alias value would need 2 more bytes taken from the payload.
    malformed(
        &[0x30, 0x07, 0x00, 0x01, b't', 0x01, 0x23, 0x00, 0x05],
        up(V5),
    );
    violation(&[0x30, 0x06, 0x00, 0x01, b't', 0x02, 0x0b, 0x00], up(V5)); // subscription id 0
    violation(
        &[0x30, 0x08, 0x00, 0x01, b't', 0x04, 0x01, 0x00, 0x01, 0x01],
        up(V5),
    ); // payload format twice
    violation(&[0x30, 0x06, 0x00, 0x01, b't', 0x02, 0x01, 0x02], up(V5)); // payload format 2
    malformed(&[0x30, 0x08, 0x00, 0x01, b't', 0x04, 0x11, 0, 0, 0], up(V5)); // session expiry in PUBLISH
}

#[test]
fn v5_publish_with_every_property_round_trips() {
    let props = PublishProps {
        payload_format: Some(1),
        message_expiry: Some(3600),
        topic_alias: Some(7),
        response_topic: Some(s("reply/here")),
        correlation_data: Some(b(&[0, 1, 2, 0xff])),
        user_properties: vec![(s("a"), s("1")), (s("b"), s("2")), (s("a"), s("3"))],
        subscription_ids: vec![1, 128, 268_435_455],
        content_type: Some(s("application/json")),
    };
    let p = Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        topic: s("group/1"),
        pkid: 42,
        payload: b(b"{\"x\":1}"),
        props,
        ..Publish::default()
    });
    let bytes = encoded(&p, V5);
    assert_eq!(decode_all(&bytes, up(V5)), Ok(p));
}

#[test]
fn v4_publish_drops_v5_properties() {
    let with = Publish {
        topic: s("t"),
        payload: b(b"x"),
        props: PublishProps {
            message_expiry: Some(5),
            ..PublishProps::default()
        },
        ..Publish::default()
    };
    assert_eq!(
        encoded(&Packet::Publish(with), V4),
        [0x30, 0x04, 0x00, 0x01, b't', b'x']
    );
}

fn concat(parts: &PublishParts, pkid: Option<u16>) -> Vec<u8> {
    let mut v = parts.head.to_vec();
    if let Some(id) = pkid {
        v.extend_from_slice(&id.to_be_bytes());
    }
    v.extend_from_slice(&parts.props);
    v.extend_from_slice(&parts.payload);
    v
}

#[test]
fn publish_parts_match_full_encoding_in_both_versions() {
    let payload = Bytes::from(vec![7u8; 300]); // two-byte remaining length
    let props = PublishProps {
        content_type: Some(s("ct")),
        user_properties: vec![(s("k"), s("v"))],
        ..PublishProps::default()
    };
    for v in [V4, V5] {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            for (retain, dup) in [(false, false), (true, false), (false, true), (true, true)] {
                let parts = encode_publish_parts("topic/a", qos, retain, dup, &props, &payload, v);
                let pkid = (qos != QoS::AtMostOnce).then_some(513);
                let p = Publish {
                    dup: dup && qos != QoS::AtMostOnce,
                    qos,
                    retain,
                    topic: s("topic/a"),
                    pkid: pkid.unwrap_or(0),
                    payload: payload.clone(),
                    props: if v == V5 {
                        props.clone()
                    } else {
                        PublishProps::default()
                    },
                };
                let full = encoded(&Packet::Publish(p.clone()), v);
                assert_eq!(
                    concat(&parts, pkid),
                    full,
                    "{v:?} {qos:?} retain={retain} dup={dup}"
                );
                assert_eq!(
                    publish_len("topic/a", qos, &props, payload.len(), v),
                    full.len()
                );
                assert_eq!(parts.wire_len(qos), full.len());
                assert_eq!(decode_all(&full, up(v)), Ok(Packet::Publish(p)));
            }
        }
        if v == V4 {
            let parts =
                encode_publish_parts("t", QoS::AtMostOnce, false, false, &props, &payload, v);
            assert!(parts.props.is_empty(), "no v5 properties on 3.1.1");
        }
    }
}

#[test]
fn publish_parts_share_the_payload_buffer() {
    let payload = Bytes::from(vec![1u8; 64]);
    let parts = encode_publish_parts(
        "t",
        QoS::AtLeastOnce,
        false,
        false,
        &PublishProps::default(),
        &payload,
        V5,
    );
    assert_eq!(parts.payload.as_ptr(), payload.as_ptr());
}

#[test]
fn decoded_payload_is_a_slice_of_the_receive_buffer() {
    let mut buf = BytesMut::from(&[0x30, 0x06, 0x00, 0x01, b't', b'a', b'b', b'c'][..]);
    let start = buf.as_ptr() as usize;
    let Ok(Some(Packet::Publish(p))) = decode(&mut buf, up(V4), MAX) else {
        panic!()
    };
    assert_eq!(p.payload.as_ptr() as usize, start + 5);
}

// ---------------------------------------------------------------------------------------------
// PUBACK, PUBREC, PUBREL, PUBCOMP
// ---------------------------------------------------------------------------------------------

#[test]
fn ack_fixtures() {
    let ack = |r| PubAck::new(10, r);
    for v in [V4, V5] {
        fixture(&[0x40, 0x02, 0x00, 0x0a], v, Packet::PubAck(ack(0))); // PUBACK packet id 10
        fixture(&[0x50, 0x02, 0x00, 0x0a], v, Packet::PubRec(ack(0))); // PUBREC
        fixture(&[0x62, 0x02, 0x00, 0x0a], v, Packet::PubRel(ack(0))); // PUBREL, flags 0010
        fixture(&[0x70, 0x02, 0x00, 0x0a], v, Packet::PubComp(ack(0))); // PUBCOMP
    }
    // v5 short form with a reason: no matching subscribers.
    fixture(
        &[0x40, 0x03, 0x00, 0x0a, 0x10],
        V5,
        Packet::PubAck(ack(0x10)),
    );
    // v5 PUBCOMP: packet identifier not found.
    fixture(
        &[0x70, 0x03, 0x00, 0x0a, 0x92],
        V5,
        Packet::PubComp(ack(0x92)),
    );
    #[rustfmt::skip]
    let with_reason_string = [
        0x40, 0x09,               // PUBACK, remaining length 9
        0x00, 0x0a,               // packet id 10
        0x87,                     // not authorized
        0x05,                     // property length 5
        0x1f, 0x00, 0x02, b'n', b'o', // reason string "no"
    ];
    let p = PubAck {
        reason_string: Some(s("no")),
        ..ack(0x87)
    };
    fixture(&with_reason_string, V5, Packet::PubAck(p));
    // v5 long form with reason 0 and empty properties decodes too (and re-encodes short).
    assert_eq!(
        decode_all(&[0x40, 0x04, 0x00, 0x0a, 0x00, 0x00], up(V5)),
        Ok(Packet::PubAck(ack(0)))
    );
    // 3.1.1 drops reason and properties.
    assert_eq!(
        encoded(
            &Packet::PubAck(PubAck {
                reason_string: Some(s("x")),
                ..ack(0x87)
            }),
            V4
        ),
        [0x40, 0x02, 0x00, 0x0a]
    );
}

#[test]
fn rejects_bad_acks() {
    malformed(&[0x40, 0x03, 0x00, 0x0a, 0x00], up(V4)); // 3.1.1 PUBACK is exactly 2 bytes
    violation(&[0x40, 0x02, 0x00, 0x00], up(V4)); // packet id 0
    malformed(&[0x40, 0x01, 0x00], up(V5)); // packet id cut short
    malformed(&[0x40, 0x03, 0x00, 0x0a, 0x92], up(V5)); // 0x92 is not a PUBACK reason
    malformed(&[0x62, 0x03, 0x00, 0x0a, 0x10], up(V5)); // 0x10 is not a PUBREL reason
    malformed(&[0x40, 0x05, 0x00, 0x0a, 0x00, 0x00, 0x00], up(V5)); // trailing byte after properties
    malformed(&[0x40, 0x06, 0x00, 0x0a, 0x00, 0x02, 0x01, 0x01], up(V5)); // payload format in PUBACK
}

// ---------------------------------------------------------------------------------------------
// SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK
// ---------------------------------------------------------------------------------------------

#[test]
fn subscribe_fixtures() {
    #[rustfmt::skip]
    let v4 = [
        0x82,                         // SUBSCRIBE, flags 0010
        0x0e,                         // remaining length 14
        0x00, 0x01,                   // packet id 1
        0x00, 0x03, b'a', b'/', b'b', // filter "a/b"
        0x01,                         // requested QoS 1
        0x00, 0x03, b'c', b'/', b'#', // filter "c/#"
        0x02,                         // requested QoS 2
    ];
    let f = |path: &str, qos| SubscribeFilter {
        path: s(path),
        qos,
        ..SubscribeFilter::default()
    };
    let p = Subscribe {
        pkid: 1,
        filters: vec![f("a/b", QoS::AtLeastOnce), f("c/#", QoS::ExactlyOnce)],
        ..Subscribe::default()
    };
    fixture(&v4, V4, Packet::Subscribe(p));

    #[rustfmt::skip]
    let v5 = [
        0x82,                         // SUBSCRIBE
        0x0b,                         // remaining length 11
        0x00, 0x01,                   // packet id 1
        0x02,                         // property length 2
        0x0b, 0x05,                   // subscription identifier 5
        0x00, 0x03, b'a', b'/', b'b', // filter "a/b"
        0x2d,                         // retain handling 2, retain as published, no local, QoS 1
    ];
    let p = Subscribe {
        pkid: 1,
        filters: vec![SubscribeFilter {
            path: s("a/b"),
            qos: QoS::AtLeastOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: 2,
        }],
        subscription_id: Some(5),
        user_properties: vec![],
    };
    fixture(&v5, V5, Packet::Subscribe(p));
}

#[test]
fn rejects_bad_subscribe() {
    violation(&[0x82, 0x02, 0x00, 0x01], up(V4)); // no filters [MQTT-3.8.3-3]
    violation(&[0x82, 0x03, 0x00, 0x01, 0x00], up(V5)); // no filters (v5, empty properties)
    violation(&[0x82, 0x06, 0x00, 0x00, 0x00, 0x01, b'a', 0x00], up(V4)); // packet id 0
    malformed(&[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x04], up(V4)); // 3.1.1 reserved option bits
    malformed(&[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x03], up(V4)); // 3.1.1 QoS 3
    malformed(
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x40],
        up(V5),
    ); // v5 reserved option bits
    violation(
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x30],
        up(V5),
    ); // retain handling 3
    violation(
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x03],
        up(V5),
    ); // v5 QoS 3
    malformed(&[0x82, 0x05, 0x00, 0x01, 0x00, 0x01, b'a'], up(V4)); // options byte missing
                                                                    // Subscription identifier twice, or 0.
    violation(
        &[
            0x82, 0x0b, 0x00, 0x01, 0x04, 0x0b, 0x01, 0x0b, 0x02, 0x00, 0x01, b'a', 0x00,
        ],
        up(V5),
    );
    violation(
        &[
            0x82, 0x09, 0x00, 0x01, 0x02, 0x0b, 0x00, 0x00, 0x01, b'a', 0x00,
        ],
        up(V5),
    );
}

#[test]
fn suback_fixtures() {
    #[rustfmt::skip]
    let v4 = [
        0x90, 0x05,  // SUBACK, remaining length 5
        0x00, 0x01,  // packet id 1
        0x00,        // granted QoS 0
        0x02,        // granted QoS 2
        0x80,        // failure
    ];
    let p = SubAck {
        pkid: 1,
        reasons: vec![0, 2, 0x80],
        ..SubAck::default()
    };
    fixture(&v4, V4, Packet::SubAck(p));
    #[rustfmt::skip]
    let v5 = [
        0x90, 0x05,  // SUBACK, remaining length 5
        0x00, 0x01,  // packet id 1
        0x00,        // property length 0
        0x01,        // granted QoS 1
        0x87,        // not authorized
    ];
    let p = SubAck {
        pkid: 1,
        reasons: vec![1, 0x87],
        ..SubAck::default()
    };
    fixture(&v5, V5, Packet::SubAck(p.clone()));
    // The v5 "not authorized" becomes the single 3.1.1 failure code.
    assert_eq!(
        encoded(&Packet::SubAck(p), V4),
        [0x90, 0x04, 0x00, 0x01, 0x01, 0x80]
    );
    malformed(&[0x90, 0x03, 0x00, 0x01, 0x87], up(V4)); // 0x87 does not exist on 3.1.1
    violation(&[0x90, 0x03, 0x00, 0x01, 0x00], up(V5)); // no reason codes
}

#[test]
fn unsubscribe_fixtures() {
    #[rustfmt::skip]
    let v4 = [
        0xa2, 0x08,                   // UNSUBSCRIBE, flags 0010, remaining length 8
        0x00, 0x02,                   // packet id 2
        0x00, 0x01, b'a',             // filter "a"
        0x00, 0x01, b'b',             // filter "b"
    ];
    let p = Unsubscribe {
        pkid: 2,
        filters: vec![s("a"), s("b")],
        ..Unsubscribe::default()
    };
    fixture(&v4, V4, Packet::Unsubscribe(p));
    #[rustfmt::skip]
    let v5 = [
        0xa2, 0x0d,                   // UNSUBSCRIBE, remaining length 13
        0x00, 0x02,                   // packet id 2
        0x07,                         // property length 7
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property k=v
        0x00, 0x01, b'a',             // filter "a"
    ];
    let p = Unsubscribe {
        pkid: 2,
        filters: vec![s("a")],
        user_properties: vec![(s("k"), s("v"))],
    };
    fixture(&v5, V5, Packet::Unsubscribe(p));
    violation(&[0xa2, 0x02, 0x00, 0x02], up(V4)); // no filters [MQTT-3.10.3-2]
    malformed(&[0xa2, 0x06, 0x00, 0x02, 0x02, 0x1f, 0x00, 0x00], up(V5)); // reason string not allowed
}

#[test]
fn unsuback_fixtures() {
    fixture(
        &[0xb0, 0x02, 0x00, 0x02],
        V4,
        Packet::UnsubAck(UnsubAck {
            pkid: 2,
            ..UnsubAck::default()
        }),
    );
    #[rustfmt::skip]
    let v5 = [
        0xb0, 0x05,  // UNSUBACK, remaining length 5
        0x00, 0x02,  // packet id 2
        0x00,        // property length 0
        0x00,        // success
        0x11,        // no subscription existed
    ];
    let p = UnsubAck {
        pkid: 2,
        reasons: vec![0x00, 0x11],
        ..UnsubAck::default()
    };
    fixture(&v5, V5, Packet::UnsubAck(p.clone()));
    assert_eq!(encoded(&Packet::UnsubAck(p), V4), [0xb0, 0x02, 0x00, 0x02]);
    malformed(&[0xb0, 0x03, 0x00, 0x02, 0x00], up(V4)); // 3.1.1 UNSUBACK has no payload
}

// ---------------------------------------------------------------------------------------------
// PINGREQ, PINGRESP, DISCONNECT, AUTH
// ---------------------------------------------------------------------------------------------

#[test]
fn ping_fixtures() {
    for v in [V4, V5] {
        fixture(&[0xc0, 0x00], v, Packet::PingReq);
        fixture(&[0xd0, 0x00], v, Packet::PingResp);
        malformed(&[0xc0, 0x01, 0x00], up(v)); // PINGREQ has no body
    }
}

#[test]
fn disconnect_short_and_long_forms() {
    fixture(&[0xe0, 0x00], V4, Packet::Disconnect(Disconnect::default()));
    malformed(&[0xe0, 0x01, 0x00], up(V4)); // 3.1.1 DISCONNECT has no body
                                            // v5 Remaining Length 0: normal disconnection.
    assert_eq!(
        decode_all(&[0xe0, 0x00], up(V5)),
        Ok(Packet::Disconnect(Disconnect::default()))
    );
    // v5 Remaining Length 1: reason only (session taken over).
    let taken = Disconnect {
        reason: 0x8e,
        ..Disconnect::default()
    };
    assert_eq!(
        decode_all(&[0xe0, 0x01, 0x8e], up(V5)),
        Ok(Packet::Disconnect(taken.clone()))
    );
    // We always write the full form (reason + empty property length).
    fixture(
        &[0xe0, 0x02, 0x8e, 0x00],
        V5,
        Packet::Disconnect(taken.clone()),
    );
    fixture(
        &[0xe0, 0x02, 0x00, 0x00],
        V5,
        Packet::Disconnect(Disconnect::default()),
    );
    #[rustfmt::skip]
    let with_props = [
        0xe0, 0x0d,                         // DISCONNECT, remaining length 13
        0x8b,                               // server shutting down
        0x0b,                               // property length 11
        0x1f, 0x00, 0x03, b'b', b'y', b'e', // reason string "bye"
        0x1c, 0x00, 0x02, b'h', b'2',       // server reference "h2"
    ];
    let d = Disconnect {
        reason: 0x8b,
        reason_string: Some(s("bye")),
        server_reference: Some(s("h2")),
        ..Disconnect::default()
    };
    fixture(&with_props, V5, Packet::Disconnect(d.clone()));
    assert_eq!(encoded(&Packet::Disconnect(d), V4), [0xe0, 0x00]);
    malformed(&[0xe0, 0x01, 0x01], up(V5)); // 0x01 is not a DISCONNECT reason
}

#[test]
fn auth_fixtures() {
    #[rustfmt::skip]
    let bytes = [
        0xf0,                   // AUTH
        0x0f,                   // remaining length 15
        0x00,                   // reason: success
        0x0d,                   // property length 13
        0x15, 0x00, 0x0a,       // authentication method, 10 bytes:
        b'O', b'A', b'U', b'T', b'H', b'2', b'-', b'J', b'W', b'T',
    ];
    let a = Auth {
        method: Some(s("OAUTH2-JWT")),
        ..Auth::default()
    };
    fixture(&bytes, V5, Packet::Auth(a));
    // Remaining Length 0: success without properties.
    fixture(&[0xf0, 0x00], V5, Packet::Auth(Auth::default()));
    #[rustfmt::skip]
    let cont = [
        0xf0, 0x15,             // AUTH, remaining length 21
        0x18,                   // continue authentication
        0x13,                   // property length 19
        0x15, 0x00, 0x0a,       // authentication method "OAUTH2-JWT"
        b'O', b'A', b'U', b'T', b'H', b'2', b'-', b'J', b'W', b'T',
        0x16, 0x00, 0x03, 0x01, 0x02, 0x03, // authentication data
    ];
    let a = Auth {
        reason: 0x18,
        method: Some(s("OAUTH2-JWT")),
        data: Some(b(&[1, 2, 3])),
        ..Auth::default()
    };
    fixture(&cont, V5, Packet::Auth(a));
    violation(&[0xf0, 0x00], up(V4)); // AUTH does not exist on 3.1.1
    malformed(&[0xf0, 0x01, 0x87], up(V5)); // 0x87 is not an AUTH reason
    violation(
        &[0xf0, 0x08, 0x18, 0x06, 0x15, 0x00, 0x00, 0x15, 0x00, 0x00],
        up(V5),
    ); // method twice
}

#[test]
#[cfg_attr(debug_assertions, should_panic(expected = "AUTH cannot be encoded"))]
fn auth_is_not_encodable_on_v4() {
    let mut out = BytesMut::new();
    encode(&Packet::Auth(Auth::default()), V4, &mut out);
    assert!(out.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Framing: flags, lengths, limits, order
// ---------------------------------------------------------------------------------------------

#[test]
fn rejects_wrong_fixed_header_flags_for_every_type() {
    // Every type except PUBLISH, with each flag nibble other than its fixed one.
    for kind in 1u8..=15 {
        if kind == 3 {
            continue;
        }
        let fixed = if matches!(kind, 6 | 8 | 10) {
            0b0010
        } else {
            0
        };
        let version = if kind == 1 { None } else { up(V5) };
        for flags in 0u8..16 {
            let mut buf = BytesMut::from(&[kind << 4 | flags][..]);
            let r = decode(&mut buf, version, MAX);
            if flags == fixed {
                assert_eq!(
                    r,
                    Ok(None),
                    "type {kind} flags {flags:04b} needs more bytes"
                );
            } else {
                assert!(
                    matches!(r, Err(CodecError::Malformed(_))),
                    "type {kind} flags {flags:04b}: {r:?}"
                );
            }
        }
    }
    malformed(&[0x00, 0x00], up(V4)); // reserved type 0
    malformed(&[0x00], None);
    malformed(&[0x60, 0x02, 0x00, 0x01], up(V4)); // PUBREL with flags 0000
    malformed(&[0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00], up(V4)); // SUBSCRIBE 0000
    malformed(&[0xa0, 0x05, 0x00, 0x01, 0x00, 0x01, b'a'], up(V4)); // UNSUBSCRIBE 0000
    malformed(&[0x41, 0x02, 0x00, 0x01], up(V4)); // PUBACK 0001
}

#[test]
fn publish_flag_combinations() {
    for flags in 0u8..16 {
        let qos = (flags >> 1) & 3;
        let dup = flags & 8 != 0;
        let mut buf = BytesMut::from(&[0x30 | flags][..]);
        let r = decode(&mut buf, up(V4), MAX);
        if qos == 3 || (qos == 0 && dup) {
            assert!(
                matches!(r, Err(CodecError::Malformed(_))),
                "flags {flags:04b}"
            );
        } else {
            assert_eq!(r, Ok(None), "flags {flags:04b}");
        }
    }
}

#[test]
fn remaining_length_of_five_bytes_is_malformed() {
    malformed(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01], up(V4));
    malformed(&[0x30, 0x80, 0x80, 0x80, 0x80], up(V4)); // known at the 4th length byte
                                                        // Non-minimal encoding of 0 [MQTT-1.5.5-1].
    malformed(&[0xc0, 0x80, 0x00], up(V4));
    // Four bytes is the maximum and fine (waits for the bytes).
    let mut buf = BytesMut::from(&[0x30, 0xff, 0xff, 0xff, 0x7f][..]);
    assert_eq!(decode(&mut buf, up(V4), usize::MAX), Ok(None));
}

#[test]
fn packet_too_large_is_known_from_the_header_alone() {
    // PUBLISH declaring 1000 bytes of remaining length, only 3 bytes buffered.
    let mut buf = BytesMut::from(&[0x30, 0xe8, 0x07][..]);
    assert_eq!(
        decode(&mut buf, up(V4), 1002),
        Err(CodecError::PacketTooLarge)
    );
    // The limit counts the whole packet: 1 + 2 + 1000 = 1003 fits exactly.
    assert_eq!(decode(&mut buf, up(V4), 1003), Ok(None));
    assert_eq!(buf.len(), 3, "nothing consumed while waiting");
    // The header's first byte alone is not enough to judge.
    let mut one = BytesMut::from(&[0x30][..]);
    assert_eq!(decode(&mut one, up(V4), 1), Ok(None));
    assert_eq!(
        CodecError::PacketTooLarge.reason(),
        ReasonCode::PacketTooLarge
    );
}

#[test]
fn first_packet_must_be_connect_and_only_once() {
    assert_eq!(
        decode_all(&[0xc0, 0x00], None),
        Err(CodecError::ProtocolViolation(
            "first packet must be CONNECT"
        ))
    );
    let mut buf = BytesMut::from(&[0x30][..]); // detected from the first byte
    assert!(matches!(
        decode(&mut buf, None, MAX),
        Err(CodecError::ProtocolViolation(_))
    ));
    let connect = encoded(
        &Packet::Connect(Connect {
            client_id: s("c"),
            ..Connect::default()
        }),
        V4,
    );
    violation(&connect, up(V4));
    violation(&connect, up(V5));
}

#[test]
fn error_reasons_map_to_v5_codes() {
    assert_eq!(
        CodecError::Malformed("x").reason(),
        ReasonCode::MalformedPacket
    );
    assert_eq!(
        CodecError::ProtocolViolation("x").reason(),
        ReasonCode::ProtocolError
    );
}

// ---------------------------------------------------------------------------------------------
// Round trips, partial buffers, streams
// ---------------------------------------------------------------------------------------------

/// One of each packet, using only fields `v` can carry (so decode(encode(p)) == p).
fn samples(v: ProtocolVersion) -> Vec<Packet> {
    let v5 = v == V5;
    let users = if v5 { vec![(s("k"), s("v"))] } else { vec![] };
    let reason_string = v5.then(|| s("why"));
    let props = if v5 {
        PublishProps {
            payload_format: Some(0),
            message_expiry: Some(9),
            response_topic: Some(s("r")),
            correlation_data: Some(b(b"c")),
            user_properties: users.clone(),
            content_type: Some(s("t")),
            ..PublishProps::default()
        }
    } else {
        PublishProps::default()
    };
    let ack = |pkid, reason| PubAck {
        pkid,
        reason: if v5 { reason } else { 0 },
        reason_string: reason_string.clone(),
        user_properties: users.clone(),
    };
    vec![
        Packet::Connect(Connect {
            protocol: Some(v),
            clean_start: false,
            keep_alive: 300,
            client_id: s("client-é"),
            username: Some(s("")),
            password: Some(b(b"secret")),
            will: Some(LastWill {
                topic: s("will/t"),
                payload: Bytes::new(),
                qos: QoS::ExactlyOnce,
                retain: false,
                delay: v5.then_some(30),
                props: props.clone(),
            }),
            props: if v5 {
                ConnectProps {
                    session_expiry: Some(u32::MAX),
                    receive_maximum: Some(20),
                    max_packet_size: Some(65536),
                    topic_alias_max: Some(5),
                    request_response_info: Some(1),
                    request_problem_info: Some(0),
                    user_properties: users.clone(),
                    auth_method: Some(s("m")),
                    auth_data: Some(b(b"d")),
                }
            } else {
                ConnectProps::default()
            },
        }),
        Packet::ConnAck(ConnAck {
            session_present: true,
            code: 0,
            props: if v5 {
                ConnAckProps {
                    session_expiry: Some(1),
                    receive_maximum: Some(2),
                    max_qos: Some(1),
                    retain_available: Some(false),
                    max_packet_size: Some(4),
                    assigned_client_id: Some(s("gen")),
                    topic_alias_max: Some(6),
                    reason_string: reason_string.clone(),
                    user_properties: users.clone(),
                    wildcard_sub_available: Some(false),
                    sub_ids_available: Some(true),
                    shared_sub_available: Some(false),
                    server_keep_alive: Some(7),
                    response_info: Some(s("ri")),
                    server_reference: Some(s("sr")),
                    auth_method: Some(s("m")),
                    auth_data: Some(b(b"x")),
                }
            } else {
                ConnAckProps::default()
            },
        }),
        Packet::Publish(Publish {
            topic: s("a"),
            payload: b(b"zero"),
            props: props.clone(),
            ..Publish::default()
        }),
        Packet::Publish(Publish {
            dup: true,
            qos: QoS::AtLeastOnce,
            retain: true,
            topic: s("a/b/c"),
            pkid: 65535,
            payload: Bytes::from(vec![0xa5; 200]),
            props: props.clone(),
        }),
        Packet::PubAck(ack(1, 0x10)),
        Packet::PubAck(PubAck::new(2, 0)),
        Packet::PubRec(ack(3, 0x80)),
        Packet::PubRel(ack(4, 0x92)),
        Packet::PubComp(ack(5, 0)),
        Packet::Subscribe(Subscribe {
            pkid: 6,
            filters: vec![
                SubscribeFilter {
                    path: s("x/+"),
                    qos: QoS::ExactlyOnce,
                    ..SubscribeFilter::default()
                },
                SubscribeFilter {
                    path: s("y"),
                    qos: QoS::AtMostOnce,
                    no_local: v5,
                    retain_as_published: v5,
                    retain_handling: if v5 { 1 } else { 0 },
                },
            ],
            subscription_id: v5.then_some(300),
            user_properties: users.clone(),
        }),
        Packet::SubAck(SubAck {
            pkid: 6,
            reasons: vec![2, 0, 0x80],
            reason_string: reason_string.clone(),
            user_properties: users.clone(),
        }),
        Packet::Unsubscribe(Unsubscribe {
            pkid: 7,
            filters: vec![s("x/+"), s("y")],
            user_properties: users.clone(),
        }),
        Packet::UnsubAck(UnsubAck {
            pkid: 7,
            reasons: if v5 { vec![0, 0x11] } else { vec![] },
            reason_string: reason_string.clone(),
            user_properties: users.clone(),
        }),
        Packet::PingReq,
        Packet::PingResp,
        Packet::Disconnect(if v5 {
            Disconnect {
                reason: 0x04,
                session_expiry: Some(0),
                reason_string: reason_string.clone(),
                user_properties: users.clone(),
                server_reference: Some(s("other")),
            }
        } else {
            Disconnect::default()
        }),
    ]
    .into_iter()
    .chain(v5.then(|| {
        Packet::Auth(Auth {
            reason: 0x19,
            method: Some(s("m")),
            data: Some(b(b"d")),
            reason_string: reason_string.clone(),
            user_properties: users.clone(),
        })
    }))
    .collect()
}

fn version_for(p: &Packet, v: ProtocolVersion) -> Option<ProtocolVersion> {
    if matches!(p, Packet::Connect(_)) {
        None
    } else {
        Some(v)
    }
}

#[test]
fn every_packet_round_trips_in_both_versions() {
    for v in [V4, V5] {
        for p in samples(v) {
            let bytes = encoded(&p, v);
            assert_eq!(
                decode_all(&bytes, version_for(&p, v)),
                Ok(p.clone()),
                "{v:?} {bytes:02x?}"
            );
        }
    }
}

#[test]
fn every_split_point_waits_then_yields_the_same_packet() {
    for v in [V4, V5] {
        for p in samples(v) {
            let bytes = encoded(&p, v);
            let version = version_for(&p, v);
            for cut in 0..bytes.len() {
                let mut buf = BytesMut::from(&bytes[..cut]);
                assert_eq!(
                    decode(&mut buf, version, MAX),
                    Ok(None),
                    "{p:?} cut at {cut}"
                );
                assert_eq!(
                    buf.len(),
                    cut,
                    "nothing consumed before the packet is whole"
                );
                buf.extend_from_slice(&bytes[cut..]);
                assert_eq!(
                    decode(&mut buf, version, MAX),
                    Ok(Some(p.clone())),
                    "cut at {cut}"
                );
                assert!(buf.is_empty());
            }
        }
    }
}

#[test]
fn a_stream_fed_byte_by_byte_yields_every_packet_in_order() {
    for v in [V4, V5] {
        let packets = samples(v);
        let mut wire = Vec::new();
        for p in &packets {
            wire.extend_from_slice(&encoded(p, v));
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut version = None;
        for byte in wire {
            buf.extend_from_slice(&[byte]);
            while let Some(p) = decode(&mut buf, version, MAX).expect("valid stream") {
                if let Packet::Connect(c) = &p {
                    version = c.protocol;
                }
                got.push(p);
            }
        }
        assert_eq!(got, packets);
        assert!(buf.is_empty());
    }
}

#[test]
fn large_remaining_lengths_use_multi_byte_encoding() {
    for len in [127usize, 128, 16_383, 16_384, 2_097_152] {
        let p = Packet::Publish(Publish {
            topic: s("t"),
            payload: Bytes::from(vec![0; len]),
            ..Publish::default()
        });
        let bytes = encoded(&p, V4);
        let remaining = 3 + len;
        let header = match remaining {
            0..=127 => 2,
            128..=16_383 => 3,
            16_384..=2_097_151 => 4,
            _ => 5,
        };
        assert_eq!(bytes.len(), header + remaining);
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(decode(&mut buf, up(V4), usize::MAX), Ok(Some(p)));
    }
}

// ---------------------------------------------------------------------------------------------
// Garbage never panics
// ---------------------------------------------------------------------------------------------

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len());
        match rng.below(6) {
            0 if !bytes.is_empty() => bytes[at] ^= 1 << rng.below(8),
            1 if !bytes.is_empty() => bytes[at] = rng.next() as u8,
            2 => bytes.truncate(at),
            3 => bytes.insert(at.min(bytes.len()), rng.next() as u8),
            4 if !bytes.is_empty() => {
                bytes.remove(at);
            }
            _ => {
                let extra: Vec<u8> = (0..rng.below(8)).map(|_| rng.next() as u8).collect();
                bytes.extend_from_slice(&extra);
            }
        }
    }
    bytes
}

#[test]
fn mutated_packets_never_panic_and_what_decodes_re_encodes_faithfully() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let corpus: Vec<(ProtocolVersion, Vec<u8>)> = [V4, V5]
        .into_iter()
        .flat_map(|v| samples(v).into_iter().map(move |p| (v, encoded(&p, v))))
        .collect();
    let mut decoded = 0;
    for round in 0..40_000 {
        let (v, base) = &corpus[rng.below(corpus.len())];
        let bytes = if round % 10 == 0 {
            (0..rng.below(40)).map(|_| rng.next() as u8).collect()
        } else {
            mutate(&mut rng, base.clone())
        };
        let mut version = if bytes.first().map(|b| b >> 4) == Some(1) {
            None
        } else {
            Some(*v)
        };
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(p)) = decode(&mut buf, version, 4096) {
            decoded += 1;
            if let Packet::Connect(c) = &p {
                version = c.protocol;
            }
            let Some(ver) = version else {
                panic!("CONNECT without a version: {p:?}")
            };
            // Whatever we accept, we can write back and read again identically.
            let again = encoded(&p, ver);
            let mut rb = BytesMut::from(&again[..]);
            let in_ver = if matches!(p, Packet::Connect(_)) {
                None
            } else {
                Some(ver)
            };
            assert_eq!(
                decode(&mut rb, in_ver, usize::MAX),
                Ok(Some(p.clone())),
                "from {bytes:02x?}"
            );
        }
    }
    assert!(
        decoded > 1000,
        "the mutations should still decode often ({decoded})"
    );
}

// ---------------------------------------------------------------------------------------------
// mqttbytes as an independent oracle, for the packets it reads correctly
// ---------------------------------------------------------------------------------------------

#[test]
fn mqttbytes_reads_our_v4_packets() {
    use mqttbytes::v4;
    let bytes = encoded(&samples(V4)[0], V4);
    let Ok(v4::Packet::Connect(c)) = v4::read(&mut BytesMut::from(&bytes[..]), MAX) else {
        panic!()
    };
    assert_eq!(
        (c.keep_alive, c.client_id.as_str(), c.clean_session),
        (300, "client-é", false)
    );
    let Some(will) = c.last_will else {
        panic!("will")
    };
    assert_eq!(
        (will.topic.as_str(), will.qos),
        ("will/t", mqttbytes::QoS::ExactlyOnce)
    );

    let bytes = encoded(&samples(V4)[3], V4);
    let Ok(v4::Packet::Publish(p)) = v4::read(&mut BytesMut::from(&bytes[..]), MAX) else {
        panic!()
    };
    assert_eq!(
        (p.dup, p.retain, p.pkid, p.topic.as_str(), p.payload.len()),
        (true, true, 65535, "a/b/c", 200)
    );

    let bytes = encoded(&samples(V4)[9], V4);
    let Ok(v4::Packet::Subscribe(sub)) = v4::read(&mut BytesMut::from(&bytes[..]), MAX) else {
        panic!()
    };
    assert_eq!(sub.pkid, 6);
    assert_eq!(
        sub.filters
            .iter()
            .map(|f| f.path.as_str())
            .collect::<Vec<_>>(),
        ["x/+", "y"]
    );
}

#[test]
fn we_read_mqttbytes_v5_packets() {
    use mqttbytes::v5;
    let mut publish = v5::Publish::new("a/b", mqttbytes::QoS::AtLeastOnce, b"hello".to_vec());
    publish.pkid = 9;
    publish.properties = Some(v5::PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(60),
        topic_alias: None,
        response_topic: Some(s("resp")),
        correlation_data: Some(b(b"cd")),
        user_properties: vec![(s("u"), s("v"))],
        subscription_identifiers: vec![],
        content_type: Some(s("text/plain")),
    });
    let mut out = BytesMut::new();
    publish.write(&mut out).expect("mqttbytes encodes");
    let Ok(Packet::Publish(p)) = decode_all(&out, up(V5)) else {
        panic!()
    };
    assert_eq!(
        (p.pkid, p.topic.as_str(), &p.payload[..]),
        (9, "a/b", &b"hello"[..])
    );
    assert_eq!(p.props.response_topic.as_deref(), Some("resp"));
    assert_eq!(p.props.content_type.as_deref(), Some("text/plain"));
    assert_eq!(p.props.user_properties, vec![(s("u"), s("v"))]);

    let mut sub = v5::Subscribe::new("c/#", mqttbytes::QoS::ExactlyOnce);
    sub.pkid = 3;
    let mut out = BytesMut::new();
    sub.write(&mut out).expect("mqttbytes encodes");
    let Ok(Packet::Subscribe(sub)) = decode_all(&out, up(V5)) else {
        panic!()
    };
    assert_eq!(
        (sub.pkid, sub.filters[0].path.as_str(), sub.filters[0].qos),
        (3, "c/#", QoS::ExactlyOnce)
    );

    let mut out = BytesMut::new();
    v5::PubAck::new(77)
        .write(&mut out)
        .expect("mqttbytes encodes");
    assert_eq!(
        decode_all(&out, up(V5)),
        Ok(Packet::PubAck(PubAck::new(77, 0)))
    );
}
