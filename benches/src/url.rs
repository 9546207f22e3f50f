//! Broker URL parsing for the load generator: `tcp://host:port` or `ws://host:port/path?query`.
//!
//! The load generator must never be pointed at anything but this machine (a project rule: a
//! benchmark is a denial-of-service tool when aimed elsewhere), so the parser accepts only
//! loopback hosts (`127.0.0.0/8`, `::1`, `localhost`) and rejects everything else with a clear
//! error before a socket is opened.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Which transport carries MQTT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// MQTT directly over TCP.
    Tcp,
    /// MQTT over WebSocket (binary frames, subprotocol `mqtt`).
    Ws,
}

/// A parsed, loopback-only broker URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub transport: Transport,
    /// Resolved socket address (always a loopback address).
    pub addr: SocketAddr,
    /// Host as written (goes into the HTTP `Host` header).
    pub host: String,
    /// Path plus query for the WebSocket upgrade (`/` when absent); unused for TCP.
    pub path_and_query: String,
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    UnsupportedScheme(String),
    MissingPort,
    BadPort(String),
    NotLoopback(String),
    Malformed(&'static str),
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::UnsupportedScheme(s) => {
                write!(f, "unsupported scheme `{s}` (use tcp:// or ws://)")
            }
            UrlError::MissingPort => write!(f, "the URL needs an explicit port"),
            UrlError::BadPort(p) => write!(f, "bad port `{p}`"),
            UrlError::NotLoopback(h) => write!(
                f,
                "host `{h}` is not loopback: hubmq-bench only targets 127.0.0.0/8, ::1 or localhost"
            ),
            UrlError::Malformed(why) => write!(f, "malformed URL: {why}"),
        }
    }
}

impl std::error::Error for UrlError {}

impl BrokerUrl {
    /// Parses `tcp://host:port` or `ws://host:port[/path][?query]`.
    pub fn parse(s: &str) -> Result<BrokerUrl, UrlError> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or(UrlError::Malformed("missing `scheme://`"))?;
        let transport = match scheme.to_ascii_lowercase().as_str() {
            "tcp" | "mqtt" => Transport::Tcp,
            "ws" => Transport::Ws,
            other => return Err(UrlError::UnsupportedScheme(other.to_string())),
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(split);
        if authority.contains('@') {
            return Err(UrlError::Malformed(
                "credentials in the URL are not supported",
            ));
        }
        let (host, port) = split_host_port(authority)?;
        let ip = resolve_loopback(host)?;
        let port: u16 = port
            .parse()
            .map_err(|_| UrlError::BadPort(port.to_string()))?;
        if port == 0 {
            return Err(UrlError::BadPort(port.to_string()));
        }
        let path_and_query = if tail.is_empty() {
            "/".to_string()
        } else if tail.starts_with('?') {
            format!("/{tail}")
        } else {
            tail.to_string()
        };
        Ok(BrokerUrl {
            transport,
            addr: SocketAddr::new(ip, port),
            host: authority.to_string(),
            path_and_query,
        })
    }

    /// Path without the query (e.g. `/clients/mqtt/hubs/bench`).
    pub fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(p, _)| p)
    }

    /// Appends `key=value` to the query string (value must already be URL-safe).
    pub fn with_query_param(&self, key: &str, value: &str) -> BrokerUrl {
        let sep = if self.path_and_query.contains('?') {
            '&'
        } else {
            '?'
        };
        BrokerUrl {
            path_and_query: format!("{}{sep}{key}={value}", self.path_and_query),
            ..self.clone()
        }
    }

    /// The URL with its query removed, safe to print or store (queries may hold tokens).
    pub fn redacted(&self) -> String {
        match self.transport {
            Transport::Tcp => format!("tcp://{}", self.host),
            Transport::Ws => format!("ws://{}{}", self.host, self.path()),
        }
    }
}

fn split_host_port(authority: &str) -> Result<(&str, &str), UrlError> {
    if let Some(rest) = authority.strip_prefix('[') {
        // IPv6 literal: `[::1]:port`.
        let (host, after) = rest
            .split_once(']')
            .ok_or(UrlError::Malformed("unclosed `[` in host"))?;
        let port = after.strip_prefix(':').ok_or(UrlError::MissingPort)?;
        return Ok((host, port));
    }
    let (host, port) = authority.rsplit_once(':').ok_or(UrlError::MissingPort)?;
    if host.is_empty() {
        return Err(UrlError::Malformed("empty host"));
    }
    Ok((host, port))
}

