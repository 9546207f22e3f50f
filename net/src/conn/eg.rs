//! The Event Grid side of a connection (`eventgrid-mqtt.md`): CONNECT with enhanced
//! authentication (`OAUTH2-JWT`, `CUSTOM-JWT`) or a client certificate, AUTH re-authentication
//! and token expiry, topic-space checks on PUBLISH and SUBSCRIBE, client topic aliases, and the
//! mode's refusals (§8's table). The policy decisions come from `hubmq_auth::eventgrid`; this
//! file applies them to the connection and the worker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hubmq_auth::eventgrid::cert::ChainTrust;
use hubmq_auth::eventgrid::token::{CUSTOM_JWT_METHOD, ENTRA_METHOD, MAX_AUTH_DATA_LEN};
use hubmq_auth::eventgrid::{
    check_publish_with_mask, check_subscribe, validate_filter, validate_topic_name,
    verify_custom_jwt, verify_entra, ClientIdentity,
};
use hubmq_core::connect::{connack_success, negotiate};
use hubmq_core::message::Message;
use hubmq_core::mqtt::{
    Auth as AuthPacket, Connect, Packet, ProtocolVersion, PubAck, Publish, QoS, ReasonCode, SubAck,
    Subscribe, UnsubAck, Unsubscribe,
};
use hubmq_core::perm::Permissions;
use hubmq_core::session::SubOpts;
use hubmq_metrics::DropReason;

use super::wps::{assign_client_id, suback_code};
use super::{Active, Phase, Reader};
use crate::auth::{now_secs, Identity};
use crate::ending::{eg_disconnection_reason, token_reason, ConnError, End, Feature};
use crate::eventgrid::{
    EgNamespace, EgRights, SessionRates, Source, KEEP_ALIVE_MAX_SECS, MAX_FILTERS_PER_SUBSCRIBE,
    MAX_PROPERTY_BYTES, MAX_SESSION_NAME_CHARS, MAX_SUBSCRIPTIONS_PER_SESSION,
    MAX_USER_PROPERTY_BYTES, TOPIC_ALIAS_MAX, WILL_DELAY_MAX_SECS,
};
use crate::worker::WillSpec;

/// An Event Grid connection's credentials and rights.
pub(super) struct EgConn {
    pub(super) ns: Arc<EgNamespace>,
    /// `OAUTH2-JWT` / `CUSTOM-JWT`; `None` for certificate authentication (no AUTH allowed).
    method: Option<String>,
    /// The authentication name (the rights live on the session slot, see `EgRights`).
    auth_name: Arc<str>,
    /// Topic aliases the client set up (index = alias - 1); client → server only [doc].
    aliases: Vec<Option<Arc<str>>>,
    /// The session's own rate quotas (§7).
    rates: SessionRates,
}

/// A verified client: who, by which method, valid until when (unix seconds incl. skew).
struct Verified {
    identity: ClientIdentity,
    /// The CONNECT's Authentication Method, echoed in the CONNACK.
    method: Option<String>,
    /// Whether AUTH 0x19 may refresh the credentials (the JWT methods only).
    reauth: bool,
    source: Source,
    valid_until: Option<u64>,
}

/// An `Instant` for a unix time in seconds (the read loop's timer runs on `Instant`s).
fn instant_at(unix_secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(unix_secs.saturating_sub(now_secs()))
}

