//! HTTP/1.1 request heads, WebSocket upgrade checks and simple responses, sans-I/O.
//!
//! Owns parsing the head of a request on an `http`/`https` listener (with `httparse`), deciding
//! whether it is a valid RFC 6455 upgrade (and which MQTT subprotocol to answer), and writing the
//! bytes of the 101 and of small full responses (REST, /metrics, errors). It does no I/O, no
//! routing and no token checks; bodies of requests are the caller's business (this module only
//! says where the head ends).

use base64::Engine as _;

/// Most headers a request head may carry; more is refused (431) rather than allocated.
const MAX_HEADERS: usize = 64;

/// RFC 6455 §1.3: appended to the client's key before hashing.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A parsed request head. Owns its strings: it outlives the read buffer it came from (the
/// buffer is reused for WebSocket frames after the upgrade).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    /// Percent-decoded path without the query (`*` for `OPTIONS *`).
    pub path: String,
    /// The path as received (still percent-encoded), for routes whose segments may contain an
    /// encoded `/` (REST group and user names).
    pub raw_path: String,
    /// Query as received, without the `?`; empty when there is none.
    pub raw_query: String,
    /// Names as received (compare with [`Head::header`], which ignores case); values trimmed by
    /// `httparse`, non-UTF-8 bytes replaced by U+FFFD.
    pub headers: Vec<(String, String)>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version_minor: u8,
}

impl Head {
    /// The first value of header `name`, compared case-insensitively (RFC 9110 §5.1).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order (a header may be repeated).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The elements of a comma-separated list header (RFC 9110 §5.6.1) across all its
    /// repetitions, trimmed, empty elements skipped: `Connection: keep-alive, Upgrade`.
    pub fn header_tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.header_values(name)
            .flat_map(|v| v.split(','))
            .map(|t| t.trim_matches(|c| c == ' ' || c == '\t'))
            .filter(|t| !t.is_empty())
    }

    /// Query pairs, percent-decoded with `+` as space, repeated keys kept in order.
    ///
    /// Decoding follows the WHATWG `application/x-www-form-urlencoded` parser, the one browsers
    /// use: a malformed escape is kept literally and invalid UTF-8 becomes U+FFFD, so a sloppy
    /// client still gets its (say) `access_token` through instead of having it vanish.
    pub fn query(&self) -> Vec<(String, String)> {
        self.raw_query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (form_decode(k), form_decode(v))
            })
            .collect()
    }

    /// The first value of query parameter `name` (names compared exactly, as decoded).
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// Why a request head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The client sent something that is not an HTTP/1.x request head.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// No complete head within the configured limit.
    #[error("request head too large")]
    HeadTooLarge,
    #[error("too many request headers")]
    TooManyHeaders,
}

impl HttpError {
    /// The status to answer with before closing (RFC 9110 §15.5.1, RFC 6585 §5).
    pub fn status(self) -> u16 {
        match self {
            HttpError::Malformed(_) => 400,
            HttpError::HeadTooLarge | HttpError::TooManyHeaders => 431,
        }
    }
}

