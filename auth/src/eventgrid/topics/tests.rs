//! Tests for topic / filter validation, template parsing and resolution, and the `matches` /
//! `covers` decisions.

use super::*;
use std::collections::BTreeMap;

fn attrs(pairs: &[(&str, AttrValue)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect::<BTreeMap<_, _>>()
}

/// A variable-free template as a filter.
fn f(text: &str) -> Filter {
    Template::parse(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .resolve("unused", &Attributes::new())
        .unwrap_or_else(|| panic!("{text} resolves"))
}

#[test]
fn topic_names_obey_length_levels_and_no_wildcards() {
    assert!(validate_topic_name("a/b/c").is_ok());
    assert!(validate_topic_name("/").is_ok(), "empty levels are valid");
    assert!(validate_topic_name(&"x".repeat(256)).is_ok());
    let fifteen = vec!["l"; 15].join("/");
    assert!(validate_topic_name(&fifteen).is_ok());
    for bad in [
        String::new(),
        "x".repeat(257),
        vec!["l"; 16].join("/"),
        "a/+/c".to_owned(),
        "a/#".to_owned(),
        "a+b".to_owned(),
        "a\0b".to_owned(),
    ] {
        let e = validate_topic_name(&bad).unwrap_err();
        assert_eq!(e.reason(), 0x90, "{bad:?}: {e}");
    }
}

#[test]
fn filters_allow_whole_level_wildcards_only() {
    for good in ["a/+/c", "#", "a/#", "+", "+/+", "a//#", "$SYS/#"] {
        assert!(validate_filter(good).is_ok(), "{good}");
    }
    for bad in ["a/#/c", "a+", "a/b#", "##", "", "a\0"] {
        let e = validate_filter(bad).unwrap_err();
        assert_eq!(e.reason(), 0x8F, "{bad:?}: {e}");
    }
    assert_eq!(
        validate_filter(&vec!["+"; 16].join("/"))
            .unwrap_err()
            .reason(),
        0x8F
    );
    assert_eq!(
        validate_filter(&"y".repeat(257)).unwrap_err().reason(),
        0x8F
    );
}

#[test]
fn shared_subscriptions_are_refused_with_0x9e() {
    assert_eq!(
        validate_filter("$share/g/a/b"),
        Err(TopicError::SharedSubscription)
    );
    assert_eq!(TopicError::SharedSubscription.reason(), 0x9E);
    assert!(
        validate_filter("$shared/a").is_ok(),
        "only the $share/ prefix"
    );
}

#[test]
fn template_parse_errors_are_explained() {
    for (text, needle) in [
        ("", "empty"),
        ("a/#/b", "last level"),
        ("a/b+/c", "whole level"),
        ("a/${client.authenticationName", "not closed"),
        ("a/${client.name}", "unknown variable"),
        ("a/${client.attributes.}", "unknown variable"),
        ("a/${client.attributes.bad-key}", "unknown variable"),
        ("a/${Client.AuthenticationName}", "unknown variable"),
        ("a/${client.authentication/Name}", "not closed"),
    ] {
        let e = Template::parse(text).unwrap_err();
        assert!(e.0.contains(needle), "{text:?}: {e}");
    }
    assert!(Template::parse(&vec!["a"; 16].join("/")).is_err());
}

#[test]
fn templates_know_whether_they_hold_variables() {
    assert!(!Template::parse("fleet/+/status").unwrap().has_variables());
    assert!(
        !Template::parse("price/$5").unwrap().has_variables(),
        "a bare $ is text"
    );
    let t = Template::parse("devices/${client.authenticationName}/#").unwrap();
    assert!(t.has_variables());
    assert_eq!(t.text(), "devices/${client.authenticationName}/#");
}

#[test]
fn resolves_variables_for_a_whole_level_or_part_of_one() {
    let a = attrs(&[
        ("site", AttrValue::Str("berlin".into())),
        ("floor", AttrValue::Int(-2)),
    ]);
    let t = Template::parse(
        "sites/${client.attributes.site}/f${client.attributes.floor}/${client.authenticationName}.factory1/temp",
    )
    .unwrap();
    let filter = t.resolve("Machine1", &a).unwrap();
    assert_eq!(
        filter.to_string(),
        "sites/berlin/f-2/Machine1.factory1/temp"
    );
    assert!(filter.matches("sites/berlin/f-2/Machine1.factory1/temp"));
    assert!(
        !filter.matches("sites/berlin/f-2/machine1.factory1/temp"),
        "substitution keeps the original case and topics are case-sensitive"
    );
}

#[test]
fn documented_partial_level_example() {
    let t = Template::parse("machines/${client.authenticationName}.factory1/temp").unwrap();
    let filter = t.resolve("machine1", &Attributes::new()).unwrap();
    assert!(filter.matches("machines/machine1.factory1/temp"));
    assert!(!filter.matches("machines/machine2.factory1/temp"));
}

#[test]
fn unusable_values_make_the_template_match_nothing() {
    let t = Template::parse("d/${client.attributes.k}/x").unwrap();
    let cases = [
        attrs(&[]),
        attrs(&[("k", AttrValue::StrArray(vec!["a".into()]))]),
        attrs(&[("k", AttrValue::Str("a/b".into()))]),
        attrs(&[("k", AttrValue::Str("+".into()))]),
        attrs(&[("k", AttrValue::Str("#".into()))]),
        attrs(&[("k", AttrValue::Str(String::new()))]),
        attrs(&[("k", AttrValue::Str("a\0".into()))]),
    ];
    for a in cases {
        assert_eq!(t.resolve("n", &a), None, "{a:?}");
    }
    let by_name = Template::parse("d/${client.authenticationName}").unwrap();
    assert_eq!(by_name.resolve("evil/#", &Attributes::new()), None);
}

#[test]
fn matching_follows_mqtt_rules() {
    let cases = [
        ("a/b", "a/b", true),
        ("a/b", "a/c", false),
        ("a/b", "a/b/c", false),
        ("a/+", "a/b", true),
        ("a/+", "a/", true),
        ("a/+", "a", false),
        ("a/+", "a/b/c", false),
        ("a/#", "a", true),
        ("a/#", "a/b/c", true),
        ("a/#", "b", false),
        ("#", "anything/at/all", true),
        ("#", "$SYS/x", false),
        ("+/x", "$SYS/x", false),
        ("$SYS/#", "$SYS/x", true),
        ("a/+/c", "a/b/c", true),
        ("a//c", "a//c", true),
    ];
    for (filter, topic, expected) in cases {
        assert_eq!(f(filter).matches(topic), expected, "{filter} vs {topic}");
    }
}

#[test]
fn coverage_follows_the_level_rules_of_section_6() {
    let cases = [
        // The spec's examples.
        ("a/#", "a/+/c", true),
        ("a/#", "a", true),
        ("a/+", "a/#", false),
        ("a/b", "a/+", false),
        // A literal is covered by itself or `+`.
        ("a/b", "a/b", true),
        ("a/+", "a/b", true),
        ("a/c", "a/b", false),
        // `+` only by `+` (or an earlier `#`).
        ("a/+", "a/+", true),
        ("a/#", "a/+", true),
        // `#` only by `#` at the same or an earlier level.
        ("a/#", "a/#", true),
        ("a/#", "a/b/#", true),
        ("a/b/#", "a/#", false),
        ("#", "#", true),
        ("#", "+/+", true),
        // Length mismatches.
        ("a/b/c", "a/b", false),
        ("a/b", "a/b/c", false),
        ("a/+/#", "a", false),
        ("a/+/#", "a/b", true),
        // `$` topics are not reachable through a leading wildcard of the template.
        ("#", "$SYS/x", false),
        ("+/x", "$SYS/x", false),
        ("$SYS/#", "$SYS/x", true),
        ("#", "+/x", true),
    ];
    for (template, filter, expected) in cases {
        assert_eq!(
            f(template).covers(filter),
            expected,
            "{template} covers {filter}"
        );
    }
}

#[test]
fn coverage_agrees_with_matching_on_sample_topics() {
    // Brute-force cross-check: if `t` covers `f`, every sample topic `f` matches must be matched
    // by `t`; if it does not, some topic over this alphabet shows the difference.
    let filters = [
        "a", "b", "+", "#", "a/b", "a/+", "+/b", "a/#", "+/#", "a/b/c", "a/+/c", "+/+", "a/b/#",
    ];
    let mut topics = vec![String::new()];
    for _ in 0..3 {
        let mut next = Vec::new();
        for t in &topics {
            for l in ["a", "b", "c"] {
                next.push(if t.is_empty() {
                    l.to_owned()
                } else {
                    format!("{t}/{l}")
                });
            }
        }
        topics.extend(next);
        topics.dedup();
    }
    topics.retain(|t| !t.is_empty());
    for t in filters {
        for flt in filters {
            let semantic = topics
                .iter()
                .filter(|topic| f(flt).matches(topic))
                .all(|topic| f(t).matches(topic));
            // Topics are at most 3 levels here, so `#` filters are only approximated; the
            // syntactic rule must never be more permissive than the sampled truth.
            if f(t).covers(flt) {
                assert!(semantic, "{t} claims to cover {flt}");
            }
        }
    }
}
