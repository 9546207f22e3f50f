//! One worker = one thread = one monoio runtime. It owns the connections it accepted, the
//! sessions of those clients, and its shard of every group (the local subscribers). Nothing in
//! `State` is shared with other threads: peers reach this worker only through the cross-core
//! queues of `xcore`, and the process-wide `Registry` is touched on cold paths only.
//!
//! Ownership contract: a `Worker` lives on its thread behind an `Rc`; every method is called
//! from that thread. `State` is borrowed mutably for short, synchronous sections and never
//! across an `.await`.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hubmq_core::ids::{GroupId, HubId, SessionIdx, WorkerId};
use hubmq_core::message::Message;
use hubmq_core::mqtt::{Disconnect, LastWill, Packet, ProtocolVersion, QoS, ReasonCode};
use hubmq_core::perm::Permissions;
use hubmq_core::session::{OutItem, Refused, Session, SubOpts};
use hubmq_metrics::{CoreCounters, DisconnectReason, DropReason};

use crate::notify::LocalNotify;
use crate::registry::{GroupShared, Registry, SessionKey};
use crate::settings::Settings;
use crate::xcore::{Command, CoreMsg, Mesh, SessionTransfer, Target};

/// State shared by all workers (read-mostly; see `registry` for the locks).
pub struct Shared {
    pub settings: Settings,
    pub registry: Registry,
    pub mesh: Mesh,
    /// Source of session serials (No Local) and connection ids.
    pub serial: AtomicU64,
    pub shutting_down: AtomicBool,
    /// The broker clock's zero. One for the whole process: message expiry instants computed
    /// on one worker are compared on another.
    pub epoch: Instant,
    /// Reloadable auth settings, heartbeats, shutdown grace (see `lifecycle`).
    pub control: crate::lifecycle::Control,
    /// The upstream event-handler client; `None` when no hub has a handler.
    pub upstream: Option<Arc<crate::upstream::Upstream>>,
    /// Event Grid namespaces by their registry hub (empty without `[eventgrid]`).
    pub eventgrid: HashMap<HubId, Arc<crate::eventgrid::EgNamespace>>,
}

impl Shared {
    pub fn next_serial(&self) -> u64 {
        self.serial.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// How a connection reached us; a metric label and a log field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Transport {
    pub fn index(self) -> usize {
        match self {
            Transport::Tcp => 0,
            Transport::Tls => 1,
            Transport::Ws => 2,
            Transport::Wss => 3,
        }
    }

    pub fn is_ws(self) -> bool {
        matches!(self, Transport::Ws | Transport::Wss)
    }
}

/// What the writer task of a connection writes, in order.
pub enum Out {
    /// A session item (PUBLISH / PUBREL), encoded by the writer for this connection.
    Item(OutItem),
    /// An already encoded MQTT packet (acks, CONNACK, DISCONNECT).
    Packet(Bytes),
    /// A complete WebSocket control frame (pong, close), written outside the data frames.
    WsFrame(Bytes),
    /// Flush, then close the socket.
    Close,
}

/// The part of a connection other code on the worker may touch: its outbound queue and the
/// two wake-ups. Created by the connection task, referenced by the session slot while online.
pub struct ConnHandle {
    pub id: u64,
    /// The reason of the server-side `disconnect`, if any: the `hubmq_disconnects_total` label.
    pub end_reason: Cell<Option<ReasonCode>>,
    pub version: Cell<ProtocolVersion>,
    pub transport: Transport,
    /// Largest packet the client accepts (v5 Maximum Packet Size).
    pub client_max_packet: Cell<u32>,
    pub out: RefCell<VecDeque<Out>>,
    /// Bytes queued in `out` (payload estimate), for the slow-consumer rule.
    pub out_bytes: Cell<usize>,
    pub wake_writer: LocalNotify,
    /// Set when the connection must end (takeover, slow consumer, shutdown, writer error).
    pub kill: LocalNotify,
    pub closing: Cell<bool>,
    /// A WebSocket close frame was queued already (answering the peer's close).
    pub ws_close_sent: Cell<bool>,
}

impl ConnHandle {
    pub fn new(id: u64, transport: Transport) -> ConnHandle {
        ConnHandle {
            id,
            end_reason: Cell::new(None),
            version: Cell::new(ProtocolVersion::V4),
            transport,
            client_max_packet: Cell::new(u32::MAX),
            out: RefCell::new(VecDeque::new()),
            out_bytes: Cell::new(0),
            wake_writer: LocalNotify::default(),
            kill: LocalNotify::default(),
            closing: Cell::new(false),
            ws_close_sent: Cell::new(false),
        }
    }

