//! Thread-per-core routing: with `workers = 2` and SO_REUSEPORT, connections spread over both
//! workers. These tests first prove, through the per-worker `hubmq_connections` gauge, that
//! both workers hold subscribers, then check that one publish reaches every subscriber, so a
//! message necessarily crossed from one worker to the other.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::harness::{wait_until, Broker};
use crate::rq::{qos::*, v4_opts, v5_opts, Via, V4, V5};

const ROLES: [&str; 2] = ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"];

/// Waits until the gauge counts exactly `total` connections and returns it per worker.
fn settled_gauge(b: &Broker, total: usize) -> BTreeMap<String, f64> {
    let mut last = BTreeMap::new();
    tokio::task::block_in_place(|| {
        wait_until(
            &format!("hubmq_connections to sum to {total}"),
            Duration::from_secs(15),
            || {
                last = b.connections_per_worker();
                last.values().sum::<f64>() == total as f64
            },
        )
    });
    last
}

fn both_workers_busy(per_worker: &BTreeMap<String, f64>) -> bool {
    ["0", "1"]
        .iter()
        .all(|w| per_worker.get(*w).is_some_and(|n| *n > 0.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_reaches_subscribers_on_both_workers() {
    let b = Broker::start();
    let t = b.token("chat", None, &ROLES, &[]);
    let mut v4s: Vec<V4> = Vec::new();
    let mut v5s: Vec<V5> = Vec::new();
    let mut target = 16;
    let per_worker = loop {
        while v4s.len() + v5s.len() < target {
            let n = v4s.len() + v5s.len();
            // Mix versions and transports: every kind of connection must be reachable.
            let via = [Via::Tcp, Via::WsQuery, Via::WsHeader][n % 3];
            if n & 1 == 0 {
                let mut c =
                    V4::connect(v4_opts(&b, via, &format!("sub{n}"), "chat", Some(&t))).await;
                c.subscribe("everyone", Q1).await;
                v4s.push(c);
            } else {
                let mut c =
                    V5::connect(v5_opts(&b, via, &format!("sub{n}"), "chat", Some(&t))).await;
                c.subscribe("everyone", V5Q1).await;
                v5s.push(c);
            }
        }
        let per_worker = settled_gauge(&b, target);
        if both_workers_busy(&per_worker) {
            break per_worker;
        }
        // The kernel hashes connections onto listeners; 16 all on one is unlikely, 64 is not
        // going to happen unless the broker runs one worker.
        assert!(
            target < 64,
            "all {target} connections on one worker: {per_worker:?}"
        );
        target += 16;
    };
    eprintln!("connections per worker: {per_worker:?}");

    let p5 = V5::connect(v5_opts(&b, Via::Tcp, "pub5", "chat", Some(&t))).await;
    let p4 = V4::connect(v4_opts(&b, Via::WsQuery, "pub4", "chat", Some(&t))).await;
    // MQTT orders messages per publisher only, and the two publishers may sit on different
    // workers: every subscriber must have the first message before the second is published.
    for (publish_second, want) in [(false, &b"fan-out-1"[..]), (true, &b"fan-out-2"[..])] {
        if publish_second {
            p4.publish("everyone", Q0, want).await;
        } else {
            p5.publish("everyone", V5Q1, want).await;
        }
        for (i, s) in v4s.iter_mut().enumerate() {
            let m = s.recv().await;
            assert_eq!(
                (m.topic.as_str(), &m.payload[..]),
                ("everyone", want),
                "v4 subscriber {i}"
            );
        }
        for (i, s) in v5s.iter_mut().enumerate() {
            let m = s.recv().await;
            assert_eq!(
                (&m.topic[..], &m.payload[..]),
                (&b"everyone"[..], want),
                "v5 subscriber {i}"
            );
        }
    }

    // Every worker lets go of its connections: the gauge returns to zero.
    drop(p5);
    drop(p4);
    for c in v4s {
        c.disconnect().await;
    }
    for c in v5s {
        c.kill();
    }
    settled_gauge(&b, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_from_tokens_and_qos2_cross_workers() {
    let b = Broker::start();
    // Subscribers join through the token only, over 3.1.1 TCP.
    let member = b.token("chat", None, &[], &["tokgroup"]);
    let mut subs = Vec::new();
    let mut target = 16;
    loop {
        while subs.len() < target {
            let n = subs.len();
            subs.push(
                V4::connect(v4_opts(
                    &b,
                    Via::Tcp,
                    &format!("m{n}"),
                    "chat",
                    Some(&member),
                ))
                .await,
            );
        }
        if both_workers_busy(&settled_gauge(&b, target)) {
            break;
        }
        assert!(target < 64, "all {target} connections on one worker");
        target += 16;
    }
    let t = b.token("chat", None, &ROLES, &[]);
    let mut p = V5::connect(v5_opts(&b, Via::WsHeader, "p", "chat", Some(&t))).await;
    p.publish("tokgroup", V5Q2, b"exactly-once-everywhere")
        .await;
    p.next_where("PUBCOMP", |pk| match pk {
        rumqttc::v5::mqttbytes::v5::Packet::PubComp(c) => Some(c.pkid),
        _ => None,
    })
    .await;
    for s in subs.iter_mut() {
        let m = s.recv().await;
        // No SUBSCRIBE granted a QoS for a token-joined group, so the delivered QoS is the
        // broker's choice; only the payload is checked.
        assert_eq!(&m.payload[..], b"exactly-once-everywhere");
    }
}
