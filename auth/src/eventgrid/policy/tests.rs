//! Tests for permission compilation and the PUBLISH / SUBSCRIBE decisions, including the
//! worked example of `eventgrid-mqtt.md` §9 end to end from a signed token.

use super::*;
use crate::eventgrid::model::AttrValue;
use crate::eventgrid::token::{self, tests as tok};
use crate::testkeys::require_openssl;
use serde_json::json;

fn namespace(value: serde_json::Value) -> CompiledNamespace {
    let ns: Namespace = serde_json::from_value(value).expect("namespace parses");
    CompiledNamespace::compile(&ns).unwrap_or_else(|e| panic!("{e}"))
}

fn client(name: &str, attrs: serde_json::Value) -> ClientIdentity {
    ClientIdentity {
        authentication_name: name.to_owned(),
        attributes: serde_json::from_value(attrs).expect("attributes"),
        auth_kind: AuthKind::CustomJwt,
    }
}

fn entra(oid: &str) -> ClientIdentity {
    ClientIdentity {
        authentication_name: oid.to_owned(),
        attributes: Attributes::new(),
        auth_kind: AuthKind::Entra {
            oid: oid.to_owned(),
        },
    }
}

/// SUBACK reason for one filter: the granted QoS (at most 1) or 0x87.
fn suback(perms: &ClientPermissions, filter: &str, qos: u8) -> u8 {
    if check_subscribe(perms, filter) {
        qos.min(1)
    } else {
        0x87
    }
}

/// The §9 namespace: topic space `telemetry` with `devices/${client.authenticationName}/#`,
/// publisher and subscriber roles for one service principal at that topic space's scope.
fn worked_example_namespace(oid: &str) -> CompiledNamespace {
    namespace(json!({
        "hostnames": [tok::HOST],
        "entra": {"tenants": [tok::TENANT], "jwks_file": "entra-jwks.json"},
        "topic_spaces": [{"name": "telemetry", "templates": ["devices/${client.authenticationName}/#"]}],
        "role_assignments": [
            {"principal": oid, "role": "EventGrid TopicSpaces Publisher", "scope": "telemetry"},
            {"principal": oid, "role": "EventGrid TopicSpaces Subscriber", "scope": "telemetry"}
        ]
    }))
}

#[test]
fn worked_example_suback_is_granted_then_denied() {
    if !require_openssl("worked_example_suback_is_granted_then_denied") {
        return;
    }
    let oid = "7f1c…e2";
    let ns = worked_example_namespace(oid);
    let jwt = tok::rs256(&tok::entra_claims(oid), tok::rsa());
    let verified = token::verify_entra(jwt.as_bytes(), &tok::entra_verifier(), tok::NOW).unwrap();
    assert_eq!(verified.identity.authentication_name, oid);
    let perms = ns.permissions(&verified.identity);
    assert_eq!((perms.publish, perms.subscribe), (1, 1));
    let reasons = [
        suback(&perms, "devices/7f1c…e2/cmd/+", 1),
        suback(&perms, "devices/+/cmd", 1),
    ];
    assert_eq!(reasons, [0x01, 0x87]);
    // QoS 2 is granted as 1.
    assert_eq!(suback(&perms, "devices/7f1c…e2/#", 2), 0x01);
    assert!(check_publish(&perms, "devices/7f1c…e2/telemetry"));
    assert!(!check_publish(&perms, "devices/someone-else/telemetry"));
}

#[test]
fn template_variables_isolate_clients_from_each_other() {
    let ns = namespace(json!({
        "topic_spaces": [{"name": "devices", "templates": ["devices/${client.authenticationName}/#"]}],
        "permission_bindings": [
            {"name": "all-pub", "client_group": "$all", "topic_space": "devices", "permission": "Publisher"},
            {"name": "all-sub", "client_group": "$all", "topic_space": "devices", "permission": "Subscriber"}
        ]
    }));
    let a = ns.permissions(&client("A", json!({})));
    let b = ns.permissions(&client("B", json!({})));
    assert!(check_publish(&a, "devices/A/temp"));
    assert!(check_publish(&a, "devices/A"));
    assert!(!check_publish(&a, "devices/B/temp"));
    assert!(check_publish(&b, "devices/B/temp"));
    assert!(!check_publish(&b, "devices/A/temp"));
    assert!(check_subscribe(&a, "devices/A/#"));
    assert!(!check_subscribe(&a, "devices/+/temp"));
    assert!(!check_subscribe(&a, "devices/B/#"));
    // Same answers through the cached path: no static template, so the mask is 0.
    assert_eq!(ns.topic_space_mask("devices/A/temp"), 0);
    assert!(check_publish_with_mask(&a, 0, "devices/A/temp"));
    assert!(!check_publish_with_mask(&a, 0, "devices/B/temp"));
}