    pub fn push(&self, o: Out) {
        self.out.borrow_mut().push_back(o);
        self.wake_writer.notify();
    }

    pub fn send_packet(&self, p: &Packet) {
        let mut b = bytes::BytesMut::new();
        hubmq_core::mqtt::encode(p, self.version.get(), &mut b);
        self.push(Out::Packet(b.freeze()));
    }

    /// Sends a v5 DISCONNECT (v3.1.1 has no server DISCONNECT: just close) and closes.
    pub fn disconnect(&self, reason: ReasonCode, text: Option<&str>) {
        if self.closing.replace(true) {
            return;
        }
        self.end_reason.set(Some(reason));
        if self.version.get() == ProtocolVersion::V5 {
            self.send_packet(&Packet::Disconnect(Disconnect {
                reason: reason.as_u8(),
                reason_string: text.map(str::to_owned),
                ..Disconnect::default()
            }));
        }
        self.push(Out::Close);
        self.kill.notify();
    }
}

/// A will waiting for its connection to end (or, after that, for its delay).
pub struct WillSpec {
    pub will: LastWill,
    pub delay_secs: u32,
}

/// A session owned by this worker.
pub struct Slot {
    pub key: SessionKey,
    pub session: Session,
    pub user_id: Option<Arc<str>>,
    pub perms: Permissions,
    pub conn: Option<Rc<ConnHandle>>,
    /// Offline persistent session: when it expires (broker clock, ms).
    pub expires_at_ms: Option<u64>,
    /// Will of the current connection.
    pub will: Option<WillSpec>,
    /// A will whose delay is running: (message, group, fire at ms).
    pub pending_will: Option<(Arc<Message>, Arc<GroupShared>, u64)>,
    /// Upstream event data; `None` when the hub has no event handlers (or the session moved).
    pub up: Option<Box<crate::upstream::SessionUp>>,
    /// QoS of server messages (`$webpubsub/server/messages`): 1 unless the client subscribed
    /// to that topic explicitly with a lower maximum.
    pub server_qos: QoS,
    /// Event Grid sessions: the client's identity and compiled rights.
    pub eg: Option<Box<crate::eventgrid::EgRights>>,
    /// Event Grid delivery scratch: the delivery (`State::eg_stamp`) that last matched this
    /// session, and the highest QoS its matching subscriptions grant in it.
    pub(crate) eg_mark: u64,
    pub(crate) eg_mark_qos: QoS,
}

/// This worker's part of a group: local subscribers with their options.
pub(crate) struct LocalGroup {
    pub(crate) shared: Arc<GroupShared>,
    pub(crate) members: Vec<(SessionIdx, SubOpts)>,
}

#[derive(Default)]
pub struct State {
    pub(crate) slots: Vec<Option<Slot>>,
    pub(crate) free: Vec<u32>,
    pub(crate) by_key: HashMap<SessionKey, SessionIdx>,
    pub(crate) groups: HashMap<GroupId, LocalGroup>,
    /// Per-worker cache hub → group name → shared group, so a PUBLISH finds its group
    /// without touching the registry lock.
    group_cache: HashMap<HubId, HashMap<Box<str>, Arc<GroupShared>>>,
    /// Topics published to that had no group, with the registry generation of that answer:
    /// a publish to a topic nobody ever subscribed to costs no lock until a group is created.
    missing_groups: HashMap<(HubId, Box<str>), u64>,
    /// Scratch buffer for session output, reused to avoid an allocation per delivery.
    pub(crate) scratch: Vec<OutItem>,
    /// Event Grid: this worker's wildcard subscriptions per namespace (see `eventgrid`).
    pub(crate) eg_tries: HashMap<HubId, hubmq_core::trie::TopicTrie<GroupId>>,
    /// Event Grid: topic → matching variable-free topic spaces, per namespace.
    pub(crate) eg_masks: HashMap<HubId, HashMap<Box<str>, u64>>,
    /// Event Grid: this worker's share of each namespace's rate quotas.
    pub(crate) eg_rates: HashMap<HubId, crate::eventgrid::WorkerRates>,
    /// Event Grid: the sessions one delivery reaches, each once (see `eg_deliver_local`).
    pub(crate) eg_targets: Vec<SessionIdx>,
    /// Event Grid: numbers deliveries, to mark sessions already reached by one.
    pub(crate) eg_stamp: u64,
}

pub struct Worker {
    pub id: WorkerId,
    pub shared: Arc<Shared>,
    pub st: RefCell<State>,
    pub counters: RefCell<CoreCounters>,
    pub connections: Cell<usize>,
    /// Ends this worker's accept loops on shutdown.
    pub accept_gate: crate::lifecycle::AcceptGate,
}

/// Result of attaching a connection to a session.
pub struct Attached {
    pub idx: SessionIdx,
    pub session_present: bool,
}

impl Worker {
    pub fn new(id: WorkerId, shared: Arc<Shared>) -> Worker {
        Worker {
            id,
            shared,
            st: RefCell::new(State::default()),
            counters: RefCell::new(CoreCounters::new(id.0)),
            connections: Cell::new(0),
            accept_gate: crate::lifecycle::AcceptGate::default(),
        }
    }

