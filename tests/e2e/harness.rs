//! Shared machinery for the end-to-end suite: starting the real `hubmq` binary on ephemeral
//! loopback ports with a throw-away config, minting HS256 tokens, plain HTTP requests, polling
//! with a deadline, and [`Raw`], a byte-level MQTT client over TCP or WebSocket (it does the
//! upgrade and the frame masking itself) for checks that must be exact on the wire.
//!
//! Nothing here sleeps to wait for a condition: every wait is a poll with a deadline that panics
//! naming what it waited for. Every broker is killed and reaped on drop, also when a test panics.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::SecureRandom as _;

// Re-exported so every module finds the wire helpers in one place; not all are used by all.
#[allow(unused_imports)]
pub use crate::raw::{
    ws_accept, ws_frame, Raw, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT,
    WS_KEY,
};

/// How long the binary may take to print `hubmq ready` (a cold debug build on a loaded 2-core
/// machine is slow to start; a healthy start takes milliseconds).
const STARTUP_DEADLINE: Duration = Duration::from_secs(30);
/// Default deadline for one expected packet, close or HTTP answer.
pub const IO_DEADLINE: Duration = Duration::from_secs(10);

/// A running `hubmq` with an HTTP (WebSocket MQTT, /metrics, /healthz) and a TCP listener.
pub struct Broker {
    pub http: SocketAddr,
    pub tcp: SocketAddr,
    /// Every `hubmq listening` line: (kind, address), including tls/https listeners; an Event
    /// Grid namespace's listener has kind `KIND@NAMESPACE`.
    pub listeners: Vec<(String, SocketAddr)>,
    /// The two configured access keys; tokens are signed with `keys[0]` unless a test says otherwise.
    pub keys: [String; 2],
    child: Child,
    dir: PathBuf,
    stderr: Arc<Mutex<String>>,
}

impl Broker {
    /// workers = 2, http + tcp on 127.0.0.1:0, two random keys, hub `anon` anonymous,
    /// `connect_timeout_secs = 1`, public endpoint `http://hubmq.test`.
    pub fn start() -> Broker {
        Broker::start_with("")
    }

    /// Like [`Broker::start`], with `extra_toml` appended (new tables such as `[limits]` or
    /// `[hubs.x]`; the default config defines neither `[limits]` nor `[metrics]`).
    pub fn start_with(extra_toml: &str) -> Broker {
        Broker::start_with_server("", extra_toml)
    }

    /// Like [`Broker::start_with`], with `server_keys` (lines such as `x = 1`) added to the
    /// `[server]` table.
    pub fn start_with_server(server_keys: &str, extra_toml: &str) -> Broker {
        let keys = [random_key(), random_key()];
        let toml = format!(
            r#"[server]
workers = 2
connect_timeout_secs = 1
public_endpoints = ["{PUBLIC_ENDPOINT}"]
{server_keys}

[[listeners]]
kind = "http"
bind = "127.0.0.1:0"

[[listeners]]
kind = "tcp"
bind = "127.0.0.1:0"

[auth]
access_keys = ["{k0}", "{k1}"]

[hubs.anon]
anonymous_connect = true

{extra_toml}
"#,
            k0 = keys[0],
            k1 = keys[1],
        );
        Broker::start_with_config(&toml, keys)
    }

