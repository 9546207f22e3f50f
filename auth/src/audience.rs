//! Where a client token may be used: the `aud` rule for client tokens
//! (`{scheme}://{authority}/clients/mqtt/hubs/{hub}`, compared leniently enough for every SDK
//! variant) and the parsing of configured public endpoints into `(scheme, authority)` pairs.
//! Pure string work, no allocation on the matching path (it runs once per connect).

/// The client path prefix for MQTT; the hub name follows it.
pub(crate) const MQTT_CLIENT_PATH: &str = "/clients/mqtt/hubs/";

/// A URL split into the parts the audience rule compares.
struct UrlParts<'a> {
    /// `http` or `https` (`ws`/`wss` mapped onto them).
    scheme: &'static str,
    /// `host[:port]` with a default port already removed; case not yet folded.
    authority: &'a str,
    /// Everything after the authority (path, and query if any), possibly empty.
    rest: &'a str,
}

/// Maps a scheme onto `http`/`https`, treating `ws`≡`http` and `wss`≡`https`.
fn normalize_scheme(scheme: &str) -> Option<&'static str> {
    if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("ws") {
        Some("http")
    } else if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
        Some("https")
    } else {
        None
    }
}

/// Removes an explicit default port (`:80` for http, `:443` for https) or an empty port, so
/// `h:80` and `h` compare equal — Python appends `Port` verbatim while JS drops a default one.
fn strip_default_port<'a>(scheme: &str, authority: &'a str) -> &'a str {
    let default = if scheme == "https" { ":443" } else { ":80" };
    for suffix in [default, ":"] {
        if let Some(host) = authority.strip_suffix(suffix) {
            // Only a port if what remains is a plain host or a bracketed IPv6 literal.
            if !host.is_empty() && (!host.contains(':') || host.ends_with(']')) {
                return host;
            }
        }
    }
    authority
}

fn split_url(url: &str) -> Option<UrlParts<'_>> {
    let (scheme, after) = url.split_once("://")?;
    let scheme = normalize_scheme(scheme)?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    // Userinfo (`user@host`) has no place in an endpoint and could disguise the real host.
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some(UrlParts {
        scheme,
        authority: strip_default_port(scheme, authority),
        rest,
    })
}

/// Audience rule for client tokens: `aud` must equal `{scheme}://{authority}/clients/mqtt/hubs/{hub}`
/// for one of `authorities` (each `(scheme, "host[:port]")`, as [`parse_endpoint`] returns),
/// compared case-insensitively, with `ws`≡`http`, `wss`≡`https`, one trailing `/` ignored and an
/// explicit default port equal to none.
pub fn client_audience_matches(aud: &str, hub: &str, authorities: &[(String, String)]) -> bool {
    let Some(parts) = split_url(aud) else {
        return false;
    };
    let path = parts.rest.strip_suffix('/').unwrap_or(parts.rest);
    let Some(prefix) = path.get(..MQTT_CLIENT_PATH.len()) else {
        return false;
    };
    if !prefix.eq_ignore_ascii_case(MQTT_CLIENT_PATH)
        || !path[MQTT_CLIENT_PATH.len()..].eq_ignore_ascii_case(hub)
    {
        return false;
    }
    authorities.iter().any(|(scheme, authority)| {
        normalize_scheme(scheme) == Some(parts.scheme)
            && strip_default_port(parts.scheme, authority).eq_ignore_ascii_case(parts.authority)
    })
}