    /// Milliseconds on this worker's clock (monotonic).
    pub fn now_ms(&self) -> u64 {
        self.shared.epoch.elapsed().as_millis() as u64
    }

    pub fn limits(&self) -> &hubmq_core::limits::Limits {
        &self.shared.settings.limits
    }

    fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// The group named `name` in `hub` if it exists anywhere, via the per-worker cache.
    pub fn find_group(&self, hub: HubId, name: &str) -> Option<Arc<GroupShared>> {
        let mut st = self.st.borrow_mut();
        let cache = st.group_cache.entry(hub).or_default();
        if let Some(g) = cache.get(name) {
            return Some(g.clone());
        }
        let generation = self.registry().groups_generation();
        let key = (hub, Box::<str>::from(name));
        if st.missing_groups.get(&key) == Some(&generation) {
            return None;
        }
        match self.registry().find_group(hub, name) {
            Some(g) => {
                st.missing_groups.remove(&key);
                st.group_cache
                    .entry(hub)
                    .or_default()
                    .insert(key.1, g.clone());
                Some(g)
            }
            None => {
                // Bounded: clients may invent any number of topics.
                if st.missing_groups.len() >= 4096 {
                    st.missing_groups.clear();
                }
                st.missing_groups.insert(key, generation);
                None
            }
        }
    }

    /// The group, created if needed (subscribe, role compilation).
    pub fn group(&self, hub: HubId, name: &str) -> Arc<GroupShared> {
        if let Some(g) = self.find_group(hub, name) {
            return g;
        }
        let g = self.registry().group(hub, name);
        self.st
            .borrow_mut()
            .group_cache
            .entry(hub)
            .or_default()
            .insert(name.into(), g.clone());
        g
    }

    /// The Event Grid namespace session `idx` lives in, if any.
    fn eg_of_session(&self, idx: SessionIdx) -> Option<&Arc<crate::eventgrid::EgNamespace>> {
        let hub = self.with_slot(idx, |s| s.key.0)?;
        self.eg(hub)
    }

    pub fn with_slot<R>(&self, idx: SessionIdx, f: impl FnOnce(&mut Slot) -> R) -> Option<R> {
        let mut st = self.st.borrow_mut();
        st.slots.get_mut(idx.0 as usize)?.as_mut().map(f)
    }

    // ----- sessions -------------------------------------------------------------------------

