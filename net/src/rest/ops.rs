//! Runs a validated REST route: reads the query and body parameters, builds the message or the
//! [`RestOp`], broadcasts it to the workers (or publishes directly where the group's interest
//! mask already routes it) and shapes the HTTP answer of §4.

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use hubmq_auth::{client_token, sign_hs256};
use hubmq_core::ids::HubId;
use hubmq_core::message::Message;
use hubmq_core::mqtt::{PublishProps, QoS};
use hubmq_core::odata::Filter;
use hubmq_core::topic::SERVER_MESSAGES_TOPIC;
use serde_json::Value;

use crate::auth::now_secs;
use crate::io::http::Head;
use crate::worker::Worker;

use super::apply::{broadcast, RestOp, RestReply, Selector, Target};
use super::route::{parse_perm, valid_group, PermAction, Query, Route};
use super::{ApiError, Reply};

fn unavailable() -> ApiError {
    ApiError::new(
        503,
        "ServiceUnavailable",
        "a worker did not answer in time (shutting down?)",
    )
}

async fn all(w: &Rc<Worker>, op: RestOp) -> Result<Vec<RestReply>, ApiError> {
    broadcast(w, op).await.ok_or_else(unavailable)
}

async fn matched(w: &Rc<Worker>, op: RestOp) -> Result<usize, ApiError> {
    Ok(all(w, op).await?.iter().map(|r| r.matched).sum())
}

fn parse_filter(src: Option<String>) -> Result<Option<Filter>, ApiError> {
    match src {
        None => Ok(None),
        Some(s) => Filter::parse(&s).map(Some).map_err(|e| ApiError {
            status: 400,
            code: "InvalidFilter",
            message: format!("invalid filter: {e}"),
            target: Some("filter"),
        }),
    }
}

/// Removes the target's sessions from one group: 204 whether or not anything matched (a group
/// nobody ever joined has no id and nothing to remove).
async fn remove_from_group(
    w: &Rc<Worker>,
    hub: HubId,
    target: Target,
    group: &str,
) -> Result<Reply, ApiError> {
    if let Some(g) = w.find_group(hub, group) {
        let sel = selector(hub, target, &Query::empty())?;
        matched(
            w,
            RestOp::RemoveFromGroups {
                sel,
                groups: Some(vec![g.id]),
            },
        )
        .await?;
    }
    Ok(Reply::empty(204))
}

fn selector(hub: HubId, target: Target, q: &Query) -> Result<Selector, ApiError> {
    Ok(Selector {
        hub,
        target,
        excluded: q.array("excluded"),
        filter: parse_filter(q.first("filter"))?,
    })
}

/// The media type of a send body; 415 for anything but JSON, text or octet-stream.
fn media_type(head: &Head) -> Result<&'static str, ApiError> {
    let Some(ct) = head.header("content-type") else {
        // No type: bytes as they are (our choice).
        return Ok("application/octet-stream");
    };
    let mt = ct.split(';').next().unwrap_or("").trim();
    for known in ["application/json", "text/plain", "application/octet-stream"] {
        if mt.eq_ignore_ascii_case(known) {
            return Ok(known);
        }
    }
    Err(ApiError::new(
        415,
        "UnsupportedMediaType",
        format!(
            "Content-Type '{ct}' is not supported; use application/json, text/plain or application/octet-stream"
        ),
    ))
}

/// The PUBLISH a REST send becomes (§5): QoS 1, content type, payload format, expiry.
fn message(
    w: &Worker,
    head: &Head,
    q: &Query,
    topic: Arc<str>,
    body: Bytes,
) -> Result<Message, ApiError> {
    let mt = media_type(head)?;
    let ttl = q.int("messageTtlSeconds", 0, 300, Some(0))?.unwrap_or(0);
    let props = PublishProps {
        content_type: Some(mt.to_owned()),
        payload_format: (mt != "application/octet-stream").then_some(1),
        message_expiry: (ttl > 0).then_some(ttl as u32),
        ..PublishProps::default()
    };
    Ok(Message::new(
        topic,
        body,
        props,
        QoS::AtLeastOnce,
        0,
        w.now_ms(),
    ))
}

fn reason(q: &Query) -> String {
    q.first("reason").unwrap_or_default()
}

