//! Tests for the namespace model: reading the documented configuration shape and every
//! validation rule, each error naming its item.

use super::*;
use serde_json::json;

/// The `config.md` example namespace, as the TOML reader would hand it over (JSON here: the crate
/// has no TOML dependency, and serde sees the same data model).
fn example() -> serde_json::Value {
    json!({
        "hostnames": ["factory.example.net"],
        "entra": {
            "tenants": ["00000000-0000-0000-0000-000000000001"],
            "audiences": ["https://eventgrid.azure.net/"],
            "jwks_file": "/etc/hubmq/entra-jwks.json"
        },
        "custom_jwt": {
            "issuer": "https://issuer.example.net",
            "public_key_files": ["/etc/hubmq/issuer.pem"]
        },
        "clients": [
            {"authentication_name": "sensor-1", "attributes": {"type": "sensor", "floor": 3}}
        ],
        "client_groups": [{"name": "sensors", "query": "attributes.type = 'sensor'"}],
        "topic_spaces": [{
            "name": "telemetry",
            "templates": ["devices/${client.authenticationName}/telemetry", "fleet/+/status"]
        }],
        "permission_bindings": [{
            "name": "sensors-publish", "client_group": "sensors",
            "topic_space": "telemetry", "permission": "Publisher"
        }],
        "role_assignments": [{
            "principal": "11111111-2222-3333-4444-555555555555",
            "role": "EventGrid TopicSpaces Subscriber",
            "scope": "telemetry"
        }]
    })
}

fn parse(value: serde_json::Value) -> Namespace {
    serde_json::from_value(value).expect("namespace parses")
}

fn invalid(value: serde_json::Value) -> ConfigError {
    parse(value).validate().expect_err("must be refused")
}

#[test]
fn reads_the_documented_example_with_defaults() {
    let ns = parse(example());
    assert!(ns.validate().is_ok(), "{:?}", ns.validate());
    assert_eq!(ns.hostnames, ["factory.example.net"]);
    let entra = ns.entra.as_ref().unwrap();
    assert_eq!(entra.skew_secs, DEFAULT_SKEW_SECS);
    assert_eq!(ns.clients[0].attributes["floor"], AttrValue::Int(3));
    assert_eq!(
        ns.clients[0].attributes["type"],
        AttrValue::Str("sensor".into())
    );
    assert_eq!(ns.clients[0].state, ClientState::Enabled);
    assert_eq!(ns.permission_bindings[0].permission, Permission::Publisher);
    assert_eq!(ns.max_client_sessions_per_authentication_name, 1);
    assert_eq!(ns.max_session_expiry_hours, 1);
    assert!(ns.retain);
    assert_eq!(ns.throughput_units, 1);
}

#[test]
fn an_empty_namespace_is_valid() {
    let ns = parse(json!({}));
    assert!(ns.validate().is_ok());
    let entra = parse(json!({"entra": {"tenants": ["t"], "jwks_file": "k.json"}}));
    assert_eq!(
        entra.entra.unwrap().audiences,
        [DEFAULT_ENTRA_AUDIENCE],
        "Entra audience defaults to the documented one"
    );
}

#[test]
fn unknown_keys_are_refused_at_every_level() {
    for (path, value) in [
        ("/bogus", json!(1)),
        ("/entra/bogus", json!(1)),
        ("/custom_jwt/bogus", json!(1)),
        ("/clients/0/bogus", json!(1)),
        ("/client_groups/0/bogus", json!(1)),
        ("/topic_spaces/0/bogus", json!(1)),
        ("/permission_bindings/0/bogus", json!(1)),
        ("/role_assignments/0/bogus", json!(1)),
    ] {
        let mut doc = example();
        let (parent, key) = path.rsplit_once('/').unwrap();
        doc.pointer_mut(parent)
            .and_then(|v| v.as_object_mut())
            .unwrap()
            .insert(key.to_owned(), value);
        let e = serde_json::from_value::<Namespace>(doc).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{path}: {e}");
    }
}

#[test]
fn attribute_values_are_string_integer_or_string_array() {
    let ns = parse(
        json!({"clients": [{"authentication_name": "a", "attributes": {
            "s": "x", "i": -4, "a": ["x", "y"]
        }}]}),
    );
    let attrs = &ns.clients[0].attributes;
    assert_eq!(attrs["i"], AttrValue::Int(-4));
    assert_eq!(
        attrs["a"],
        AttrValue::StrArray(vec!["x".into(), "y".into()])
    );
    for bad in [json!(1.5), json!(true), json!([1, 2]), json!({"x": 1})] {
        let doc = json!({"clients": [{"authentication_name": "a", "attributes": {"k": bad}}]});
        assert!(serde_json::from_value::<Namespace>(doc).is_err(), "{bad}");
    }
}