    /// Attaches a freshly authenticated connection to its session: takes over a local or
    /// remote session with the same key, resumes it (clean start = 0) or starts a new one.
    #[allow(clippy::too_many_arguments)]
    pub async fn attach(
        self: &Rc<Self>,
        key: SessionKey,
        clean_start: bool,
        expiry_secs: u32,
        user_id: Option<Arc<str>>,
        perms: Permissions,
        conn: Rc<ConnHandle>,
        receive_max: u16,
    ) -> Attached {
        let prev = self.registry().claim_session(key.clone(), self.id);
        let mut transfer = None;
        if let Some(owner) = prev {
            if owner != self.id {
                let (tx, rx) = flume::bounded(1);
                self.shared.mesh.command(
                    owner,
                    Command::Takeover {
                        key: key.clone(),
                        keep: !clean_start,
                        reply: tx,
                    },
                );
                // The owner answers promptly (it only detaches a session); if it is gone the
                // channel closes and we start fresh.
                transfer = rx.recv_async().await.ok().flatten();
            }
        }
        let now = self.now_ms();
        let mut st = self.st.borrow_mut();
        let existing = st.by_key.get(&key).copied();
        if let Some(idx) = existing {
            // Same worker: take the session over from the current connection, if any.
            let old_conn = st.slots[idx.0 as usize]
                .as_mut()
                .and_then(|s| s.conn.take());
            drop(st);
            if let Some(old) = old_conn {
                old.disconnect(ReasonCode::SessionTakenOver, Some("session taken over"));
                self.note_taken_over(idx, &old);
                self.fire_will_now_or_later(idx, now);
            }
            if clean_start {
                // Discard the old session but keep the registry claim we just made.
                self.end_session(idx, false);
            } else {
                let mut st = self.st.borrow_mut();
                if let Some(slot) = st.slots[idx.0 as usize].as_mut() {
                    // Reconnecting before the will delay ran out cancels the will [MQTT-3.1.3-9].
                    slot.pending_will = None;
                    slot.expires_at_ms = None;
                    slot.conn = Some(conn.clone());
                    slot.session.expiry_secs = expiry_secs;
                    slot.session
                        .set_window(receive_max, self.limits().max_inflight);
                }
                return Attached {
                    idx,
                    session_present: true,
                };
            }
            st = self.st.borrow_mut();
        }

        let serial = transfer
            .as_ref()
            .filter(|_| !clean_start)
            .map(|t: &SessionTransfer| t.serial)
            .unwrap_or_else(|| self.shared.next_serial());
        let mut session = Session::new(serial, expiry_secs);
        session.set_window(receive_max, self.limits().max_inflight);
        let up = match (transfer.as_mut(), clean_start) {
            (Some(t), false) => t.upstream.take(),
            _ => None,
        };
        let (user_id, perms, session_present) = match (&transfer, clean_start) {
            (Some(t), false) => (t.user_id.clone(), t.perms.clone(), true),
            _ => (user_id, perms, false),
        };
        let slot = Slot {
            key: key.clone(),
            session,
            user_id,
            perms,
            conn: Some(conn),
            expires_at_ms: None,
            will: None,
            pending_will: None,
            up,
            server_qos: QoS::AtLeastOnce,
            eg: None,
            eg_mark: 0,
            eg_mark_qos: QoS::AtMostOnce,
        };
        let idx = match st.free.pop() {
            Some(i) => {
                st.slots[i as usize] = Some(slot);
                SessionIdx(i)
            }
            None => {
                st.slots.push(Some(slot));
                SessionIdx(st.slots.len() as u32 - 1)
            }
        };
        st.by_key.insert(key, idx);
        drop(st);
        self.counters.borrow_mut().sessions += 1;
        if let (Some(t), false) = (transfer, clean_start) {
            for (g, opts) in t.subs {
                self.subscribe(idx, &g, opts);
            }
            self.with_slot(idx, |s| s.session.requeue(t.undelivered));
        }
        Attached {
            idx,
            session_present,
        }
    }

    /// The connection `conn_id` of session `idx` ended. `will` = whether the will is due
    /// (anything but a DISCONNECT 0x00). Keeps or ends the session according to its expiry.
    pub fn detach(&self, idx: SessionIdx, conn_id: u64, will: bool) {
        let now = self.now_ms();
        let expiry = {
            let mut st = self.st.borrow_mut();
            let Some(slot) = st.slots.get_mut(idx.0 as usize).and_then(|s| s.as_mut()) else {
                return;
            };
            match &slot.conn {
                Some(c) if c.id == conn_id => {
                    let reason = disconnect_reason(c.end_reason.get(), will);
                    self.counters.borrow_mut().disconnects[reason.index()] += 1;
                }
                _ => {
                    // Taken over already.
                    self.counters.borrow_mut().disconnects[DisconnectReason::TakenOver.index()] +=
                        1;
                    return;
                }
            }
            slot.conn = None;
            if !will {
                slot.will = None;
            }
            slot.session.expiry_secs
        };
        if will {
            self.fire_will_now_or_later(idx, now);
        }
        if expiry == 0 {
            self.remove_session(idx, now);
        } else {
            self.with_slot(idx, |s| {
                s.expires_at_ms = Some(now + u64::from(expiry) * 1000);
            });
        }
    }

    /// Moves the connection's will to "pending" (delay) or publishes it at once.
    fn fire_will_now_or_later(&self, idx: SessionIdx, now: u64) {
        let Some((spec, hub, serial, can_send, eg_allowed)) = self
            .with_slot(idx, |s| {
                let spec = s.will.take()?;
                // Event Grid: Publisher permission on the will topic when the will fires.
                let eg_allowed =
                    s.eg.as_ref()
                        .map(|r| hubmq_auth::eventgrid::check_publish(&r.perms, &spec.will.topic));
                Some((spec, s.key.0, s.session.serial, s.perms.clone(), eg_allowed))
            })
            .flatten()
        else {
            return;
        };
        if eg_allowed == Some(false) {
            tracing::info!(topic = %spec.will.topic, "will dropped: no publish permission");
            self.counters.borrow_mut().dropped[DropReason::Denied.index()] += 1;
            return;
        }
        let g = self.group(hub, &spec.will.topic);
        if !can_send.can_send(g.id) {
            tracing::debug!(topic = %spec.will.topic, "will dropped: no permission to send to the group");
            self.counters.borrow_mut().dropped[DropReason::Denied.index()] += 1;
            return;
        }
        let w = spec.will;
        let mut msg = Message::new(g.name.clone(), w.payload, w.props, w.qos, serial, now);
        // Only an Event Grid namespace keeps retained messages (`publish_in` stores it).
        msg.retain = w.retain && self.eg(hub).is_some();
        let msg = Arc::new(msg);
        if spec.delay_secs == 0 {
            self.publish_in(hub, &g, msg);
        } else {
            let at = now + u64::from(spec.delay_secs) * 1000;
            self.with_slot(idx, |s| s.pending_will = Some((msg, g, at)));
        }
    }

