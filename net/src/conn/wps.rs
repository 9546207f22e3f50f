//! The Web PubSub side of a connection (`webpubsub-mqtt.md`): CONNECT authenticated by the
//! WebSocket upgrade's token (or the hub and token in username/password on TCP/TLS), the
//! upstream `connect` event's answer, group joins from the token, and PUBLISH / SUBSCRIBE /
//! UNSUBSCRIBE checked against the connection's precomputed permission bitset. The hub's
//! topic rules come from `hubmq_core::topic`; the upstream calls from `up`.

use std::sync::Arc;

use hubmq_core::connect::{connack_success, negotiate};
use hubmq_core::ids::SessionIdx;
use hubmq_core::message::Message;
use hubmq_core::mqtt::{
    Connect, Packet, ProtocolVersion, Publish, QoS, ReasonCode, SubAck, Subscribe, UnsubAck,
    Unsubscribe,
};
use hubmq_core::session::SubOpts;
use hubmq_core::topic::{check_filter, check_topic, FilterKind, TopicKind};
use hubmq_metrics::DropReason;

use super::{assign_client_id, suback_code, Active, ConnKind, Phase, Reader};
use crate::auth::{authenticate, compile_permissions, valid_hub_name, AuthFailure};
use crate::ending::{ConnError, Feature};
use crate::upstream::{self, reply as up_reply, SessionUp, SystemEvent};
use crate::worker::{SessionExt, WillSpec};

impl Reader {
    /// The packets whose handling is Web PubSub's own; the rest go to `handle_common`.
    pub(super) async fn handle_wps(&mut self, idx: SessionIdx, p: Packet) -> Result<(), ConnError> {
        match p {
            Packet::Publish(pb) => self.on_publish(pb).await,
            Packet::Subscribe(s) => self.on_subscribe(s),
            Packet::Unsubscribe(u) => self.on_unsubscribe(u),
            other => self.handle_common(idx, other).await,
        }
    }

