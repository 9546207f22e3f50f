//! The worker's session and delivery rules without sockets: connections are bare
//! `ConnHandle`s whose outbound queue the tests read, and time is a manual clock moved by hand
//! and passed to `tick`.

use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use hubmq_core::ids::{GroupId, HubId, SessionIdx, WorkerId};
use hubmq_core::limits::Limits;
use hubmq_core::message::Message;
use hubmq_core::mqtt::{LastWill, ProtocolVersion, PublishProps, QoS, ReasonCode};
use hubmq_core::perm::{BitSet, Permissions};
use hubmq_core::session::{OutItem, SubOpts};
use hubmq_metrics::{DisconnectReason, DropReason};

use super::{ConnHandle, Out, SessionExt, Shared, Transport, WillSpec, Worker};
use crate::clock::Clock;
use crate::mesh::Mesh;
use crate::registry::{GroupShared, Registry};
use crate::settings::Settings;

const HUB: HubId = HubId(0);

fn settings(workers: usize, limits: Limits) -> Settings {
    Settings {
        workers,
        listeners: Vec::new(),
        limits,
        keys: Arc::default(),
        public_endpoints: Vec::new(),
        hubs: HashMap::new(),
        strict_hubs: false,
        connect_timeout: Duration::from_millis(50),
        token_skew_secs: 0,
        max_http_head: 8192,
        max_connections: 1000,
        metrics_path: "/metrics".into(),
        metrics: None,
        upstream: Default::default(),
        eventgrid: Vec::new(),
    }
}

fn shared(workers: usize, limits: Limits) -> Arc<Shared> {
    let settings = settings(workers, limits);
    let control = crate::lifecycle::Control::new(
        workers,
        crate::lifecycle::AuthSettings {
            keys: settings.keys.clone(),
            hubs: settings.hubs.clone(),
        },
    );
    Arc::new(Shared {
        settings,
        registry: Registry::default(),
        mesh: Mesh::new(workers),
        serial: AtomicU64::new(0),
        shutting_down: AtomicBool::new(false),
        clock: Clock::manual(0),
        control,
        upstream: None,
        eventgrid: HashMap::new(),
    })
}

fn worker() -> Rc<Worker> {
    Rc::new(Worker::new(WorkerId(0), shared(1, Limits::default())))
}

fn all() -> Permissions {
    Permissions {
        send_any: true,
        join_any: true,
        send: BitSet::new(),
        join: BitSet::new(),
    }
}

/// Polls a future that must not wait (every same-worker `attach` completes at once).
fn now<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("waited where nothing should"),
    }
}

struct Client {
    conn: Rc<ConnHandle>,
    idx: SessionIdx,
    present: bool,
}

fn connect(w: &Rc<Worker>, id: &str, clean: bool, expiry: u32, receive_max: u16) -> Client {
    connect_as(w, id, clean, expiry, receive_max, all())
}

fn connect_as(
    w: &Rc<Worker>,
    id: &str,
    clean: bool,
    expiry: u32,
    receive_max: u16,
    perms: Permissions,
) -> Client {
    let conn = Rc::new(ConnHandle::new(w.shared.next_serial(), Transport::Tcp));
    conn.version.set(ProtocolVersion::V5);
    let a = now(w.attach(
        (HUB, id.into()),
        clean,
        expiry,
        None,
        SessionExt::web_pubsub(perms),
        conn.clone(),
        receive_max,
    ));
    Client {
        conn,
        idx: a.idx,
        present: a.session_present,
    }
}

fn join(w: &Worker, c: &Client, group: &str, qos: QoS, no_local: bool) -> Arc<GroupShared> {
    let g = w.group(HUB, group);
    w.subscribe(c.idx, &g, SubOpts { qos, no_local });
    g
}

fn message(
    g: &GroupShared,
    payload: &'static str,
    qos: QoS,
    origin: u64,
    now: u64,
) -> Arc<Message> {
    Arc::new(Message::new(
        g.name.clone(),
        Bytes::from_static(payload.as_bytes()),
        PublishProps::default(),
        qos,
        origin,
        now,
    ))
}

fn serial(w: &Worker, c: &Client) -> u64 {
    w.with_slot(c.idx, |s| s.session.serial).unwrap_or(0)
}

/// The PUBLISHes queued for a connection: (payload, QoS, packet id).
fn publishes(c: &Client) -> Vec<(String, QoS, u16)> {
    c.conn
        .out
        .borrow()
        .iter()
        .filter_map(|o| match o {
            Out::Item(OutItem::Publish { msg, qos, pkid, .. }) => Some((
                String::from_utf8_lossy(&msg.payload).into_owned(),
                *qos,
                *pkid,
            )),
            _ => None,
        })
        .collect()
}

