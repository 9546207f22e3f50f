//! The optional dedicated metrics listener (`[metrics] bind`): a tiny plain-HTTP server on
//! its own thread that answers `GET <metrics.path>` with the Prometheus exposition and
//! `GET /healthz` with `ok`, and nothing else. It exists so the scrape port can be firewalled
//! apart from the client ports; it is deliberately off the workers (a scrape every few
//! seconds does not need io_uring) and serves one short request per connection.

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Requests are one `GET` line and a few headers; anything longer is refused.
const MAX_HEAD: usize = 8 * 1024;
/// A scraper that does not send its request within this is dropped (it would block the next).
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds `addr` (so the caller can announce readiness afterwards) and serves on a thread.
/// Returns the bound address (port 0 resolved).
pub fn start(
    addr: SocketAddr,
    path: String,
    exporter: hubmq_metrics::Exporter,
) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("hubmq-metrics-http".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(s) => {
                        if let Err(e) = serve(s, &path, &exporter) {
                            tracing::debug!(error = %e, "metrics request failed");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics accept failed");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        })?;
    Ok(bound)
}

fn serve(mut s: TcpStream, path: &str, exporter: &hubmq_metrics::Exporter) -> io::Result<()> {
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_HEAD {
            return s.write_all(&response(431, "text/plain", b"request head too large\n"));
        }
    }
    let reply = route(&head, path, || exporter.render());
    s.write_all(&reply)
}

/// The answer to one request head; `render` produces the exposition when it is asked for.
fn route(head: &[u8], metrics_path: &str, render: impl FnOnce() -> String) -> Vec<u8> {
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let target = target.split('?').next().unwrap_or("");
    if method != "GET" && method != "HEAD" {
        return response(405, "text/plain", b"method not allowed\n");
    }
    let reply = if target == metrics_path {
        response(200, "text/plain; version=0.0.4", render().as_bytes())
    } else if target == "/healthz" {
        response(200, "text/plain", b"ok\n")
    } else {
        response(404, "text/plain", b"not found\n")
    };
    if method == "HEAD" {
        // Same head, no body.
        let end = reply
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(reply.len(), |i| i + 4);
        return reply[..end].to_vec();
    }
    reply
}

fn response(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Request Header Fields Too Large",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: Vec<u8>) -> String {
        String::from_utf8(v).expect("utf-8")
    }

    #[test]
    fn serves_exposition_on_the_metrics_path() {
        let r = text(route(
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            "/metrics",
            || "hubmq_sessions 1\n".into(),
        ));
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\nhubmq_sessions 1\n"), "{r}");
    }

    #[test]
    fn answers_healthz_and_refuses_other_paths_and_methods() {
        let never = || -> String { panic!("exposition rendered for a non-metrics request") };
        assert!(
            text(route(b"GET /healthz HTTP/1.1\r\n\r\n", "/metrics", never))
                .starts_with("HTTP/1.1 200")
        );
        assert!(
            text(route(b"GET /clients HTTP/1.1\r\n\r\n", "/metrics", never))
                .starts_with("HTTP/1.1 404")
        );
        assert!(
            text(route(b"POST /metrics HTTP/1.1\r\n\r\n", "/metrics", never))
                .starts_with("HTTP/1.1 405")
        );
    }

    #[test]
    fn head_request_gets_no_body() {
        let r = text(route(b"HEAD /metrics HTTP/1.1\r\n\r\n", "/metrics", || {
            "x 1\n".into()
        }));
        assert!(r.ends_with("\r\n\r\n"), "{r}");
        assert!(r.contains("Content-Length: 4"), "{r}");
    }

    #[test]
    fn serves_over_a_real_socket() {
        // A recorder that nothing records into: its exposition is empty, the answer is not.
        let (_recorder, exporter) = hubmq_metrics::build_recorder().expect("recorder");
        let addr = start(
            "127.0.0.1:0".parse().expect("addr"),
            "/metrics".into(),
            exporter,
        )
        .expect("bind");
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(
            out.contains("Content-Type: text/plain; version=0.0.4"),
            "{out}"
        );
    }
}