    pub(super) async fn on_connect(&mut self, c: Connect) -> Result<(), ConnError> {
        let version = c.protocol.unwrap_or(ProtocolVersion::V4);
        self.version = Some(version);
        self.h.version.set(version);
        if c.props.auth_method.is_some() {
            // Web PubSub authenticates with the token; enhanced auth is Event Grid's.
            return self.refuse_connect(
                version,
                ReasonCode::BadAuthenticationMethod,
                "enhanced authentication is not supported",
            );
        }
        let w = self.w.clone();
        let n = match negotiate(&c, w.limits(), || assign_client_id(&w)) {
            Ok(n) => n,
            Err(rc) => return self.refuse_connect(version, rc, "connect refused"),
        };

        // Identity: from the upgrade (WebSocket) or from username/password (TCP/TLS).
        let identity = match self.pre.take() {
            Some(id) => id,
            None => {
                let hub = match c.username.as_deref() {
                    Some(u) => u.strip_prefix("hub=").unwrap_or(u),
                    None => {
                        return self.refuse_connect(
                            version,
                            ReasonCode::BadUserNameOrPassword,
                            "user name must name the hub",
                        )
                    }
                };
                if !valid_hub_name(hub) {
                    return self.refuse_connect(
                        version,
                        ReasonCode::BadUserNameOrPassword,
                        "invalid hub name",
                    );
                }
                let token = c
                    .password
                    .as_ref()
                    .and_then(|p| std::str::from_utf8(p).ok());
                match authenticate(&w, hub, token, None) {
                    Ok(id) => id,
                    Err(AuthFailure::UnknownHub) => {
                        return self.refuse_connect(
                            version,
                            ReasonCode::NotAuthorized,
                            "unknown hub",
                        )
                    }
                    Err(f) => {
                        return self.refuse_connect(
                            version,
                            ReasonCode::NotAuthorized,
                            f.describe(),
                        )
                    }
                }
            }
        };

        // The upstream `connect` event (§5): may refuse, or override the token's identity.
        let mut identity = identity;
        let hub_lower = identity.hub_name.to_ascii_lowercase();
        let upstream = w
            .shared
            .upstream
            .clone()
            .filter(|u| u.hub(&hub_lower).is_some());
        let physical_id = upstream.as_ref().map(|_| upstream::new_id());
        let mut accepted: Option<up_reply::Accept> = None;
        // Taken so the chain is not kept for the life of the connection.
        let certs = std::mem::take(&mut self.client_certs);
        if let (Some(u), Some(pid)) = (&upstream, &physical_id) {
            match self.connect_event(u, pid, &c, &n, &identity, certs).await {
                None => {}
                Some(up_reply::ConnectDecision::Accept(a)) => accepted = Some(a),
                Some(up_reply::ConnectDecision::Refuse(r)) => return self.refuse_upstream(r),
            }
        }
        let mut upstream_groups = None;
        if let Some(a) = &accepted {
            if let Some(uid) = &a.user_id {
                identity.user_id = Some(uid.as_str().into());
            }
            if let Some(roles) = &a.roles {
                identity.roles = hubmq_auth::parse_roles(roles);
            }
            upstream_groups = a.groups.clone();
        }

        let perms = compile_permissions(&w, identity.hub, &identity.roles);
        self.h.client_max_packet.set(n.client_max_packet);
        let client_id: Arc<str> = n.client_id.as_str().into();
        let attached = w
            .attach(
                (identity.hub, client_id.clone()),
                n.clean_start,
                n.session_expiry,
                identity.user_id.clone(),
                SessionExt::web_pubsub(perms),
                self.h.clone(),
                n.client_receive_max,
            )
            .await;
        let idx = attached.idx;
        if let Some(will) = c.will {
            w.with_slot(idx, |s| {
                s.will = Some(WillSpec {
                    will,
                    delay_secs: n.will_delay,
                })
            });
        }
        if let Some(pid) = physical_id {
            let state = accepted.as_ref().map(|a| a.state.clone());
            let hub_name = identity.hub_name.clone();
            w.with_slot(idx, |s| {
                let Some(wps) = s.ext.wps_mut() else { return };
                let up = wps
                    .up
                    .get_or_insert_with(|| Box::new(SessionUp::new(&hub_name, pid.clone())));
                up.physical_id = pid;
                up.next_event_id = 1;
                up.close = upstream::CloseInfo::default();
                if let Some(st) = &state {
                    up.apply_state(st);
                }
            });
        }
        if let (false, Some(groups)) = (attached.session_present, &upstream_groups) {
            // Groups from the upstream replace the token's, joined with default options (§5.3).
            for g in groups {
                let gs = w.group(identity.hub, g);
                w.subscribe(
                    idx,
                    &gs,
                    SubOpts {
                        qos: QoS::AtMostOnce,
                        no_local: false,
                    },
                );
            }
        } else if !attached.session_present {
            // Token groups are joined at connect, permission or not (webpubsub-mqtt.md).
            for g in &identity.groups {
                let gs = w.group(identity.hub, g);
                w.subscribe(
                    idx,
                    &gs,
                    SubOpts {
                        qos: QoS::AtLeastOnce,
                        no_local: false,
                    },
                );
            }
        }
        let mut ack = connack_success(&n, attached.session_present, w.limits());
        if let (Some(a), ProtocolVersion::V5) = (&accepted, version) {
            ack.props.user_properties = a.user_properties.clone();
        }
        self.send(Packet::ConnAck(ack));
        if !attached.session_present {
            if let Some(u) = &upstream {
                let client = client_id.clone();
                w.with_slot(idx, |s| {
                    let user = s.user_id.clone();
                    if let Some(up) = s.ext.wps_mut().and_then(|p| p.up.as_mut()) {
                        u.session_event(SystemEvent::Connected, up, &client, user.as_deref());
                    }
                });
            }
        }
        self.resume_accepted(idx, version);
        tracing::info!(
            hub = %identity.hub_name,
            client = %client_id,
            user = identity.user_id.as_deref().unwrap_or(""),
            worker = w.id.0,
            protocol = version.level(),
            session_present = attached.session_present,
            "client connected"
        );
        self.phase = Phase::Active(Box::new(Active {
            idx,
            hub: identity.hub,
            client_id,
            kind: ConnKind::WebPubSub(identity),
        }));
        self.timers
            .connected(std::time::Instant::now(), n.keep_alive);
        Ok(())
    }

    async fn on_publish(&mut self, p: Publish) -> Result<(), ConnError> {
        let Phase::Active(a) = &self.phase else {
            return Ok(());
        };
        let (idx, hub) = (a.idx, a.hub);
        let w = self.w.clone();
        if p.props.topic_alias.is_some() {
            return Err(ConnError::Unsupported(Feature::TopicAliases));
        }
        if p.qos == QoS::ExactlyOnce {
            let open = w
                .with_slot(idx, |s| s.session.incoming_qos2_len())
                .unwrap_or(0);
            if open >= usize::from(w.limits().receive_maximum) {
                return Err(ConnError::ReceiveMaximumExceeded);
            }
        }
        let group = match check_topic(&p.topic, w.limits().max_topic_len) {
            Ok(TopicKind::Group(g)) => g,
            Ok(TopicKind::UserEvent(name)) => {
                let name = name.to_owned();
                // Boxed for the same reason as on_connect: rare and large.
                return Box::pin(self.on_user_event(idx, name, p)).await;
            }
            Err(rc) => {
                w.counters.borrow_mut().dropped[DropReason::Denied.index()] += 1;
                self.ack(p.qos, p.pkid, rc);
                return Ok(());
            }
        };
        let g = w.find_group(hub, group);
        let allowed = w
            .with_slot(idx, |s| match &g {
                Some(g) => s.ext.wps().is_some_and(|p| p.perms.can_send(g.id)),
                None => s.ext.wps().is_some_and(|p| p.perms.send_any),
            })
            .unwrap_or(false);
        if !allowed {
            tracing::debug!(topic = %p.topic, "publish denied");
            w.counters.borrow_mut().dropped[DropReason::Denied.index()] += 1;
            self.ack(p.qos, p.pkid, ReasonCode::NotAuthorized);
            return Ok(());
        }
        let fresh = p.qos != QoS::ExactlyOnce
            || w.with_slot(idx, |s| s.session.incoming_qos2(p.pkid))
                .unwrap_or(false);
        if fresh {
            w.counters.borrow_mut().messages_received += 1;
            if let Some(g) = g {
                let serial = w.with_slot(idx, |s| s.session.serial).unwrap_or(0);
                let msg = Arc::new(Message::new(
                    g.name.clone(),
                    p.payload,
                    p.props,
                    p.qos,
                    serial,
                    w.now_ms(),
                ));
                w.publish(&g, msg);
            }
        }
        self.ack(p.qos, p.pkid, ReasonCode::Success);
        Ok(())
    }