#[test]
fn group_queries_select_the_right_clients() {
    let ns = namespace(json!({
        "client_groups": [
            {"name": "sensors", "query": "attributes.type = 'sensor'"},
            {"name": "upper-floors", "query": "attributes.floor >= 3 and attributes.type IN ['sensor', 'pump']"},
            {"name": "operators", "query": "authenticationName IN ['alice', 'bob']"}
        ],
        "topic_spaces": [
            {"name": "telemetry", "templates": ["telemetry/#"]},
            {"name": "upper", "templates": ["upper/#"]},
            {"name": "control", "templates": ["control/#"]}
        ],
        "permission_bindings": [
            {"name": "sensors-pub", "client_group": "sensors", "topic_space": "telemetry", "permission": "Publisher"},
            {"name": "upper-pub", "client_group": "upper-floors", "topic_space": "upper", "permission": "Publisher"},
            {"name": "ops-sub", "client_group": "operators", "topic_space": "telemetry", "permission": "Subscriber"},
            {"name": "ops-pub", "client_group": "operators", "topic_space": "control", "permission": "Publisher"}
        ]
    }));
    let low_sensor = client("s1", json!({"type": "sensor", "floor": 1}));
    let high_pump = client("p1", json!({"type": "pump", "floor": 5}));
    let alice = client("Alice", json!({}));
    let stranger = client("mallory", json!({"type": "camera", "floor": 9}));

    assert_eq!(ns.group_membership(&low_sensor), 0b001);
    assert_eq!(ns.group_membership(&high_pump), 0b010);
    assert_eq!(
        ns.group_membership(&alice),
        0b100,
        "names compare ignoring case"
    );
    assert_eq!(ns.group_membership(&stranger), 0);

    let p = ns.permissions(&low_sensor);
    assert_eq!((p.publish, p.subscribe), (0b001, 0));
    let p = ns.permissions(&high_pump);
    assert_eq!((p.publish, p.subscribe), (0b010, 0));
    let p = ns.permissions(&alice);
    assert_eq!((p.publish, p.subscribe), (0b100, 0b001));
    let p = ns.permissions(&stranger);
    assert!(p.is_empty());
    assert!(!check_publish(&p, "telemetry/x"));
}

#[test]
fn publisher_only_cannot_subscribe_and_subscriber_only_cannot_publish() {
    let ns = namespace(json!({
        "client_groups": [
            {"name": "writers", "query": "attributes.role = 'writer'"},
            {"name": "readers", "query": "attributes.role = 'reader'"}
        ],
        "topic_spaces": [{"name": "data", "templates": ["data/#"]}],
        "permission_bindings": [
            {"name": "writers-pub", "client_group": "writers", "topic_space": "data", "permission": "Publisher"},
            {"name": "readers-sub", "client_group": "readers", "topic_space": "data", "permission": "Subscriber"}
        ]
    }));
    let writer = ns.permissions(&client("w1", json!({"role": "writer"})));
    let reader = ns.permissions(&client("r1", json!({"role": "reader"})));
    assert!(check_publish(&writer, "data/x"));
    assert!(!check_subscribe(&writer, "data/x"));
    assert!(check_subscribe(&reader, "data/#"));
    assert!(!check_publish(&reader, "data/x"));
}

