//! Routing of `/api/...` paths onto the operations table (`webpubsub-rest.md` §4), segment
//! decoding (each segment percent-decoded once, so an encoded `/` stays inside a group name),
//! name validation, and query access with the array forms the SDKs use (repeated keys and
//! comma-joined values).

use crate::io::http::{percent_decode, Head};

use super::ApiError;

/// The permission named in `/permissions/{permission}/...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermKind {
    SendToGroup,
    JoinLeaveGroup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermAction {
    Grant,
    Revoke,
    Check,
}

/// One data-plane operation with its path parameters (decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    SendToAll,
    SendToConnection(String),
    SendToUser(String),
    SendToGroup(String),
    CloseAll,
    CloseConnection(String),
    CloseUser(String),
    CloseGroup(String),
    ConnectionExists(String),
    UserExists(String),
    GroupExists(String),
    AddConnectionToGroup {
        group: String,
        conn: String,
    },
    RemoveConnectionFromGroup {
        group: String,
        conn: String,
    },
    RemoveConnectionFromAllGroups(String),
    AddUserToGroup {
        user: String,
        group: String,
    },
    RemoveUserFromGroup {
        user: String,
        group: String,
    },
    RemoveUserFromAllGroups(String),
    AddToGroups,
    RemoveFromGroups,
    Permission {
        action: PermAction,
        perm: String,
        conn: String,
    },
    GenerateToken,
    ListGroupConnections(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Health,
    Hub { hub: String, route: Route },
}

fn not_found() -> ApiError {
    ApiError::not_found("no such API operation")
}

fn method_not_allowed(method: &str) -> ApiError {
    ApiError::new(
        405,
        "MethodNotAllowed",
        format!("method {method} is not allowed on this resource"),
    )
}

/// Maps method + raw path to a route; 404 for unknown paths, 405 for a known path with the
/// wrong method, 400 for an undecodable segment.
pub fn parse(method: &str, raw_path: &str) -> Result<Parsed, ApiError> {
    let raw = raw_path.strip_suffix('/').unwrap_or(raw_path);
    let mut segs = Vec::new();
    for s in raw.split('/').skip(1) {
        match percent_decode(s) {
            Some(d) => segs.push(d),
            None => {
                return Err(ApiError::bad(
                    "path",
                    "invalid percent-encoding in the path",
                ))
            }
        }
    }
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["api", "health"] => match method {
            "HEAD" | "GET" => Ok(Parsed::Health),
            m => Err(method_not_allowed(m)),
        },
        ["api", "hubs", hub, rest @ ..] => {
            let route = hub_route(method, rest)?;
            Ok(Parsed::Hub {
                hub: (*hub).to_owned(),
                route,
            })
        }
        _ => Err(not_found()),
    }
}

