//! Who may do what: client groups (by attribute query), topic spaces (by topic template),
//! the permission bindings between them, and the Entra role assignments with their roles.

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientGroup {
    pub name: String,
    /// Attribute query (`query.rs`).
    pub query: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpace {
    pub name: String,
    /// Topic templates (`topics.rs`), 1–10.
    pub templates: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Permission {
    Publisher,
    Subscriber,
}

/// Grants `permission` on `topic_space` to the members of `client_group` (`$all` allowed).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    pub name: String,
    pub client_group: String,
    pub topic_space: String,
    pub permission: Permission,
}

/// Grants an Entra principal a role, at namespace scope or on one topic space.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleAssignment {
    /// The token's `oid` (or `sub` when it has none).
    pub principal: String,
    /// A built-in role name, its role-definition ID, or its data action (see `Role::parse`).
    pub role: String,
    /// `"namespace"` or a topic space name.
    pub scope: String,
}

/// The scope word that means "every topic space".
pub const NAMESPACE_SCOPE: &str = "namespace";

/// The two data actions of §3, which is all a role can carry here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Publisher,
    Subscriber,
}

impl Role {
    /// Accepts, ignoring ASCII case (Azure compares role names and actions that way), the
    /// built-in role name, its role-definition GUID, or its data action.
    pub fn parse(text: &str) -> Option<Role> {
        const PUBLISHER: [&str; 3] = [
            "EventGrid TopicSpaces Publisher",
            "a12b0b94-b317-4dcd-84a8-502ce99884c6",
            "Microsoft.EventGrid/topicSpaces/publish/action",
        ];
        const SUBSCRIBER: [&str; 3] = [
            "EventGrid TopicSpaces Subscriber",
            "4b0f2fd7-60b4-4eca-896f-4435034f8bf5",
            "Microsoft.EventGrid/topicSpaces/subscribe/action",
        ];
        let text = text.trim();
        if PUBLISHER.iter().any(|p| p.eq_ignore_ascii_case(text)) {
            Some(Role::Publisher)
        } else if SUBSCRIBER.iter().any(|s| s.eq_ignore_ascii_case(text)) {
            Some(Role::Subscriber)
        } else {
            None
        }
    }

    pub fn permission(self) -> Permission {
        match self {
            Role::Publisher => Permission::Publisher,
            Role::Subscriber => Permission::Subscriber,
        }
    }
}

/// The built-in client group holding every client [doc].
pub const ALL_GROUP: &str = "$all";
