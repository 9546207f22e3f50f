//! Authentication of REST calls (`webpubsub-rest.md` §2): an HS256 bearer token signed with one
//! of the hub's (or the server's) access keys, `exp` required, and the lenient `aud` rule that
//! accepts every variant the SDKs emit — the request URL with or without its query, the hub URL
//! `/api/hubs/{hub}`, or the bare endpoint — on an authority we answer to.

use std::cell::Cell;

use hubmq_auth::{parse_endpoint, verify, TokenError, VerifyOptions};

use crate::auth::now_secs;
use crate::io::http::{percent_decode, Head};
use crate::settings::ListenerKind;
use crate::worker::Worker;

use super::ApiError;

/// What the `aud` check concluded, for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudVerdict {
    Accept,
    /// Right server, but the path names another hub: 403.
    OtherHub,
    Reject,
}

/// The `aud` rule. `req_path` is the decoded request path, `authorities` the
/// `(scheme, host[:port])` pairs we answer to.
pub fn audience(
    aud: &str,
    req_path: &str,
    hub: &str,
    authorities: &[(String, String)],
) -> AudVerdict {
    // ws/wss are tolerated as http/https.
    let lower = aud
        .get(..6)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let aud_http = if lower.starts_with("ws://") {
        format!("http://{}", &aud[5..])
    } else if lower.starts_with("wss://") {
        format!("https://{}", &aud[6..])
    } else {
        aud.to_owned()
    };
    let Some((scheme, authority)) = parse_endpoint(&aud_http) else {
        return AudVerdict::Reject;
    };
    let host_ok = authorities.iter().any(|(s, a)| {
        parse_endpoint(&format!("{s}://{a}"))
            .is_some_and(|(s2, a2)| s2 == scheme && a2 == authority)
    });
    if !host_ok {
        return AudVerdict::Reject;
    }
    // Path: after the authority, without query and fragment, decoded, no trailing '/'.
    let after = aud_http.split_once("://").map_or("", |x| x.1);
    let path = after.find('/').map_or("", |i| &after[i..]);
    let path = path.split(['?', '#']).next().unwrap_or("");
    let Some(path) = percent_decode(path) else {
        return AudVerdict::Reject;
    };
    let path = path.trim_end_matches('/');
    let req = req_path.trim_end_matches('/');
    let hub_path = format!("/api/hubs/{hub}");
    if path.is_empty() || path.eq_ignore_ascii_case(req) || path.eq_ignore_ascii_case(&hub_path) {
        return AudVerdict::Accept;
    }
    let named_hub = path
        .get(..10)
        .filter(|p| p.eq_ignore_ascii_case("/api/hubs/"))
        .and_then(|_| path[10..].split('/').next());
    match named_hub {
        Some(h) if !h.eq_ignore_ascii_case(hub) => AudVerdict::OtherHub,
        _ => AudVerdict::Reject,
    }
}

/// Authorities accepted in `aud`: configured public endpoints, the Host the request was sent
/// to, and our own http listeners (by address and as `localhost`).
fn authorities(w: &Worker, head: &Head, scheme: &str) -> Vec<(String, String)> {
    let settings = &w.shared.settings;
    let mut a = settings.public_endpoints.clone();
    if let Some(host) = head.header("host") {
        a.push((scheme.to_owned(), host.to_owned()));
    }
    for l in &settings.listeners {
        if l.kind.is_http() {
            let s = if l.kind == ListenerKind::Https {
                "https"
            } else {
                "http"
            };
            a.push((s.to_owned(), l.addr.to_string()));
            a.push((s.to_owned(), format!("localhost:{}", l.addr.port())));
        }
    }
    a
}

