//! Operations: a real Prometheus scraping hubmq, `promtool check metrics` on the exposition,
//! the sd_notify protocol (READY after the ports accept, repeated WATCHDOG, STOPPING on
//! SIGTERM), graceful SIGTERM (v5 clients get DISCONNECT 0x8B, the process exits 0), SIGHUP
//! key rotation (new tokens work, existing connections stay, a broken file is refused), and the
//! systemd unit check script.
//!
//! These tests need the process id, environment and config file of the broker, so they start
//! it with their own small launcher ([`Ops`]) and use the shared harness only for tokens, polling
//! and the raw MQTT client. External tools (prometheus, promtool, systemd-analyze) are
//! installed by `scripts/test.sh`, which sets `CI`; without it a missing tool skips its test
//! with a message instead of failing a developer's run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{http_get, now_secs, sign_hs256, wait_until, IO_DEADLINE};
use crate::raw::Raw;
use crate::wire::{self, Connect};

const HUB: &str = "ops";
const ROLES: [&str; 2] = ["webpubsub.sendToGroup", "webpubsub.joinLeaveGroup"];

/// A broker started by this module: config file we can rewrite, pid we can signal.
struct Ops {
    http: SocketAddr,
    tcp: SocketAddr,
    metrics: Option<SocketAddr>,
    config: PathBuf,
    dir: PathBuf,
    child: Child,
    stderr: Arc<Mutex<String>>,
    stdout: mpsc::Receiver<String>,
}

fn config_text(key: &str, extra: &str) -> String {
    format!(
        r#"[server]
workers = 2
connect_timeout_secs = 2
shutdown_grace_secs = 5

[[listeners]]
kind = "http"
bind = "127.0.0.1:0"

[[listeners]]
kind = "tcp"
bind = "127.0.0.1:0"

[auth]
access_keys = ["{key}"]

[hubs.{HUB}]

{extra}
"#
    )
}

fn temp_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "hubmq-ops-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        now_secs()
    ));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

impl Ops {
    fn start(toml: &str, env: &[(&str, &str)]) -> Ops {
        let dir = temp_dir();
        let config = dir.join("hubmq.toml");
        std::fs::write(&config, toml).unwrap_or_else(|e| panic!("write config: {e}"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hubmq"));
        cmd.arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn hubmq: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(err) = child.stderr.take() {
            let sink = stderr.clone();
            thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
                    s.push_str(&line);
                    s.push('\n');
                }
            });
        }
        let (tx, stdout) = mpsc::channel();
        let out = child.stdout.take().expect("stdout is piped");
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut ops = Ops {
            http: SocketAddr::from(([0, 0, 0, 0], 0)),
            tcp: SocketAddr::from(([0, 0, 0, 0], 0)),
            metrics: None,
            config,
            dir,
            child,
            stderr,
            stdout,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no `hubmq ready`\n{}", ops.logs());
            let Ok(line) = ops.stdout.recv_timeout(left) else {
                panic!("hubmq stdout closed before ready\n{}", ops.logs());
            };
            if line == "hubmq ready" {
                break;
            }
            let Some(rest) = line.strip_prefix("hubmq listening kind=") else {
                continue;
            };
            let (kind, addr) = rest.split_once(" addr=").expect("listening line");
            let addr: SocketAddr = addr.parse().expect("listening address");
            match kind {
                "http" => ops.http = addr,
                "tcp" => ops.tcp = addr,
                "metrics" => ops.metrics = Some(addr),
                _ => {}
            }
        }
        ops
    }

    fn logs(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                start.elapsed() < deadline,
                "hubmq did not exit within {deadline:?}\n{}",
                self.logs()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn token(&self, key: &str, user: &str) -> String {
        let claims = serde_json::json!({
            "aud": format!("http://{}/clients/mqtt/hubs/{HUB}", self.http),
            "exp": now_secs() + 3600,
            "sub": user,
            "role": ROLES,
        });
        sign_hs256(&claims, key)
    }

    /// A TCP MQTT connection that got a successful CONNACK.
    fn client(&self, version: u8, client_id: &str, token: &str) -> Raw {
        let mut raw = Raw::tcp(self.tcp);
        raw.send(
            &Connect::new(version, client_id)
                .auth(HUB, Some(token))
                .encode(),
        );
        let p = raw.read_packet();
        let ack = wire::connack(version, &p);
        assert_eq!(ack.code, 0, "CONNACK for {client_id}: {ack:?}");
        raw
    }

    /// CONNACK code for a fresh TCP connection with `token`.
    fn connack_code(&self, version: u8, token: &str) -> u8 {
        let mut raw = Raw::tcp(self.tcp);
        raw.send(
            &Connect::new(version, "probe")
                .auth(HUB, Some(token))
                .encode(),
        );
        let p = raw.read_packet();
        wire::connack(version, &p).code
    }
}

impl Drop for Ops {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        if thread::panicking() {
            eprintln!("--- hubmq stderr ---\n{}", self.logs());
        }
    }
}

fn random_key(tag: &str) -> String {
    format!("ops-{tag}-{}-{}", std::process::id(), now_secs())
}

