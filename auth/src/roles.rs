//! Role strings → what a connection may do (webpubsub-mqtt.md, Permissions). The result is still
//! in terms of group names; `core` turns it into per-connection bitsets so the hot path never
//! scans strings.

/// Role names as the service spells them (matched exactly, as the SDKs emit them).
const SEND_TO_GROUP: &str = "webpubsub.sendToGroup";
const JOIN_LEAVE_GROUP: &str = "webpubsub.joinLeaveGroup";

/// Permissions granted by a set of roles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles {
    /// `webpubsub.sendToGroup`: publish to any group.
    pub send_any: bool,
    /// `webpubsub.joinLeaveGroup`: subscribe to / unsubscribe from any group.
    pub join_any: bool,
    /// `webpubsub.sendToGroup.<group>`, deduplicated, first-seen order.
    pub send_groups: Vec<String>,
    /// `webpubsub.joinLeaveGroup.<group>`, deduplicated, first-seen order.
    pub join_groups: Vec<String>,
    /// Role strings that grant nothing we know of; the caller logs them at debug level.
    pub unknown: Vec<String>,
}

/// Compiles role strings. A group name may itself contain dots: everything after the role
/// prefix and its separating `.` is the group (`webpubsub.sendToGroup.a.b` → group `a.b`).
pub fn parse_roles<S: AsRef<str>>(roles: &[S]) -> Roles {
    let mut out = Roles::default();
    for role in roles {
        let role = role.as_ref();
        if role == SEND_TO_GROUP {
            out.send_any = true;
        } else if role == JOIN_LEAVE_GROUP {
            out.join_any = true;
        } else if let Some(group) = group_of(role, SEND_TO_GROUP) {
            push_unique(&mut out.send_groups, group);
        } else if let Some(group) = group_of(role, JOIN_LEAVE_GROUP) {
            push_unique(&mut out.join_groups, group);
        } else {
            push_unique(&mut out.unknown, role);
        }
    }
    out
}

/// `"{prefix}.{group}"` → `group`, for a non-empty group.
fn group_of<'a>(role: &'a str, prefix: &str) -> Option<&'a str> {
    role.strip_prefix(prefix)?
        .strip_prefix('.')
        .filter(|group| !group.is_empty())
}

fn push_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|existing| existing == item) {
        list.push(item.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_roles_grant_nothing() {
        assert_eq!(parse_roles::<&str>(&[]), Roles::default());
    }

    #[test]
    fn any_group_roles_set_the_flags() {
        let r = parse_roles(&["webpubsub.sendToGroup", "webpubsub.joinLeaveGroup"]);
        assert!(r.send_any && r.join_any);
        assert!(r.send_groups.is_empty() && r.join_groups.is_empty() && r.unknown.is_empty());
    }

    #[test]
    fn group_roles_keep_dotted_group_names_whole() {
        let r = parse_roles(&[
            "webpubsub.sendToGroup.room.1",
            "webpubsub.joinLeaveGroup.a.b.c",
            "webpubsub.joinLeaveGroup.plain",
            "webpubsub.sendToGroup.webpubsub.sendToGroup",
        ]);
        assert!(!r.send_any && !r.join_any);
        assert_eq!(r.send_groups, ["room.1", "webpubsub.sendToGroup"]);
        assert_eq!(r.join_groups, ["a.b.c", "plain"]);
    }

    #[test]
    fn group_roles_are_deduplicated() {
        let r = parse_roles(&["webpubsub.sendToGroup.g", "webpubsub.sendToGroup.g"]);
        assert_eq!(r.send_groups, ["g"]);
    }

    #[test]
    fn unknown_and_malformed_roles_are_reported_not_granted() {
        let roles = vec![
            "admin".to_string(),
            "webpubsub.sendToGroup.".to_string(),
            "webpubsub.sendToGroupX".to_string(),
            "WebPubSub.SendToGroup".to_string(),
            "webpubsub.joinLeaveGroup".to_string(),
        ];
        let r = parse_roles(&roles);
        assert!(r.join_any);
        assert!(!r.send_any);
        assert!(r.send_groups.is_empty());
        assert_eq!(
            r.unknown,
            [
                "admin",
                "webpubsub.sendToGroup.",
                "webpubsub.sendToGroupX",
                "WebPubSub.SendToGroup"
            ]
        );
    }
}
