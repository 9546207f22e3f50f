//! systemd's notification protocol (`sd_notify`), spoken directly: one datagram per state
//! change to the unix socket named by `NOTIFY_SOCKET` (a path, or `@name` for the abstract
//! namespace), and the watchdog thread that sends `WATCHDOG=1` only while every worker's
//! heartbeat keeps advancing — a stuck worker stops the pings and systemd restarts the service.
//!
//! No libsystemd: the protocol is a newline-separated `KEY=VALUE` text in a datagram, and the
//! standard library has everything needed. Without `NOTIFY_SOCKET` (not under systemd, or
//! `Type=simple`) every call here is a no-op.

use std::io;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hubmq_net::Heartbeats;

/// The shortest ping interval: workers beat every 100 ms, so a shorter interval would see
/// healthy workers as stuck.
const MIN_PING_INTERVAL: Duration = Duration::from_millis(250);

/// A connection to the service manager's notification socket.
pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The notifier named by `NOTIFY_SOCKET`; `None` when it is unset or empty. An address we
    /// cannot use (e.g. a `vsock:` one) is logged and ignored: the service still runs.
    pub fn from_env() -> Option<Notifier> {
        let value = std::env::var_os("NOTIFY_SOCKET")?;
        let value = value.to_str().unwrap_or("");
        if value.is_empty() {
            return None;
        }
        match Notifier::connect(value) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(socket = value, error = %e, "NOTIFY_SOCKET unusable; not notifying systemd");
                None
            }
        }
    }

    /// A notifier for `socket`: an absolute path or `@abstract-name`.
    pub fn connect(socket: &str) -> io::Result<Notifier> {
        let addr = parse_socket_addr(socket)?;
        let sock = UnixDatagram::unbound()?;
        Ok(Notifier { sock, addr })
    }

    /// Sends one state message such as `READY=1` or `STOPPING=1\nSTATUS=…`.
    pub fn send(&self, state: &str) -> io::Result<()> {
        self.sock.send_to_addr(state.as_bytes(), &self.addr)?;
        Ok(())
    }

    /// Like [`Notifier::send`], logging instead of failing: a lost notification must not stop
    /// the broker (systemd then times the start out or restarts it, which is the right outcome).
    pub fn notify(&self, state: &str) {
        if let Err(e) = self.send(state) {
            tracing::warn!(state, error = %e, "sd_notify failed");
        }
    }
}

/// `@name` = abstract namespace (the leading `@` stands for the NUL byte), else a path.
fn parse_socket_addr(socket: &str) -> io::Result<SocketAddr> {
    if let Some(name) = socket.strip_prefix('@') {
        SocketAddr::from_abstract_name(name.as_bytes())
    } else if socket.starts_with('/') {
        SocketAddr::from_pathname(socket)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "NOTIFY_SOCKET must be an absolute path or start with '@'",
        ))
    }
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC` (systemd's advice), if the
/// watchdog is on and meant for this process (`WATCHDOG_PID`, when set, is our pid).
pub fn watchdog_interval() -> Option<Duration> {
    interval_from(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn interval_from(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(me) {
            return None;
        }
    }
    Some((Duration::from_micros(usec) / 2).max(MIN_PING_INTERVAL))
}

/// Starts the watchdog thread: every `interval` it sends `WATCHDOG=1` if every worker's
/// heartbeat advanced since the previous look, and otherwise logs which workers are stuck and
/// sends nothing. It ends when `stop` is set (shutdown: workers exit and stop beating).
pub fn spawn_watchdog(
    notifier: Arc<Notifier>,
    heartbeats: Arc<Heartbeats>,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("hubmq-watchdog".into())
        .spawn(move || {
            let mut last = heartbeats.snapshot();
            while !stop.load(Ordering::Acquire) {
                std::thread::sleep(interval);
                if stop.load(Ordering::Acquire) {
                    break;
                }
                if heartbeats.all_advanced(&last) {
                    notifier.notify("WATCHDOG=1");
                } else {
                    let now = heartbeats.snapshot();
                    let stuck: Vec<usize> = now
                        .iter()
                        .zip(&last)
                        .enumerate()
                        .filter(|(_, (n, b))| n <= b)
                        .map(|(i, _)| i)
                        .collect();
                    tracing::error!(
                        ?stuck,
                        "worker heartbeat stalled; withholding watchdog ping"
                    );
                }
                last = heartbeats.snapshot();
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_datagrams_to_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("hubmq-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).expect("bind");
        let n = Notifier::connect(path.to_str().expect("utf-8 path")).expect("connect");
        n.send("READY=1").expect("send");
        let mut buf = [0u8; 64];
        let len = rx.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..len], b"READY=1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sends_datagrams_to_an_abstract_socket() {
        let name = format!("hubmq-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract addr");
        let rx = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        let n = Notifier::connect(&format!("@{name}")).expect("connect");
        n.send("STOPPING=1").expect("send");
        let mut buf = [0u8; 64];
        let len = rx.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..len], b"STOPPING=1");
    }

    #[test]
    fn rejects_relative_socket_names() {
        assert!(Notifier::connect("relative/notify.sock").is_err());
    }

    #[test]
    fn watchdog_interval_is_half_the_timeout_for_our_pid_only() {
        assert_eq!(
            interval_from(Some("4000000"), None, 7),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            interval_from(Some("4000000"), Some("7"), 7),
            Some(Duration::from_secs(2))
        );
        assert_eq!(interval_from(Some("4000000"), Some("8"), 7), None);
        assert_eq!(interval_from(None, None, 7), None);
        assert_eq!(interval_from(Some("0"), None, 7), None);
        assert_eq!(interval_from(Some("junk"), None, 7), None);
        assert_eq!(
            interval_from(Some("10000"), None, 7),
            Some(MIN_PING_INTERVAL),
            "never faster than the workers beat"
        );
    }
}