    fn on_subscribe(&mut self, s: Subscribe) -> Result<(), ConnError> {
        let Phase::Active(a) = &self.phase else {
            return Ok(());
        };
        let (idx, hub) = (a.idx, a.hub);
        if s.subscription_id.is_some() {
            return Err(ConnError::Unsupported(Feature::SubscriptionIdentifiers));
        }
        let v5 = self.version == Some(ProtocolVersion::V5);
        let w = self.w.clone();
        let mut reasons = Vec::with_capacity(s.filters.len());
        for f in &s.filters {
            let rc = match check_filter(&f.path, w.limits().max_topic_len) {
                Err(rc) => Err(rc),
                // Server messages arrive at QoS 1 without any subscription; subscribing to
                // their topic sets the maximum QoS they are delivered at (webpubsub-rest.md §5).
                Ok(FilterKind::ServerMessages) => {
                    let qos = f.qos.min(QoS::AtLeastOnce);
                    w.with_slot(idx, |s| {
                        if let Some(p) = s.ext.wps_mut() {
                            p.server_qos = qos;
                        }
                    });
                    Ok(qos)
                }
                Ok(FilterKind::Group(name)) => {
                    let g = w.group(hub, name);
                    let ok = w
                        .with_slot(idx, |s| s.ext.wps().is_some_and(|p| p.perms.can_join(g.id)))
                        .unwrap_or(false);
                    if ok {
                        let opts = SubOpts {
                            qos: f.qos,
                            no_local: f.no_local,
                        };
                        w.subscribe(idx, &g, opts);
                        Ok(f.qos)
                    } else {
                        tracing::debug!(group = name, "subscribe denied");
                        w.counters.borrow_mut().dropped[DropReason::Denied.index()] += 1;
                        Err(ReasonCode::NotAuthorized)
                    }
                }
            };
            reasons.push(suback_code(rc, v5));
        }
        self.send(Packet::SubAck(SubAck {
            pkid: s.pkid,
            reasons,
            ..SubAck::default()
        }));
        Ok(())
    }

    fn on_unsubscribe(&mut self, u: Unsubscribe) -> Result<(), ConnError> {
        let Phase::Active(a) = &self.phase else {
            return Ok(());
        };
        let (idx, hub) = (a.idx, a.hub);
        let w = self.w.clone();
        let mut reasons = Vec::with_capacity(u.filters.len());
        for f in &u.filters {
            let rc = match check_filter(f, w.limits().max_topic_len) {
                Err(rc) => rc,
                Ok(FilterKind::ServerMessages) => {
                    w.with_slot(idx, |s| {
                        if let Some(p) = s.ext.wps_mut() {
                            p.server_qos = QoS::AtLeastOnce;
                        }
                    });
                    ReasonCode::Success
                }
                Ok(FilterKind::Group(name)) => match w.find_group(hub, name) {
                    None => ReasonCode::NoSubscriptionExisted,
                    Some(g) => {
                        let ok = w
                            .with_slot(idx, |s| s.ext.wps().is_some_and(|p| p.perms.can_join(g.id)))
                            .unwrap_or(false);
                        if !ok {
                            ReasonCode::NotAuthorized
                        } else if w.unsubscribe(idx, g.id) {
                            ReasonCode::Success
                        } else {
                            ReasonCode::NoSubscriptionExisted
                        }
                    }
                },
            };
            reasons.push(rc.as_u8());
        }
        self.send(Packet::UnsubAck(UnsubAck {
            pkid: u.pkid,
            reasons,
            ..UnsubAck::default()
        }));
        Ok(())
    }
}