#[test]
fn permission_and_state_spellings() {
    let mut doc = example();
    doc["permission_bindings"][0]["permission"] = json!("Subscriber");
    doc["clients"][0]["state"] = json!("Disabled");
    let ns = parse(doc);
    assert_eq!(ns.permission_bindings[0].permission, Permission::Subscriber);
    assert_eq!(ns.clients[0].state, ClientState::Disabled);
    let mut doc = example();
    doc["permission_bindings"][0]["permission"] = json!("Owner");
    assert!(serde_json::from_value::<Namespace>(doc).is_err());
}

fn groups(n: usize) -> serde_json::Value {
    (0..n)
        .map(|i| json!({"name": format!("group-{i}"), "query": "attributes.a = 1"}))
        .collect()
}

fn spaces(n: usize, templates: usize) -> serde_json::Value {
    (0..n)
        .map(|i| {
            let t: Vec<String> = (0..templates).map(|j| format!("s{i}/t{j}")).collect();
            json!({"name": format!("space-{i}"), "templates": t})
        })
        .collect()
}

#[test]
fn enforces_the_documented_counts() {
    assert!(parse(json!({"client_groups": groups(10)}))
        .validate()
        .is_ok());
    let e = invalid(json!({"client_groups": groups(11)}));
    assert_eq!(e.item, "client_groups");

    assert!(parse(json!({"topic_spaces": spaces(10, 10)}))
        .validate()
        .is_ok());
    assert_eq!(
        invalid(json!({"topic_spaces": spaces(11, 1)})).item,
        "topic_spaces"
    );
    let e = invalid(json!({"topic_spaces": spaces(1, 11)}));
    assert_eq!(e.item, "topic_spaces[0] \"space-0\".templates");
    let e = invalid(json!({"topic_spaces": spaces(1, 0)}));
    assert!(e.reason.contains("1-10"), "{e}");

    let bindings = |n: usize| -> serde_json::Value {
        (0..n)
            .map(|i| {
                json!({"name": format!("b-{i:03}"), "client_group": "$all",
                            "topic_space": "space-0", "permission": "Publisher"})
            })
            .collect()
    };
    let ok = json!({"topic_spaces": spaces(1, 1), "permission_bindings": bindings(100)});
    assert!(parse(ok).validate().is_ok());
    let e = invalid(json!({"topic_spaces": spaces(1, 1), "permission_bindings": bindings(101)}));
    assert_eq!(e.item, "permission_bindings");
}

#[test]
fn resource_names_follow_the_3_to_50_rule_and_are_unique() {
    for bad in ["ab", "has space", "under_score", "$all", &"x".repeat(51)] {
        let e = invalid(json!({"client_groups": [{"name": bad, "query": "attributes.a = 1"}]}));
        assert!(e.reason.contains("3-50"), "{bad}: {e}");
    }
    let e = invalid(json!({"client_groups": [
        {"name": "Sensors", "query": "attributes.a = 1"},
        {"name": "sensors", "query": "attributes.a = 2"}
    ]}));
    assert_eq!(e.item, "client_groups[1] \"sensors\"");
    assert!(e.reason.contains("twice"));
    let e = invalid(json!({"topic_spaces": [
        {"name": "abc", "templates": ["a"]}, {"name": "abc", "templates": ["b"]}
    ]}));
    assert!(e.reason.contains("twice"), "{e}");
}

#[test]
fn a_bad_query_or_template_names_its_item() {
    let e = invalid(json!({"client_groups": [{"name": "sensors", "query": "attributes.type = "}]}));
    assert_eq!(e.item, "client_groups[0] \"sensors\".query");
    assert!(e.reason.contains("quoted string"), "{e}");

    let e = invalid(json!({"topic_spaces": [{"name": "telemetry", "templates": ["a/#/b"]}]}));
    assert_eq!(
        e.item,
        "topic_spaces[0] \"telemetry\".templates[0] \"a/#/b\""
    );
    assert_eq!(
        e.to_string(),
        "topic_spaces[0] \"telemetry\".templates[0] \"a/#/b\": '#' must be the last level"
    );
}

