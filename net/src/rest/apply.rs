//! What a REST operation does on one worker. The worker that received the request broadcasts
//! a [`RestOp`] to every worker (itself included) as a cold-path `worker::Command::Run` job; each
//! applies it to the sessions it owns and answers a [`RestReply`], which the REST handler sums
//! up. Group membership changes go through `Worker::subscribe` / `unsubscribe` — the same
//! sharded group tables and interest masks as SUBSCRIBE — and permission changes edit the
//! slot's `Permissions`, read by the connection on its next packet.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use hubmq_core::ids::{GroupId, HubId, SessionIdx, WorkerId};
use hubmq_core::message::Message;
use hubmq_core::mqtt::{QoS, ReasonCode};
use hubmq_core::odata::{Filter, FilterTarget, GroupView};
use hubmq_core::session::{OutItem, SubOpts};

use crate::registry::GroupShared;
use crate::worker::Command;
use crate::worker::{disconnect_slow, offer_to_slot, ConnHandle, LocalGroup, Slot, Worker};

use super::route::{PermAction, PermKind};

/// The QoS server messages reach a session at (Web PubSub's; 1 for any other session).
fn server_qos(s: &Slot) -> QoS {
    s.ext.wps().map_or(QoS::AtLeastOnce, |p| p.server_qos)
}

/// Which sessions of a hub an operation is about, before `excluded` and `filter`.
#[derive(Debug)]
pub enum Target {
    All,
    User(Arc<str>),
    Connection(Arc<str>),
    Group(GroupId),
}

#[derive(Debug)]
pub struct Selector {
    pub hub: HubId,
    pub target: Target,
    /// Connection ids left out.
    pub excluded: Vec<String>,
    pub filter: Option<Filter>,
}

/// A REST operation as every worker applies it.
#[derive(Debug)]
pub enum RestOp {
    /// Offer `msg` at `qos` (lowered by the subscription's QoS for group targets).
    Send { sel: Selector, msg: Arc<Message> },
    /// End the selected sessions (v5 DISCONNECT 0x98 with `reason`).
    Close { sel: Selector, reason: String },
    /// Count the selected sessions.
    Count { sel: Selector },
    /// Subscribe the selected sessions to `groups` (QoS 1, our choice).
    AddToGroups {
        sel: Selector,
        groups: Vec<Arc<GroupShared>>,
    },
    /// Unsubscribe the selected sessions from `groups`, or from all groups when `None`.
    RemoveFromGroups {
        sel: Selector,
        groups: Option<Vec<GroupId>>,
    },
    Permission {
        hub: HubId,
        conn: Arc<str>,
        kind: PermKind,
        action: PermAction,
        /// `targetName`; `None` = every group.
        group: Option<Arc<GroupShared>>,
    },
    /// The (connection id, user id) of the group's local members.
    ListGroup { group: GroupId },
}

/// One worker's answer.
#[derive(Debug, Default)]
pub struct RestReply {
    /// Sessions selected (and acted on).
    pub matched: usize,
    /// Permission check: held (or, for grant/revoke, the connection was found).
    pub held: bool,
    pub members: Vec<(Arc<str>, Option<Arc<str>>)>,
}

/// How long a REST request waits for every worker to answer (a worker that is shutting down
/// no longer serves commands).
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `op` on every worker and gathers the replies. `None` when a worker did not answer in
/// time.
pub async fn broadcast(w: &Rc<Worker>, op: RestOp) -> Option<Vec<RestReply>> {
    let op = Arc::new(op);
    let mesh = &w.shared.mesh;
    let n = mesh.workers();
    let (tx, rx) = flume::bounded(n);
    for i in 0..n {
        mesh.command(
            WorkerId(i as u16),
            Command::Run(Box::new({
                let (op, tx) = (op.clone(), tx.clone());
                move |w: &Worker| {
                    let _ = tx.send(apply(w, &op));
                }
            })),
        );
    }
    drop(tx);
    let gather = async {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match rx.recv_async().await {
                Ok(r) => out.push(r),
                Err(_) => break,
            }
        }
        out
    };
    match monoio::time::timeout(GATHER_TIMEOUT, gather).await {
        Ok(v) if v.len() == n => Some(v),
        _ => None,
    }
}

/// The groups of one session, by name, for `'g' in groups` and `length(groups)`.
struct SlotGroups<'a> {
    slot: &'a Slot,
    groups: &'a HashMap<GroupId, LocalGroup>,
}

impl GroupView for SlotGroups<'_> {
    fn contains(&self, group: &str) -> bool {
        self.slot.session.subs.keys().any(|g| {
            self.groups
                .get(g)
                .is_some_and(|lg| &*lg.shared.name == group)
        })
    }
    fn count(&self) -> usize {
        self.slot.session.subs.len()
    }
}