#[test]
fn entra_roles_follow_their_scope_and_ignore_bindings() {
    let ns = namespace(json!({
        "topic_spaces": [
            {"name": "alpha", "templates": ["alpha/#"]},
            {"name": "beta", "templates": ["beta/#"]},
            {"name": "gamma", "templates": ["gamma/#"]}
        ],
        "permission_bindings": [
            {"name": "everyone", "client_group": "$all", "topic_space": "gamma", "permission": "Publisher"}
        ],
        "role_assignments": [
            {"principal": "AAAA-1", "role": "Microsoft.EventGrid/topicSpaces/publish/action", "scope": "namespace"},
            {"principal": "aaaa-1", "role": "EventGrid TopicSpaces Subscriber", "scope": "beta"},
            {"principal": "bbbb-2", "role": "4b0f2fd7-60b4-4eca-896f-4435034f8bf5", "scope": "alpha"}
        ]
    }));
    let a = ns.permissions(&entra("aaaa-1"));
    assert_eq!((a.publish, a.subscribe), (0b111, 0b010));
    assert!(
        check_publish(&a, "gamma/x"),
        "namespace scope covers every topic space"
    );
    assert!(check_subscribe(&a, "beta/#"));
    assert!(!check_subscribe(&a, "alpha/#"));

    let b = ns.permissions(&entra("bbbb-2"));
    assert_eq!((b.publish, b.subscribe), (0, 0b001));
    assert!(
        !check_publish(&b, "gamma/x"),
        "bindings do not apply to Entra clients"
    );

    let nobody = ns.permissions(&entra("cccc-3"));
    assert!(nobody.is_empty(), "no role: connects, but may do nothing");

    // And a registered client named like a principal gets no role rights.
    let mut registered = client("aaaa-1", json!({}));
    registered.auth_kind = AuthKind::Registered;
    let r = ns.permissions(&registered);
    assert_eq!((r.publish, r.subscribe), (0b100, 0));
}

#[test]
fn subscribe_needs_one_template_covering_the_whole_filter() {
    let ns = namespace(json!({
        "topic_spaces": [
            {"name": "parts", "templates": ["a/b/#", "a/c/#"]},
            {"name": "wide-pub", "templates": ["#"]}
        ],
        "permission_bindings": [
            {"name": "sub", "client_group": "$all", "topic_space": "parts", "permission": "Subscriber"},
            {"name": "pub", "client_group": "$all", "topic_space": "wide-pub", "permission": "Publisher"}
        ]
    }));
    let p = ns.permissions(&client("x", json!({})));
    assert!(check_subscribe(&p, "a/b/+"));
    assert!(check_subscribe(&p, "a/c"));
    assert!(
        !check_subscribe(&p, "a/+/x"),
        "two templates together do not count"
    );
    assert!(
        !check_subscribe(&p, "z/#"),
        "a publish-only space grants no subscription"
    );
    assert!(!check_subscribe(&p, "$share/g/a/b/c"));
    assert!(!check_subscribe(&p, "a/b/#/c"), "invalid filter");
    assert!(check_publish(&p, "anything/at/all"));
    assert!(!check_publish(&p, "$SYS/x"), "# does not reach $ topics");
    assert!(!check_publish(&p, "a/+"), "invalid topic name");
}

#[test]
fn masked_publish_agrees_with_the_direct_check() {
    let ns = namespace(json!({
        "client_groups": [{"name": "floor-three", "query": "attributes.floor = 3"}],
        "topic_spaces": [
            {"name": "fleet", "templates": ["fleet/+/status", "fleet/all"]},
            {"name": "own", "templates": ["devices/${client.authenticationName}/#", "floors/${client.attributes.floor}/+"]},
            {"name": "other", "templates": ["other/#"]}
        ],
        "permission_bindings": [
            {"name": "fleet-pub", "client_group": "$all", "topic_space": "fleet", "permission": "Publisher"},
            {"name": "own-pub", "client_group": "floor-three", "topic_space": "own", "permission": "Publisher"}
        ]
    }));
    let clients = [
        client("d1", json!({"floor": 3})),
        client("d2", json!({"floor": 4})),
        client("d3", json!({})),
    ];
    let topics = [
        "fleet/x/status",
        "fleet/all",
        "fleet/x",
        "devices/d1/t",
        "devices/d2/t",
        "floors/3/a",
        "floors/4/a",
        "floors/3",
        "other/x",
        "nothing",
    ];
    assert_eq!(ns.topic_space_mask("fleet/x/status"), 0b001);
    assert_eq!(ns.topic_space_mask("other/x"), 0b100);
    assert_eq!(
        ns.topic_space_mask("devices/d1/t"),
        0,
        "variable templates are per client"
    );
    for c in &clients {
        let perms = ns.permissions(c);
        for topic in topics {
            let mask = ns.topic_space_mask(topic);
            assert_eq!(
                check_publish_with_mask(&perms, mask, topic),
                check_publish(&perms, topic),
                "{} {topic}",
                c.authentication_name
            );
        }
    }
    let d1 = ns.permissions(&clients[0]);
    assert!(check_publish(&d1, "floors/3/a") && check_publish(&d1, "devices/d1/t"));
    let d2 = ns.permissions(&clients[1]);
    assert!(
        !check_publish(&d2, "devices/d2/t"),
        "d2 is not on floor three"
    );
}