#[test]
fn bindings_and_roles_must_reference_existing_items() {
    let mut doc = example();
    doc["permission_bindings"][0]["client_group"] = json!("nobody");
    let e = invalid(doc);
    assert_eq!(
        e.item,
        "permission_bindings[0] \"sensors-publish\".client_group"
    );

    let mut doc = example();
    doc["permission_bindings"][0]["topic_space"] = json!("nowhere");
    assert!(invalid(doc).item.ends_with(".topic_space"));

    let mut doc = example();
    doc["permission_bindings"][0]["client_group"] = json!("$all");
    assert!(parse(doc).validate().is_ok(), "$all is built in");

    let mut doc = example();
    doc["role_assignments"][0]["scope"] = json!("nowhere");
    assert_eq!(invalid(doc).item, "role_assignments[0].scope");

    let mut doc = example();
    doc["role_assignments"][0]["scope"] = json!("Namespace");
    assert!(parse(doc).validate().is_ok());

    let mut doc = example();
    doc["role_assignments"][0]["role"] = json!("Contributor");
    assert_eq!(invalid(doc).item, "role_assignments[0].role");
}

#[test]
fn role_accepts_name_id_and_data_action() {
    for text in [
        "EventGrid TopicSpaces Publisher",
        "eventgrid topicspaces publisher",
        "a12b0b94-b317-4dcd-84a8-502ce99884c6",
        "Microsoft.EventGrid/topicSpaces/publish/action",
    ] {
        assert_eq!(Role::parse(text), Some(Role::Publisher), "{text}");
    }
    for text in [
        "EventGrid TopicSpaces Subscriber",
        "4b0f2fd7-60b4-4eca-896f-4435034f8bf5",
        "Microsoft.EventGrid/topicSpaces/subscribe/action",
    ] {
        assert_eq!(Role::parse(text), Some(Role::Subscriber), "{text}");
    }
    assert_eq!(Role::parse("EventGrid Data Sender"), None);
}

#[test]
fn clients_names_and_attributes_are_checked() {
    let e = invalid(json!({"clients": [{"authentication_name": ""}]}));
    assert!(e.reason.contains("1-128"), "{e}");
    let long = "é".repeat(128);
    assert!(parse(json!({"clients": [{"authentication_name": long}]}))
        .validate()
        .is_ok());
    let e = invalid(json!({"clients": [
        {"authentication_name": "Pump-1"}, {"authentication_name": "pump-1"}
    ]}));
    assert!(e.reason.contains("twice"), "{e}");
    let e =
        invalid(json!({"clients": [{"authentication_name": "a", "attributes": {"bad-key": 1}}]}));
    assert_eq!(e.item, "clients[0] \"a\".attributes.bad-key");
    let big = "x".repeat(MAX_CLIENT_ATTRIBUTE_BYTES);
    let e = invalid(json!({"clients": [{"authentication_name": "a", "attributes": {"k": big}}]}));
    assert!(e.reason.contains("4 KB"), "{e}");
}

#[test]
fn authentication_settings_are_checked() {
    let e = invalid(json!({"entra": {"tenants": [], "jwks_file": "k"}}));
    assert_eq!(e.item, "entra.tenants");
    let e = invalid(json!({"entra": {"tenants": ["t"]}}));
    assert!(e.reason.contains("jwks_file"), "{e}");
    let e = invalid(json!({"custom_jwt": {"issuer": "i", "public_key_files": ["a", "b", "c"]}}));
    assert_eq!(e.item, "custom_jwt.public_key_files");
    let e = invalid(json!({"custom_jwt": {"issuer": "", "jwks_file": "k"}}));
    assert_eq!(e.item, "custom_jwt.issuer");
    assert!(
        parse(json!({"custom_jwt": {"issuer": "i", "jwks_file": "k"}}))
            .validate()
            .is_ok()
    );
}

#[test]
fn namespace_settings_have_documented_ranges() {
    assert_eq!(
        invalid(json!({"max_session_expiry_hours": 9})).item,
        "max_session_expiry_hours"
    );
    assert_eq!(
        invalid(json!({"max_client_sessions_per_authentication_name": 0})).item,
        "max_client_sessions_per_authentication_name"
    );
    assert_eq!(
        invalid(json!({"throughput_units": 0})).item,
        "throughput_units"
    );
    assert_eq!(invalid(json!({"hostnames": ["a/b"]})).item, "hostnames[0]");
}
