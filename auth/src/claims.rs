//! Reading a verified client token's claims the way Web PubSub defines them: user id from `sub`,
//! roles from `role`/`roles`, groups to join from `webpubsub.group`/`group` (each a string or an
//! array), and every claim flattened to `{name: [values]}` for the upstream `connect` event.

use serde_json::{Map, Value};

use crate::jwt::TokenError;

/// Claims of a client token, ready for the connection and the upstream `connect` event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientClaims {
    /// `sub`: a string, or an array holding one string. Absent or empty → `None`.
    pub user_id: Option<String>,
    /// `role` and `roles` merged (string or array each), duplicates removed, first-seen order.
    pub roles: Vec<String>,
    /// `webpubsub.group` (what the SDKs emit) and `group` (what the docs say) merged, deduplicated.
    pub groups: Vec<String>,
    /// `exp`, when it is a JSON integer.
    pub expires_at: Option<u64>,
    /// Every claim except the registered ones (RFC 7519 `iss sub aud exp nbf iat jti` and the
    /// Web PubSub `role roles group webpubsub.group`), flattened to string arrays.
    pub custom: Vec<(String, Vec<String>)>,
    /// All claims flattened the same way, in the claims map's iteration order, for the upstream
    /// `claims` field.
    pub all: Vec<(String, Vec<String>)>,
}

/// Claims with a meaning of their own, left out of [`ClientClaims::custom`].
const REGISTERED: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "role",
    "roles",
    "group",
    "webpubsub.group",
];

/// Reads the Web PubSub client claims out of a verified claims object.
pub fn client_claims(claims: &Map<String, Value>) -> Result<ClientClaims, TokenError> {
    let user_id = match claims.get("sub") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(items)) => match items.as_slice() {
            [] => None,
            [Value::String(s)] => Some(s.clone()),
            [_] => return Err(TokenError::BadClaim("sub must be a string")),
            _ => return Err(TokenError::BadClaim("more than one sub")),
        },
        Some(_) => return Err(TokenError::BadClaim("sub must be a string")),
    }
    // The Python SDK only sets `sub` when the user id is truthy; an empty one means "no user".
    .filter(|s| !s.is_empty());

    let mut roles = Vec::new();
    for name in ["role", "roles"] {
        string_list(
            claims.get(name),
            &mut roles,
            "role must be a string or an array of strings",
        )?;
    }
    let mut groups = Vec::new();
    for name in ["webpubsub.group", "group"] {
        string_list(
            claims.get(name),
            &mut groups,
            "group must be a string or an array of strings",
        )?;
    }

    let expires_at = claims.get("exp").and_then(Value::as_u64);

    let all: Vec<(String, Vec<String>)> = claims
        .iter()
        .map(|(name, value)| {
            let mut values = Vec::new();
            flatten(value, &mut values);
            (name.clone(), values)
        })
        .collect();
    let custom = all
        .iter()
        .filter(|(name, _)| !REGISTERED.contains(&name.as_str()))
        .cloned()
        .collect();

    Ok(ClientClaims {
        user_id,
        roles,
        groups,
        expires_at,
        custom,
        all,
    })
}

/// Appends a string-or-array-of-strings claim to `out`, skipping values already present.
fn string_list(
    value: Option<&Value>,
    out: &mut Vec<String>,
    bad: &'static str,
) -> Result<(), TokenError> {
    let mut push = |s: &String| {
        if !out.contains(s) {
            out.push(s.clone());
        }
    };
    match value {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => push(s),
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(s) => push(s),
                    _ => return Err(TokenError::BadClaim(bad)),
                }
            }
        }
        Some(_) => return Err(TokenError::BadClaim(bad)),
    }
    Ok(())
}