/// Whether an external tool exists; when it does not, a test skips unless the suite runs under
/// `scripts/test.sh` (which installs it and sets `CI`).
fn tool(name: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is required (scripts/test.sh installs it)"
        );
        eprintln!("skipping: {name} is not installed (scripts/test.sh installs it)");
    }
    found
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind ephemeral");
    l.local_addr().expect("local addr").port()
}

/// Publishes `n` QoS 1 messages to `topic` and waits for every PUBACK.
fn publish_acked(c: &mut Raw, version: u8, topic: &str, n: u16) {
    for i in 1..=n {
        c.send(&wire::publish(version, topic, b"m", 1, false, i, &[]));
        let p = c.read_packet_skip_ping();
        let (kind, pkid, reason) = wire::ack(&p);
        assert_eq!((kind >> 4, pkid, reason), (4, i, 0), "PUBACK {i}");
    }
}

/// `GET /api/v1/query?query=…` against Prometheus; the first sample's value, if any.
fn prom_query(prom: SocketAddr, query: &str) -> Option<f64> {
    let encoded: String = query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let mut s = TcpStream::connect(prom).ok()?;
    s.set_read_timeout(Some(IO_DEADLINE)).ok()?;
    let req = format!(
        "GET /api/v1/query?query={encoded} HTTP/1.1\r\nHost: {prom}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let body = text.split_once("\r\n\r\n")?.1;
    // Prometheus answers small bodies with Content-Length; tolerate a chunked one by taking the
    // JSON object between the first `{` and the last `}`.
    let json = &body[body.find('{')?..=body.rfind('}')?];
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

struct Prometheus {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Prometheus {
        let dir = temp_dir();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: hubmq\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn prometheus");
        let p = Prometheus { child, dir, addr };
        wait_until("prometheus ready", Duration::from_secs(60), || {
            TcpStream::connect(p.addr)
                .map(|mut s| {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    let _ = s.write_all(
                        b"GET /-/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    );
                    let mut t = String::new();
                    let _ = s.read_to_string(&mut t);
                    t.starts_with("HTTP/1.1 200")
                })
                .unwrap_or(false)
        });
        p
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn prometheus_scrapes_message_and_connection_counts() {
    if !tool("prometheus") {
        return;
    }
    let key = random_key("prom");
    let ops = Ops::start(
        &config_text(&key, "[metrics]\nbind = \"127.0.0.1:0\"\n"),
        &[],
    );
    let target = ops.metrics.expect("dedicated metrics listener announced");
    let prom = Prometheus::start(target);
    // Three connections; two publish while Prometheus scrapes every second.
    let token = ops.token(&key, "u");
    let mut a = ops.client(4, "prom-a", &token);
    let mut b = ops.client(5, "prom-b", &token);
    let _idle = ops.client(4, "prom-c", &token);
    for round in 0..5 {
        publish_acked(&mut a, 4, "room", 4);
        publish_acked(&mut b, 5, "room", 3);
        if round < 4 {
            thread::sleep(Duration::from_millis(300));
        }
    }
    let expected_messages = 5.0 * 7.0;
    wait_until(
        "prometheus reports 35 received messages and 3 connections",
        Duration::from_secs(60),
        || {
            prom_query(
                prom.addr,
                "sum(hubmq_messages_received_total{job=\"hubmq\"})",
            ) == Some(expected_messages)
                && prom_query(prom.addr, "sum(hubmq_connections{job=\"hubmq\"})") == Some(3.0)
        },
    );
    // Per-worker series exist (the balance panels of the dashboard rely on them).
    let workers = prom_query(prom.addr, "count(count by (worker) (hubmq_connections))");
    assert_eq!(workers, Some(2.0));
    assert_eq!(prom_query(prom.addr, "up{job=\"hubmq\"}"), Some(1.0));
}

#[test]
fn exposition_passes_promtool_check_metrics() {
    if !tool("promtool") {
        return;
    }
    let key = random_key("promtool");
    let ops = Ops::start(&config_text(&key, ""), &[]);
    let token = ops.token(&key, "u");
    let mut c = ops.client(5, "promtool", &token);
    publish_acked(&mut c, 5, "room", 2);
    drop(c);
    // Wait for a flush so counters, gauges and disconnects all have samples.
    wait_until("disconnect counted", Duration::from_secs(10), || {
        let (_, body) = http_get(ops.http, "/metrics");
        body.lines()
            .any(|l| l.starts_with("hubmq_disconnects_total{") && !l.ends_with(" 0"))
    });
    let (status, text) = http_get(ops.http, "/metrics");
    assert_eq!(status, 200);
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write exposition");
    let out = child.wait_with_output().expect("promtool output");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n--- exposition ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [
        "hubmq_connections",
        "hubmq_connects_total",
        "hubmq_disconnects_total",
        "hubmq_messages_received_total",
        "hubmq_messages_delivered_total",
        "hubmq_messages_dropped_total",
        "hubmq_sessions",
        "hubmq_outbound_queue_bytes",
        "hubmq_build_info",
        "process_cpu_seconds_total",
        "process_open_fds",
    ] {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no help text for {name}"
        );
    }
}

/// A datagram socket in the abstract namespace the test owns; returns it and its `@name`.
fn notify_socket() -> (UnixDatagram, String) {
    use std::os::linux::net::SocketAddrExt as _;
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "hubmq-e2e-notify-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .expect("abstract address");
    let sock = UnixDatagram::bind_addr(&addr).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    (sock, format!("@{name}"))
}

fn recv_text(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = sock
        .recv(&mut buf)
        .expect("a notification before the deadline");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn sd_notify_ready_after_ports_accept_watchdog_repeats_stopping_on_sigterm() {
    let (sock, name) = notify_socket();
    // A path socket works the same; the abstract form is the one with extra parsing.
    let key = random_key("notify");
    let mut ops = Ops::start(
        &config_text(&key, ""),
        &[("NOTIFY_SOCKET", &name), ("WATCHDOG_USEC", "600000")],
    );
    let first = recv_text(&sock);
    assert!(
        first.lines().any(|l| l == "READY=1"),
        "first message: {first:?}"
    );
    // READY was sent after both ports were listening: they accept now without retry.
    TcpStream::connect(ops.http).expect("http port accepts after READY=1");
    TcpStream::connect(ops.tcp).expect("tcp port accepts after READY=1");
    let mut watchdogs = 0;
    while watchdogs < 3 {
        let m = recv_text(&sock);
        if m == "WATCHDOG=1" {
            watchdogs += 1;
        }
    }
    ops.signal("TERM");
    let stopping = loop {
        let m = recv_text(&sock);
        if m.lines().any(|l| l == "STOPPING=1") {
            break m;
        }
        assert!(
            m == "WATCHDOG=1" || m.starts_with("STATUS="),
            "unexpected notification {m:?}"
        );
    };
    assert!(stopping.contains("STOPPING=1"));
    let status = ops.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "exit status {status}");
}

#[test]
fn sigterm_disconnects_v5_clients_with_0x8b_and_exits() {
    let key = random_key("term");
    let mut ops = Ops::start(&config_text(&key, ""), &[]);
    let token = ops.token(&key, "u");
    let mut v5a = ops.client(5, "term-a", &token);
    let mut v5b = ops.client(5, "term-b", &token);
    let mut v4 = ops.client(4, "term-c", &token);
    // A subscriber with a QoS 1 message queued at shutdown still gets it before DISCONNECT.
    v5b.send(&wire::subscribe(5, 1, &[("room", 1)]));
    let _suback = v5b.read_packet();
    publish_acked(&mut v5a, 5, "room", 1);
    ops.signal("TERM");
    v5a.expect_disconnect(0x8B);
    let p = v5b.read_packet_skip_ping();
    assert_eq!(p[0] >> 4, 3, "the queued PUBLISH comes first: {p:?}");
    v5b.expect_disconnect(0x8B);
    v4.expect_closed();
    let status = ops.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "exit status {status}\n{}", ops.logs());
    // Stopped accepting: the ports are closed.
    assert!(
        TcpStream::connect(ops.tcp).is_err(),
        "tcp port still accepts"
    );
}

#[test]
fn sighup_rotates_keys_without_dropping_connections() {
    let old_key = random_key("old");
    let new_key = random_key("new");
    let ops = Ops::start(&config_text(&old_key, ""), &[]);
    let old_token = ops.token(&old_key, "u");
    let new_token = ops.token(&new_key, "u");
    let mut sub = ops.client(5, "hup-sub", &old_token);
    sub.send(&wire::subscribe(5, 1, &[("room", 0)]));
    let _suback = sub.read_packet();
    assert_eq!(
        ops.connack_code(5, &new_token),
        0x87,
        "new key unknown before reload"
    );

    // A broken file is refused: the old key keeps working.
    std::fs::write(&ops.config, "[auth\naccess_keys = ").expect("write broken config");
    ops.signal("HUP");
    wait_until("reload refused is logged", Duration::from_secs(10), || {
        ops.logs().contains("reload refused")
    });
    assert_eq!(
        ops.connack_code(5, &old_token),
        0,
        "old key after a refused reload"
    );

    std::fs::write(&ops.config, config_text(&new_key, "")).expect("write rotated config");
    ops.signal("HUP");
    wait_until("rotation is logged", Duration::from_secs(10), || {
        ops.logs().contains("auth access keys: 1 → 1")
    });
    assert_eq!(ops.connack_code(5, &new_token), 0, "new key after reload");
    assert_eq!(ops.connack_code(5, &old_token), 0x87, "old key removed");
    // The connection made with the old key is still there and still delivers.
    let mut publisher = ops.client(5, "hup-pub", &new_token);
    publish_acked(&mut publisher, 5, "room", 1);
    let p = sub.read_packet_skip_ping();
    assert_eq!(p[0] >> 4, 3, "existing subscriber still receives: {p:?}");
}

#[test]
fn systemd_unit_verifies_with_exposure_at_most_2_5() {
    if !tool("systemd-analyze") {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/check.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_hubmq"))
        .output()
        .expect("run systemd/check.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "systemd/check.sh failed:\n{text}");
    assert!(text.contains("exposure: "), "{text}");
}