    /// Starts the binary with a complete config text. `keys` must be the keys that config
    /// names (they are what [`Broker::token`] signs with). The config needs one `http` and one
    /// `tcp` listener.
    pub fn start_with_config(toml: &str, keys: [String; 2]) -> Broker {
        let dir = unique_temp_dir();
        let config = dir.join("hubmq.toml");
        std::fs::write(&config, toml).unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_hubmq"))
            .arg("--config")
            .arg(&config)
            .env(
                "RUST_LOG",
                std::env::var("HUBMQ_E2E_LOG").unwrap_or_else(|_| "debug".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn hubmq: {e}"));

        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(err) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
                    s.push_str(&line);
                    s.push('\n');
                }
            });
        }

        // stdout carries the listening/ready lines; a thread forwards them so the wait below can
        // have a deadline, and keeps draining afterwards so the child never blocks on a full pipe.
        let (tx, rx) = mpsc::channel::<String>();
        let Some(out) = child.stdout.take() else {
            panic!("hubmq stdout was not captured")
        };
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });

        let mut broker = Broker {
            http: SocketAddr::from(([0, 0, 0, 0], 0)),
            tcp: SocketAddr::from(([0, 0, 0, 0], 0)),
            listeners: Vec::new(),
            keys,
            child,
            dir,
            stderr,
        };
        let started = Instant::now();
        let mut listening: Vec<(String, SocketAddr)> = Vec::new();
        loop {
            let left = STARTUP_DEADLINE.saturating_sub(started.elapsed());
            if left.is_zero() {
                panic!("hubmq did not print `hubmq ready` within {STARTUP_DEADLINE:?}\n--- stderr ---\n{}", broker.logs());
            }
            match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    let line = line.trim();
                    if line == "hubmq ready" {
                        break;
                    }
                    if let Some(l) = parse_listening(line) {
                        listening.push(l);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = broker.child.try_wait() {
                        panic!("hubmq exited during start-up ({status})\n--- config ---\n{toml}\n--- stderr ---\n{}", broker.logs());
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stdout closed: the process is exiting; give stderr a moment via the deadline loop.
                    let status = broker.child.wait().ok();
                    panic!("hubmq closed stdout before `hubmq ready` ({status:?})\n--- config ---\n{toml}\n--- stderr ---\n{}", broker.logs());
                }
            }
        }
        for (kind, addr) in &listening {
            match kind.as_str() {
                "http" => broker.http = *addr,
                "tcp" => broker.tcp = *addr,
                _ => {}
            }
        }
        broker.listeners = listening.clone();
        assert!(
            broker.http.port() != 0,
            "no `kind=http` listening line in {listening:?}"
        );
        assert!(
            broker.tcp.port() != 0,
            "no `kind=tcp` listening line in {listening:?}"
        );
        broker
    }

    /// The config file the broker runs with (rewrite it, then [`Broker::signal`] `HUP`).
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("hubmq.toml")
    }

    /// Sends signal `name` (`HUP`, `TERM`, …) to the broker process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap_or_else(|e| panic!("run kill: {e}"));
        assert!(status.success(), "kill -{name} failed");
    }

    /// A token for `hub` signed with `keys[0]`, valid for an hour, audience [`Broker::aud`].
    pub fn token(&self, hub: &str, user: Option<&str>, roles: &[&str], groups: &[&str]) -> String {
        let mut claims = serde_json::json!({
            "aud": self.aud(hub),
            "exp": now_secs() + 3600,
            "iat": now_secs(),
            "role": roles,
        });
        if let Some(user) = user {
            claims["sub"] = user.into();
        }
        if !groups.is_empty() {
            claims["webpubsub.group"] = groups.into();
        }
        self.token_with(claims, &self.keys[0])
    }

    /// Any claims, signed HS256 with `key`.
    pub fn token_with(&self, claims: serde_json::Value, key: &str) -> String {
        sign_hs256(&claims, key)
    }

    /// `ws://127.0.0.1:PORT/clients/mqtt/hubs/{hub}[?access_token=…]`.
    pub fn ws_url(&self, hub: &str, token: Option<&str>) -> String {
        let mut url = format!("ws://{}{}", self.http, hub_path(hub));
        if let Some(t) = token {
            url.push_str("?access_token=");
            url.push_str(t);
        }
        url
    }

    /// The audience a client dialling the HTTP listener presents:
    /// `http://127.0.0.1:PORT/clients/mqtt/hubs/{hub}`. Also used for TCP clients (the broker
    /// accepts its own HTTP listeners' addresses as audience authorities on every transport).
    pub fn aud(&self, hub: &str) -> String {
        format!("http://{}{}", self.http, hub_path(hub))
    }

    /// The audience through the configured public endpoint `http://hubmq.test`.
    pub fn public_aud(&self, hub: &str) -> String {
        format!("{PUBLIC_ENDPOINT}{}", hub_path(hub))
    }

    /// Body of `GET /metrics` (Prometheus text); panics on a non-200 answer.
    pub fn metrics(&self) -> String {
        let (status, body) = http_get(self.http, "/metrics");
        assert_eq!(status, 200, "GET /metrics: {body}");
        body
    }

    /// Sum of the `hubmq_connections` gauge per `worker` label, from [`Broker::metrics`].
    pub fn connections_per_worker(&self) -> BTreeMap<String, f64> {
        gauge_by_label(&self.metrics(), "hubmq_connections", "worker")
    }

    /// A [`Raw`] MQTT session on `hub`: over WebSocket (token in the query) or TCP (username =
    /// hub, password = token), after sending `connect` and checking the CONNACK is a success.
    pub fn raw(
        &self,
        ws: bool,
        hub: &str,
        token: Option<&str>,
        connect: crate::wire::Connect,
    ) -> Raw {
        let version = connect.version;
        let mut raw = if ws {
            let path = match token {
                Some(t) => format!("{}?access_token={t}", hub_path(hub)),
                None => hub_path(hub),
            };
            Raw::ws(self.http, &path, &[])
                .unwrap_or_else(|(s, body)| panic!("upgrade refused: {s} {body}"))
        } else {
            Raw::tcp(self.tcp)
        };
        let connect = if ws {
            connect
        } else {
            connect.auth(hub, token)
        };
        raw.send(&connect.encode());
        let ack = crate::wire::connack(version, &raw.read_packet());
        assert_eq!(ack.code, 0, "CONNACK refused: {ack:?}");
        raw
    }

    /// Everything the broker wrote to stderr so far.
    pub fn logs(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Panics unless the process is still running and answers `/healthz` with 200: the check
    /// that bad input did not take the broker down.
    pub fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("hubmq exited ({status})\n--- stderr ---\n{}", self.logs());
        }
        let (status, body) = http_get(self.http, "/healthz");
        assert_eq!(status, 200, "GET /healthz: {body}");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        if thread::panicking() {
            // Printed from the test thread, so libtest shows it with the failure only.
            let logs = self.logs();
            let tail = &logs[floor_char_boundary(&logs, logs.len().saturating_sub(12_000))..];
            eprintln!("--- hubmq stderr (last 12 kB) ---\n{tail}");
        }
    }
}

