//! MQTT session state that outlives a network connection: subscriptions, the outbound
//! QoS 1/2 window with its packet ids, the bounded queue behind it (also the offline queue),
//! and inbound QoS 2 packet ids awaiting PUBREL. Pure data + decisions; the `net` worker owns one
//! `Session` per client id and writes whatever `OutItem`s these methods produce.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::ids::GroupId;
use crate::limits::Limits;
use crate::message::Message;
use crate::mqtt::QoS;

/// Subscription options kept per group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubOpts {
    pub qos: QoS,
    pub no_local: bool,
}

/// Something the session wants written to its connection.
#[derive(Debug, Clone)]
pub enum OutItem {
    Publish {
        msg: Arc<Message>,
        qos: QoS,
        pkid: u16,
        dup: bool,
    },
    PubRel(u16),
}

/// Why a message did not enter the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// QoS 0 while offline: MQTT does not queue it.
    Offline,
    /// The queue behind the in-flight window is full (messages or bytes).
    QueueFull,
    /// Message expiry passed before it could be delivered.
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Await {
    Ack,
    Rec,
    Comp,
}

#[derive(Debug)]
struct Inflight {
    pkid: u16,
    msg: Arc<Message>,
    qos: QoS,
    state: Await,
}

/// Ack for a packet id we never sent (or already completed): v5 answers 0x92 where it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownPacketId;

#[derive(Debug)]
pub struct Session {
    /// Unique per session in the process; used for No Local and to tell sessions apart.
    pub serial: u64,
    pub subs: HashMap<GroupId, SubOpts>,
    /// Seconds the session survives without a connection (0 = ends with the connection).
    pub expiry_secs: u32,
    next_pkid: u16,
    /// Outbound window: min(client Receive Maximum, configured cap).
    window: u16,
    inflight: VecDeque<Inflight>,
    pending: VecDeque<(Arc<Message>, QoS)>,
    pending_bytes: usize,
    /// Inbound QoS 2 packet ids for which PUBREC was sent and PUBREL is awaited.
    incoming_qos2: HashSet<u16>,
}

impl Session {
    pub fn new(serial: u64, expiry_secs: u32) -> Session {
        Session {
            serial,
            subs: HashMap::new(),
            expiry_secs,
            next_pkid: 0,
            window: 1,
            inflight: VecDeque::new(),
            pending: VecDeque::new(),
            pending_bytes: 0,
            incoming_qos2: HashSet::new(),
        }
    }

    /// Set at every (re)connect from the client's Receive Maximum and the configured cap.
    pub fn set_window(&mut self, client_receive_max: u16, cap: u16) {
        self.window = client_receive_max.min(cap).max(1);
    }

    pub fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    pub fn queued_len(&self) -> usize {
        self.pending.len()
    }

    /// Offer a message at delivered QoS `qos`. Online: QoS 0 goes straight out, QoS 1/2 enter the
    /// window or the queue behind it. Offline: QoS 1/2 are queued, QoS 0 is refused.
    pub fn offer(
        &mut self,
        msg: Arc<Message>,
        qos: QoS,
        online: bool,
        now_ms: u64,
        limits: &Limits,
        out: &mut Vec<OutItem>,
    ) -> Result<(), Refused> {
        if msg.is_expired(now_ms) {
            return Err(Refused::Expired);
        }
        if qos == QoS::AtMostOnce {
            if !online {
                return Err(Refused::Offline);
            }
            out.push(OutItem::Publish {
                msg,
                qos,
                pkid: 0,
                dup: false,
            });
            return Ok(());
        }
        if online && self.pending.is_empty() && self.inflight.len() < self.window as usize {
            self.send_new(msg, qos, out);
            return Ok(());
        }
        let cost = msg.cost();
        if self.pending.len() >= limits.session_queue_messages
            || self.pending_bytes + cost > limits.session_queue_bytes
        {
            return Err(Refused::QueueFull);
        }
        self.pending_bytes += cost;
        self.pending.push_back((msg, qos));
        Ok(())
    }

    fn alloc_pkid(&mut self) -> u16 {
        // Skip 0 and ids still in flight; the window is far below 65535 so this terminates.
        loop {
            self.next_pkid = self.next_pkid.wrapping_add(1);
            if self.next_pkid != 0 && !self.inflight.iter().any(|f| f.pkid == self.next_pkid) {
                return self.next_pkid;
            }
        }
    }