/// Checks the request's bearer token for `hub`. 401 with the reason, 403 for a token of
/// another hub, 404 for an undeclared hub when hubs are strict.
pub fn check(w: &Worker, head: &Head, hub: &str, scheme: &str) -> Result<(), ApiError> {
    let lower = hub.to_ascii_lowercase();
    let auth = w.shared.control.auth();
    let hub_cfg = auth.hub(&lower);
    if w.shared.settings.strict_hubs && hub_cfg.is_none() {
        return Err(ApiError::not_found(format!(
            "hub '{hub}' is not configured"
        )));
    }
    let token = head
        .header("authorization")
        .and_then(|v| {
            let (kind, rest) = v.trim().split_once(' ')?;
            kind.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("missing 'Authorization: Bearer <token>' header"))?;
    let keys = hub_cfg.and_then(|h| h.keys.as_ref()).unwrap_or(&auth.keys);
    let auths = authorities(w, head, scheme);
    let verdict = Cell::new(AudVerdict::Reject);
    let check_aud = |aud: &str| {
        let v = audience(aud, &head.path, hub, &auths);
        if v != AudVerdict::Reject {
            verdict.set(v);
        }
        v == AudVerdict::Accept
    };
    let res = verify(
        token,
        keys,
        &VerifyOptions {
            now: now_secs(),
            skew_secs: w.shared.settings.token_skew_secs,
            audience: &check_aud,
            require_exp: true,
        },
    );
    match res {
        Ok(_) => Ok(()),
        Err(TokenError::WrongAudience) if verdict.get() == AudVerdict::OtherHub => {
            Err(ApiError::new(
                403,
                "Forbidden",
                format!("the token's audience names another hub than '{hub}'"),
            ))
        }
        Err(e) => Err(ApiError::unauthorized(e.describe())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auths() -> Vec<(String, String)> {
        vec![
            ("http".into(), "localhost:8080".into()),
            ("https".into(), "mq.example.com".into()),
        ]
    }

    fn aud(a: &str) -> AudVerdict {
        audience(a, "/api/hubs/chat/groups/room 1/:send", "chat", &auths())
    }

    #[test]
    fn accepts_request_url_with_or_without_query() {
        assert_eq!(
            aud("http://localhost:8080/api/hubs/chat/groups/room%201/:send?api-version=2024-12-01&x=1"),
            AudVerdict::Accept
        );
        assert_eq!(
            aud("http://localhost:8080/api/hubs/chat/groups/room%201/:send"),
            AudVerdict::Accept
        );
        assert_eq!(
            aud("http://LOCALHOST:8080/api/hubs/chat/groups/room%201/:send/"),
            AudVerdict::Accept
        );
    }

    #[test]
    fn accepts_hub_url_and_bare_endpoint() {
        assert_eq!(
            aud("http://localhost:8080/api/hubs/Chat"),
            AudVerdict::Accept
        );
        assert_eq!(
            aud("http://localhost:8080/api/hubs/chat/"),
            AudVerdict::Accept
        );
        assert_eq!(aud("http://localhost:8080"), AudVerdict::Accept);
        assert_eq!(aud("http://localhost:8080/"), AudVerdict::Accept);
        assert_eq!(aud("https://mq.example.com:443/"), AudVerdict::Accept);
        assert_eq!(
            aud("wss://mq.example.com/api/hubs/chat"),
            AudVerdict::Accept
        );
    }

    #[test]
    fn rejects_other_hosts_schemes_and_paths() {
        assert_eq!(aud("http://evil:8080/api/hubs/chat"), AudVerdict::Reject);
        assert_eq!(
            aud("https://localhost:8080/api/hubs/chat"),
            AudVerdict::Reject
        );
        assert_eq!(
            aud("http://localhost:8081/api/hubs/chat"),
            AudVerdict::Reject
        );
        assert_eq!(
            aud("ftp://localhost:8080/api/hubs/chat"),
            AudVerdict::Reject
        );
        assert_eq!(
            aud("http://localhost:8080/api/hubs/chat/groups/other/:send"),
            AudVerdict::Reject
        );
        assert_eq!(
            aud("http://localhost:8080/clients/mqtt/hubs/chat"),
            AudVerdict::Reject
        );
        assert_eq!(aud("not a url"), AudVerdict::Reject);
        assert_eq!(aud("http://user@localhost:8080/"), AudVerdict::Reject);
    }

    #[test]
    fn another_hubs_audience_is_reported_as_such() {
        assert_eq!(
            aud("http://localhost:8080/api/hubs/other"),
            AudVerdict::OtherHub
        );
    }
}
