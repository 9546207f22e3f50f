//! Event Grid's PUBLISH, SUBSCRIBE and UNSUBSCRIBE (`eventgrid-mqtt.md` §6–§8): topic-space
//! checks against the session's compiled rights, client topic aliases, the property and rate
//! quotas of §7, and the mode's refusals; plus the acknowledgements Event Grid treats
//! differently from plain MQTT. Connect and re-authentication are in the parent file.

use std::sync::Arc;

use hubmq_auth::eventgrid::{
    check_publish_with_mask, check_subscribe, validate_filter, validate_topic_name,
};
use hubmq_core::message::Message;
use hubmq_core::mqtt::{
    Packet, ProtocolVersion, PubAck, Publish, QoS, ReasonCode, SubAck, Subscribe, UnsubAck,
    Unsubscribe,
};
use hubmq_core::session::SubOpts;
use hubmq_metrics::DropReason;

use crate::conn::{suback_code, Reader};
use crate::ending::{ConnError, Feature};
use crate::eventgrid::{
    EgNamespace, MAX_FILTERS_PER_SUBSCRIBE, MAX_PROPERTY_BYTES, MAX_SUBSCRIPTIONS_PER_SESSION,
    MAX_USER_PROPERTY_BYTES, TOPIC_ALIAS_MAX,
};

/// Total size of a set of user properties, as counted against the 32 KB quota (§7).
fn user_property_bytes(props: &[(String, String)]) -> usize {
    props.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// Checks the PUBLISH property quotas of §7; the text names the property.
fn publish_props_ok(p: &Publish) -> Result<(), &'static str> {
    let pr = &p.props;
    if pr
        .response_topic
        .as_ref()
        .is_some_and(|t| t.len() > MAX_PROPERTY_BYTES)
    {
        return Err("response topic longer than 256 bytes");
    }
    if pr
        .content_type
        .as_ref()
        .is_some_and(|t| t.len() > MAX_PROPERTY_BYTES)
    {
        return Err("content type longer than 256 bytes");
    }
    if pr
        .correlation_data
        .as_ref()
        .is_some_and(|t| t.len() > MAX_PROPERTY_BYTES)
    {
        return Err("correlation data longer than 256 bytes");
    }
    if user_property_bytes(&pr.user_properties) > MAX_USER_PROPERTY_BYTES {
        return Err("user properties larger than 32 KB");
    }
    Ok(())
}

impl Reader {
    /// The packets whose handling differs in this mode; `Some` = handle as usual.
    pub(in crate::conn) fn handle_eg(&mut self, p: Packet) -> Result<Option<Packet>, ConnError> {
        match p {
            Packet::Publish(pb) => self.on_publish_eg(pb).map(|()| None),
            Packet::Subscribe(s) => self.on_subscribe_eg(s).map(|()| None),
            Packet::Unsubscribe(u) => self.on_unsubscribe_eg(u).map(|()| None),
            Packet::Auth(a) => self.on_auth_eg(a).map(|()| None),
            // §2: a negative PUBACK ends the connection [doc]; user properties are refused.
            Packet::PubAck(a) if a.reason >= 0x80 => {
                Err(ConnError::Refused("PUBACK with a failure reason code"))
            }
            Packet::PubAck(a) if !a.user_properties.is_empty() => Err(ConnError::Refused(
                "user properties are not accepted on PUBACK",
            )),
            Packet::Disconnect(d) if !d.user_properties.is_empty() => Err(ConnError::Refused(
                "user properties are not accepted on DISCONNECT",
            )),
            other => Ok(Some(other)),
        }
    }

    /// Refuses a PUBLISH: v5 QoS 1 gets a PUBACK with `rc`, v5 QoS 0 is dropped (or ends the
    /// connection when `fatal0`), v3.1.1 (no negative ack) is closed (§6, §8).
    fn eg_refuse_publish(
        &mut self,
        p: &Publish,
        rc: ReasonCode,
        text: &'static str,
        fatal0: bool,
    ) -> Result<(), ConnError> {
        self.w.counters.borrow_mut().dropped[DropReason::Denied.index()] += 1;
        tracing::debug!(topic = %p.topic, reason = rc.name(), "publish refused");
        let v5 = self.version == Some(ProtocolVersion::V5);
        match (v5, p.qos) {
            (true, QoS::AtLeastOnce) => {
                let mut ack = PubAck::new(p.pkid, rc.as_u8());
                ack.reason_string = Some(text.to_owned());
                self.send(Packet::PubAck(ack));
                Ok(())
            }
            (true, _) if !fatal0 => Ok(()),
            _ => Err(ConnError::Policy(rc, text)),
        }
    }