const PUBLIC_ENDPOINT: &str = "http://hubmq.test";

fn hub_path(hub: &str) -> String {
    format!("/clients/mqtt/hubs/{hub}")
}

fn parse_listening(line: &str) -> Option<(String, SocketAddr)> {
    let rest = line.strip_prefix("hubmq listening ")?;
    let mut kind = None;
    let mut addr = None;
    let mut namespace = None;
    for word in rest.split_whitespace() {
        if let Some(k) = word.strip_prefix("kind=") {
            kind = Some(k.to_owned());
        } else if let Some(a) = word.strip_prefix("addr=") {
            addr = a.parse().ok();
        } else if let Some(n) = word.strip_prefix("namespace=") {
            namespace = Some(n.to_owned());
        }
    }
    // An Event Grid namespace's listener is told apart as `KIND@NAMESPACE`.
    let kind = match namespace {
        Some(ns) => format!("{}@{ns}", kind?),
        None => kind?,
    };
    Some((kind, addr?))
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn random_key() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .unwrap_or_else(|_| panic!("system random source failed"));
    STANDARD.encode(bytes)
}

fn unique_temp_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "hubmq-e2e-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Seconds since the Unix epoch, for `exp` / `nbf` / `iat`.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An HS256 JWT over `claims` with the UTF-8 bytes of `key` (the Web PubSub rule).
pub fn sign_hs256(claims: &serde_json::Value, key: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let hmac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    let tag = ring::hmac::sign(&hmac_key, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Polls `f` every 20 ms until it returns true; panics naming `what` after `deadline`.
pub fn wait_until<F: FnMut() -> bool>(what: &str, deadline: Duration, mut f: F) {
    let start = Instant::now();
    loop {
        if f() {
            return;
        }
        if start.elapsed() >= deadline {
            panic!("timed out after {deadline:?} waiting for: {what}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Sums a gauge's samples by the value of one label, e.g. `hubmq_connections` by `worker`.
pub fn gauge_by_label(text: &str, metric: &str, label: &str) -> BTreeMap<String, f64> {
    let mut sums = BTreeMap::new();
    let needle = format!("{label}=\"");
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        // `hubmq_connections{...} 3`; the name must end right at `{` or a space.
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let Some(value) = rest
            .rsplit(' ')
            .next()
            .and_then(|v| v.trim().parse::<f64>().ok())
        else {
            continue;
        };
        let key = rest
            .find(&needle)
            .and_then(|i| rest[i + needle.len()..].split('"').next())
            .unwrap_or("")
            .to_owned();
        *sums.entry(key).or_insert(0.0) += value;
    }
    sums
}

/// Sends `raw_request` as is and returns the status and the whole answer (head and body, the
/// body de-chunked if needed). Reads until the body is complete, the peer closes, or the deadline.
pub fn http_request(addr: SocketAddr, raw_request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.write_all(raw_request.as_bytes())
        .unwrap_or_else(|e| panic!("write to {addr}: {e}"));
    let (status, head, body) = read_http_response(&mut s, IO_DEADLINE);
    (status, format!("{head}{body}"))
}

/// `GET path` with `Connection: close`; returns the status and the body only.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .unwrap_or_else(|e| panic!("write to {addr}: {e}"));
    let (status, _head, body) = read_http_response(&mut s, IO_DEADLINE);
    (status, body)
}

/// Reads one HTTP response: (status, head including the blank line, body).
pub(crate) fn read_http_response(s: &mut TcpStream, deadline: Duration) -> (u16, String, String) {
    let start = Instant::now();
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        match read_some(s, &mut buf, start, deadline) {
            ReadOutcome::Data => {}
            other => panic!(
                "no complete HTTP head ({other:?}); got {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("bad HTTP status line: {head:?}"));
    let header = |name: &str| -> Option<String> {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let mut body = buf[head_end..].to_vec();
    if status == 101 {
        // Whatever follows the head belongs to the WebSocket stream; the caller handles it.
        return (status, head, String::from_utf8_lossy(&body).into_owned());
    }
    if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while body.len() < len {
            match read_some(s, &mut body, start, deadline) {
                ReadOutcome::Data => {}
                other => panic!(
                    "HTTP body cut short ({other:?}) after {} of {len} bytes",
                    body.len()
                ),
            }
        }
        body.truncate(len);
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            if let Some(decoded) = dechunk(&body) {
                body = decoded;
                break;
            }
            match read_some(s, &mut body, start, deadline) {
                ReadOutcome::Data => {}
                other => panic!("chunked HTTP body cut short ({other:?})"),
            }
        }
    } else {
        // No length: the body runs to the close.
        while let ReadOutcome::Data = read_some(s, &mut body, start, deadline) {}
    }
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

/// The de-chunked body once the terminating chunk is present, else `None`.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[derive(Debug)]
pub(crate) enum ReadOutcome {
    Data,
    Eof,
    Reset,
    Timeout,
}

/// One read with the time left until `start + deadline`, appended to `buf`.
pub(crate) fn read_some(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    start: Instant,
    deadline: Duration,
) -> ReadOutcome {
    let left = deadline.saturating_sub(start.elapsed());
    if left.is_zero() {
        return ReadOutcome::Timeout;
    }
    let _ = s.set_read_timeout(Some(left));
    let mut chunk = [0u8; 16 * 1024];
    match s.read(&mut chunk) {
        Ok(0) => ReadOutcome::Eof,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            ReadOutcome::Data
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            ReadOutcome::Timeout
        }
        Err(e) if e.kind() == ErrorKind::Interrupted => ReadOutcome::Data,
        Err(_) => ReadOutcome::Reset,
    }
}

/// `20 02 00 05`-style hex for assertion messages.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_gauge_samples_per_worker() {
        let text = "# TYPE hubmq_connections gauge\n\
            hubmq_connections{transport=\"ws\",protocol=\"5\",worker=\"0\"} 3\n\
            hubmq_connections{transport=\"tcp\",protocol=\"4\",worker=\"0\"} 2\n\
            hubmq_connections{transport=\"tcp\",protocol=\"4\",worker=\"1\"} 4\n\
            hubmq_connections_total{worker=\"1\"} 99\n";
        let m = gauge_by_label(text, "hubmq_connections", "worker");
        assert_eq!(m.get("0"), Some(&5.0));
        assert_eq!(m.get("1"), Some(&4.0));
    }

    #[test]
    fn dechunks_a_chunked_body() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").as_deref(),
            Some(&b"abcde"[..])
        );
        assert_eq!(dechunk(b"3\r\nab"), None);
    }

    #[test]
    fn signs_the_rfc7519_shape() {
        let t = sign_hs256(&serde_json::json!({"a": 1}), "k");
        assert_eq!(t.split('.').count(), 3);
        assert!(!t.contains('='));
    }
}