fn set_will(w: &Worker, c: &Client, topic: &str, delay_secs: u32) {
    w.with_slot(c.idx, |s| {
        s.will = Some(WillSpec {
            will: LastWill {
                topic: topic.into(),
                payload: Bytes::from_static(b"gone"),
                qos: QoS::AtLeastOnce,
                retain: false,
                delay: Some(delay_secs),
                props: PublishProps::default(),
            },
            delay_secs,
        })
    });
}

/// `a` (keeping its session `expiry` seconds) has a will to "status" after `delay_secs`;
/// `b` watches "status".
fn will_watch(w: &Rc<Worker>, a: Client, delay_secs: u32) -> (Client, Client) {
    let b = connect(w, "b", true, 0, 10);
    join(w, &b, "status", QoS::AtLeastOnce, false);
    set_will(w, &a, "status", delay_secs);
    (a, b)
}

#[test]
fn a_publish_reaches_every_member_but_a_no_local_publisher() {
    let w = worker();
    let a = connect(&w, "a", true, 0, 10);
    let b = connect(&w, "b", true, 0, 10);
    let g = join(&w, &a, "g", QoS::AtMostOnce, true);
    join(&w, &b, "g", QoS::AtMostOnce, false);
    w.publish(&g, message(&g, "hi", QoS::AtMostOnce, serial(&w, &a), 0));
    assert!(publishes(&a).is_empty(), "No Local [MQTT-3.8.3-3]");
    assert_eq!(publishes(&b), vec![("hi".into(), QoS::AtMostOnce, 0)]);
}

#[test]
fn subscribing_again_replaces_the_subscription_and_delivers_one_copy() {
    let w = worker();
    let a = connect(&w, "a", true, 0, 10);
    let g = join(&w, &a, "g", QoS::AtMostOnce, false);
    join(&w, &a, "g", QoS::AtLeastOnce, false);
    w.publish(&g, message(&g, "x", QoS::AtLeastOnce, 0, 0));
    let got = publishes(&a);
    assert_eq!(got.len(), 1, "one copy per session [MQTT-3.3.4-2]");
    assert_eq!(
        got[0].1,
        QoS::AtLeastOnce,
        "at the QoS of the new subscription"
    );
}

#[test]
fn a_delayed_will_fires_when_its_delay_ran_out() {
    let w = worker();
    let (a, b) = will_watch(&w, connect(&w, "a", false, 60, 10), 5);
    w.detach(a.idx, a.conn.id, true);
    assert!(publishes(&b).is_empty(), "not at disconnect");
    w.shared.clock.advance(4_999);
    w.tick(w.now_ms());
    assert!(publishes(&b).is_empty(), "not before the delay");
    w.shared.clock.advance(1);
    w.tick(w.now_ms());
    assert_eq!(publishes(&b).len(), 1, "at the delay [MQTT-3.1.3-9]");
    w.tick(w.now_ms() + 10_000);
    assert_eq!(publishes(&b).len(), 1, "only once");
}

#[test]
fn reconnecting_within_the_will_delay_cancels_the_will() {
    let w = worker();
    let (a, b) = will_watch(&w, connect(&w, "a", false, 60, 10), 5);
    w.detach(a.idx, a.conn.id, true);
    w.shared.clock.advance(2_000);
    let again = connect(&w, "a", false, 60, 10);
    assert!(again.present, "the session was kept");
    w.shared.clock.advance(10_000);
    w.tick(w.now_ms());
    assert!(
        publishes(&b).is_empty(),
        "[MQTT-3.1.3-9]: no will after a reconnect"
    );
}

#[test]
fn a_will_needs_permission_to_send_to_its_group() {
    let w = worker();
    let none = Permissions {
        join_any: true,
        ..Permissions::default()
    };
    let (a, b) = will_watch(&w, connect_as(&w, "a", true, 0, 10, none), 0);
    w.detach(a.idx, a.conn.id, true);
    assert!(
        publishes(&b).is_empty(),
        "no webpubsub.sendToGroup, no will"
    );
    assert_eq!(w.counters.borrow().dropped[DropReason::Denied.index()], 1);
}