fn resolve_loopback(host: &str) -> Result<IpAddr, UrlError> {
    if host.eq_ignore_ascii_case("localhost") {
        // Resolve ourselves instead of via DNS/hosts so nothing can redirect it elsewhere.
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => Ok(ip),
        _ => Err(UrlError::NotLoopback(host.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcp_url() {
        let u = BrokerUrl::parse("tcp://127.0.0.1:1883").unwrap();
        assert_eq!(u.transport, Transport::Tcp);
        assert_eq!(u.addr, "127.0.0.1:1883".parse().unwrap());
        assert_eq!(u.redacted(), "tcp://127.0.0.1:1883");
    }

    #[test]
    fn parses_ws_url_with_path_and_query() {
        let u = BrokerUrl::parse("ws://127.0.0.1:8080/clients/mqtt/hubs/bench?access_token=abc")
            .unwrap();
        assert_eq!(u.transport, Transport::Ws);
        assert_eq!(u.host, "127.0.0.1:8080");
        assert_eq!(
            u.path_and_query,
            "/clients/mqtt/hubs/bench?access_token=abc"
        );
        assert_eq!(u.path(), "/clients/mqtt/hubs/bench");
        assert_eq!(u.redacted(), "ws://127.0.0.1:8080/clients/mqtt/hubs/bench");
    }

    #[test]
    fn ws_url_without_path_gets_root() {
        let u = BrokerUrl::parse("ws://localhost:9001").unwrap();
        assert_eq!(u.path_and_query, "/");
        assert_eq!(u.addr, "127.0.0.1:9001".parse().unwrap());
        let q = BrokerUrl::parse("ws://localhost:9001?x=1").unwrap();
        assert_eq!(q.path_and_query, "/?x=1");
    }

    #[test]
    fn accepts_ipv6_loopback_and_whole_127_range() {
        let u = BrokerUrl::parse("ws://[::1]:8080/mqtt").unwrap();
        assert_eq!(u.addr, "[::1]:8080".parse().unwrap());
        assert!(BrokerUrl::parse("tcp://127.9.8.7:1").is_ok());
    }

    #[test]
    fn rejects_non_loopback_hosts() {
        for url in [
            "tcp://10.0.0.1:1883",
            "tcp://0.0.0.0:1883",
            "ws://example.com:80/mqtt",
            "ws://[2001:db8::1]:80/",
            "tcp://192.168.1.2:1883",
        ] {
            assert!(
                matches!(BrokerUrl::parse(url), Err(UrlError::NotLoopback(_))),
                "{url} must be refused"
            );
        }
    }

    #[test]
    fn rejects_bad_scheme_port_and_shape() {
        assert!(matches!(
            BrokerUrl::parse("wss://127.0.0.1:1/"),
            Err(UrlError::UnsupportedScheme(_))
        ));
        assert_eq!(
            BrokerUrl::parse("tcp://127.0.0.1"),
            Err(UrlError::MissingPort)
        );
        assert!(matches!(
            BrokerUrl::parse("tcp://127.0.0.1:x"),
            Err(UrlError::BadPort(_))
        ));
        assert!(matches!(
            BrokerUrl::parse("tcp://127.0.0.1:0"),
            Err(UrlError::BadPort(_))
        ));
        assert!(matches!(
            BrokerUrl::parse("127.0.0.1:1883"),
            Err(UrlError::Malformed(_))
        ));
        assert!(matches!(
            BrokerUrl::parse("tcp://u:p@127.0.0.1:1883"),
            Err(UrlError::Malformed(_))
        ));
    }

    #[test]
    fn appends_query_parameter() {
        let u = BrokerUrl::parse("ws://127.0.0.1:1/a").unwrap();
        assert_eq!(u.with_query_param("t", "x").path_and_query, "/a?t=x");
        let v = BrokerUrl::parse("ws://127.0.0.1:1/a?b=1").unwrap();
        assert_eq!(v.with_query_param("t", "x").path_and_query, "/a?b=1&t=x");
    }
}
