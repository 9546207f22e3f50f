//! The Web PubSub data-plane REST API (`webpubsub-rest.md`): everything under `/api/` on the
//! http/https listeners. This module owns the HTTP side — reading the request body, routing
//! `/api/hubs/{hub}/...` to an operation, `api-version`, request authentication (HS256 bearer
//! with the lenient `aud` rule of §2), input validation and the error body
//! `{"code","message","target"}` with `x-ms-error-code`. What an operation does to sessions and
//! groups lives in `apply` (run on every worker through a cold-path cross-core command);
//! `ops` turns a validated route into those commands and gathers the answers.

mod apply;
mod auth;
mod ops;
mod route;

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

use crate::io::http::{self, Head};
use crate::io::read::read_more;
use crate::worker::Worker;

/// api-versions the SDKs send (2024-12-01 is the current default of both).
const API_VERSIONS: [&str; 5] = [
    "2021-10-01",
    "2022-11-01",
    "2023-07-01",
    "2024-01-01",
    "2024-12-01",
];

/// A REST answer before it is serialised.
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub error_code: Option<&'static str>,
}

impl Reply {
    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            content_type: "",
            body: Vec::new(),
            error_code: None,
        }
    }

    pub fn json(status: u16, v: &serde_json::Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: v.to_string().into_bytes(),
            error_code: None,
        }
    }
}

/// A refused request: status, error code (also the `x-ms-error-code` header), message, and
/// the parameter at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub target: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            target: None,
        }
    }

    pub fn bad(target: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            code: "InvalidRequest",
            message: message.into(),
            target: Some(target),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, "NotFound", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(401, "Unauthorized", message)
    }

    fn into_reply(self) -> Reply {
        let mut body = serde_json::json!({ "code": self.code, "message": self.message });
        if let (Some(t), Some(obj)) = (self.target, body.as_object_mut()) {
            obj.insert("target".into(), t.into());
        }
        Reply {
            status: self.status,
            content_type: "application/json",
            body: body.to_string().into_bytes(),
            error_code: Some(self.code),
        }
    }
}

fn wants_close(head: &Head) -> bool {
    head.version_minor == 0
        || head
            .header_tokens("connection")
            .any(|t| t.eq_ignore_ascii_case("close"))
}

/// Largest request body: a maximum-size message plus room for JSON framing.
fn max_body(w: &Worker) -> usize {
    (1 << 20) + w.limits().max_packet_size as usize
}

/// Serves one `/api/...` request whose head was parsed from `buf` (which may already hold the
/// start of the body). Reads the body, answers, and returns the buffer (bytes after this
/// request) when the connection stays open, `None` when it must close.
pub(crate) async fn serve<S>(
    w: &Rc<Worker>,
    s: &mut S,
    head: &Head,
    mut buf: BytesMut,
    tls: bool,
) -> Option<BytesMut>
where
    S: AsyncReadRent + AsyncWriteRent,
{
    let close = wants_close(head);
    let body = match read_body(w, s, head, &mut buf).await {
        Ok(b) => b,
        Err(Some(e)) => {
            // The body was not (fully) read: the connection cannot be reused.
            let _ = s.write_all(render(head, e.into_reply(), true)).await;
            return None;
        }
        Err(None) => return None,
    };
    let reply = match handle(w, head, body, tls).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(method = %head.method, path = %head.path, status = e.status, code = e.code, message = %e.message, "REST request refused");
            e.into_reply()
        }
    };
    let (res, _) = s.write_all(render(head, reply, close)).await;
    if res.is_err() || close {
        return None;
    }
    Some(buf)
}

fn render(head: &Head, r: Reply, close: bool) -> Vec<u8> {
    let mut extra: Vec<(&str, &str)> = Vec::new();
    if let Some(code) = r.error_code {
        extra.push(("x-ms-error-code", code));
    }
    if head.method == "HEAD" {
        // HEAD answers never carry a body (and say so with a zero length).
        return http::response(r.status, "", b"", &extra, close);
    }
    http::response(r.status, r.content_type, &r.body, &extra, close)
}

/// Err(Some) = answer with this error and close; Err(None) = the peer went away.
async fn read_body<S: AsyncReadRent + AsyncWriteRent>(
    w: &Worker,
    s: &mut S,
    head: &Head,
    buf: &mut BytesMut,
) -> Result<Bytes, Option<ApiError>> {
    if head.header("transfer-encoding").is_some() {
        return Err(Some(ApiError::new(
            411,
            "LengthRequired",
            "chunked request bodies are not supported; send Content-Length",
        )));
    }
    let len = match head.header("content-length") {
        None => 0,
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) => n,
            Err(_) => {
                return Err(Some(ApiError::bad(
                    "Content-Length",
                    "invalid Content-Length",
                )))
            }
        },
    };
    if len > max_body(w) {
        return Err(Some(ApiError::new(
            413,
            "PayloadTooLarge",
            format!(
                "request body of {len} bytes exceeds the limit of {} bytes",
                max_body(w)
            ),
        )));
    }
    // curl and others hold a larger body back until told to go on (RFC 9110 §10.1.1).
    let expects = head
        .header("expect")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"));
    if expects && buf.len() < len {
        let (res, _) = s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()).await;
        if res.is_err() {
            return Err(None);
        }
    }
    let deadline = std::time::Instant::now()
        + w.shared
            .settings
            .connect_timeout
            .max(std::time::Duration::from_secs(30));
    while buf.len() < len {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let taken = std::mem::take(buf);
        match monoio::time::timeout(left, read_more(s, taken)).await {
            Ok((Ok(n), b)) if n > 0 => *buf = b,
            _ => return Err(None),
        }
    }
    Ok(buf.split_to(len).freeze())
}

/// Routes, checks and runs one request.
async fn handle(w: &Rc<Worker>, head: &Head, body: Bytes, tls: bool) -> Result<Reply, ApiError> {
    let q = route::Query::new(head);
    let parsed = route::parse(&head.method, &head.raw_path)?;
    let route::Parsed::Hub { hub, route } = parsed else {
        // Health: no auth, no api-version needed (our choice).
        return Ok(Reply::empty(200));
    };
    match q.first("api-version") {
        Some(v) if API_VERSIONS.contains(&v.as_str()) => {}
        Some(v) => {
            return Err(ApiError::bad(
                "api-version",
                format!(
                    "unsupported api-version '{v}'; supported: {}",
                    API_VERSIONS.join(", ")
                ),
            ))
        }
        None => {
            return Err(ApiError::bad(
                "api-version",
                "the api-version query parameter is required",
            ))
        }
    }
    route::valid_hub(&hub)?;
    route.validate()?;
    let scheme = if tls { "https" } else { "http" };
    auth::check(w, head, &hub, scheme)?;
    ops::run(w, head, &q, &hub, route, body, scheme).await
}