#[test]
fn a_clean_disconnect_publishes_no_will() {
    let w = worker();
    let (a, b) = will_watch(&w, connect(&w, "a", true, 0, 10), 0);
    w.detach(a.idx, a.conn.id, false);
    w.tick(w.now_ms() + 1_000);
    assert!(publishes(&b).is_empty(), "[MQTT-3.1.2-10]");
    let c = w.counters.borrow();
    assert_eq!(c.disconnects[DisconnectReason::Client.index()], 1);
}

#[test]
fn an_offline_session_keeps_its_messages_until_it_expires() {
    let w = worker();
    let a = connect(&w, "a", false, 10, 10);
    let g = join(&w, &a, "g", QoS::AtLeastOnce, false);
    w.detach(a.idx, a.conn.id, false);
    w.publish(&g, message(&g, "while away", QoS::AtLeastOnce, 0, 0));
    w.publish(&g, message(&g, "qos0 is not kept", QoS::AtMostOnce, 0, 0));
    w.shared.clock.advance(9_999);
    w.tick(w.now_ms());
    let back = connect(&w, "a", false, 10, 10);
    assert!(back.present);
    w.session_io(back.idx, |s, now, out| s.resume(now, out));
    assert_eq!(
        publishes(&back),
        vec![("while away".into(), QoS::AtLeastOnce, 1)]
    );

    w.detach(back.idx, back.conn.id, false);
    w.shared.clock.advance(10_000);
    w.tick(w.now_ms());
    assert_eq!(
        w.counters.borrow().sessions,
        0,
        "expired after 10 s offline"
    );
    let fresh = connect(&w, "a", false, 10, 10);
    assert!(!fresh.present);
}

#[test]
fn a_second_connect_takes_the_session_over() {
    let w = worker();
    let first = connect(&w, "a", false, 60, 10);
    let g = join(&w, &first, "g", QoS::AtLeastOnce, false);
    let second = connect(&w, "a", false, 60, 10);
    assert!(second.present);
    assert_eq!(second.idx, first.idx, "same session");
    assert!(first.conn.closing.get());
    assert_eq!(
        first.conn.end_reason.get(),
        Some(ReasonCode::SessionTakenOver)
    );
    // The old reader ends later; its detach must not end the session now owned by `second`.
    w.detach(first.idx, first.conn.id, true);
    w.publish(&g, message(&g, "to the new one", QoS::AtLeastOnce, 0, 0));
    assert_eq!(publishes(&second).len(), 1);
    assert!(publishes(&first).is_empty());
    let c = w.counters.borrow();
    assert_eq!(c.disconnects[DisconnectReason::TakenOver.index()], 1);
    assert_eq!(c.sessions, 1);
}

#[test]
fn a_clean_start_takeover_discards_the_old_session() {
    let w = worker();
    let first = connect(&w, "a", false, 60, 10);
    let g = join(&w, &first, "g", QoS::AtLeastOnce, false);
    let second = connect(&w, "a", true, 60, 10);
    assert!(!second.present);
    w.publish(&g, message(&g, "m", QoS::AtLeastOnce, 0, 0));
    assert!(
        publishes(&second).is_empty(),
        "the subscription went with the old session"
    );
}

#[test]
fn the_receive_window_holds_deliveries_until_acknowledged() {
    let w = worker();
    let a = connect(&w, "a", true, 0, 2);
    let g = join(&w, &a, "g", QoS::AtLeastOnce, false);
    for p in ["1", "2", "3"] {
        w.publish(&g, message(&g, p, QoS::AtLeastOnce, 0, 0));
    }
    let sent = publishes(&a);
    assert_eq!(sent.len(), 2, "Receive Maximum 2 [MQTT-3.3.4-9]");
    w.session_io(a.idx, |s, now, out| s.on_puback(sent[0].2, now, out));
    let sent = publishes(&a);
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[2].0, "3");
}

#[test]
fn a_slow_reader_loses_qos0_and_is_disconnected_when_its_session_queue_overflows() {
    let limits = Limits {
        outbound_queue_bytes: 100,
        session_queue_messages: 2,
        ..Limits::default()
    };
    let w = Rc::new(Worker::new(WorkerId(0), shared(1, limits)));
    let a = connect(&w, "a", true, 0, 1);
    let g = join(&w, &a, "g", QoS::AtLeastOnce, false);
    let payload = "0123456789012345678901234567890123456789012345678901234567890123";
    for _ in 0..4 {
        w.publish(&g, message(&g, payload, QoS::AtMostOnce, 0, 0));
    }
    let dropped = w.counters.borrow().dropped[DropReason::QueueFull.index()];
    assert!(dropped >= 1, "QoS 0 past outbound_queue_bytes is dropped");
    assert!(!a.conn.closing.get(), "QoS 0 drops never disconnect");
    // Window 1 + queue 2 hold three QoS 1 messages; the fourth overflows the session.
    for _ in 0..4 {
        w.publish(&g, message(&g, "q1", QoS::AtLeastOnce, 0, 0));
    }
    assert!(a.conn.closing.get());
    assert_eq!(a.conn.end_reason.get(), Some(ReasonCode::QuotaExceeded));
    assert_eq!(
        w.counters.borrow().dropped[DropReason::SessionQueueFull.index()],
        1
    );
}