/// Ok(None) until the whole head ("\r\n\r\n") is buffered; Ok(Some((head, head_len))) then,
/// `head_len` being the bytes the head used (a body or WebSocket frames may follow in `buf`).
/// `max_head` bytes without a complete head -> HeadTooLarge. At most 64 headers.
pub fn parse_head(buf: &[u8], max_head: usize) -> Result<Option<(Head, usize)>, HttpError> {
    // Only look at the first `max_head` bytes: a head that ends later is too large anyway, and
    // this bounds the work of re-parsing on every read.
    let window = &buf[..buf.len().min(max_head)];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= max_head => {
            return Err(HttpError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(map_httparse_error(e)),
    };

    // Complete means httparse filled all three.
    let (Some(method), Some(target), Some(version_minor)) = (req.method, req.path, req.version)
    else {
        return Err(HttpError::Malformed("incomplete request line"));
    };
    let (raw_path, raw_query) = split_target(target);
    let path =
        percent_decode(raw_path).ok_or(HttpError::Malformed("invalid percent-encoding in path"))?;
    let headers = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    Ok(Some((
        Head {
            method: method.to_owned(),
            path,
            raw_path: raw_path.to_owned(),
            raw_query: raw_query.to_owned(),
            headers,
            version_minor,
        },
        head_len,
    )))
}

fn map_httparse_error(e: httparse::Error) -> HttpError {
    match e {
        httparse::Error::TooManyHeaders => HttpError::TooManyHeaders,
        httparse::Error::HeaderName => HttpError::Malformed("invalid header name"),
        httparse::Error::HeaderValue => HttpError::Malformed("invalid header value"),
        httparse::Error::NewLine => HttpError::Malformed("invalid line ending"),
        httparse::Error::Status => HttpError::Malformed("invalid status"),
        httparse::Error::Token => HttpError::Malformed("invalid method or target"),
        httparse::Error::Version => HttpError::Malformed("unsupported HTTP version"),
    }
}

/// Splits a request target into path and query. The absolute form (`http://host/p?q`, which
/// RFC 9112 §3.2.2 says servers must accept) is reduced to its path.
fn split_target(target: &str) -> (&str, &str) {
    let target = match target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        Some(rest) => rest.find(['/', '?']).map_or("/", |i| &rest[i..]),
        None => target,
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    // A fragment never belongs in a request target; drop one rather than route on it.
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    let path = if path.is_empty() { "/" } else { path };
    (path, query)
}

/// The answer to a valid WebSocket upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// Value for `Sec-WebSocket-Accept`.
    pub accept: String,
    /// The subprotocol chosen, echoed in `Sec-WebSocket-Protocol`; None: header omitted.
    pub subprotocol: Option<&'static str>,
    /// Every subprotocol the client offered, in order (for the upstream `connect` event).
    pub offered_subprotocols: Vec<String>,
}

/// Validates a WebSocket upgrade request (RFC 6455 §4.2.1): GET, HTTP/1.1, `Upgrade: websocket`
/// (case-insensitive), `Connection` containing the token `upgrade`, `Sec-WebSocket-Version: 13`,
/// `Sec-WebSocket-Key` = base64 of 16 bytes. Err carries a short human reason for the 400 body.
///
/// Subprotocol: "mqtt" if offered (the header may be repeated or comma-separated), else
/// "mqttv3.1" if offered, else None. Names are matched exactly: a browser fails the handshake
/// if the echoed name differs from what it offered, so answering "mqtt" to "MQTT" would not help.
/// `Host` is not required: clients always send it and it tells us nothing we use.
pub fn check_upgrade(head: &Head) -> Result<Upgrade, &'static str> {
    if head.method != "GET" {
        return Err("WebSocket upgrade must use GET");
    }
    if head.version_minor < 1 {
        return Err("WebSocket upgrade needs HTTP/1.1");
    }
    if !head
        .header_tokens("upgrade")
        .any(|t| t.eq_ignore_ascii_case("websocket"))
    {
        return Err("missing Upgrade: websocket");
    }
    if !head
        .header_tokens("connection")
        .any(|t| t.eq_ignore_ascii_case("upgrade"))
    {
        return Err("missing Connection: Upgrade");
    }
    match head.header("sec-websocket-version") {
        None => return Err("missing Sec-WebSocket-Version"),
        Some(v) if v.trim() != "13" => return Err("unsupported Sec-WebSocket-Version, need 13"),
        Some(_) => {}
    }
    let key = head
        .header("sec-websocket-key")
        .ok_or("missing Sec-WebSocket-Key")?
        .trim();
    // 16 bytes encode to 24 characters; check that first so a huge header is never decoded.
    let key_ok = key.len() == 24
        && base64::engine::general_purpose::STANDARD
            .decode(key)
            .is_ok_and(|k| k.len() == 16);
    if !key_ok {
        return Err("invalid Sec-WebSocket-Key");
    }

    let offered_subprotocols: Vec<String> = head
        .header_tokens("sec-websocket-protocol")
        .map(str::to_owned)
        .collect();
    let subprotocol = ["mqtt", "mqttv3.1"]
        .into_iter()
        .find(|want| offered_subprotocols.iter().any(|o| o == want));
    Ok(Upgrade {
        accept: accept_key(key),
        subprotocol,
        offered_subprotocols,
    })
}