fn hub_route(method: &str, rest: &[&str]) -> Result<Route, ApiError> {
    let o = |s: &&str| (*s).to_owned();
    // (route if the method fits, or the methods the path knows)
    let (route, allowed): (Option<Route>, bool) = match rest {
        [":send"] => ((method == "POST").then_some(Route::SendToAll), true),
        [":closeConnections"] => ((method == "POST").then_some(Route::CloseAll), true),
        [":addToGroups"] => ((method == "POST").then_some(Route::AddToGroups), true),
        [":removeFromGroups"] => ((method == "POST").then_some(Route::RemoveFromGroups), true),
        [":generateToken"] => ((method == "POST").then_some(Route::GenerateToken), true),
        ["connections", c, ":send"] => (
            (method == "POST").then(|| Route::SendToConnection(o(c))),
            true,
        ),
        ["connections", c] => (
            match method {
                "DELETE" => Some(Route::CloseConnection(o(c))),
                "HEAD" => Some(Route::ConnectionExists(o(c))),
                _ => None,
            },
            true,
        ),
        ["connections", c, "groups"] => (
            (method == "DELETE").then(|| Route::RemoveConnectionFromAllGroups(o(c))),
            true,
        ),
        ["users", u, ":send"] => ((method == "POST").then(|| Route::SendToUser(o(u))), true),
        ["users", u, ":closeConnections"] => {
            ((method == "POST").then(|| Route::CloseUser(o(u))), true)
        }
        ["users", u] => ((method == "HEAD").then(|| Route::UserExists(o(u))), true),
        ["users", u, "groups"] => (
            (method == "DELETE").then(|| Route::RemoveUserFromAllGroups(o(u))),
            true,
        ),
        ["users", u, "groups", g] => (
            match method {
                "PUT" => Some(Route::AddUserToGroup {
                    user: o(u),
                    group: o(g),
                }),
                "DELETE" => Some(Route::RemoveUserFromGroup {
                    user: o(u),
                    group: o(g),
                }),
                _ => None,
            },
            true,
        ),
        ["groups", g, ":send"] => ((method == "POST").then(|| Route::SendToGroup(o(g))), true),
        ["groups", g, ":closeConnections"] => {
            ((method == "POST").then(|| Route::CloseGroup(o(g))), true)
        }
        ["groups", g] => ((method == "HEAD").then(|| Route::GroupExists(o(g))), true),
        ["groups", g, "connections"] => (
            (method == "GET").then(|| Route::ListGroupConnections(o(g))),
            true,
        ),
        ["groups", g, "connections", c] => (
            match method {
                "PUT" => Some(Route::AddConnectionToGroup {
                    group: o(g),
                    conn: o(c),
                }),
                "DELETE" => Some(Route::RemoveConnectionFromGroup {
                    group: o(g),
                    conn: o(c),
                }),
                _ => None,
            },
            true,
        ),
        ["permissions", p, "connections", c] => (
            match method {
                "PUT" => Some(PermAction::Grant),
                "DELETE" => Some(PermAction::Revoke),
                "HEAD" => Some(PermAction::Check),
                _ => None,
            }
            .map(|action| Route::Permission {
                action,
                perm: o(p),
                conn: o(c),
            }),
            true,
        ),
        _ => (None, false),
    };
    match (route, allowed) {
        (Some(r), _) => Ok(r),
        (None, true) => Err(method_not_allowed(method)),
        (None, false) => Err(not_found()),
    }
}

/// Hub names of the REST spec: `` ^[A-Za-z][A-Za-z0-9_`,.[\]]{0,127}$ ``.
pub fn valid_hub(hub: &str) -> Result<(), ApiError> {
    let b = hub.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphabetic()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_`,.[]".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad(
            "hub",
            "Hub name must start with a letter and hold 1 to 128 letters, digits or _`,.[]",
        ))
    }
}

pub fn valid_group(g: &str) -> Result<(), ApiError> {
    let n = g.chars().count();
    if n == 0 || n > 1024 || g.trim().is_empty() {
        return Err(ApiError::bad(
            "group",
            "Group name must be 1 to 1024 characters and not only whitespace.",
        ));
    }
    Ok(())
}

fn non_empty(v: &str, target: &'static str) -> Result<(), ApiError> {
    if v.is_empty() {
        Err(ApiError::bad(target, format!("{target} must not be empty")))
    } else {
        Ok(())
    }
}

impl Route {
    /// Checks the path parameters of this route.
    pub fn validate(&self) -> Result<(), ApiError> {
        match self {
            Route::SendToConnection(c)
            | Route::CloseConnection(c)
            | Route::ConnectionExists(c)
            | Route::RemoveConnectionFromAllGroups(c) => non_empty(c, "connectionId"),
            Route::SendToUser(u)
            | Route::CloseUser(u)
            | Route::UserExists(u)
            | Route::RemoveUserFromAllGroups(u) => non_empty(u, "userId"),
            Route::SendToGroup(g)
            | Route::CloseGroup(g)
            | Route::GroupExists(g)
            | Route::ListGroupConnections(g) => valid_group(g),
            Route::AddConnectionToGroup { group, conn }
            | Route::RemoveConnectionFromGroup { group, conn } => {
                valid_group(group)?;
                non_empty(conn, "connectionId")
            }
            Route::AddUserToGroup { user, group } | Route::RemoveUserFromGroup { user, group } => {
                valid_group(group)?;
                non_empty(user, "userId")
            }
            Route::Permission { perm, conn, .. } => {
                parse_perm(perm)?;
                non_empty(conn, "connectionId")
            }
            Route::SendToAll
            | Route::CloseAll
            | Route::AddToGroups
            | Route::RemoveFromGroups
            | Route::GenerateToken => Ok(()),
        }
    }
}