    /// Takes one PUBLISH of `bytes` from the session's and the namespace's quotas.
    fn eg_publish_quota(&mut self, ns: &EgNamespace, bytes: u64, now: u64) -> bool {
        let session = self.eg_active_mut().is_none_or(|eg| {
            eg.rates.publishes.try_take(1, now) && eg.rates.publish_bytes.try_take(bytes, now)
        });
        session
            && self.w.eg_rates(ns, |r| {
                r.publishes.try_take(1, now) && r.publish_bytes.try_take(bytes, now)
            })
    }

    /// Takes one SUBSCRIBE / UNSUBSCRIBE from the session's and the namespace's quotas.
    fn eg_subscribe_quota(&mut self, ns: &EgNamespace) -> bool {
        let now = self.w.now_ms();
        let session = self
            .eg_active_mut()
            .is_none_or(|eg| eg.rates.subscribes.try_take(1, now));
        session && self.w.eg_rates(ns, |r| r.subscribes.try_take(1, now))
    }

    fn on_publish_eg(&mut self, mut p: Publish) -> Result<(), ConnError> {
        let Some((a, eg)) = self.eg_active() else {
            return Ok(());
        };
        let (idx, ns) = (a.idx, eg.ns.clone());
        if p.qos == QoS::ExactlyOnce {
            return Err(ConnError::Unsupported(Feature::QoS2));
        }
        if p.retain && !ns.retain {
            return Err(ConnError::Unsupported(Feature::Retain));
        }
        // Topic aliases (client → server): set up on a PUBLISH with a topic, used on one
        // without; never forwarded.
        if let Some(alias) = p.props.topic_alias.take() {
            if alias == 0 || alias > TOPIC_ALIAS_MAX {
                return Err(ConnError::TopicAlias("topic alias out of range"));
            }
            let Some(eg) = self.eg_active_mut() else {
                return Ok(());
            };
            let slot = &mut eg.aliases[usize::from(alias) - 1];
            if p.topic.is_empty() {
                match slot {
                    Some(t) => p.topic = t.to_string(),
                    None => return Err(ConnError::TopicAlias("topic alias was never set")),
                }
            } else {
                *slot = Some(p.topic.as_str().into());
            }
        } else if p.topic.is_empty() {
            return Err(ConnError::Protocol("empty topic without topic alias"));
        }
        if validate_topic_name(&p.topic).is_err() {
            return self.eg_refuse_publish(&p, ReasonCode::TopicNameInvalid, "invalid topic", true);
        }
        if let Err(text) = publish_props_ok(&p) {
            return self.eg_refuse_publish(&p, ReasonCode::ImplementationSpecificError, text, true);
        }
        let w = self.w.clone();
        let now = w.now_ms();
        if !self.eg_publish_quota(&ns, p.payload.len() as u64, now) {
            let sustained = self
                .eg_active_mut()
                .is_some_and(|eg| !eg.rates.overdraft.try_take(1, now));
            if sustained {
                return Err(ConnError::RateTooHigh("publish rate far over quota"));
            }
            return self.eg_refuse_publish(
                &p,
                ReasonCode::QuotaExceeded,
                "publish rate quota exceeded",
                false,
            );
        }
        let mask = w.eg_topic_mask(&ns, &p.topic);
        // The rights and the session serial (for No Local) in one look at the slot.
        let allowed = w
            .with_slot(idx, |s| {
                s.ext
                    .eg()
                    .is_some_and(|r| check_publish_with_mask(&r.perms, mask, &p.topic))
                    .then_some(s.session.serial)
            })
            .flatten();
        let Some(serial) = allowed else {
            return self.eg_refuse_publish(&p, ReasonCode::NotAuthorized, "not authorized", false);
        };
        w.counters.borrow_mut().messages_received += 1;
        let g = w.find_group(ns.hub, &p.topic);
        let (qos, retain, pkid) = (p.qos, p.retain, p.pkid);
        let msg = Arc::new(Message::new(
            p.topic.into(),
            p.payload,
            p.props,
            qos,
            serial,
            now,
        ));
        if retain {
            let v311 = self.version == Some(ProtocolVersion::V4);
            if let Err(rc) = ns.retain(&msg, v311, now) {
                let refused = Publish {
                    qos,
                    pkid,
                    topic: msg.topic.to_string(),
                    ..Publish::default()
                };
                return self.eg_refuse_publish(&refused, rc, "retained message over quota", false);
            }
        }
        w.eg_publish(&ns, g.as_deref(), msg);
        if qos == QoS::AtLeastOnce {
            // Event Grid does not promise 0x10 (no matching subscribers): always 0x00 (§8).
            self.send(Packet::PubAck(PubAck::new(pkid, 0)));
        }
        Ok(())
    }

