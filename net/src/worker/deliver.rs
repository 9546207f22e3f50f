//! The data path of exact-name groups: a message goes to the local members of its group and,
//! through the mesh, to every peer whose interest bit is set; each delivery goes through the
//! session's window and queue (QoS 1/2) or straight to the connection (QoS 0).

use std::rc::Rc;
use std::sync::Arc;

use hubmq_core::ids::{GroupId, SessionIdx, WorkerId};
use hubmq_core::message::Message;
use hubmq_core::mqtt::QoS;
use hubmq_core::session::{OutItem, Refused, Session};
use hubmq_metrics::{CoreCounters, DropReason};

use super::{ConnHandle, Out, Slot, State, Worker};
use crate::mesh::{CoreMsg, Target};
use crate::registry::GroupShared;

impl Worker {
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
        let mut pushed = 0u64;
        while rest != 0 {
            let peer = WorkerId(rest.trailing_zeros() as u16);
            rest &= rest - 1;
            let m = CoreMsg::Deliver {
                to,
                msg: msg.clone(),
            };
            let mut c = self.counters.borrow_mut();
            match mesh.push(self.id, peer, m) {
                Ok(()) => {
                    c.cross_core_messages += 1;
                    pushed |= 1 << peer.0;
                }
                Err(_) => c.dropped[DropReason::CrossCoreFull.index()] += 1,
            }
        }
        if pushed != 0 {
            let was = self.wake_pending.replace(self.wake_pending.get() | pushed);
            if was == 0 {
                self.wake_peers.notify();
            }
        }
        mask & me != 0
    }

    /// Wakes every peer handed messages since the last call (see `wake_pending`).
    pub(crate) fn wake_pending_peers(&self) {
        let mut rest = self.wake_pending.replace(0);
        while rest != 0 {
            let peer = WorkerId(rest.trailing_zeros() as u16);
            rest &= rest - 1;
            self.shared.mesh.wake(peer);
        }
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
        conn.end(crate::ending::ServerEnd::SlowConsumer);
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