    /// Ends a session: leaves its groups, forgets it, releases the registry entry. A will
    /// still waiting for its delay is published now (the session end comes first).
    pub fn remove_session(&self, idx: SessionIdx, _now: u64) {
        self.end_session(idx, true);
    }

    /// `release` = give up the registry claim (false when another worker took the session).
    fn end_session(&self, idx: SessionIdx, release: bool) {
        let slot = {
            let mut st = self.st.borrow_mut();
            let Some(slot) = st.slots.get_mut(idx.0 as usize).and_then(|s| s.take()) else {
                return;
            };
            st.free.push(idx.0);
            st.by_key.remove(&slot.key);
            slot
        };
        for gid in slot.session.subs.keys() {
            self.unsubscribe_id(idx, *gid);
        }
        if let Some(ns) = self.eg(slot.key.0) {
            ns.count_subscriptions(-(slot.session.subs.len() as i64));
        }
        if release {
            self.registry().release_session(&slot.key, self.id);
            if let Some(ns) = self.eg(slot.key.0) {
                ns.release_session(&slot.key.1);
            }
        }
        self.counters.borrow_mut().sessions -= 1;
        if let Some((msg, g, _)) = slot.pending_will {
            self.publish_in(slot.key.0, &g, msg);
        }
        // A session that moved to another worker took its upstream data along (`up` is None).
        if let (Some(mut up), Some(u)) = (slot.up, &self.shared.upstream) {
            u.session_event(
                crate::upstream::SystemEvent::Disconnected,
                &mut up,
                &slot.key.1,
                slot.user_id.as_deref(),
            );
        }
    }

    /// Records how the connection `conn_id` of session `idx` ended, for `disconnected`; no-op
    /// when the session has no upstream data or another connection owns it now.
    pub fn note_close(&self, idx: SessionIdx, conn_id: u64, info: crate::upstream::CloseInfo) {
        self.with_slot(idx, |s| {
            if s.conn.as_ref().is_some_and(|c| c.id == conn_id) {
                if let Some(up) = s.up.as_mut() {
                    up.close = info;
                }
            }
        });
    }

    /// The session's connection was taken over by a new CONNECT (the server sent 0x8E to v5).
    fn note_taken_over(&self, idx: SessionIdx, old: &ConnHandle) {
        let v5 = old.version.get() == ProtocolVersion::V5;
        self.with_slot(idx, |s| {
            if let Some(up) = s.up.as_mut() {
                up.close = crate::upstream::CloseInfo {
                    reason: Some("session taken over".into()),
                    initiated_by_client: false,
                    packet: v5.then(|| (ReasonCode::SessionTakenOver.as_u8(), Vec::new())),
                };
            }
        });
    }

    // ----- groups ---------------------------------------------------------------------------

    /// Adds (or updates) the subscription of session `idx` to group `g`. Returns false when it
    /// already existed.
    pub fn subscribe(&self, idx: SessionIdx, g: &Arc<GroupShared>, opts: SubOpts) -> bool {
        let mut st = self.st.borrow_mut();
        let Some(slot) = st.slots.get_mut(idx.0 as usize).and_then(|s| s.as_mut()) else {
            return false;
        };
        let new = slot.session.subs.insert(g.id, opts).is_none();
        let ns = self.eg(g.hub);
        if let (true, Some(ns)) = (new, ns) {
            ns.count_subscriptions(1);
        }
        let lg = st.groups.entry(g.id).or_insert_with(|| LocalGroup {
            shared: g.clone(),
            members: Vec::new(),
        });
        if let Some(m) = lg.members.iter_mut().find(|m| m.0 == idx) {
            m.1 = opts;
        } else {
            lg.members.push((idx, opts));
            if lg.members.len() == 1 {
                g.interest.fetch_or(1u64 << self.id.0, Ordering::AcqRel);
                if let Some(ns) = ns.filter(|_| crate::eventgrid::is_wildcard(&g.name)) {
                    self.eg_index(&mut st, ns, g);
                }
            }
        }
        new
    }