pub fn parse_perm(p: &str) -> Result<PermKind, ApiError> {
    if p.eq_ignore_ascii_case("sendToGroup") {
        Ok(PermKind::SendToGroup)
    } else if p.eq_ignore_ascii_case("joinLeaveGroup") {
        Ok(PermKind::JoinLeaveGroup)
    } else {
        Err(ApiError::bad(
            "permission",
            format!("unknown permission '{p}'; expected sendToGroup or joinLeaveGroup"),
        ))
    }
}

/// Decoded query pairs with name lookup (names compared case-insensitively, values verbatim).
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn new(head: &Head) -> Query {
        Query {
            pairs: head.query(),
        }
    }

    /// No parameters (operations that take none from the query).
    pub fn empty() -> Query {
        Query { pairs: Vec::new() }
    }

    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Query {
        Query {
            pairs: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    pub fn first(&self, name: &str) -> Option<String> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    /// An array parameter: repeated keys and comma-joined values both accepted (a name with a
    /// `,` therefore cannot be passed); empty items dropped.
    pub fn array(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// An integer parameter in `min..=max`, `default` when absent.
    pub fn int(
        &self,
        name: &'static str,
        min: i64,
        max: i64,
        default: Option<i64>,
    ) -> Result<Option<i64>, ApiError> {
        let Some(v) = self.first(name) else {
            return Ok(default);
        };
        match v.trim().parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::bad(
                name,
                format!("{name} must be an integer from {min} to {max}, got '{v}'"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub_route_of(method: &str, path: &str) -> Result<Route, ApiError> {
        match parse(method, path)? {
            Parsed::Hub { route, .. } => Ok(route),
            Parsed::Health => panic!("health"),
        }
    }

    #[test]
    fn routes_every_operation_of_the_table() {
        let h = "/api/hubs/chat";
        let cases: Vec<(&str, String, Route)> = vec![
            ("POST", format!("{h}/:send"), Route::SendToAll),
            (
                "POST",
                format!("{h}/connections/c1/:send"),
                Route::SendToConnection("c1".into()),
            ),
            (
                "POST",
                format!("{h}/users/u1/:send"),
                Route::SendToUser("u1".into()),
            ),
            (
                "POST",
                format!("{h}/groups/g1/:send"),
                Route::SendToGroup("g1".into()),
            ),
            ("POST", format!("{h}/:closeConnections"), Route::CloseAll),
            (
                "DELETE",
                format!("{h}/connections/c1"),
                Route::CloseConnection("c1".into()),
            ),
            (
                "POST",
                format!("{h}/users/u1/:closeConnections"),
                Route::CloseUser("u1".into()),
            ),
            (
                "POST",
                format!("{h}/groups/g1/:closeConnections"),
                Route::CloseGroup("g1".into()),
            ),
            (
                "HEAD",
                format!("{h}/connections/c1"),
                Route::ConnectionExists("c1".into()),
            ),
            (
                "HEAD",
                format!("{h}/users/u1"),
                Route::UserExists("u1".into()),
            ),
            (
                "HEAD",
                format!("{h}/groups/g1"),
                Route::GroupExists("g1".into()),
            ),
            (
                "PUT",
                format!("{h}/groups/g1/connections/c1"),
                Route::AddConnectionToGroup {
                    group: "g1".into(),
                    conn: "c1".into(),
                },
            ),
            (
                "DELETE",
                format!("{h}/groups/g1/connections/c1"),
                Route::RemoveConnectionFromGroup {
                    group: "g1".into(),
                    conn: "c1".into(),
                },
            ),
            (
                "DELETE",
                format!("{h}/connections/c1/groups"),
                Route::RemoveConnectionFromAllGroups("c1".into()),
            ),
            (
                "PUT",
                format!("{h}/users/u1/groups/g1"),
                Route::AddUserToGroup {
                    user: "u1".into(),
                    group: "g1".into(),
                },
            ),
            (
                "DELETE",
                format!("{h}/users/u1/groups/g1"),
                Route::RemoveUserFromGroup {
                    user: "u1".into(),
                    group: "g1".into(),
                },
            ),
            (
                "DELETE",
                format!("{h}/users/u1/groups"),
                Route::RemoveUserFromAllGroups("u1".into()),
            ),
            ("POST", format!("{h}/:addToGroups"), Route::AddToGroups),
            (
                "POST",
                format!("{h}/:removeFromGroups"),
                Route::RemoveFromGroups,
            ),
            (
                "PUT",
                format!("{h}/permissions/sendToGroup/connections/c1"),
                Route::Permission {
                    action: PermAction::Grant,
                    perm: "sendToGroup".into(),
                    conn: "c1".into(),
                },
            ),
            (
                "DELETE",
                format!("{h}/permissions/joinLeaveGroup/connections/c1"),
                Route::Permission {
                    action: PermAction::Revoke,
                    perm: "joinLeaveGroup".into(),
                    conn: "c1".into(),
                },
            ),
            (
                "HEAD",
                format!("{h}/permissions/sendToGroup/connections/c1"),
                Route::Permission {
                    action: PermAction::Check,
                    perm: "sendToGroup".into(),
                    conn: "c1".into(),
                },
            ),
            ("POST", format!("{h}/:generateToken"), Route::GenerateToken),
            (
                "GET",
                format!("{h}/groups/g1/connections"),
                Route::ListGroupConnections("g1".into()),
            ),
        ];
        for (m, p, want) in cases {
            assert_eq!(hub_route_of(m, &p), Ok(want), "{m} {p}");
        }
        assert_eq!(parse("HEAD", "/api/health"), Ok(Parsed::Health));
    }

    #[test]
    fn decodes_each_segment_once_keeping_encoded_slashes_inside() {
        assert_eq!(
            hub_route_of("POST", "/api/hubs/chat/groups/room%2F1/:send"),
            Ok(Route::SendToGroup("room/1".into()))
        );
        assert_eq!(
            hub_route_of("HEAD", "/api/hubs/chat/users/a%20b%25"),
            Ok(Route::UserExists("a b%".into()))
        );
        assert_eq!(
            hub_route_of("POST", "/api/hubs/chat/groups/g/%3Asend"),
            Ok(Route::SendToGroup("g".into()))
        );
        let e = parse("HEAD", "/api/hubs/chat/users/%zz")
            .err()
            .map(|e| e.status);
        assert_eq!(e, Some(400));
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405() {
        for p in [
            "/api/nothing",
            "/api/hubs/chat/frobnicate",
            "/api/hubs/chat/groups/g/x/y/z",
        ] {
            assert_eq!(parse("POST", p).err().map(|e| e.status), Some(404), "{p}");
        }
        assert_eq!(
            parse("GET", "/api/hubs/chat/:send").err().map(|e| e.status),
            Some(405)
        );
        assert_eq!(
            parse("POST", "/api/hubs/chat/connections/c")
                .err()
                .map(|e| e.status),
            Some(405)
        );
    }

    #[test]
    fn validates_names() {
        assert!(valid_hub("chat").is_ok());
        assert!(valid_hub("Chat_1`,.[x]").is_ok());
        assert!(valid_hub("1chat").is_err());
        assert!(valid_hub("ch-at").is_err());
        assert!(valid_hub(&"a".repeat(129)).is_err());
        assert!(valid_group("g").is_ok());
        assert!(valid_group(&"é".repeat(1024)).is_ok());
        assert!(valid_group(&"g".repeat(1025)).is_err());
        assert!(valid_group("   ").is_err());
        assert!(Route::SendToConnection(String::new()).validate().is_err());
        assert!(Route::Permission {
            action: PermAction::Grant,
            perm: "admin".into(),
            conn: "c".into()
        }
        .validate()
        .is_err());
    }

    #[test]
    fn array_params_accept_repeated_and_comma_joined() {
        let q = Query::from_pairs(&[
            ("excluded", "a"),
            ("excluded", "b,c"),
            ("Excluded", ""),
            ("role", "x"),
        ]);
        assert_eq!(q.array("excluded"), vec!["a", "b", "c"]);
        assert_eq!(q.array("role"), vec!["x"]);
        assert!(q.array("group").is_empty());
    }

    #[test]
    fn int_params_are_range_checked() {
        let q = Query::from_pairs(&[("messageTtlSeconds", "301"), ("top", "5")]);
        assert!(q.int("messageTtlSeconds", 0, 300, Some(0)).is_err());
        assert_eq!(q.int("top", 1, i64::MAX, None), Ok(Some(5)));
        assert_eq!(
            q.int("minutesToExpire", 1, 1_000_000, Some(60)),
            Ok(Some(60))
        );
        let bad = Query::from_pairs(&[("top", "x")]);
        assert_eq!(
            bad.int("top", 1, 10, None).err().map(|e| e.status),
            Some(400)
        );
    }
}