/// The `{groups, filter}` body of `:addToGroups` / `:removeFromGroups`.
fn groups_body(body: &[u8]) -> Result<(Vec<String>, Filter), ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad("body", format!("body is not valid JSON: {e}")))?;
    let groups = match v.get("groups") {
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|g| {
                g.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::bad("groups", "groups must be an array of strings"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(Value::Array(_)) | None => {
            return Err(ApiError::bad("groups", "groups must be a non-empty array"))
        }
        Some(_) => {
            return Err(ApiError::bad(
                "groups",
                "groups must be an array of strings",
            ))
        }
    };
    for g in &groups {
        valid_group(g)?;
    }
    let filter = match v.get("filter") {
        Some(Value::String(f)) => parse_filter(Some(f.clone()))?,
        _ => None,
    };
    let filter = filter.ok_or_else(|| ApiError::bad("filter", "filter is required"))?;
    Ok((groups, filter))
}

/// 200 when `n > 0`, else 404 (HEAD checks).
fn exists(n: usize, what: &str) -> Result<Reply, ApiError> {
    if n > 0 {
        Ok(Reply::empty(200))
    } else {
        Err(ApiError::not_found(format!("{what} not found")))
    }
}

pub async fn run(
    w: &Rc<Worker>,
    head: &Head,
    q: &Query,
    hub_name: &str,
    route: Route,
    body: Bytes,
    scheme: &str,
) -> Result<Reply, ApiError> {
    let hub = w.shared.registry.hub(hub_name);
    let server_topic: Arc<str> = Arc::from(SERVER_MESSAGES_TOPIC);
    match route {
        Route::SendToAll | Route::SendToUser(_) | Route::SendToConnection(_) => {
            let target = match route {
                Route::SendToUser(u) => Target::User(u.into()),
                Route::SendToConnection(c) => Target::Connection(c.into()),
                _ => Target::All,
            };
            let sel = selector(hub, target, q)?;
            let msg = Arc::new(message(w, head, q, server_topic, body)?);
            w.counters.borrow_mut().messages_received += 1;
            all(w, RestOp::Send { sel, msg }).await?;
            Ok(Reply::empty(202))
        }
        Route::SendToGroup(name) => {
            let probe = selector(hub, Target::All, q)?;
            let Some(g) = w.find_group(hub, &name) else {
                // Nobody ever joined: fire-and-forget still answers 202.
                message(w, head, q, server_topic, body)?;
                return Ok(Reply::empty(202));
            };
            let msg = Arc::new(message(w, head, q, g.name.clone(), body)?);
            w.counters.borrow_mut().messages_received += 1;
            if probe.excluded.is_empty() && probe.filter.is_none() {
                // The interest mask routes it, exactly like a client PUBLISH.
                w.publish(&g, msg);
            } else {
                let sel = Selector {
                    target: Target::Group(g.id),
                    ..probe
                };
                all(w, RestOp::Send { sel, msg }).await?;
            }
            Ok(Reply::empty(202))
        }
        Route::CloseAll
        | Route::CloseUser(_)
        | Route::CloseConnection(_)
        | Route::CloseGroup(_) => {
            let target = match route {
                Route::CloseUser(u) => Target::User(u.into()),
                Route::CloseConnection(c) => Target::Connection(c.into()),
                Route::CloseGroup(g) => match w.find_group(hub, &g) {
                    Some(g) => Target::Group(g.id),
                    None => return Ok(Reply::empty(204)),
                },
                _ => Target::All,
            };
            let sel = selector(hub, target, q)?;
            all(
                w,
                RestOp::Close {
                    sel,
                    reason: reason(q),
                },
            )
            .await?;
            Ok(Reply::empty(204))
        }
        Route::ConnectionExists(c) => {
            let sel = selector(hub, Target::Connection(c.into()), &Query::empty())?;
            exists(matched(w, RestOp::Count { sel }).await?, "connection")
        }
        Route::UserExists(u) => {
            let sel = selector(hub, Target::User(u.into()), &Query::empty())?;
            exists(matched(w, RestOp::Count { sel }).await?, "user")
        }
        Route::GroupExists(g) => {
            // A group exists while some worker has a member: its interest mask says so.
            let n = w
                .find_group(hub, &g)
                .map_or(0, |g| usize::from(g.interest() != 0));
            exists(n, "group")
        }
        Route::AddConnectionToGroup { group, conn } => {
            let g = w.group(hub, &group);
            let sel = selector(hub, Target::Connection(conn.into()), &Query::empty())?;
            let n = matched(
                w,
                RestOp::AddToGroups {
                    sel,
                    groups: vec![g],
                },
            )
            .await?;
            if n == 0 {
                return Err(ApiError::not_found("connection not found"));
            }
            Ok(Reply::empty(200))
        }
        Route::RemoveConnectionFromGroup { group, conn } => {
            remove_from_group(w, hub, Target::Connection(conn.into()), &group).await
        }
        Route::RemoveConnectionFromAllGroups(conn) => {
            let sel = selector(hub, Target::Connection(conn.into()), &Query::empty())?;
            matched(w, RestOp::RemoveFromGroups { sel, groups: None }).await?;
            Ok(Reply::empty(204))
        }
        Route::AddUserToGroup { user, group } => {
            let g = w.group(hub, &group);
            let sel = selector(hub, Target::User(user.into()), &Query::empty())?;
            // 200 even when the user has no session (nothing to add to).
            matched(
                w,
                RestOp::AddToGroups {
                    sel,
                    groups: vec![g],
                },
            )
            .await?;
            Ok(Reply::empty(200))
        }
        Route::RemoveUserFromGroup { user, group } => {
            remove_from_group(w, hub, Target::User(user.into()), &group).await
        }
        Route::RemoveUserFromAllGroups(user) => {
            let sel = selector(hub, Target::User(user.into()), &Query::empty())?;
            matched(w, RestOp::RemoveFromGroups { sel, groups: None }).await?;
            Ok(Reply::empty(204))
        }
        Route::AddToGroups | Route::RemoveFromGroups => {
            let (groups, filter) = groups_body(&body)?;
            let sel = Selector {
                hub,
                target: Target::All,
                excluded: Vec::new(),
                filter: Some(filter),
            };
            let op = if route == Route::AddToGroups {
                RestOp::AddToGroups {
                    sel,
                    groups: groups.iter().map(|g| w.group(hub, g)).collect(),
                }
            } else {
                let gids = groups
                    .iter()
                    .filter_map(|g| w.find_group(hub, g))
                    .map(|g| g.id)
                    .collect();
                RestOp::RemoveFromGroups {
                    sel,
                    groups: Some(gids),
                }
            };
            matched(w, op).await?;
            Ok(Reply::empty(200))
        }
        Route::Permission { action, perm, conn } => {
            let kind = parse_perm(&perm)?;
            let target = q.first("targetName").filter(|t| !t.is_empty());
            if let Some(t) = &target {
                valid_group(t)?;
            }
            let group = target.map(|t| w.group(hub, &t));
            let replies = all(
                w,
                RestOp::Permission {
                    hub,
                    conn: conn.into(),
                    kind,
                    action,
                    group,
                },
            )
            .await?;
            let found = replies.iter().any(|r| r.matched > 0);
            let held = replies.iter().any(|r| r.held);
            match action {
                _ if !found => Err(ApiError::not_found("connection not found")),
                PermAction::Grant => Ok(Reply::empty(200)),
                PermAction::Revoke => Ok(Reply::empty(204)),
                PermAction::Check if held => Ok(Reply::empty(200)),
                PermAction::Check => Err(ApiError::not_found("permission not held")),
            }
        }
        Route::GenerateToken => generate_token(w, head, q, hub_name, scheme),
        Route::ListGroupConnections(group) => list_group(w, head, q, hub, &group, scheme).await,
    }
}

fn generate_token(
    w: &Worker,
    head: &Head,
    q: &Query,
    hub: &str,
    scheme: &str,
) -> Result<Reply, ApiError> {
    let user = q.first("userId").filter(|u| !u.is_empty());
    let roles = q.array("role");
    let groups = q.array("group");
    let minutes = q
        .int("minutesToExpire", 1, 525_600, Some(60))?
        .unwrap_or(60) as u64;
    let mqtt = match q.first("clientType") {
        None => false,
        Some(t) if t.eq_ignore_ascii_case("mqtt") => true,
        Some(t) if t.eq_ignore_ascii_case("default") => false,
        Some(t) => {
            return Err(ApiError::bad(
                "clientType",
                format!("unknown clientType '{t}'; expected Default or MQTT"),
            ))
        }
    };
    let auth = w.shared.control.auth();
    let keys = auth
        .hub(&hub.to_ascii_lowercase())
        .and_then(|h| h.keys.as_ref())
        .unwrap_or(&auth.keys);
    let Some(key) = keys.hmac_keys().next() else {
        return Err(ApiError::new(
            400,
            "NoAccessKey",
            "no access key is configured to sign client tokens",
        ));
    };
    // The first public endpoint, else the Host this request came to (our choice).
    let endpoint = match w.shared.settings.public_endpoints.first() {
        Some((s, a)) => format!("{s}://{a}"),
        None => format!("{scheme}://{}", head.header("host").unwrap_or("localhost")),
    };
    let now = now_secs();
    let token = if mqtt {
        client_token(
            &endpoint,
            hub,
            user.as_deref(),
            &roles,
            &groups,
            now,
            minutes,
            key,
        )
    } else {
        let mut claims = serde_json::Map::new();
        claims.insert(
            "aud".into(),
            format!(
                "{}/client/hubs/{hub}",
                endpoint.to_lowercase().trim_end_matches('/')
            )
            .into(),
        );
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + minutes * 60).into());
        if let Some(u) = &user {
            claims.insert("sub".into(), u.as_str().into());
        }
        if !roles.is_empty() {
            claims.insert("role".into(), roles.into());
        }
        if !groups.is_empty() {
            claims.insert("webpubsub.group".into(), groups.into());
        }
        sign_hs256(&Value::Object(claims), key)
    };
    Ok(Reply::json(200, &serde_json::json!({ "token": token })))
}