    fn on_subscribe_eg(&mut self, s: Subscribe) -> Result<(), ConnError> {
        let Some((a, eg)) = self.eg_active() else {
            return Ok(());
        };
        let idx = a.idx;
        let hub = eg.ns.hub;
        if s.subscription_id.is_some() {
            return Err(ConnError::Unsupported(Feature::SubscriptionIdentifiers));
        }
        let v5 = self.version == Some(ProtocolVersion::V5);
        let w = self.w.clone();
        let mut held = w.with_slot(idx, |s| s.session.subs.len()).unwrap_or(0);
        let mut reasons = Vec::with_capacity(s.filters.len());
        // Retained messages go out after the SUBACK: (message, granted QoS).
        let mut retained = Vec::new();
        let (ns, now) = match self.eg_active() {
            Some((_, eg)) => (eg.ns.clone(), w.now_ms()),
            None => return Ok(()),
        };
        let within_quota = self.eg_subscribe_quota(&ns);
        for (i, f) in s.filters.iter().enumerate() {
            let rc: Result<QoS, ReasonCode> = if !s.user_properties.is_empty() {
                Err(ReasonCode::ImplementationSpecificError)
            } else if !within_quota || i >= MAX_FILTERS_PER_SUBSCRIBE {
                Err(ReasonCode::QuotaExceeded)
            } else if f.path.starts_with("$share/") {
                Err(ReasonCode::SharedSubscriptionsNotSupported)
            } else if validate_filter(&f.path).is_err() {
                Err(ReasonCode::TopicFilterInvalid)
            } else if !w
                .with_slot(idx, |s| {
                    s.ext
                        .eg()
                        .is_some_and(|r| check_subscribe(&r.perms, &f.path))
                })
                .unwrap_or(false)
            {
                tracing::debug!(filter = %f.path, "subscribe denied");
                w.counters.borrow_mut().dropped[DropReason::Denied.index()] += 1;
                Err(ReasonCode::NotAuthorized)
            } else {
                let g = w.group(hub, &f.path);
                let exists = w
                    .with_slot(idx, |s| s.session.subs.contains_key(&g.id))
                    .unwrap_or(false);
                if !exists && (held >= MAX_SUBSCRIPTIONS_PER_SESSION || ns.subscriptions_full()) {
                    Err(ReasonCode::QuotaExceeded)
                } else {
                    // Maximum QoS is 1: a request for 2 is granted as 1 [MQTT-3.9.3].
                    let qos = f.qos.min(QoS::AtLeastOnce);
                    let opts = SubOpts {
                        qos,
                        no_local: f.no_local,
                    };
                    let new = w.subscribe(idx, &g, opts);
                    if new {
                        held += 1;
                    }
                    // Retain Handling: 0 = always send, 1 = only for a new subscription, 2 = never.
                    if ns.retain && (f.retain_handling == 0 || (f.retain_handling == 1 && new)) {
                        retained.extend(
                            ns.retained_matching(&f.path, now)
                                .into_iter()
                                .map(|m| (m, qos)),
                        );
                    }
                    Ok(qos)
                }
            };
            reasons.push(suback_code(rc, v5));
        }
        self.send(Packet::SubAck(SubAck {
            pkid: s.pkid,
            reasons,
            ..SubAck::default()
        }));
        if !retained.is_empty() {
            let limits = ns.online_limits.clone();
            let _ = w.session_io(idx, |s, now, out| {
                for (m, granted) in retained {
                    let qos = m.qos.min(granted);
                    // A full queue drops the rest of the retained backlog, not the connection.
                    if s.offer(m, qos, true, now, &limits, out).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(())
    }

    fn on_unsubscribe_eg(&mut self, u: Unsubscribe) -> Result<(), ConnError> {
        let Some((a, eg)) = self.eg_active() else {
            return Ok(());
        };
        let (idx, ns) = (a.idx, eg.ns.clone());
        let hub = ns.hub;
        let w = self.w.clone();
        let within_quota = self.eg_subscribe_quota(&ns);
        let reasons = u
            .filters
            .iter()
            .map(|f| {
                if !within_quota {
                    return ReasonCode::QuotaExceeded.as_u8();
                }
                let gone = w
                    .find_group(hub, f)
                    .is_some_and(|g| w.unsubscribe(idx, g.id));
                if gone {
                    ReasonCode::Success.as_u8()
                } else {
                    ReasonCode::NoSubscriptionExisted.as_u8()
                }
            })
            .collect();
        self.send(Packet::UnsubAck(UnsubAck {
            pkid: u.pkid,
            reasons,
            ..UnsubAck::default()
        }));
        Ok(())
    }
}