    fn send_new(&mut self, msg: Arc<Message>, qos: QoS, out: &mut Vec<OutItem>) {
        let pkid = self.alloc_pkid();
        let state = if qos == QoS::ExactlyOnce {
            Await::Rec
        } else {
            Await::Ack
        };
        self.inflight.push_back(Inflight {
            pkid,
            msg: msg.clone(),
            qos,
            state,
        });
        out.push(OutItem::Publish {
            msg,
            qos,
            pkid,
            dup: false,
        });
    }

    /// Move queued messages into the window while it has room (online only). Expired ones are
    /// dropped and counted in the returned number.
    pub fn pump(&mut self, now_ms: u64, out: &mut Vec<OutItem>) -> usize {
        let mut expired = 0;
        while self.inflight.len() < self.window as usize {
            let Some((msg, qos)) = self.pending.pop_front() else {
                break;
            };
            self.pending_bytes -= msg.cost();
            if msg.is_expired(now_ms) {
                expired += 1;
                continue;
            }
            self.send_new(msg, qos, out);
        }
        expired
    }

    /// A (re)connected client resumes the session: unacknowledged PUBLISHes are sent again with
    /// DUP set, PUBRELs are repeated [MQTT-4.4.0-1], then the queue is pumped.
    pub fn resume(&mut self, now_ms: u64, out: &mut Vec<OutItem>) -> usize {
        for f in &self.inflight {
            out.push(match f.state {
                Await::Comp => OutItem::PubRel(f.pkid),
                _ => OutItem::Publish {
                    msg: f.msg.clone(),
                    qos: f.qos,
                    pkid: f.pkid,
                    dup: true,
                },
            });
        }
        self.pump(now_ms, out)
    }

    fn take_inflight(&mut self, pkid: u16, state: Await) -> Result<usize, UnknownPacketId> {
        self.inflight
            .iter()
            .position(|f| f.pkid == pkid && f.state == state)
            .ok_or(UnknownPacketId)
    }

    /// The final ack of a delivery frees its window slot for the next queued message.
    fn complete(
        &mut self,
        pkid: u16,
        state: Await,
        now_ms: u64,
        out: &mut Vec<OutItem>,
    ) -> Result<(), UnknownPacketId> {
        let i = self.take_inflight(pkid, state)?;
        self.inflight.remove(i);
        self.pump(now_ms, out);
        Ok(())
    }

    /// PUBACK for a QoS 1 delivery.
    pub fn on_puback(
        &mut self,
        pkid: u16,
        now_ms: u64,
        out: &mut Vec<OutItem>,
    ) -> Result<(), UnknownPacketId> {
        self.complete(pkid, Await::Ack, now_ms, out)
    }

    /// PUBREC for a QoS 2 delivery: answer PUBREL, or drop the message when the client refused
    /// it with a failure reason code (v5, [MQTT-4.3.3-8]: the flow ends there).
    pub fn on_pubrec(
        &mut self,
        pkid: u16,
        reason: u8,
        now_ms: u64,
        out: &mut Vec<OutItem>,
    ) -> Result<(), UnknownPacketId> {
        let i = match self.take_inflight(pkid, Await::Rec) {
            Ok(i) => i,
            // A repeated PUBREC after our PUBREL: repeat the PUBREL.
            Err(e) => {
                self.take_inflight(pkid, Await::Comp).map_err(|_| e)?;
                out.push(OutItem::PubRel(pkid));
                return Ok(());
            }
        };
        if reason >= 0x80 {
            self.inflight.remove(i);
            self.pump(now_ms, out);
        } else {
            self.inflight[i].state = Await::Comp;
            out.push(OutItem::PubRel(pkid));
        }
        Ok(())
    }

    /// PUBCOMP ends a QoS 2 delivery.
    pub fn on_pubcomp(
        &mut self,
        pkid: u16,
        now_ms: u64,
        out: &mut Vec<OutItem>,
    ) -> Result<(), UnknownPacketId> {
        self.complete(pkid, Await::Comp, now_ms, out)
    }

    /// Inbound QoS 2 PUBLISH: returns true when it is new (deliver it) and false for a
    /// retransmission of a packet id still awaiting PUBREL (acknowledge again, do not deliver).
    pub fn incoming_qos2(&mut self, pkid: u16) -> bool {
        self.incoming_qos2.insert(pkid)
    }

