//! Wildcard-routed hubs (Event Grid namespaces): wildcard filters live in a per-worker trie
//! per hub besides their group, a publish reaches the workers holding the exact group or any
//! wildcard subscription, and each worker delivers one copy per session at the highest QoS
//! its matching subscriptions grant (MQTT 5 §3.3.4).

use std::sync::Arc;

use hubmq_core::ids::{GroupId, HubId};
use hubmq_core::message::Message;
use hubmq_core::mqtt::QoS;

use super::{disconnect_slow, offer_to_slot, State, Worker};
use crate::eventgrid::EgNamespace;
use crate::mesh::Target;
use crate::registry::GroupShared;

impl Worker {
    /// A wildcard group got its first local subscriber: index it in this worker's trie.
    pub(crate) fn eg_index(&self, st: &mut State, ns: &EgNamespace, g: &GroupShared) {
        let trie = st.tries.entry(ns.hub).or_default();
        if trie.is_empty() {
            ns.set_wild_interest(self.id, true);
        }
        trie.insert(&g.name, g.id);
    }

    /// A wildcard group lost its last local subscriber.
    pub(crate) fn eg_unindex(&self, st: &mut State, ns: &EgNamespace, g: &GroupShared) {
        let Some(trie) = st.tries.get_mut(&ns.hub) else {
            return;
        };
        trie.remove(&g.name, g.id);
        if trie.is_empty() {
            ns.set_wild_interest(self.id, false);
            st.tries.remove(&ns.hub);
        }
    }

    /// Publishes `msg` (topic `msg.topic`) in namespace `ns`: workers holding the exact group
    /// or any wildcard subscription get it; each matches its own subscribers.
    pub fn eg_publish(&self, ns: &EgNamespace, g: Option<&GroupShared>, msg: Arc<Message>) {
        let mask = g.map_or(0, GroupShared::interest) | ns.wild_interest();
        let group = g.map(|g| g.id);
        if self.send_to_peers(mask, Target::topic(ns.hub, group), &msg) {
            self.eg_deliver_local(ns.hub, group, &msg);
        }
    }

    /// Offers `msg` to this worker's subscribers in namespace `hub` whose filter matches: the
    /// exact group's members and every wildcard group the trie finds. A session matched by
    /// several filters gets one copy at the highest granted QoS (MQTT 5 §3.3.4).
    pub fn eg_deliver_local(&self, hub: HubId, group: Option<GroupId>, msg: &Arc<Message>) {
        let Some(ns) = self.eg(hub) else {
            return;
        };
        let now = self.now_ms();
        let mut slow = Vec::new();
        let mut overflow = Vec::new();
        let mut st = self.st.borrow_mut();
        let State {
            slots,
            groups,
            scratch,
            tries,
            targets,
            stamp,
            ..
        } = &mut *st;
        // One copy per session, at the highest QoS its matching subscriptions grant (No Local
        // applies per subscription): each session is stamped with this delivery's number the
        // first time a filter reaches it, so no sort or set is needed.
        *stamp += 1;
        let stamp = *stamp;
        targets.clear();
        let mut collect = |gid: GroupId| {
            let Some(lg) = groups.get(&gid) else { return };
            for &(idx, opts) in &lg.members {
                let Some(slot) = slots.get_mut(idx.0 as usize).and_then(|s| s.as_mut()) else {
                    continue;
                };
                if opts.no_local && msg.origin == slot.session.serial {
                    continue;
                }
                if slot.mark != stamp {
                    slot.mark = stamp;
                    slot.mark_qos = opts.qos;
                    targets.push(idx);
                } else if opts.qos > slot.mark_qos {
                    slot.mark_qos = opts.qos;
                }
            }
        };
        if let Some(gid) = group {
            collect(gid);
        }
        if let Some(trie) = tries.get(&hub) {
            trie.for_each_match(&msg.topic, &mut collect);
        }
        let mut c = self.counters.borrow_mut();
        for &idx in targets.iter() {
            let Some(slot) = slots.get_mut(idx.0 as usize).and_then(|s| s.as_mut()) else {
                continue;
            };
            let limits = if slot.conn.is_some() {
                &ns.online_limits
            } else {
                &ns.limits
            };
            let qos = msg.qos.min(slot.mark_qos).min(QoS::AtLeastOnce);
            if offer_to_slot(slot, msg, qos, now, limits, &mut c, scratch, &mut slow) {
                overflow.push(idx);
            }
        }
        drop(c);
        drop(st);
        disconnect_slow(slow);
        for idx in overflow {
            // §2: an offline session whose queue overflows is ended, not just trimmed.
            tracing::info!(namespace = %ns.name, "session overflow: offline queue full, session ended");
            self.remove_session(idx, now);
        }
    }

    /// Routes a will (or any broker-made message) of session hub `hub`: the namespace path
    /// for Event Grid, the group path otherwise.
    pub(crate) fn publish_in(&self, hub: HubId, g: &GroupShared, msg: Arc<Message>) {
        match self.eg(hub).cloned() {
            Some(ns) if msg.retain => {
                // A will published with retain: stored, and delivered live without the flag.
                if ns.retain(&msg, false, self.now_ms()).is_err() {
                    tracing::info!(namespace = %ns.name, topic = %msg.topic, "retained will not stored: quota");
                }
                self.eg_publish(&ns, Some(g), Arc::new(msg.with_retain(false, None)));
            }
            Some(ns) => self.eg_publish(&ns, Some(g), msg),
            None => self.publish(g, msg),
        }
    }
}