#[test]
fn an_expired_message_is_not_delivered() {
    let w = worker();
    let a = connect(&w, "a", false, 60, 10);
    let g = join(&w, &a, "g", QoS::AtLeastOnce, false);
    w.detach(a.idx, a.conn.id, false);
    let mut m = Message::new(
        g.name.clone(),
        Bytes::from_static(b"short-lived"),
        PublishProps {
            message_expiry: Some(2),
            ..PublishProps::default()
        },
        QoS::AtLeastOnce,
        0,
        w.now_ms(),
    );
    m.retain = false;
    w.publish(&g, Arc::new(m));
    w.shared.clock.advance(3_000);
    let back = connect(&w, "a", false, 60, 10);
    let expired = w.session_io(back.idx, |s, now, out| s.resume(now, out));
    assert_eq!(expired, Some(1));
    assert!(publishes(&back).is_empty(), "[MQTT-3.3.2-5]");
}

/// Counts wake-ups of the peer's inbox.
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn messages_to_a_peer_wake_it_once_per_batch() {
    let sh = shared(2, Limits::default());
    let w0 = Rc::new(Worker::new(WorkerId(0), sh.clone()));
    let w1 = Rc::new(Worker::new(WorkerId(1), sh.clone()));
    let sub = connect(&w1, "sub", true, 0, 10);
    let g = join(&w1, &sub, "g", QoS::AtMostOnce, false);
    let count = Arc::new(Count(AtomicUsize::new(0)));
    sh.mesh.register(WorkerId(1), &Waker::from(count.clone()));

    for _ in 0..3 {
        w0.publish(&g, message(&g, "m", QoS::AtMostOnce, 0, 0));
    }
    assert_eq!(
        count.0.load(Ordering::Relaxed),
        0,
        "no wake-up while the batch runs"
    );
    assert_eq!(w0.wake_pending.get(), 0b10);
    w0.wake_pending_peers();
    assert_eq!(
        count.0.load(Ordering::Relaxed),
        1,
        "one wake-up for three messages"
    );
    assert_eq!(w0.wake_pending.get(), 0);

    let mut got = 0;
    sh.mesh.drain(WorkerId(1), 100, |_| got += 1);
    assert_eq!(got, 3);
    assert_eq!(w0.counters.borrow().cross_core_messages, 3);
}

#[test]
fn a_takeover_the_old_owner_never_answers_ends_in_a_fresh_session() {
    let sh = shared(2, Limits::default());
    let w0 = Rc::new(Worker::new(WorkerId(0), sh.clone()));
    let w1 = Rc::new(Worker::new(WorkerId(1), sh.clone()));
    let _old = connect(&w0, "a", false, 60, 10);
    // Worker 0 runs no command task here, so it never answers worker 1's takeover request.
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime");
    let (present, timeouts) = rt.block_on(async {
        let conn = Rc::new(ConnHandle::new(99, Transport::Tcp));
        let a = w1
            .attach(
                (HUB, "a".into()),
                false,
                60,
                None,
                SessionExt::web_pubsub(all()),
                conn,
                10,
            )
            .await;
        (a.session_present, w1.counters.borrow().cross_core_timeouts)
    });
    assert!(!present, "the session could not be moved");
    assert_eq!(timeouts, 1);
    assert_eq!(
        sh.registry.claim_session((HUB, "a".into()), WorkerId(1)),
        Some(WorkerId(1)),
        "the claim stays with the new owner"
    );
}

#[test]
fn group_ids_are_shared_by_workers() {
    let sh = shared(2, Limits::default());
    let w0 = Worker::new(WorkerId(0), sh.clone());
    let w1 = Worker::new(WorkerId(1), sh);
    assert_eq!(w0.group(HUB, "g").id, w1.group(HUB, "g").id);
    assert_ne!(w0.group(HUB, "g").id, w0.group(HUB, "h").id);
    let _: GroupId = w0.group(HUB, "g").id;
}