/// Flattens one claim value into strings: a string as is, numbers and booleans in JSON text,
/// `null` as nothing, arrays element by element (nested arrays too), objects as compact JSON.
fn flatten(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Null => {}
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|item| flatten(item, out)),
        Value::Bool(_) | Value::Number(_) | Value::Object(_) => out.push(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reads_sub_as_string_or_single_element_array() {
        let c = client_claims(&claims(json!({"sub": "alice"}))).unwrap();
        assert_eq!(c.user_id.as_deref(), Some("alice"));
        let c = client_claims(&claims(json!({"sub": ["bob"]}))).unwrap();
        assert_eq!(c.user_id.as_deref(), Some("bob"));
        let c = client_claims(&claims(json!({}))).unwrap();
        assert_eq!(c.user_id, None);
        let c = client_claims(&claims(json!({"sub": ""}))).unwrap();
        assert_eq!(
            c.user_id, None,
            "empty sub means no user, as in the Python SDK"
        );
    }

    #[test]
    fn refuses_two_subs() {
        assert_eq!(
            client_claims(&claims(json!({"sub": ["a", "b"]}))),
            Err(TokenError::BadClaim("more than one sub"))
        );
    }

    #[test]
    fn refuses_non_string_sub() {
        assert!(matches!(
            client_claims(&claims(json!({"sub": 5}))),
            Err(TokenError::BadClaim(_))
        ));
        assert!(matches!(
            client_claims(&claims(json!({"sub": [5]}))),
            Err(TokenError::BadClaim(_))
        ));
    }

    #[test]
    fn merges_role_and_roles_as_strings_or_arrays() {
        let c = client_claims(&claims(json!({
            "role": "webpubsub.sendToGroup",
            "roles": ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"],
        })))
        .unwrap();
        assert_eq!(
            c.roles,
            strings(&["webpubsub.sendToGroup", "webpubsub.joinLeaveGroup"])
        );
        let c = client_claims(&claims(json!({"role": ["a", "b"], "roles": "c"}))).unwrap();
        assert_eq!(c.roles, strings(&["a", "b", "c"]));
    }

    #[test]
    fn merges_group_and_webpubsub_group_deduplicated() {
        let c = client_claims(&claims(json!({
            "webpubsub.group": ["g1", "g2"],
            "group": "g2",
        })))
        .unwrap();
        assert_eq!(c.groups, strings(&["g1", "g2"]));
        let c = client_claims(&claims(
            json!({"group": ["x.y", "x.y"], "webpubsub.group": "z"}),
        ))
        .unwrap();
        assert_eq!(c.groups, strings(&["z", "x.y"]));
    }

    #[test]
    fn accepts_empty_role_and_group_arrays() {
        // The JS SDK keeps explicitly empty arrays: `"role": []`.
        let c = client_claims(&claims(json!({"role": [], "webpubsub.group": []}))).unwrap();
        assert!(c.roles.is_empty());
        assert!(c.groups.is_empty());
    }

    #[test]
    fn refuses_non_string_roles_and_groups() {
        for bad in [
            json!({"role": 1}),
            json!({"roles": [true]}),
            json!({"group": {"a": 1}}),
            json!({"webpubsub.group": ["g", 2]}),
        ] {
            assert!(
                matches!(
                    client_claims(&claims(bad.clone())),
                    Err(TokenError::BadClaim(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn flattens_custom_claims_to_string_arrays() {
        let c = client_claims(&claims(json!({
            "sub": "u",
            "aud": "http://h/clients/mqtt/hubs/chat",
            "exp": 100,
            "iat": 50,
            "role": ["r"],
            "tenant": "t1",
            "tags": ["a", 2, true, null, ["n"]],
            "level": 3,
            "vip": false,
            "meta": {"k": "v"},
            "gone": null,
        })))
        .unwrap();
        assert_eq!(c.expires_at, Some(100));
        let custom: Vec<(&str, Vec<&str>)> = c
            .custom
            .iter()
            .map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect()))
            .collect();
        let mut expected = vec![
            ("tenant", vec!["t1"]),
            ("tags", vec!["a", "2", "true", "n"]),
            ("level", vec!["3"]),
            ("vip", vec!["false"]),
            ("meta", vec![r#"{"k":"v"}"#]),
            ("gone", vec![]),
        ];
        // Iteration order is the map's; compare as sets of pairs.
        let mut got = custom.clone();
        got.sort();
        expected.sort();
        assert_eq!(got, expected);
    }

    #[test]
    fn all_claims_include_the_registered_ones() {
        let c = client_claims(&claims(
            json!({"sub": "u", "role": ["r1", "r2"], "exp": 9, "x": "y"}),
        ))
        .unwrap();
        let find = |name: &str| {
            c.all
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(find("sub"), Some(strings(&["u"])));
        assert_eq!(find("role"), Some(strings(&["r1", "r2"])));
        assert_eq!(find("exp"), Some(strings(&["9"])));
        assert_eq!(find("x"), Some(strings(&["y"])));
        assert_eq!(c.all.len(), 4);
        assert_eq!(c.custom, vec![("x".to_string(), strings(&["y"]))]);
    }
}