/// Parses a configured public endpoint such as `http://localhost:8080` or `https://h/` into
/// `("http", "localhost:8080")` / `("https", "h")`, both lower-cased. `None` unless the scheme is
/// http or https and a host is present. A path after the host is ignored: clients always connect
/// at `/clients/mqtt/hubs/{hub}` from the root.
pub fn parse_endpoint(url: &str) -> Option<(String, String)> {
    let (scheme, _) = url.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    let parts = split_url(url)?;
    Some((
        parts.scheme.to_owned(),
        parts.authority.to_ascii_lowercase(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(urls: &[&str]) -> Vec<(String, String)> {
        urls.iter().filter_map(|u| parse_endpoint(u)).collect()
    }

    #[test]
    fn parses_http_and_https_endpoints() {
        assert_eq!(
            parse_endpoint("http://localhost:8080"),
            Some(("http".into(), "localhost:8080".into()))
        );
        assert_eq!(
            parse_endpoint("https://H.example.com/"),
            Some(("https".into(), "h.example.com".into()))
        );
        assert_eq!(
            parse_endpoint("HTTPS://h:443"),
            Some(("https".into(), "h".into()))
        );
        assert_eq!(
            parse_endpoint("http://[::1]:80"),
            Some(("http".into(), "[::1]".into()))
        );
        assert_eq!(
            parse_endpoint("http://h/base/path"),
            Some(("http".into(), "h".into()))
        );
    }

    #[test]
    fn refuses_other_schemes_and_hostless_endpoints() {
        assert_eq!(parse_endpoint("ws://h"), None);
        assert_eq!(parse_endpoint("ftp://h"), None);
        assert_eq!(parse_endpoint("localhost:8080"), None);
        assert_eq!(parse_endpoint("http://"), None);
        assert_eq!(parse_endpoint("http://user@h"), None);
    }

    #[test]
    fn matches_the_python_sdk_audience() {
        let eps = endpoints(&["http://localhost:8080"]);
        assert!(client_audience_matches(
            "http://localhost:8080/clients/mqtt/hubs/chat",
            "chat",
            &eps
        ));
    }

    #[test]
    fn audience_compare_ignores_case_in_host_path_and_hub() {
        let eps = endpoints(&["https://Broker.Example.com"]);
        assert!(client_audience_matches(
            "HTTPS://broker.example.COM/Clients/MQTT/Hubs/Chat",
            "chat",
            &eps
        ));
        assert!(client_audience_matches(
            "https://broker.example.com/clients/mqtt/hubs/chat",
            "Chat",
            &eps
        ));
    }

    #[test]
    fn audience_treats_ws_as_http_and_wss_as_https() {
        let eps = endpoints(&["http://h:8080", "https://s"]);
        assert!(client_audience_matches(
            "ws://h:8080/clients/mqtt/hubs/x",
            "x",
            &eps
        ));
        assert!(client_audience_matches(
            "wss://s/clients/mqtt/hubs/x",
            "x",
            &eps
        ));
        assert!(
            !client_audience_matches("https://h:8080/clients/mqtt/hubs/x", "x", &eps),
            "scheme differs"
        );
        assert!(
            !client_audience_matches("ws://s/clients/mqtt/hubs/x", "x", &eps),
            "scheme differs"
        );
    }

    #[test]
    fn audience_ignores_one_trailing_slash() {
        let eps = endpoints(&["http://h"]);
        assert!(client_audience_matches(
            "http://h/clients/mqtt/hubs/x/",
            "x",
            &eps
        ));
        assert!(!client_audience_matches(
            "http://h/clients/mqtt/hubs/x//",
            "x",
            &eps
        ));
    }

    #[test]
    fn audience_treats_explicit_default_port_as_none() {
        let plain = endpoints(&["http://h", "https://s"]);
        assert!(client_audience_matches(
            "http://h:80/clients/mqtt/hubs/x",
            "x",
            &plain
        ));
        assert!(client_audience_matches(
            "https://s:443/clients/mqtt/hubs/x",
            "x",
            &plain
        ));
        assert!(client_audience_matches(
            "wss://s:443/clients/mqtt/hubs/x",
            "x",
            &plain
        ));
        assert!(!client_audience_matches(
            "https://s:80/clients/mqtt/hubs/x",
            "x",
            &plain
        ));
        // And the other way round: configured with the port, token without it.
        let explicit = vec![("http".to_string(), "h:80".to_string())];
        assert!(client_audience_matches(
            "http://h/clients/mqtt/hubs/x",
            "x",
            &explicit
        ));
    }

    #[test]
    fn audience_accepts_any_configured_endpoint() {
        let eps = endpoints(&[
            "http://localhost:8080",
            "http://127.0.0.1:8080",
            "https://mq.example.com",
        ]);
        for aud in [
            "http://localhost:8080/clients/mqtt/hubs/x",
            "http://127.0.0.1:8080/clients/mqtt/hubs/x",
            "https://mq.example.com/clients/mqtt/hubs/x",
        ] {
            assert!(client_audience_matches(aud, "x", &eps), "{aud}");
        }
        assert!(!client_audience_matches(
            "http://localhost:9090/clients/mqtt/hubs/x",
            "x",
            &eps
        ));
        assert!(!client_audience_matches(
            "http://evil.example/clients/mqtt/hubs/x",
            "x",
            &eps
        ));
    }

    #[test]
    fn audience_refuses_other_hubs_paths_and_shapes() {
        let eps = endpoints(&["http://h"]);
        for aud in [
            "http://h/clients/mqtt/hubs/y",
            "http://h/clients/mqtt/hubs/xx",
            "http://h/clients/mqtt/hubs/",
            "http://h/client/hubs/x",
            "http://h/api/hubs/x",
            "http://h/clients/mqtt/hubs/x?a=b",
            "http://h/prefix/clients/mqtt/hubs/x",
            "http://user@h/clients/mqtt/hubs/x",
            "ftp://h/clients/mqtt/hubs/x",
            "h/clients/mqtt/hubs/x",
            "",
        ] {
            assert!(!client_audience_matches(aud, "x", &eps), "{aud}");
        }
        assert!(!client_audience_matches(
            "http://h/clients/mqtt/hubs/x",
            "x",
            &[]
        ));
    }

    #[test]
    fn audience_handles_ipv6_literals() {
        let eps = endpoints(&["http://[::1]:8080", "http://[::80]"]);
        assert!(client_audience_matches(
            "http://[::1]:8080/clients/mqtt/hubs/x",
            "x",
            &eps
        ));
        assert!(client_audience_matches(
            "http://[::80]:80/clients/mqtt/hubs/x",
            "x",
            &eps
        ));
        assert!(!client_audience_matches(
            "http://[::1]/clients/mqtt/hubs/x",
            "x",
            &eps
        ));
    }
}