/// Applies `op` to this worker's sessions (called from the command task).
pub(crate) fn apply(w: &Worker, op: &RestOp) -> RestReply {
    match op {
        RestOp::Send { sel, msg } => {
            let picked = select(w, sel);
            let n = picked.len();
            offer(w, &picked, msg);
            RestReply {
                matched: n,
                ..RestReply::default()
            }
        }
        RestOp::Close { sel, reason } => {
            let picked = select(w, sel);
            for (idx, _) in &picked {
                close(w, *idx, reason);
            }
            RestReply {
                matched: picked.len(),
                ..RestReply::default()
            }
        }
        RestOp::Count { sel } => RestReply {
            matched: select(w, sel).len(),
            ..RestReply::default()
        },
        RestOp::AddToGroups { sel, groups } => {
            let picked = select(w, sel);
            for (idx, _) in &picked {
                for g in groups {
                    let subscribed = w
                        .with_slot(*idx, |s| s.session.subs.contains_key(&g.id))
                        .unwrap_or(true);
                    // An existing subscription keeps its own options.
                    if !subscribed {
                        let opts = SubOpts {
                            qos: QoS::AtLeastOnce,
                            no_local: false,
                        };
                        w.subscribe(*idx, g, opts);
                    }
                }
            }
            RestReply {
                matched: picked.len(),
                ..RestReply::default()
            }
        }
        RestOp::RemoveFromGroups { sel, groups } => {
            let picked = select(w, sel);
            for (idx, _) in &picked {
                let gids: Vec<GroupId> = match groups {
                    Some(g) => g.clone(),
                    None => w
                        .with_slot(*idx, |s| s.session.subs.keys().copied().collect())
                        .unwrap_or_default(),
                };
                for g in gids {
                    w.unsubscribe(*idx, g);
                }
            }
            RestReply {
                matched: picked.len(),
                ..RestReply::default()
            }
        }
        RestOp::Permission {
            hub,
            conn,
            kind,
            action,
            group,
        } => {
            let idx = w.st.borrow().by_key.get(&(*hub, conn.clone())).copied();
            let Some(idx) = idx else {
                return RestReply::default();
            };
            let held = w
                .with_slot(idx, |s| {
                    s.ext.wps_mut().is_some_and(|p| {
                        edit_permission(&mut p.perms, *kind, *action, group.as_deref())
                    })
                })
                .unwrap_or(false);
            RestReply {
                matched: 1,
                held,
                members: Vec::new(),
            }
        }
        RestOp::ListGroup { group } => {
            let st = w.st.borrow();
            let members = st
                .groups
                .get(group)
                .map(|lg| {
                    lg.members
                        .iter()
                        .filter_map(|(idx, _)| {
                            let s = st.slots.get(idx.0 as usize)?.as_ref()?;
                            Some((s.key.1.clone(), s.user_id.clone()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            RestReply {
                matched: 0,
                held: false,
                members,
            }
        }
    }
}

/// The local sessions `sel` picks, each with the QoS a delivery to it gets (the group
/// subscription's maximum for group targets, QoS 1 otherwise).
fn select(w: &Worker, sel: &Selector) -> Vec<(SessionIdx, QoS)> {
    let st = w.st.borrow();
    let pass = |slot: &Slot| -> bool {
        if slot.key.0 != sel.hub {
            return false;
        }
        let id = &*slot.key.1;
        if sel.excluded.iter().any(|e| e == id) {
            return false;
        }
        match &sel.filter {
            None => true,
            Some(f) => f.matches(&FilterTarget {
                user_id: slot.user_id.as_deref(),
                connection_id: id,
                groups: &SlotGroups {
                    slot,
                    groups: &st.groups,
                },
            }),
        }
    };
    let slot_at = |idx: SessionIdx| st.slots.get(idx.0 as usize).and_then(|s| s.as_ref());
    match &sel.target {
        Target::Connection(c) => st
            .by_key
            .get(&(sel.hub, c.clone()))
            .and_then(|idx| {
                slot_at(*idx)
                    .filter(|s| pass(s))
                    .map(|s| (*idx, server_qos(s)))
            })
            .map(|picked| vec![picked])
            .unwrap_or_default(),
        Target::Group(g) => st
            .groups
            .get(g)
            .map(|lg| {
                lg.members
                    .iter()
                    .filter(|(idx, _)| slot_at(*idx).is_some_and(pass))
                    .map(|(idx, o)| (*idx, o.qos.min(QoS::AtLeastOnce)))
                    .collect()
            })
            .unwrap_or_default(),
        Target::All | Target::User(_) => st
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((SessionIdx(i as u32), s.as_ref()?)))
            .filter(|(_, s)| match &sel.target {
                Target::User(u) => s.user_id.as_deref() == Some(&**u),
                _ => true,
            })
            .filter(|(_, s)| pass(s))
            .map(|(idx, s)| (idx, server_qos(s)))
            .collect(),
    }
}

/// Offers `msg` to each picked session directly (no subscription needed for server
/// messages), with the same queue rules as a group delivery.
fn offer(w: &Worker, picked: &[(SessionIdx, QoS)], msg: &Arc<Message>) {
    let now = w.now_ms();
    let limits = &w.shared.settings.limits;
    let mut slow: Vec<Rc<ConnHandle>> = Vec::new();
    let mut st = w.st.borrow_mut();
    let mut c = w.counters.borrow_mut();
    let mut scratch: Vec<OutItem> = Vec::new();
    for &(idx, qos) in picked {
        let Some(slot) = st.slots.get_mut(idx.0 as usize).and_then(|s| s.as_mut()) else {
            continue;
        };
        offer_to_slot(slot, msg, qos, now, limits, &mut c, &mut scratch, &mut slow);
    }
    drop(c);
    drop(st);
    disconnect_slow(slow);
}

/// Ends a session from REST: the session is discarded, not kept for a reconnect
/// (§4.3); an online v5 client gets DISCONNECT 0x98 with the reason string first.
fn close(w: &Worker, idx: SessionIdx, reason: &str) {
    let conn = w
        .with_slot(idx, |s| {
            // The connection's end then removes the session (expiry 0).
            s.session.expiry_secs = 0;
            s.conn.clone()
        })
        .flatten();
    match conn {
        Some(conn) => {
            let text = truncate(reason, 256.min(conn.client_max_packet.get() as usize / 2));
            conn.disconnect(
                ReasonCode::AdministrativeAction,
                (!text.is_empty()).then_some(text),
            );
        }
        None => w.remove_session(idx, w.now_ms()),
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Grant / revoke / check one permission of a connection. Returns whether the permission is
/// held after the operation (check: whether it is held).
fn edit_permission(
    p: &mut hubmq_core::perm::Permissions,
    kind: PermKind,
    action: PermAction,
    group: Option<&GroupShared>,
) -> bool {
    let (any, set) = match kind {
        PermKind::SendToGroup => (&mut p.send_any, &mut p.send),
        PermKind::JoinLeaveGroup => (&mut p.join_any, &mut p.join),
    };
    match (action, group) {
        (PermAction::Grant, Some(g)) => set.insert(g.id),
        (PermAction::Grant, None) => *any = true,
        // Revoking one group cannot carve it out of an "any group" grant: the bitset has no
        // negative entries (documented limitation).
        (PermAction::Revoke, Some(g)) => set.remove(g.id),
        (PermAction::Revoke, None) => {
            *any = false;
            *set = hubmq_core::perm::BitSet::new();
        }
        (PermAction::Check, _) => {}
    }
    match group {
        Some(g) => *any || set.contains(g.id),
        None => *any,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: u32) -> GroupShared {
        GroupShared {
            id: GroupId(id),
            hub: hubmq_core::ids::HubId(0),
            name: Arc::from(format!("g{id}")),
            interest: std::sync::atomic::AtomicU64::new(0),
        }
    }

    #[test]
    fn grant_and_revoke_one_group_edit_the_bitset() {
        let mut p = hubmq_core::perm::Permissions::default();
        let (g, h) = (group(3), group(70));
        let send = PermKind::SendToGroup;
        assert!(!edit_permission(&mut p, send, PermAction::Check, Some(&g)));
        assert!(edit_permission(&mut p, send, PermAction::Grant, Some(&g)));
        assert!(p.can_send(g.id) && !p.can_send(h.id));
        assert!(!p.can_join(g.id), "send grant does not allow joining");
        assert!(!edit_permission(&mut p, send, PermAction::Revoke, Some(&g)));
        assert!(!p.can_send(g.id));
    }

    #[test]
    fn grant_without_target_means_every_group_and_revoke_clears_all() {
        let mut p = hubmq_core::perm::Permissions::default();
        let g = group(5);
        let join = PermKind::JoinLeaveGroup;
        edit_permission(&mut p, join, PermAction::Grant, Some(&g));
        assert!(edit_permission(&mut p, join, PermAction::Grant, None));
        assert!(p.join_any && p.can_join(GroupId(999)));
        assert!(edit_permission(
            &mut p,
            join,
            PermAction::Check,
            Some(&group(42))
        ));
        assert!(!edit_permission(&mut p, join, PermAction::Revoke, None));
        assert!(
            !p.can_join(g.id),
            "revoking all drops the specific grants too"
        );
    }

    #[test]
    fn truncate_cuts_at_char_boundary() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