/// `Sec-WebSocket-Accept` for a client key: base64(SHA1(key + GUID)) (RFC 6455 §4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.as_bytes());
    ctx.update(WS_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(ctx.finish())
}

/// The 101 response completing the upgrade. It never lists extensions: leaving
/// `Sec-WebSocket-Extensions` out declines permessage-deflate and everything else (§9.1).
pub fn switching_protocols(upgrade: &Upgrade) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(upgrade.accept.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(p) = upgrade.subprotocol {
        out.extend_from_slice(b"Sec-WebSocket-Protocol: ");
        out.extend_from_slice(p.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Simple full response with Content-Length, `Connection: close` when close=true, optional extra
/// headers. An empty `content_type` leaves the header out. 1xx, 204 and 304 responses carry no
/// body (RFC 9110 §6.4.1), so `body` is ignored for them and 1xx/204 get no Content-Length.
/// Extra headers whose name or value holds CR or LF are dropped: a caller echoing client input
/// must never be able to split the response.
pub fn response(
    status: u16,
    content_type: &str,
    body: &[u8],
    extra_headers: &[(&str, &str)],
    close: bool,
) -> Vec<u8> {
    let bodyless = (100..200).contains(&status) || status == 204 || status == 304;
    let body = if bodyless { &[][..] } else { body };
    let mut out = Vec::with_capacity(128 + body.len());
    push_str(&mut out, "HTTP/1.1 ");
    push_str(&mut out, &status.to_string());
    out.push(b' ');
    push_str(&mut out, reason_phrase(status));
    push_str(&mut out, "\r\n");
    if !content_type.is_empty() && !bodyless {
        push_header(&mut out, "Content-Type", content_type);
    }
    if status >= 200 && status != 204 {
        push_header(&mut out, "Content-Length", &body.len().to_string());
    }
    for (name, value) in extra_headers {
        push_header(&mut out, name, value);
    }
    if close {
        push_header(&mut out, "Connection", "close");
    }
    push_str(&mut out, "\r\n");
    out.extend_from_slice(body);
    out
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    let unsafe_char = |c: char| c == '\r' || c == '\n';
    if name.is_empty() || name.contains(unsafe_char) || value.contains(unsafe_char) {
        return;
    }
    push_str(out, name);
    push_str(out, ": ");
    push_str(out, value);
    push_str(out, "\r\n");
}

/// The standard reason phrase for the statuses hubmq sends (RFC 9110 §15); "" for others, which
/// HTTP/1.1 allows (RFC 9112 §4).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Strict percent-decoding (RFC 3986 §2.1): None on a malformed escape or if the result is not
/// UTF-8. `+` is left alone (it only means space in form-encoded queries).
pub fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex_value(*bytes.get(i + 1)?)?;
            let lo = hex_value(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Lenient form decoding (WHATWG URL "application/x-www-form-urlencoded parser"): `+` is space,
/// malformed escapes stay as written, invalid UTF-8 becomes U+FFFD.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => hex_value(h).zip(hex_value(l)),
            _ => None,
        };
        match (bytes[i], escaped) {
            (_, Some((hi, lo))) => {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
            (b'+', None) => out.push(b' '),
            (b, None) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The opening handshake of RFC 6455 §1.3.
    const RFC_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
        Host: server.example.com\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\n\
        Sec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Version: 13\r\n\
        \r\n";

    fn parse(bytes: &[u8]) -> Head {
        match parse_head(bytes, 8192) {
            Ok(Some((head, len))) => {
                assert_eq!(len, bytes.len());
                head
            }
            other => panic!("expected a complete head, got {other:?}"),
        }
    }

    /// A valid MQTT upgrade request for `/clients/mqtt/hubs/h` with `extra` header lines.
    fn upgrade_request(extra: &str) -> Head {
        let text = format!(
            "GET /clients/mqtt/hubs/h HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
        );
        parse(text.as_bytes())
    }

    /// Replaces (or with `value` None removes) every header named `name`.
    fn with_header(mut head: Head, name: &str, value: Option<&str>) -> Head {
        head.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if let Some(v) = value {
            head.headers.push((name.to_owned(), v.to_owned()));
        }
        head
    }

    #[test]
    fn accept_key_matches_rfc_sample() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn parses_rfc_handshake_request() {
        let head = parse(RFC_REQUEST);
        assert_eq!(head.method, "GET");
        assert_eq!(head.path, "/chat");
        assert_eq!(head.raw_query, "");
        assert_eq!(head.version_minor, 1);
        assert_eq!(head.headers.len(), 7);
        let up = check_upgrade(&head).unwrap();
        assert_eq!(up.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(up.subprotocol, None);
        assert_eq!(up.offered_subprotocols, ["chat", "superchat"]);
    }

    #[test]
    fn header_names_are_case_insensitive() {
        let head = parse(b"GET / HTTP/1.1\r\nX-Thing: one\r\nx-thing: two\r\nHOST: h\r\n\r\n");
        assert_eq!(head.header("host"), Some("h"));
        assert_eq!(head.header("X-THING"), Some("one"));
        assert_eq!(
            head.header_values("x-Thing").collect::<Vec<_>>(),
            ["one", "two"]
        );
        assert_eq!(head.header("missing"), None);
    }

    #[test]
    fn header_tokens_split_comma_lists_across_repetitions() {
        let head = parse(
            b"GET / HTTP/1.1\r\nConnection: keep-alive,  Upgrade ,\r\nconnection: close\r\n\r\n",
        );
        assert_eq!(
            head.header_tokens("connection").collect::<Vec<_>>(),
            ["keep-alive", "Upgrade", "close"]
        );
    }

    #[test]
    fn head_len_stops_before_following_bytes() {
        let mut bytes = RFC_REQUEST.to_vec();
        bytes.extend_from_slice(&[0x82, 0x80, 1, 2, 3, 4]); // a WebSocket frame sent early
        let (_, len) = parse_head(&bytes, 8192).unwrap().unwrap();
        assert_eq!(len, RFC_REQUEST.len());
    }

    #[test]
    fn partial_head_at_every_split_point_is_none() {
        for cut in 0..RFC_REQUEST.len() {
            assert_eq!(
                parse_head(&RFC_REQUEST[..cut], 8192),
                Ok(None),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn head_without_end_within_limit_is_too_large() {
        let mut bytes = b"GET / HTTP/1.1\r\n".to_vec();
        while bytes.len() < 1024 {
            bytes.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(parse_head(&bytes[..1000], 1024), Ok(None));
        assert_eq!(parse_head(&bytes, 1024), Err(HttpError::HeadTooLarge));
        assert_eq!(HttpError::HeadTooLarge.status(), 431);
    }

    #[test]
    fn complete_head_longer_than_limit_is_too_large() {
        let limit = RFC_REQUEST.len();
        assert!(parse_head(RFC_REQUEST, limit).unwrap().is_some());
        assert_eq!(
            parse_head(RFC_REQUEST, limit - 1),
            Err(HttpError::HeadTooLarge)
        );
    }

    #[test]
    fn more_than_64_headers_are_refused() {
        let build = |n: usize| {
            let mut s = String::from("GET / HTTP/1.1\r\n");
            for i in 0..n {
                s.push_str(&format!("X-{i}: v\r\n"));
            }
            s.push_str("\r\n");
            s
        };
        assert_eq!(parse(build(64).as_bytes()).headers.len(), 64);
        assert_eq!(
            parse_head(build(65).as_bytes(), 1 << 16),
            Err(HttpError::TooManyHeaders)
        );
        assert_eq!(HttpError::TooManyHeaders.status(), 431);
    }

    #[test]
    fn malformed_heads_are_refused() {
        let cases: [&[u8]; 4] = [
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET /a%zz HTTP/1.1\r\n\r\n",
            b"GET /%C3 HTTP/1.1\r\n\r\n",
        ];
        for bytes in cases {
            let got = parse_head(bytes, 8192);
            assert!(
                matches!(got, Err(HttpError::Malformed(_))),
                "{:?}: {got:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        assert_eq!(HttpError::Malformed("x").status(), 400);
    }

    #[test]
    fn path_is_percent_decoded_and_split_from_query() {
        let head = parse(b"GET /clients/mqtt/hubs/my%5Fhub?access_token=abc HTTP/1.1\r\n\r\n");
        assert_eq!(head.path, "/clients/mqtt/hubs/my_hub");
        assert_eq!(head.raw_query, "access_token=abc");
    }

    #[test]
    fn absolute_form_target_is_reduced_to_path() {
        let head = parse(b"GET http://example.com:8080/healthz?x=1 HTTP/1.1\r\n\r\n");
        assert_eq!(head.path, "/healthz");
        assert_eq!(head.raw_query, "x=1");
        assert_eq!(parse(b"GET http://example.com HTTP/1.1\r\n\r\n").path, "/");
    }

    #[test]
    fn http_1_0_version_is_reported() {
        assert_eq!(parse(b"GET / HTTP/1.0\r\n\r\n").version_minor, 0);
    }

    #[test]
    fn query_keeps_repeated_keys_in_order_and_decodes() {
        let head = parse(
            b"GET /p?access_token=a%2Fb&x=1&x=2&sp=a+b%20c&flag&&bad=%zz&=v HTTP/1.1\r\n\r\n",
        );
        let q = head.query();
        let pairs: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("access_token", "a/b"),
                ("x", "1"),
                ("x", "2"),
                ("sp", "a b c"),
                ("flag", ""),
                ("bad", "%zz"),
                ("", "v"),
            ]
        );
        assert_eq!(head.query_param("x").as_deref(), Some("1"));
        assert_eq!(head.query_param("access_token").as_deref(), Some("a/b"));
        assert_eq!(head.query_param("nope"), None);
    }

    #[test]
    fn query_with_invalid_utf8_is_replaced_not_dropped() {
        let head = parse(b"GET /p?k=%FFok HTTP/1.1\r\n\r\n");
        assert_eq!(head.query_param("k").as_deref(), Some("\u{FFFD}ok"));
    }

    #[test]
    fn percent_decode_is_strict() {
        assert_eq!(percent_decode("a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(percent_decode("a%2fb").as_deref(), Some("a/b"));
        assert_eq!(percent_decode("a+b").as_deref(), Some("a+b"));
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        for bad in ["%", "%4", "%zz", "a%g1", "%C3", "%FF"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn accepts_valid_upgrade_with_mixed_case_tokens() {
        let head = with_header(upgrade_request(""), "Upgrade", Some("WebSocket"));
        let head = with_header(head, "Connection", Some("keep-alive, UPGRADE"));
        let up = check_upgrade(&head).unwrap();
        assert_eq!(up.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert!(up.offered_subprotocols.is_empty());
    }

    #[test]
    fn refuses_upgrade_with_wrong_method() {
        let mut head = upgrade_request("");
        head.method = "POST".into();
        assert_eq!(check_upgrade(&head), Err("WebSocket upgrade must use GET"));
    }

    #[test]
    fn refuses_upgrade_over_http_1_0() {
        let mut head = upgrade_request("");
        head.version_minor = 0;
        assert_eq!(
            check_upgrade(&head),
            Err("WebSocket upgrade needs HTTP/1.1")
        );
    }

    #[test]
    fn refuses_upgrade_without_websocket_upgrade_header() {
        let missing = with_header(upgrade_request(""), "Upgrade", None);
        assert_eq!(check_upgrade(&missing), Err("missing Upgrade: websocket"));
        let other = with_header(upgrade_request(""), "Upgrade", Some("h2c"));
        assert_eq!(check_upgrade(&other), Err("missing Upgrade: websocket"));
    }

    #[test]
    fn refuses_upgrade_without_connection_upgrade_token() {
        let missing = with_header(upgrade_request(""), "Connection", None);
        assert_eq!(check_upgrade(&missing), Err("missing Connection: Upgrade"));
        let other = with_header(upgrade_request(""), "Connection", Some("keep-alive"));
        assert_eq!(check_upgrade(&other), Err("missing Connection: Upgrade"));
    }

    #[test]
    fn refuses_upgrade_with_missing_or_wrong_version() {
        let missing = with_header(upgrade_request(""), "Sec-WebSocket-Version", None);
        assert_eq!(
            check_upgrade(&missing),
            Err("missing Sec-WebSocket-Version")
        );
        let old = with_header(upgrade_request(""), "Sec-WebSocket-Version", Some("8"));
        assert_eq!(
            check_upgrade(&old),
            Err("unsupported Sec-WebSocket-Version, need 13")
        );
    }

    #[test]
    fn refuses_upgrade_with_missing_or_bad_key() {
        let missing = with_header(upgrade_request(""), "Sec-WebSocket-Key", None);
        assert_eq!(check_upgrade(&missing), Err("missing Sec-WebSocket-Key"));
        for bad in [
            "not base64 at all!!!!!!!",
            "AAECAwQFBgcICQoLDA0O",     // 15 bytes
            "AAECAwQFBgcICQoLDA0ODxA=", // 17 bytes
            "",
        ] {
            let head = with_header(upgrade_request(""), "Sec-WebSocket-Key", Some(bad));
            assert_eq!(
                check_upgrade(&head),
                Err("invalid Sec-WebSocket-Key"),
                "{bad}"
            );
        }
    }

    #[test]
    fn chooses_mqtt_subprotocol() {
        let cases: [(&str, Option<&str>); 6] = [
            ("Sec-WebSocket-Protocol: mqtt\r\n", Some("mqtt")),
            ("Sec-WebSocket-Protocol: mqttv3.1\r\n", Some("mqttv3.1")),
            ("Sec-WebSocket-Protocol: mqtt, mqttv3.1\r\n", Some("mqtt")),
            ("Sec-WebSocket-Protocol: mqttv3.1, mqtt\r\n", Some("mqtt")),
            (
                "Sec-WebSocket-Protocol: mqttv3.1\r\nsec-websocket-protocol: mqtt\r\n",
                Some("mqtt"),
            ),
            ("Sec-WebSocket-Protocol: chat, MQTT\r\n", None),
        ];
        for (extra, want) in cases {
            let up = check_upgrade(&upgrade_request(extra)).unwrap();
            assert_eq!(up.subprotocol, want, "{extra:?}");
        }
        let none = check_upgrade(&upgrade_request("")).unwrap();
        assert_eq!(none.subprotocol, None);
        let both = check_upgrade(&upgrade_request(
            "Sec-WebSocket-Protocol: mqtt, mqttv3.1\r\n",
        ));
        assert_eq!(both.unwrap().offered_subprotocols, ["mqtt", "mqttv3.1"]);
    }

    #[test]
    fn switching_protocols_echoes_accept_and_subprotocol_only() {
        let up = check_upgrade(&upgrade_request(
            "Sec-WebSocket-Protocol: mqtt\r\nSec-WebSocket-Extensions: permessage-deflate\r\n",
        ))
        .unwrap();
        assert_eq!(
            String::from_utf8(switching_protocols(&up)).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Sec-WebSocket-Protocol: mqtt\r\n\
             \r\n"
        );
        let plain = check_upgrade(&upgrade_request("")).unwrap();
        let text = String::from_utf8(switching_protocols(&plain)).unwrap();
        assert!(!text.contains("Sec-WebSocket-Protocol"));
        assert!(text.ends_with("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"));
    }

    #[test]
    fn response_has_length_type_extra_headers_and_close() {
        let out = response(
            401,
            "text/plain; charset=utf-8",
            b"token expired",
            &[("WWW-Authenticate", "Bearer")],
            true,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 401 Unauthorized\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 13\r\n\
             WWW-Authenticate: Bearer\r\n\
             Connection: close\r\n\
             \r\n\
             token expired"
        );
        let keep = response(200, "", b"", &[], false);
        assert_eq!(keep, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    }

    #[test]
    fn no_content_response_has_no_body_or_length() {
        let out = response(204, "text/plain", b"ignored", &[], false);
        assert_eq!(out, b"HTTP/1.1 204 No Content\r\n\r\n");
    }

    #[test]
    fn response_drops_extra_headers_that_would_split_it() {
        let out = response(
            302,
            "",
            b"",
            &[("Location", "/x\r\nSet-Cookie: a=b"), ("X-Ok", "1")],
            false,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("Set-Cookie"));
        assert!(text.contains("X-Ok: 1\r\n"));
    }

    #[test]
    fn reason_phrase_covers_common_statuses() {
        assert_eq!(reason_phrase(101), "Switching Protocols");
        assert_eq!(reason_phrase(400), "Bad Request");
        assert_eq!(reason_phrase(404), "Not Found");
        assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
        assert_eq!(reason_phrase(599), "");
    }
}