/// `GET H/groups/{group}/connections` (2024-12-01): sorted by connection id, paged with an
/// opaque continuation token (the last id of the page, hex-encoded).
async fn list_group(
    w: &Rc<Worker>,
    head: &Head,
    q: &Query,
    hub: HubId,
    group: &str,
    scheme: &str,
) -> Result<Reply, ApiError> {
    let page = q.int("maxpagesize", 1, 200, Some(200))?.unwrap_or(200) as usize;
    let top = q
        .int("top", 1, i64::from(i32::MAX), None)?
        .map(|t| t as usize);
    let after = match q.first("continuationToken") {
        None => None,
        Some(t) => Some(
            unhex(&t)
                .ok_or_else(|| ApiError::bad("continuationToken", "invalid continuationToken"))?,
        ),
    };
    let mut members = match w.find_group(hub, group) {
        Some(g) => all(w, RestOp::ListGroup { group: g.id })
            .await?
            .into_iter()
            .flat_map(|r| r.members)
            .collect(),
        None => Vec::new(),
    };
    members.sort_by(|a, b| a.0.cmp(&b.0));
    members.dedup_by(|a, b| a.0 == b.0);
    let start = match &after {
        Some(a) => members.partition_point(|m| &*m.0 <= a.as_str()),
        None => 0,
    };
    let rest = &members[start..];
    // `top` caps the total across pages; the token carries how many were already returned.
    let take = page.min(top.unwrap_or(usize::MAX)).min(rest.len());
    let items: Vec<Value> = rest[..take]
        .iter()
        .map(|(c, u)| {
            let mut o = serde_json::Map::new();
            o.insert("connectionId".into(), (&**c).into());
            if let Some(u) = u {
                o.insert("userId".into(), (&**u).into());
            }
            Value::Object(o)
        })
        .collect();
    let mut body = serde_json::Map::new();
    body.insert("value".into(), items.into());
    let more = take < rest.len() && top.is_none_or(|t| t > take);
    if more {
        let last = &rest[take - 1].0;
        let host = head.header("host").unwrap_or("localhost");
        let mut link = format!(
            "{scheme}://{host}{}?api-version={}&maxpagesize={page}&continuationToken={}",
            head.raw_path,
            q.first("api-version").unwrap_or_default(),
            hex(last)
        );
        if let Some(t) = top {
            link.push_str(&format!("&top={}", t - take));
        }
        body.insert("nextLink".into(), link.into());
    }
    Ok(Reply::json(200, &Value::Object(body)))
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_tokens_round_trip() {
        assert_eq!(unhex(&hex("conn-é/1")).as_deref(), Some("conn-é/1"));
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("abc"), None);
    }

    #[test]
    fn groups_body_needs_groups_and_filter() {
        assert!(groups_body(br#"{"groups":["a"],"filter":"userId eq 'x'"}"#).is_ok());
        let status = |b: &[u8]| groups_body(b).err().map(|e| (e.status, e.code));
        assert_eq!(
            status(br#"{"groups":[],"filter":"true"}"#),
            Some((400, "InvalidRequest"))
        );
        assert_eq!(
            status(br#"{"groups":["a"]}"#),
            Some((400, "InvalidRequest"))
        );
        assert_eq!(
            status(br#"{"groups":["a"],"filter":"userId eq"}"#),
            Some((400, "InvalidFilter"))
        );
        assert_eq!(
            status(br#"{"groups":[1],"filter":"true"}"#),
            Some((400, "InvalidRequest"))
        );
        assert_eq!(status(b"nope"), Some((400, "InvalidRequest")));
    }
}