    /// Removes the subscription; returns whether it existed.
    pub fn unsubscribe(&self, idx: SessionIdx, g: GroupId) -> bool {
        let existed = self
            .with_slot(idx, |s| s.session.subs.remove(&g).is_some())
            .unwrap_or(false);
        if existed {
            if let Some(ns) = self.eg_of_session(idx) {
                ns.count_subscriptions(-1);
            }
        }
        self.unsubscribe_id(idx, g);
        existed
    }

    fn unsubscribe_id(&self, idx: SessionIdx, g: GroupId) {
        let mut st = self.st.borrow_mut();
        let Some(lg) = st.groups.get_mut(&g) else {
            return;
        };
        lg.members.retain(|m| m.0 != idx);
        if lg.members.is_empty() {
            lg.shared
                .interest
                .fetch_and(!(1u64 << self.id.0), Ordering::AcqRel);
            if let Some(lg) = st.groups.remove(&g) {
                let shared = lg.shared;
                if let Some(ns) = self
                    .eg(shared.hub)
                    .filter(|_| crate::eventgrid::is_wildcard(&shared.name))
                {
                    self.eg_unindex(&mut st, ns, &shared);
                }
            }
        }
    }

    // ----- the data path --------------------------------------------------------------------

    /// Publishes `msg` to group `g`: local subscribers directly, other workers with interest
    /// through their queues.
    pub fn publish(&self, g: &GroupShared, msg: Arc<Message>) {
        let mask = g.interest();
        if self.send_to_peers(mask, Target::group(g.id), &msg) {
            self.deliver_local(g.id, &msg);
        }
    }

    /// Hands `msg` to every other worker in `mask` through its queue and wakes it; returns
    /// whether this worker is in `mask` too (the caller then delivers locally).
    #[inline]
    pub(crate) fn send_to_peers(&self, mask: u64, to: Target, msg: &Arc<Message>) -> bool {
        let me = 1u64 << self.id.0;
        let mut rest = mask & !me;
        let mesh = &self.shared.mesh;
        while rest != 0 {
            let peer = WorkerId(rest.trailing_zeros() as u16);
            rest &= rest - 1;
            let m = CoreMsg::Deliver {
                to,
                msg: msg.clone(),
            };
            let mut c = self.counters.borrow_mut();
            match mesh.push(self.id, peer, m) {
                Ok(()) => c.cross_core_messages += 1,
                Err(_) => c.dropped[DropReason::CrossCoreFull.index()] += 1,
            }
            drop(c);
            mesh.wake(peer);
        }
        mask & me != 0
    }

    /// Offers `msg` to every local subscriber of `group`.
    pub fn deliver_local(&self, group: GroupId, msg: &Arc<Message>) {
        let now = self.now_ms();
        let mut slow = Vec::new();
        let mut st = self.st.borrow_mut();
        let State {
            slots,
            groups,
            scratch,
            ..
        } = &mut *st;
        let Some(lg) = groups.get(&group) else {
            return;
        };
        let limits = &self.shared.settings.limits;
        let mut c = self.counters.borrow_mut();
        for &(idx, opts) in &lg.members {
            let Some(slot) = slots.get_mut(idx.0 as usize).and_then(|s| s.as_mut()) else {
                continue;
            };
            if opts.no_local && msg.origin == slot.session.serial {
                continue;
            }
            let qos = msg.qos.min(opts.qos);
            offer_to_slot(slot, msg, qos, now, limits, &mut c, scratch, &mut slow);
        }
        drop(c);
        drop(st);
        disconnect_slow(slow);
    }

    /// Runs a session method that may produce output and sends it to the connection.
    pub fn session_io<R>(
        &self,
        idx: SessionIdx,
        f: impl FnOnce(&mut Session, u64, &mut Vec<OutItem>) -> R,
    ) -> Option<R> {
        let now = self.now_ms();
        let mut st = self.st.borrow_mut();
        let State { slots, scratch, .. } = &mut *st;
        let slot = slots.get_mut(idx.0 as usize)?.as_mut()?;
        scratch.clear();
        let r = f(&mut slot.session, now, scratch);
        if let Some(conn) = &slot.conn {
            push_items(conn, scratch, 0);
        }
        Some(r)
    }

    // ----- worker tasks ---------------------------------------------------------------------

