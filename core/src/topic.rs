//! Topic rules of the Web PubSub MQTT contract: topics are group names; wildcards, shared
//! subscriptions and other `$`-topics are refused with the documented reason codes.

use crate::mqtt::ReasonCode;

/// Topic on which server messages (REST send to all / user / connection) are delivered.
pub const SERVER_MESSAGES_TOPIC: &str = "$webpubsub/server/messages";
/// Prefix of topics that carry user events to the upstream server.
pub const SERVER_EVENTS_PREFIX: &str = "$webpubsub/server/events/";

/// What a SUBSCRIBE filter means here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind<'a> {
    /// An ordinary group.
    Group(&'a str),
    /// The server-messages topic (subscribing only lowers its QoS).
    ServerMessages,
}

/// Classify a SUBSCRIBE filter or refuse it with the reason code of the spec.
pub fn check_filter(filter: &str, max_len: usize) -> Result<FilterKind<'_>, ReasonCode> {
    if filter.is_empty() || filter.len() > max_len {
        return Err(ReasonCode::TopicFilterInvalid);
    }
    if filter.starts_with("$share/") {
        return Err(ReasonCode::SharedSubscriptionsNotSupported);
    }
    if filter.contains(['+', '#']) {
        return Err(ReasonCode::WildcardSubscriptionsNotSupported);
    }
    if filter.contains('\0') {
        return Err(ReasonCode::TopicFilterInvalid);
    }
    if filter == SERVER_MESSAGES_TOPIC {
        return Ok(FilterKind::ServerMessages);
    }
    if filter.starts_with("$webpubsub/") {
        return Err(ReasonCode::TopicFilterInvalid);
    }
    Ok(FilterKind::Group(filter))
}

/// What a PUBLISH topic means here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind<'a> {
    Group(&'a str),
    /// `$webpubsub/server/events/{name}`: a user event for the upstream server.
    UserEvent(&'a str),
}

/// Classify a PUBLISH topic name or refuse it (v5 0x90 Topic Name invalid).
pub fn check_topic(topic: &str, max_len: usize) -> Result<TopicKind<'_>, ReasonCode> {
    if topic.is_empty() || topic.len() > max_len || topic.contains(['+', '#', '\0']) {
        return Err(ReasonCode::TopicNameInvalid);
    }
    if let Some(name) = topic.strip_prefix(SERVER_EVENTS_PREFIX) {
        if name.is_empty() || name.contains('/') {
            return Err(ReasonCode::TopicNameInvalid);
        }
        return Ok(TopicKind::UserEvent(name));
    }
    if topic.starts_with('$') {
        return Err(ReasonCode::TopicNameInvalid);
    }
    Ok(TopicKind::Group(topic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_filters_are_groups() {
        assert_eq!(check_filter("room1", 1024), Ok(FilterKind::Group("room1")));
        assert_eq!(check_filter("a/b/c", 1024), Ok(FilterKind::Group("a/b/c")));
    }

    #[test]
    fn wildcards_are_refused_with_0xa2() {
        for f in ["+", "#", "a/+/b", "a/#", "a+"] {
            assert_eq!(
                check_filter(f, 1024),
                Err(ReasonCode::WildcardSubscriptionsNotSupported),
                "{f}"
            );
        }
    }

    #[test]
    fn shared_subscriptions_are_refused_with_0x9e() {
        assert_eq!(
            check_filter("$share/g/room", 1024),
            Err(ReasonCode::SharedSubscriptionsNotSupported)
        );
    }

    #[test]
    fn filter_length_bounds() {
        assert_eq!(check_filter("", 1024), Err(ReasonCode::TopicFilterInvalid));
        let long = "x".repeat(1025);
        assert_eq!(
            check_filter(&long, 1024),
            Err(ReasonCode::TopicFilterInvalid)
        );
        assert!(check_filter(&long[..1024], 1024).is_ok());
    }

    #[test]
    fn server_messages_topic_is_special() {
        assert_eq!(
            check_filter(SERVER_MESSAGES_TOPIC, 1024),
            Ok(FilterKind::ServerMessages)
        );
        assert_eq!(
            check_filter("$webpubsub/other", 1024),
            Err(ReasonCode::TopicFilterInvalid)
        );
    }

    #[test]
    fn publish_topics() {
        assert_eq!(check_topic("g", 1024), Ok(TopicKind::Group("g")));
        assert_eq!(
            check_topic("$webpubsub/server/events/getTime", 1024),
            Ok(TopicKind::UserEvent("getTime"))
        );
        for bad in [
            "",
            "a/+",
            "#",
            "$sys",
            "$webpubsub/server/events/",
            "$webpubsub/server/events/a/b",
            "$webpubsub/server/messages",
        ] {
            assert_eq!(
                check_topic(bad, 1024),
                Err(ReasonCode::TopicNameInvalid),
                "{bad}"
            );
        }
    }
}