#[test]
fn resolved_templates_are_listed_per_topic_space() {
    let ns = namespace(json!({
        "topic_spaces": [{"name": "mixed", "templates": [
            "static/a", "by-name/${client.authenticationName}", "by-site/${client.attributes.site}"
        ]}],
        "permission_bindings": [
            {"name": "pub", "client_group": "$all", "topic_space": "mixed", "permission": "Publisher"}
        ]
    }));
    let with_site = ns.permissions(&client("n1", json!({"site": "berlin"})));
    let listed: Vec<String> = with_site.templates(0).map(|f| f.to_string()).collect();
    assert_eq!(listed, ["static/a", "by-name/n1", "by-site/berlin"]);
    let without = ns.permissions(&client("n2", json!({"site": ["a", "b"]})));
    let listed: Vec<String> = without.templates(0).map(|f| f.to_string()).collect();
    assert_eq!(
        listed,
        ["static/a", "by-name/n2"],
        "an array attribute resolves to nothing"
    );
    assert!(!check_publish(&without, "by-site/a"));
    assert_eq!(ns.topic_space_names().collect::<Vec<_>>(), ["mixed"]);
}

#[test]
fn no_rights_means_no_resolved_templates() {
    let ns = namespace(json!({
        "client_groups": [{"name": "nobody", "query": "attributes.x = 'never'"}],
        "topic_spaces": [{"name": "own", "templates": ["d/${client.authenticationName}"]}],
        "permission_bindings": [
            {"name": "pub", "client_group": "nobody", "topic_space": "own", "permission": "Publisher"}
        ]
    }));
    let p = ns.permissions(&client("a", json!({})));
    assert!(p.is_empty());
    assert!(!check_publish(&p, "d/a"));
    assert!(!check_publish_with_mask(&p, 0, "d/a"));
}

#[test]
fn registered_clients_are_found_ignoring_case_unless_disabled() {
    let ns = namespace(json!({"clients": [
        {"authentication_name": "Sensor-1", "attributes": {"type": "sensor"}},
        {"authentication_name": "old", "state": "Disabled"}
    ]}));
    let def = ns.registered_client("sensor-1").expect("found");
    let id = ClientIdentity::registered(def);
    assert_eq!(id.authentication_name, "Sensor-1", "original case kept");
    assert_eq!(id.attributes["type"], AttrValue::Str("sensor".into()));
    assert_eq!(id.auth_kind, AuthKind::Registered);
    assert!(ns.registered_client("old").is_none());
    assert!(ns.registered_client("unknown").is_none());
}

#[test]
fn reauthentication_must_keep_the_principal() {
    let a = client("Device-1", json!({"floor": 1}));
    let same = client("device-1", json!({"floor": 2}));
    assert!(
        a.same_principal(&same),
        "attributes may change, the name compares ignoring case"
    );
    assert!(!a.same_principal(&client("device-2", json!({}))));
    let mut registered = same.clone();
    registered.auth_kind = AuthKind::Registered;
    assert!(!a.same_principal(&registered), "the method must not change");
    assert!(entra("AB-12").same_principal(&entra("ab-12")));
    assert!(!entra("ab-12").same_principal(&entra("ab-13")));
    assert!(crate::eventgrid::eq_ignore_case("ÄBC", "äbc"));
}

#[test]
fn compiled_namespace_is_shareable_across_workers() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledNamespace>();
    assert_send_sync::<ClientPermissions>();
}

#[test]
fn compile_reports_validation_errors() {
    let ns: Namespace = serde_json::from_value(json!({
        "topic_spaces": [{"name": "no", "templates": ["a"]}]
    }))
    .unwrap();
    let e = CompiledNamespace::compile(&ns).unwrap_err();
    assert_eq!(e.item, "topic_spaces[0] \"no\"");
}
