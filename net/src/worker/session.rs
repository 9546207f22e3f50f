//! Sessions on a worker: attaching a connection (new, resumed or taken over from another
//! connection or worker), detaching it, wills (now or after their delay), and the end of a
//! session (its groups left, its registry claim released, the product told).

use std::rc::Rc;
use std::sync::Arc;

use hubmq_core::ids::SessionIdx;
use hubmq_core::message::Message;
use hubmq_core::mqtt::{LastWill, ProtocolVersion, QoS};
use hubmq_core::session::Session;
use hubmq_metrics::{DisconnectReason, DropReason};

use super::{Command, ConnHandle, SessionExt, SessionTransfer, Worker};
use crate::ending::ServerEnd;
use crate::registry::{GroupShared, SessionKey};

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
    /// The product's own part of the session (permissions, upstream data, rights).
    pub ext: SessionExt,
    pub conn: Option<Rc<ConnHandle>>,
    /// Offline persistent session: when it expires (broker clock, ms).
    pub expires_at_ms: Option<u64>,
    /// Will of the current connection.
    pub will: Option<WillSpec>,
    /// A will whose delay is running: (message, group, fire at ms).
    pub pending_will: Option<(Arc<Message>, Arc<GroupShared>, u64)>,
    /// Wildcard-routing scratch: the delivery (`State::stamp`) that last matched this session,
    /// and the highest QoS its matching subscriptions grant in it (one copy per session).
    pub(crate) mark: u64,
    pub(crate) mark_qos: QoS,
}

/// Result of attaching a connection to a session.
pub struct Attached {
    pub idx: SessionIdx,
    pub session_present: bool,
}

impl Worker {
    /// Attaches a freshly authenticated connection to its session: takes over a local or
    /// remote session with the same key, resumes it (clean start = 0) or starts a new one.
    #[allow(clippy::too_many_arguments)]
    pub async fn attach(
        self: &Rc<Self>,
        key: SessionKey,
        clean_start: bool,
        expiry_secs: u32,
        user_id: Option<Arc<str>>,
        ext: SessionExt,
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
                // channel closes and we start fresh. A worker that does not answer within the
                // connect timeout (stuck, or shutting down) costs the session, not a hung
                // CONNECT: the claim is ours already, so its late answer finds no receiver.
                let wait = self.shared.settings.connect_timeout;
                transfer = match monoio::time::timeout(wait, rx.recv_async()).await {
                    Ok(answer) => answer.ok().flatten(),
                    Err(_) => {
                        tracing::warn!(
                            worker = self.id.0,
                            owner = owner.0,
                            client = %key.1,
                            "session takeover: the old owner did not answer in time; starting a new session"
                        );
                        self.counters.borrow_mut().cross_core_timeouts += 1;
                        None
                    }
                };
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
                old.end(ServerEnd::TakenOver);
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
                    slot.ext.resume_with(ext);
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
        let (user_id, ext, session_present) = match (transfer.as_mut(), clean_start) {
            (Some(t), false) => {
                let ext = match t.ext.take() {
                    Some(mut moved) => {
                        moved.resume_with(ext);
                        moved
                    }
                    None => ext,
                };
                (t.user_id.clone(), ext, true)
            }
            _ => (user_id, ext, false),
        };
        let slot = Slot {
            key: key.clone(),
            session,
            user_id,
            ext,
            conn: Some(conn),
            expires_at_ms: None,
            will: None,
            pending_will: None,
            mark: 0,
            mark_qos: QoS::AtMostOnce,
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
                    let reason = crate::ending::disconnect_metric(c.end_reason.get(), will);
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
        let Some((spec, hub, serial, wps_perms, eg_allowed)) = self
            .with_slot(idx, |s| {
                let spec = s.will.take()?;
                // Event Grid: Publisher permission on the will topic when the will fires.
                let eg_allowed = s
                    .ext
                    .eg()
                    .map(|r| hubmq_auth::eventgrid::check_publish(&r.perms, &spec.will.topic));
                // Web PubSub: permission to send to the will's group (checked below).
                let wps_perms = s.ext.wps().map(|w| w.perms.clone());
                Some((spec, s.key.0, s.session.serial, wps_perms, eg_allowed))
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
        if wps_perms.is_some_and(|p| !p.can_send(g.id)) {
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
        let up = match slot.ext {
            SessionExt::WebPubSub(w) => w.up,
            SessionExt::EventGrid(_) => None,
        };
        if let (Some(mut up), Some(u)) = (up, &self.shared.upstream) {
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
                if let Some(up) = s.ext.wps_mut().and_then(|w| w.up.as_mut()) {
                    up.close = info;
                }
            }
        });
    }

    /// The session's connection was taken over by a new CONNECT (the server sent 0x8E to v5).
    fn note_taken_over(&self, idx: SessionIdx, old: &ConnHandle) {
        let v5 = old.version.get() == ProtocolVersion::V5;
        self.with_slot(idx, |s| {
            if let Some(up) = s.ext.wps_mut().and_then(|w| w.up.as_mut()) {
                up.close = crate::upstream::CloseInfo {
                    reason: Some(ServerEnd::TakenOver.detail().into()),
                    initiated_by_client: false,
                    packet: v5.then(|| (ServerEnd::TakenOver.reason().as_u8(), Vec::new())),
                };
            }
        });
    }

    /// Another worker takes session `key`: disconnect our connection and give the state away.
    pub(super) fn hand_over(&self, key: &SessionKey, keep: bool) -> Option<SessionTransfer> {
        let idx = self.st.borrow().by_key.get(key).copied()?;
        let now = self.now_ms();
        let conn = self.with_slot(idx, |s| s.conn.take()).flatten();
        if let Some(conn) = conn {
            conn.end(ServerEnd::TakenOver);
            self.note_taken_over(idx, &conn);
            self.fire_will_now_or_later(idx, now);
        }
        let t = if keep {
            let mut st = self.st.borrow_mut();
            let st = &mut *st;
            let slot = st.slots.get_mut(idx.0 as usize)?.as_mut()?;
            let subs = slot
                .session
                .subs
                .iter()
                .filter_map(|(gid, o)| st.groups.get(gid).map(|lg| (lg.shared.clone(), *o)))
                .collect();
            Some(SessionTransfer {
                serial: slot.session.serial,
                user_id: slot.user_id.clone(),
                ext: slot.ext.take_for_transfer(),
                subs,
                undelivered: slot.session.drain_undelivered(),
            })
        } else {
            None
        };
        if keep {
            // The session lives on elsewhere: a will still waiting for its delay is cancelled
            // by the new connection [MQTT-3.1.3-9], exactly as on a same-worker takeover.
            self.with_slot(idx, |s| s.pending_will = None);
        }
        // The new owner has claimed the key already; do not release it.
        self.end_session(idx, false);
        t
    }
}