    /// Drains the cross-core queues forever.
    pub async fn inbox_task(self: Rc<Self>) {
        let mesh = &self.shared.mesh;
        loop {
            let n = mesh.drain(self.id, 4096, |m| match m {
                CoreMsg::Deliver { to, msg } => match to.split() {
                    Err(group) => self.deliver_local(group, &msg),
                    Ok((hub, group)) => self.eg_deliver_local(hub, group, &msg),
                },
            });
            if n > 0 {
                // Let the writers flush what this batch queued before taking more.
                crate::notify::yield_now().await;
                continue;
            }
            std::future::poll_fn(|cx| {
                mesh.register(self.id, cx.waker());
                if mesh.has_input(self.id) {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            })
            .await;
        }
    }

    /// Serves cold-path commands from other threads.
    pub async fn command_task(self: Rc<Self>) {
        let rx = self.shared.mesh.commands(self.id);
        while let Ok(cmd) = rx.recv_async().await {
            match cmd {
                Command::Takeover { key, keep, reply } => {
                    let t = self.hand_over(&key, keep);
                    let _ = reply.send(t);
                }
                Command::Rest { op, reply } => {
                    let _ = reply.send(self.rest_apply(&op));
                }
                Command::EgReload { hub } => {
                    if let Some(ns) = self.eg(hub).cloned() {
                        self.eg_recheck(&ns);
                    }
                }
                Command::Shutdown => {
                    self.shutdown_connections();
                    self.accept_gate.stop();
                    self.drain_connections().await;
                    // Returning ends the worker's runtime and thread (see `server::worker_main`).
                    return;
                }
            }
        }
    }

    /// After a shutdown command: waits until every connection closed (their writers flushed
    /// what was queued, DISCONNECT last) or the grace period ran out.
    async fn drain_connections(&self) {
        let deadline = Instant::now() + self.shared.control.grace();
        while self.connections.get() > 0 && Instant::now() < deadline {
            monoio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let left = self.connections.get();
        if left > 0 {
            tracing::warn!(
                worker = self.id.0,
                connections = left,
                "shutdown grace period over; closing anyway"
            );
        }
        self.counters.borrow_mut().flush();
    }

    /// Another worker takes session `key`: disconnect our connection and give the state away.
    fn hand_over(&self, key: &SessionKey, keep: bool) -> Option<SessionTransfer> {
        let idx = self.st.borrow().by_key.get(key).copied()?;
        let now = self.now_ms();
        let conn = self.with_slot(idx, |s| s.conn.take()).flatten();
        if let Some(conn) = conn {
            conn.disconnect(ReasonCode::SessionTakenOver, Some("session taken over"));
            self.note_taken_over(idx, &conn);
            self.fire_will_now_or_later(idx, now);
        }
        let t = if keep {
            let st = self.st.borrow();
            let slot = st.slots.get(idx.0 as usize)?.as_ref()?;
            let subs = slot
                .session
                .subs
                .iter()
                .filter_map(|(gid, o)| st.groups.get(gid).map(|lg| (lg.shared.clone(), *o)))
                .collect();
            Some(SessionTransfer {
                serial: slot.session.serial,
                user_id: slot.user_id.clone(),
                perms: slot.perms.clone(),
                subs,
                undelivered: Vec::new(),
                upstream: None,
            })
        } else {
            None
        };
        let t = t.map(|mut t| {
            (t.undelivered, t.upstream) = self
                .with_slot(idx, |s| (s.session.drain_undelivered(), s.up.take()))
                .unwrap_or_default();
            t
        });
        if keep {
            // The session lives on elsewhere: a will still waiting for its delay is cancelled
            // by the new connection [MQTT-3.1.3-9], exactly as on a same-worker takeover.
            self.with_slot(idx, |s| s.pending_will = None);
        }
        // The new owner has claimed the key already; do not release it.
        self.end_session(idx, false);
        t
    }

    /// Every 100 ms: expire offline sessions, fire delayed wills; every second flush metrics.
    pub async fn timer_task(self: Rc<Self>) {
        let mut last_flush = 0u64;
        loop {
            monoio::time::sleep(std::time::Duration::from_millis(100)).await;
            self.shared.control.heartbeats.beat(self.id);
            let now = self.now_ms();
            let mut expired = Vec::new();
            let mut wills = Vec::new();
            {
                let mut st = self.st.borrow_mut();
                for (i, s) in st.slots.iter_mut().enumerate() {
                    let Some(s) = s.as_mut() else { continue };
                    if matches!(s.pending_will, Some((_, _, at)) if now >= at) {
                        if let Some((m, g, _)) = s.pending_will.take() {
                            wills.push((s.key.0, m, g));
                        }
                    }
                    if matches!(s.expires_at_ms, Some(at) if now >= at) {
                        expired.push(SessionIdx(i as u32));
                    }
                }
            }
            for (hub, m, g) in wills {
                self.publish_in(hub, &g, m);
            }
            for idx in expired {
                tracing::debug!(worker = self.id.0, "offline session expired");
                self.remove_session(idx, now);
            }
            if now >= last_flush + 1000 {
                last_flush = now;
                let queued: usize = self
                    .st
                    .borrow()
                    .slots
                    .iter()
                    .flatten()
                    .filter_map(|s| s.conn.as_ref())
                    .map(|c| c.out_bytes.get())
                    .sum();
                let mut c = self.counters.borrow_mut();
                c.outbound_queue_bytes = queued as i64;
                c.flush();
            }
        }
    }

    /// Disconnects every client with 0x8B (server shutting down).
    pub fn shutdown_connections(&self) {
        let conns: Vec<Rc<ConnHandle>> = self
            .st
            .borrow()
            .slots
            .iter()
            .flatten()
            .filter_map(|s| s.conn.clone())
            .collect();
        for c in conns {
            c.disconnect(ReasonCode::ServerShuttingDown, Some("server shutting down"));
        }
    }
}

/// The `hubmq_disconnects_total` reason of a connection that ended: the server's own reason
/// code if it disconnected the client, else whether the client said goodbye (no will due).
fn disconnect_reason(server: Option<ReasonCode>, will: bool) -> DisconnectReason {
    match server {
        Some(ReasonCode::ServerShuttingDown) => DisconnectReason::Shutdown,
        Some(ReasonCode::SessionTakenOver) => DisconnectReason::TakenOver,
        Some(ReasonCode::KeepAliveTimeout) => DisconnectReason::KeepAliveTimeout,
        Some(ReasonCode::QuotaExceeded) => DisconnectReason::SlowConsumer,
        Some(ReasonCode::PacketTooLarge) => DisconnectReason::PacketTooLarge,
        Some(ReasonCode::AdministrativeAction) => DisconnectReason::Server,
        Some(_) => DisconnectReason::ProtocolError,
        None if will => DisconnectReason::PeerClosed,
        None => DisconnectReason::Client,
    }
}

/// One delivery of `msg` at `qos` to a session — the rules shared by group fan-out and server
/// messages. QoS 0 skips the session: online → the connection queue (dropped past
/// `outbound_queue_bytes`), offline → gone. QoS 1/2 go through the session window and queue;
/// an online session whose queue overflowed is pushed on `slow`. Returns true when the queue
/// of an offline session overflowed (Event Grid ends such a session).
#[allow(clippy::too_many_arguments)]
pub(crate) fn offer_to_slot(
    slot: &mut Slot,
    msg: &Arc<Message>,
    qos: QoS,
    now: u64,
    limits: &hubmq_core::limits::Limits,
    c: &mut CoreCounters,
    scratch: &mut Vec<OutItem>,
    slow: &mut Vec<Rc<ConnHandle>>,
) -> bool {
    let conn = slot.conn.as_ref();
    if qos == QoS::AtMostOnce {
        match conn {
            Some(conn) if conn.out_bytes.get() <= limits.outbound_queue_bytes => {
                conn.out_bytes.set(conn.out_bytes.get() + msg.cost());
                conn.push(Out::Item(OutItem::Publish {
                    msg: msg.clone(),
                    qos,
                    pkid: 0,
                    dup: false,
                }));
            }
            Some(_) => c.dropped[DropReason::QueueFull.index()] += 1,
            None => c.dropped[DropReason::NoSession.index()] += 1,
        }
        return false;
    }
    scratch.clear();
    match slot
        .session
        .offer(msg.clone(), qos, conn.is_some(), now, limits, scratch)
    {
        Ok(()) => {
            if let Some(conn) = conn {
                push_items(conn, scratch, msg.cost());
            }
        }
        Err(Refused::QueueFull) => {
            c.dropped[DropReason::SessionQueueFull.index()] += 1;
            match conn {
                Some(conn) => slow.push(conn.clone()),
                None => return true,
            }
        }
        Err(Refused::Expired) => c.dropped[DropReason::Expired.index()] += 1,
        Err(Refused::Offline) => c.dropped[DropReason::NoSession.index()] += 1,
    }
    false
}

/// Disconnects consumers whose session queue overflowed (v5 0x97), after the state borrow.
pub(crate) fn disconnect_slow(slow: Vec<Rc<ConnHandle>>) {
    for conn in slow {
        tracing::info!(
            conn = conn.id,
            "slow consumer disconnected: session queue full"
        );
        conn.disconnect(ReasonCode::QuotaExceeded, Some("session queue full"));
    }
}

/// Moves session output into the connection queue and wakes its writer.
pub(crate) fn push_items(conn: &ConnHandle, items: &mut Vec<OutItem>, cost: usize) {
    if items.is_empty() {
        return;
    }
    let mut q = conn.out.borrow_mut();
    for it in items.drain(..) {
        q.push_back(Out::Item(it));
    }
    drop(q);
    conn.out_bytes.set(conn.out_bytes.get() + cost);
    conn.wake_writer.notify();
}