    pub fn incoming_qos2_len(&self) -> usize {
        self.incoming_qos2.len()
    }

    /// PUBREL releases an inbound packet id; false if it was unknown (v5 PUBCOMP 0x92).
    pub fn release_incoming(&mut self, pkid: u16) -> bool {
        self.incoming_qos2.remove(&pkid)
    }

    /// Forget everything queued and in flight (session discarded or taken over with clean start).
    pub fn clear_queues(&mut self) {
        self.inflight.clear();
        self.pending.clear();
        self.pending_bytes = 0;
        self.incoming_qos2.clear();
    }

    /// Everything that still has to reach the client, for moving the session to another worker.
    pub fn drain_undelivered(&mut self) -> Vec<(Arc<Message>, QoS)> {
        let mut v: Vec<_> = self.inflight.drain(..).map(|f| (f.msg, f.qos)).collect();
        v.extend(self.pending.drain(..));
        self.pending_bytes = 0;
        v
    }

    /// Re-queue messages moved from another worker, in order, without the window check.
    pub fn requeue(&mut self, msgs: Vec<(Arc<Message>, QoS)>) {
        for (m, q) in msgs {
            self.pending_bytes += m.cost();
            self.pending.push_back((m, q));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::PublishProps;
    use bytes::Bytes;

    fn msg(payload: &'static str) -> Arc<Message> {
        Arc::new(Message::new(
            "g".into(),
            Bytes::from_static(payload.as_bytes()),
            PublishProps::default(),
            QoS::ExactlyOnce,
            1,
            0,
        ))
    }

    fn pkids(out: &[OutItem]) -> Vec<(u16, bool)> {
        out.iter()
            .filter_map(|o| match o {
                OutItem::Publish { pkid, dup, .. } => Some((*pkid, *dup)),
                OutItem::PubRel(_) => None,
            })
            .collect()
    }

    #[test]
    fn qos0_goes_out_online_and_is_refused_offline() {
        let mut s = Session::new(1, 0);
        let l = Limits::default();
        let mut out = vec![];
        assert_eq!(
            s.offer(msg("a"), QoS::AtMostOnce, true, 0, &l, &mut out),
            Ok(())
        );
        assert_eq!(pkids(&out), vec![(0, false)]);
        assert_eq!(
            s.offer(msg("a"), QoS::AtMostOnce, false, 0, &l, &mut out),
            Err(Refused::Offline)
        );
    }

    #[test]
    fn window_limits_inflight_and_acks_release_queue_in_order() {
        let mut s = Session::new(1, 0);
        s.set_window(2, 100);
        let l = Limits::default();
        let mut out = vec![];
        for _ in 0..4 {
            s.offer(msg("x"), QoS::AtLeastOnce, true, 0, &l, &mut out)
                .unwrap();
        }
        assert_eq!(pkids(&out), vec![(1, false), (2, false)]);
        assert_eq!(s.queued_len(), 2);
        out.clear();
        assert_eq!(s.on_puback(2, 0, &mut out), Ok(()));
        assert_eq!(pkids(&out), vec![(3, false)]);
        out.clear();
        assert_eq!(s.on_puback(2, 0, &mut out), Err(UnknownPacketId));
        s.on_puback(1, 0, &mut out).unwrap();
        assert_eq!(pkids(&out), vec![(4, false)]);
        assert_eq!(s.queued_len(), 0);
    }

    #[test]
    fn offline_queue_is_bounded_by_messages_and_bytes() {
        let mut s = Session::new(1, 60);
        let l = Limits {
            session_queue_messages: 2,
            ..Limits::default()
        };
        let mut out = vec![];
        s.offer(msg("a"), QoS::AtLeastOnce, false, 0, &l, &mut out)
            .unwrap();
        s.offer(msg("b"), QoS::AtLeastOnce, false, 0, &l, &mut out)
            .unwrap();
        assert_eq!(
            s.offer(msg("c"), QoS::AtLeastOnce, false, 0, &l, &mut out),
            Err(Refused::QueueFull)
        );
        assert!(out.is_empty());
        let l2 = Limits {
            session_queue_bytes: 20,
            ..Limits::default()
        };
        let mut s2 = Session::new(2, 60);
        assert_eq!(
            s2.offer(
                msg("0123456789abcdef"),
                QoS::AtLeastOnce,
                false,
                0,
                &l2,
                &mut out
            ),
            Err(Refused::QueueFull)
        );
    }

    #[test]
    fn resume_resends_inflight_with_dup_then_pumps_queue() {
        let mut s = Session::new(1, 60);
        s.set_window(1, 100);
        let l = Limits::default();
        let mut out = vec![];
        s.offer(msg("a"), QoS::AtLeastOnce, true, 0, &l, &mut out)
            .unwrap();
        s.offer(msg("b"), QoS::AtLeastOnce, false, 0, &l, &mut out)
            .unwrap();
        out.clear();
        s.resume(0, &mut out);
        assert_eq!(pkids(&out), vec![(1, true)]);
        out.clear();
        s.on_puback(1, 0, &mut out).unwrap();
        assert_eq!(pkids(&out), vec![(2, false)]);
    }

    #[test]
    fn qos2_flow_pubrec_pubrel_pubcomp() {
        let mut s = Session::new(1, 0);
        s.set_window(10, 10);
        let l = Limits::default();
        let mut out = vec![];
        s.offer(msg("a"), QoS::ExactlyOnce, true, 0, &l, &mut out)
            .unwrap();
        out.clear();
        assert_eq!(
            s.on_puback(1, 0, &mut out),
            Err(UnknownPacketId),
            "QoS 2 wants PUBREC"
        );
        s.on_pubrec(1, 0, 0, &mut out).unwrap();
        assert!(matches!(out[..], [OutItem::PubRel(1)]));
        out.clear();
        // A repeated PUBREC repeats the PUBREL.
        s.on_pubrec(1, 0, 0, &mut out).unwrap();
        assert!(matches!(out[..], [OutItem::PubRel(1)]));
        out.clear();
        // Reconnect in the middle resends PUBREL, not the PUBLISH.
        s.resume(0, &mut out);
        assert!(matches!(out[..], [OutItem::PubRel(1)]));
        s.on_pubcomp(1, 0, &mut out).unwrap();
        assert_eq!(s.inflight_len(), 0);
        assert_eq!(s.on_pubcomp(1, 0, &mut out), Err(UnknownPacketId));
    }

    #[test]
    fn pubrec_with_failure_code_ends_the_flow() {
        let mut s = Session::new(1, 0);
        s.set_window(10, 10);
        let l = Limits::default();
        let mut out = vec![];
        s.offer(msg("a"), QoS::ExactlyOnce, true, 0, &l, &mut out)
            .unwrap();
        out.clear();
        s.on_pubrec(1, 0x87, 0, &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(s.inflight_len(), 0);
    }

    #[test]
    fn incoming_qos2_deduplicates_until_pubrel() {
        let mut s = Session::new(1, 0);
        assert!(s.incoming_qos2(7));
        assert!(!s.incoming_qos2(7), "retransmission is not delivered twice");
        assert!(s.release_incoming(7));
        assert!(!s.release_incoming(7));
        assert!(s.incoming_qos2(7), "after PUBREL the id may be reused");
    }

    #[test]
    fn expired_messages_are_refused_and_skipped_in_queue() {
        let props = PublishProps {
            message_expiry: Some(1),
            ..PublishProps::default()
        };
        let m = Arc::new(Message::new(
            "g".into(),
            Bytes::new(),
            props,
            QoS::AtLeastOnce,
            0,
            1_000,
        ));
        let mut s = Session::new(1, 60);
        s.set_window(1, 1);
        let l = Limits::default();
        let mut out = vec![];
        s.offer(m.clone(), QoS::AtLeastOnce, false, 1_500, &l, &mut out)
            .unwrap();
        assert_eq!(s.resume(2_000, &mut out), 1);
        assert!(out.is_empty());
        assert_eq!(
            s.offer(m, QoS::AtLeastOnce, true, 2_000, &l, &mut out),
            Err(Refused::Expired)
        );
    }

    #[test]
    fn pkid_allocation_skips_zero_and_ids_in_flight() {
        let mut s = Session::new(1, 0);
        s.set_window(3, 3);
        s.next_pkid = u16::MAX - 1;
        let l = Limits::default();
        let mut out = vec![];
        for _ in 0..3 {
            s.offer(msg("a"), QoS::AtLeastOnce, true, 0, &l, &mut out)
                .unwrap();
        }
        assert_eq!(pkids(&out), vec![(u16::MAX, false), (1, false), (2, false)]);
    }
}