/// Log protocol label of Azure Monitor (§1): `MQTT3`, `MQTT3-WS`, `MQTT5`, `MQTT5-WS`.
fn protocol_label(v: ProtocolVersion, ws: bool) -> &'static str {
    match (v, ws) {
        (ProtocolVersion::V4, false) => "MQTT3",
        (ProtocolVersion::V4, true) => "MQTT3-WS",
        (ProtocolVersion::V5, false) => "MQTT5",
        (ProtocolVersion::V5, true) => "MQTT5-WS",
    }
}

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
    fn eg_active(&self) -> Option<(&Active, &EgConn)> {
        match &self.phase {
            Phase::Active(a) => a.eg.as_deref().map(|e| (&**a, e)),
            Phase::AwaitConnect => None,
        }
    }

    fn eg_active_mut(&mut self) -> Option<&mut EgConn> {
        match &mut self.phase {
            Phase::Active(a) => a.eg.as_deref_mut(),
            Phase::AwaitConnect => None,
        }
    }

    /// Verifies the credentials of a CONNECT or an AUTH: a token for an enhanced-auth method,
    /// else a client certificate with the Username naming a registered client (§5).
    fn eg_verify(
        &mut self,
        ns: &EgNamespace,
        method: Option<&str>,
        data: Option<&[u8]>,
        username: Option<&str>,
    ) -> Result<Verified, (ReasonCode, &'static str)> {
        let Some(method) = method else {
            let certs = std::mem::take(&mut self.client_certs);
            if certs.is_empty() {
                return Err((
                    ReasonCode::NotAuthorized,
                    "no credentials: send a JWT (authentication method) or a client certificate",
                ));
            }
            let auth = ns.auth();
            return match hubmq_auth::eventgrid::cert::authenticate_certificate_with_sources(
                &auth.policy,
                &auth.name_sources,
                username,
                &certs,
                if self.client_ca_verified {
                    ChainTrust::CaVerified
                } else {
                    // Let in by a pinned thumbprint only: CA-based schemes are refused.
                    ChainTrust::Unverified { now: now_secs() }
                },
            ) {
                Ok(identity) => Ok(Verified {
                    identity,
                    method: None,
                    reauth: false,
                    source: Source::Certificate,
                    valid_until: None,
                }),
                Err(e) => {
                    tracing::info!(namespace = %ns.name, error = %e, "certificate refused");
                    Err((ReasonCode::NotAuthorized, "client certificate not accepted"))
                }
            };
        };
        let data = data.unwrap_or_default();
        if data.len() > MAX_AUTH_DATA_LEN {
            return Err((
                ReasonCode::PacketTooLarge,
                "authentication data larger than 8 KB",
            ));
        }
        let now = now_secs();
        let auth = ns.auth();
        let res = match method {
            ENTRA_METHOD => match &auth.entra {
                Some(v) => verify_entra(data, v, now),
                None => {
                    return Err((
                        ReasonCode::BadAuthenticationMethod,
                        "OAUTH2-JWT is not enabled on this namespace",
                    ))
                }
            },
            CUSTOM_JWT_METHOD => match &auth.custom {
                Some(v) => verify_custom_jwt(data, v, &auth.audiences, now),
                None => {
                    return Err((
                        ReasonCode::BadAuthenticationMethod,
                        "CUSTOM-JWT is not enabled on this namespace",
                    ))
                }
            },
            _ => {
                return Err((
                    ReasonCode::BadAuthenticationMethod,
                    "unknown authentication method",
                ))
            }
        };
        match res {
            Ok(t) => Ok(Verified {
                identity: t.identity,
                method: Some(method.to_owned()),
                reauth: true,
                source: Source::Token,
                valid_until: Some(t.expires_at.saturating_add(t.skew_secs)),
            }),
            Err(e) => {
                tracing::info!(namespace = %ns.name, method, error = %e, "token refused");
                Err((token_reason(&e), "token not accepted"))
            }
        }
    }

    /// v3.1.1 with a Password, no registered certificate, and the namespace's
    /// `custom_jwt.allow_v311_password` on: the Password is a CUSTOM-JWT token.
    fn v311_password_jwt(&self, ns: &EgNamespace, c: &Connect) -> bool {
        c.password.is_some()
            && !self.certificate_settles(ns, c.username.as_deref())
            && ns.auth().custom_v311
    }

    /// Does a client certificate plus Username settle this CONNECT (a registered client)?
    fn certificate_settles(&self, ns: &EgNamespace, username: Option<&str>) -> bool {
        if self.client_certs.is_empty() {
            return false;
        }
        let auth = ns.auth();
        hubmq_auth::eventgrid::cert::certificate_authentication_name(
            &auth.name_sources,
            username,
            &self.client_certs,
        )
        .is_ok_and(|n| auth.policy.registered_client(&n).is_some())
    }

    /// Custom webhook authentication (§5): the CONNECT's credentials go to the namespace's
    /// webhook, which allows (with a name, attributes and an optional expiry) or denies.
    async fn eg_webhook(
        &mut self,
        ns: &EgNamespace,
        c: &Connect,
        method: Option<&str>,
        data: Option<&[u8]>,
    ) -> Result<Verified, (ReasonCode, &'static str)> {
        use hubmq_auth::eventgrid::webhook::{parse_response, request_body, WebhookRequest};
        use hubmq_auth::eventgrid::WebhookDecision;
        const UNAVAILABLE: (ReasonCode, &str) = (
            ReasonCode::ServerUnavailable,
            "authentication webhook unavailable",
        );
        let auth = ns.auth();
        let (Some(cfg), Some(u)) = (&auth.webhook, self.w.shared.upstream.clone()) else {
            return Err(UNAVAILABLE);
        };
        let (url, bearer, timeout) = (
            cfg.url.clone(),
            cfg.bearer_token.clone(),
            Duration::from_millis(cfg.timeout_ms),
        );
        drop(auth);
        let certs = std::mem::take(&mut self.client_certs);
        let leaf = certs.first().map(|d| crate::upstream::event::pem(d));
        let chain = (certs.len() > 1).then(|| {
            certs[1..]
                .iter()
                .map(|d| crate::upstream::event::pem(d))
                .collect::<String>()
        });
        let body = request_body(&WebhookRequest {
            client_id: &c.client_id,
            user_name: c.username.as_deref(),
            password: c.password.as_deref(),
            authentication_method: method,
            authentication_data: data,
            client_certificate_pem: leaf.as_deref(),
            client_certificate_chain_pem: chain.as_deref(),
            user_properties: &c.props.user_properties,
        });
        let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
        if let Some(t) = bearer {
            headers.push(("Authorization".to_owned(), format!("Bearer {t}")));
        }
        let req = crate::upstream::HttpRequest {
            method: crate::upstream::Method::Post,
            url,
            headers,
            body,
            timeout,
        };
        let resp = match u
            .call_plain(req, hubmq_metrics::UpstreamEvent::EventGridWebhook)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(namespace = %ns.name, error = %e, "authentication webhook failed");
                return Err(UNAVAILABLE);
            }
        };
        match parse_response(resp.status, &resp.body, now_secs()) {
            Ok(WebhookDecision::Allow {
                identity,
                expires_at,
            }) => Ok(Verified {
                identity,
                method: method.map(str::to_owned),
                reauth: false,
                source: Source::Webhook,
                valid_until: expires_at,
            }),
            Ok(WebhookDecision::Deny { reason }) => {
                tracing::info!(namespace = %ns.name, reason, "authentication webhook denied");
                Err((
                    ReasonCode::NotAuthorized,
                    "denied by the authentication webhook",
                ))
            }
            Err(e) => {
                tracing::warn!(namespace = %ns.name, status = resp.status, error = %e, "authentication webhook answered badly");
                Err(UNAVAILABLE)
            }
        }
    }

    /// CONNECT on an Event Grid listener (§2–§5).
    pub(super) async fn on_connect_eg(&mut self, mut c: Connect) -> Result<(), ConnError> {
        let Some(ns) = self.ns.clone() else {
            return Ok(());
        };
        let version = c.protocol.unwrap_or(ProtocolVersion::V4);
        self.version = Some(version);
        self.h.version.set(version);
        let v5 = version == ProtocolVersion::V5;
        let w = self.w.clone();
        // Checked before any signature: a CONNECT flood costs no RSA verification.
        let now = w.now_ms();
        if !w.eg_rates(&ns, |r| r.connects.try_take(1, now)) {
            return self.refuse_connect(
                version,
                ReasonCode::ServerBusy,
                "namespace connection rate exceeded",
            );
        }
        if !c.props.user_properties.is_empty() {
            return self.refuse_connect(
                version,
                ReasonCode::ImplementationSpecificError,
                "user properties are not accepted on CONNECT",
            );
        }
        if c.client_id.is_empty() && !v5 {
            return self.refuse_connect(
                version,
                ReasonCode::ClientIdentifierNotValid,
                "a client identifier (session name) is required",
            );
        }
        if c.client_id.chars().count() > MAX_SESSION_NAME_CHARS {
            return self.refuse_connect(
                version,
                ReasonCode::ClientIdentifierNotValid,
                "client identifier longer than 128 characters",
            );
        }
        // Enhanced auth and the will are this mode's business; the rest is common MQTT.
        let mut method = c.props.auth_method.take();
        let mut data = c.props.auth_data.take();
        if !v5 && self.v311_password_jwt(&ns, &c) {
            // The optional v3.1.1 extension (§4): the Password carries a CUSTOM-JWT token.
            method = Some(CUSTOM_JWT_METHOD.to_owned());
            data = c.password.clone();
        }
        let will = c.will.take();
        let mut n = match negotiate(&c, &ns.limits, || assign_client_id(&w)) {
            Ok(n) => n,
            Err(rc) => return self.refuse_connect(version, rc, "connect refused"),
        };
        if n.keep_alive == 0 {
            // No documented minimum; "none" becomes the maximum [unconfirmed, §2].
            n.keep_alive = KEEP_ALIVE_MAX_SECS;
            n.server_keep_alive = v5.then_some(KEEP_ALIVE_MAX_SECS);
        }
        let jwt = matches!(method.as_deref(), Some(ENTRA_METHOD | CUSTOM_JWT_METHOD));
        let res = if !jwt
            && ns.auth().webhook.is_some()
            && !self.certificate_settles(&ns, c.username.as_deref())
        {
            self.eg_webhook(&ns, &c, method.as_deref(), data.as_deref())
                .await
        } else {
            self.eg_verify(
                &ns,
                method.as_deref(),
                data.as_deref(),
                c.username.as_deref(),
            )
        };
        let verified = match res {
            Ok(v) => v,
            Err((rc, text)) => return self.refuse_connect(version, rc, text),
        };
        let perms = ns.auth().policy.permissions(&verified.identity);

        let will = match will {
            None => None,
            Some(wl) => {
                if wl.qos == QoS::ExactlyOnce {
                    return self.refuse_connect(
                        version,
                        ReasonCode::QoSNotSupported,
                        "will QoS 2 is not supported",
                    );
                }
                if wl.retain && !ns.retain {
                    return self.refuse_connect(
                        version,
                        ReasonCode::RetainNotSupported,
                        "retained messages are disabled",
                    );
                }
                if validate_topic_name(&wl.topic).is_err() {
                    return self.refuse_connect(
                        version,
                        ReasonCode::TopicNameInvalid,
                        "invalid will topic",
                    );
                }
                // Publisher permission is checked when the will fires (`fire_will_now_or_later`).
                let delay = wl
                    .delay
                    .unwrap_or(0)
                    .min(WILL_DELAY_MAX_SECS)
                    .min(n.session_expiry);
                Some(WillSpec {
                    will: wl,
                    delay_secs: delay,
                })
            }
        };

        let client_id: Arc<str> = n.client_id.as_str().into();
        if let Err(rc) = ns.claim_session(
            &client_id,
            &verified.identity.authentication_name,
            w.now_ms(),
        ) {
            let text = match rc {
                ReasonCode::NotAuthorized => "session name is held by another client",
                ReasonCode::ConnectionRateExceeded => "connection rate of this session exceeded",
                _ => "too many sessions for this authentication name",
            };
            return self.refuse_connect(version, rc, text);
        }
        self.h.client_max_packet.set(n.client_max_packet);
        // The Web PubSub group bitset plays no part here: the will's permission is checked
        // against the namespace rights when it fires.
        let wps_perms = Permissions {
            send_any: true,
            ..Permissions::default()
        };
        let auth_name: Arc<str> = verified.identity.authentication_name.as_str().into();
        let attached = w
            .attach(
                (ns.hub, client_id.clone()),
                n.clean_start,
                n.session_expiry,
                Some(auth_name.clone()),
                wps_perms,
                self.h.clone(),
                n.client_receive_max,
            )
            .await;
        let idx = attached.idx;
        let rights = Box::new(EgRights {
            identity: verified.identity,
            perms,
            source: verified.source,
        });
        w.with_slot(idx, |s| {
            s.will = will;
            s.eg = Some(rights);
        });
        let mut ack = connack_success(&n, attached.session_present, &ns.limits);
        if v5 {
            let p = &mut ack.props;
            p.auth_method = verified.method.clone();
            p.max_qos = Some(1);
            p.retain_available = Some(ns.retain);
            p.topic_alias_max = Some(TOPIC_ALIAS_MAX);
            p.wildcard_sub_available = Some(true);
        }
        self.send(Packet::ConnAck(ack));
        self.resume_accepted(idx, version);
        tracing::info!(
            namespace = %ns.name,
            client_authentication_name = %auth_name,
            client_session_name = %client_id,
            method = verified.method.as_deref().unwrap_or("certificate"),
            protocol = protocol_label(version, self.h.transport.is_ws()),
            worker = w.id.0,
            session_present = attached.session_present,
            "Microsoft.EventGrid.MQTTClientSessionConnected"
        );
        self.token_deadline = verified.valid_until.map(instant_at);
        let identity = Identity {
            hub_name: ns.name.to_string(),
            hub: ns.hub,
            user_id: Some(auth_name.clone()),
            roles: Default::default(),
            groups: Vec::new(),
            claims: Vec::new(),
            upgrade: None,
        };
        self.phase = Phase::Active(Box::new(Active {
            idx,
            identity,
            keep_alive: n.keep_alive,
            client_id,
            eg: Some(Box::new(EgConn {
                method: verified.method.filter(|_| verified.reauth),
                auth_name: auth_name.clone(),
                aliases: vec![None; usize::from(TOPIC_ALIAS_MAX)],
                rates: ns.session_rates(w.now_ms()),
                ns,
            })),
        }));
        self.touch();
        Ok(())
    }

    /// The packets whose handling differs in this mode; `Some` = handle as usual.
    pub(super) fn handle_eg(&mut self, p: Packet) -> Result<Option<Packet>, ConnError> {
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
                s.eg.as_ref()
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
                    s.eg.as_ref()
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

    /// AUTH 0x19 (re-authenticate, §3): a new token for the same principal replaces the old
    /// one; rights are recompiled and subscriptions they no longer cover are dropped silently.
    fn on_auth_eg(&mut self, a: AuthPacket) -> Result<(), ConnError> {
        let Some((active, eg)) = self.eg_active() else {
            return Ok(());
        };
        let (idx, ns, method) = (active.idx, eg.ns.clone(), eg.method.clone());
        let Some(method) = method else {
            return Err(ConnError::Protocol("AUTH without enhanced authentication"));
        };
        if !a.user_properties.is_empty() {
            return Err(ConnError::Refused(
                "user properties are not accepted on AUTH",
            ));
        }
        if a.reason != ReasonCode::ReAuthenticate.as_u8() {
            // The broker never starts an exchange; both methods finish in one step (§3 step 6).
            return Err(ConnError::Protocol(
                "AUTH must carry reason 0x19 (re-authenticate)",
            ));
        }
        if a.method.as_deref() != Some(method.as_str()) {
            return Err(ConnError::Protocol("AUTH method differs from CONNECT"));
        }
        let verified = match self.eg_verify(&ns, Some(&method), a.data.as_deref(), None) {
            Ok(v) => v,
            Err((_, text)) => {
                tracing::info!(namespace = %ns.name, reason = text, "re-authentication failed");
                return Err(ConnError::NotAuthorized("re-authentication failed"));
            }
        };
        let same = self
            .w
            .with_slot(idx, |s| {
                s.eg.as_ref()
                    .is_some_and(|r| r.identity.same_principal(&verified.identity))
            })
            .unwrap_or(false);
        if !same {
            tracing::info!(namespace = %ns.name, "re-authentication for another identity refused");
            return Err(ConnError::NotAuthorized("re-authentication failed"));
        }
        let dropped = self
            .w
            .eg_set_rights(idx, &ns.auth().policy, verified.identity);
        self.token_deadline = verified.valid_until.map(instant_at);
        tracing::info!(namespace = %ns.name, dropped_subscriptions = dropped, "re-authenticated");
        self.send(Packet::Auth(AuthPacket {
            reason: ReasonCode::Success.as_u8(),
            method: Some(method),
            ..AuthPacket::default()
        }));
        Ok(())
    }

    /// The token's `exp` (plus skew) passed without a re-authentication (§3 step 5).
    pub(super) fn token_expired(&mut self) -> End {
        if let Some((a, eg)) = self.eg_active() {
            tracing::info!(
                namespace = %eg.ns.name,
                client_session_name = %a.client_id,
                "token expired; disconnecting"
            );
        }
        self.h
            .disconnect(ReasonCode::NotAuthorized, Some("token expired"));
        End::WithWill
    }
}

/// The lifecycle log line of a namespace connection that ended.
pub(super) fn log_disconnected(
    a: &Active,
    h: &crate::worker::ConnHandle,
    client_said_goodbye: bool,
) {
    let Some(eg) = a.eg.as_deref() else {
        return;
    };
    tracing::info!(
        namespace = %eg.ns.name,
        client_authentication_name = %eg.auth_name,
        client_session_name = %a.client_id,
        disconnection_reason = eg_disconnection_reason(h.end_reason.get(), client_said_goodbye),
        "Microsoft.EventGrid.MQTTClientSessionDisconnected"
    );
}
