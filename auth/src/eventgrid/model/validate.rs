//! `Namespace::validate`: the documented limits, name rules and uniqueness, the syntax of
//! every query and template, and that bindings and role assignments name existing items.

use std::collections::BTreeSet;

use super::access::{Role, NAMESPACE_SCOPE};
use super::clients::validate_name_sources;
use super::namespace::Namespace;
use super::{
    err, ConfigError, MAX_AUTHENTICATION_NAME_CHARS, MAX_CLIENT_ATTRIBUTE_BYTES, MAX_CLIENT_GROUPS,
    MAX_PERMISSION_BINDINGS, MAX_SESSIONS_PER_AUTHENTICATION_NAME, MAX_SESSION_EXPIRY_HOURS,
    MAX_TEMPLATES_PER_TOPIC_SPACE, MAX_TOPIC_SPACES,
};
use crate::eventgrid::attrs::is_attribute_key;
use crate::eventgrid::query::Query;
use crate::eventgrid::topics::Template;

/// Names of client groups, topic spaces and bindings: 3–50 characters from `[A-Za-z0-9-]` [doc;
/// for bindings unconfirmed].
fn check_resource_name(item: &str, name: &str) -> Result<(), ConfigError> {
    let ok_chars = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !(3..=50).contains(&name.len()) || !ok_chars {
        return err(
            item,
            format!("name {name:?} must be 3-50 characters from A-Z, a-z, 0-9 and '-'"),
        );
    }
    Ok(())
}

/// Inserts `name` into `seen` (ASCII case folded: Azure resource names are case-insensitive);
/// false if it was there already.
fn first_use(seen: &mut BTreeSet<String>, name: &str) -> bool {
    seen.insert(name.to_ascii_lowercase())
}

impl Namespace {
    /// Checks the documented limits and the syntax of every query and template. The first
    /// problem found is returned, naming the item (`client_groups[2] "sensors".query: ...`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(w) = &self.webhook {
            let url = w.url.trim();
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 9 {
                return err(
                    "webhook.url",
                    format!("{url:?} is not an http:// or https:// URL"),
                );
            }
            if !(1..=60_000).contains(&w.timeout_ms) {
                return err("webhook.timeout_ms", "must be 1..=60000".to_owned());
            }
        }
        for (i, host) in self.hostnames.iter().enumerate() {
            if host.trim().is_empty() || host.contains(['/', ' ']) {
                return err(
                    format!("hostnames[{i}]"),
                    format!("{host:?} is not a host name"),
                );
            }
        }
        if !(1..=MAX_SESSIONS_PER_AUTHENTICATION_NAME)
            .contains(&self.max_client_sessions_per_authentication_name)
        {
            return err(
                "max_client_sessions_per_authentication_name",
                format!("must be 1-{MAX_SESSIONS_PER_AUTHENTICATION_NAME}"),
            );
        }
        if !(1..=MAX_SESSION_EXPIRY_HOURS).contains(&self.max_session_expiry_hours) {
            return err(
                "max_session_expiry_hours",
                format!("must be 1-{MAX_SESSION_EXPIRY_HOURS}"),
            );
        }
        if self.throughput_units == 0 {
            return err("throughput_units", "must be at least 1");
        }
        validate_name_sources(&self.alternative_authentication_name_sources)?;
        self.validate_auth()?;
        self.validate_clients()?;
        self.validate_groups()?;
        self.validate_topic_spaces()?;
        self.validate_bindings()?;
        self.validate_roles()
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        if let Some(entra) = &self.entra {
            if entra.tenants.is_empty() || entra.tenants.iter().any(|t| t.trim().is_empty()) {
                return err("entra.tenants", "list at least one tenant ID, none empty");
            }
            if entra.audiences.is_empty() || entra.audiences.iter().any(|a| a.is_empty()) {
                return err("entra.audiences", "list at least one audience, none empty");
            }
            if entra.jwks_file.is_none() && entra.public_key_files.is_empty() {
                return err("entra", "needs jwks_file or public_key_files");
            }
        }
        if let Some(custom) = &self.custom_jwt {
            custom.validate()?;
        }
        Ok(())
    }

    fn validate_clients(&self) -> Result<(), ConfigError> {
        let mut seen = BTreeSet::new();
        for (i, client) in self.clients.iter().enumerate() {
            let name = &client.authentication_name;
            let item = format!("clients[{i}] {name:?}");
            let chars = name.chars().count();
            if !(1..=MAX_AUTHENTICATION_NAME_CHARS).contains(&chars) {
                return err(
                    item,
                    format!(
                        "authentication_name must be 1-{MAX_AUTHENTICATION_NAME_CHARS} characters"
                    ),
                );
            }
            // Unique ignoring case [doc]; full Unicode lowercase, as authentication compares.
            if !seen.insert(name.to_lowercase()) {
                return err(
                    item,
                    "authentication_name is used twice (names ignore case)",
                );
            }
            client.validate_certificate_fields(&item)?;
            let mut total = 0;
            for (key, value) in &client.attributes {
                if !is_attribute_key(key) {
                    return err(
                        format!("{item}.attributes.{key}"),
                        "attribute names use only A-Z, a-z, 0-9 and '_'",
                    );
                }
                total += key.len() + value.size();
            }
            if total >= MAX_CLIENT_ATTRIBUTE_BYTES {
                return err(
                    format!("{item}.attributes"),
                    "attributes must total under 4 KB",
                );
            }
        }
        Ok(())
    }

    fn validate_groups(&self) -> Result<(), ConfigError> {
        if self.client_groups.len() > MAX_CLIENT_GROUPS {
            return err(
                "client_groups",
                format!("at most {MAX_CLIENT_GROUPS} client groups (besides the built-in $all)"),
            );
        }
        let mut seen = BTreeSet::new();
        for (i, group) in self.client_groups.iter().enumerate() {
            let item = format!("client_groups[{i}] {:?}", group.name);
            check_resource_name(&item, &group.name)?;
            if !first_use(&mut seen, &group.name) {
                return err(item, "name is used twice");
            }
            if let Err(e) = Query::parse(&group.query) {
                return err(format!("{item}.query"), e.to_string());
            }
        }
        Ok(())
    }

    fn validate_topic_spaces(&self) -> Result<(), ConfigError> {
        if self.topic_spaces.len() > MAX_TOPIC_SPACES {
            return err(
                "topic_spaces",
                format!("at most {MAX_TOPIC_SPACES} topic spaces"),
            );
        }
        let mut seen = BTreeSet::new();
        for (i, space) in self.topic_spaces.iter().enumerate() {
            let item = format!("topic_spaces[{i}] {:?}", space.name);
            check_resource_name(&item, &space.name)?;
            if !first_use(&mut seen, &space.name) {
                return err(item, "name is used twice");
            }
            if space.templates.is_empty() || space.templates.len() > MAX_TEMPLATES_PER_TOPIC_SPACE {
                return err(
                    format!("{item}.templates"),
                    format!("a topic space holds 1-{MAX_TEMPLATES_PER_TOPIC_SPACE} templates"),
                );
            }
            for (j, text) in space.templates.iter().enumerate() {
                if let Err(e) = Template::parse(text) {
                    return err(format!("{item}.templates[{j}] {text:?}"), e.to_string());
                }
            }
        }
        Ok(())
    }

    fn validate_bindings(&self) -> Result<(), ConfigError> {
        if self.permission_bindings.len() > MAX_PERMISSION_BINDINGS {
            return err(
                "permission_bindings",
                format!("at most {MAX_PERMISSION_BINDINGS} permission bindings"),
            );
        }
        let mut seen = BTreeSet::new();
        for (i, binding) in self.permission_bindings.iter().enumerate() {
            let item = format!("permission_bindings[{i}] {:?}", binding.name);
            check_resource_name(&item, &binding.name)?;
            if !first_use(&mut seen, &binding.name) {
                return err(item, "name is used twice");
            }
            if self.group_index(&binding.client_group).is_none() {
                return err(
                    format!("{item}.client_group"),
                    format!("no client group named {:?}", binding.client_group),
                );
            }
            if self.topic_space_index(&binding.topic_space).is_none() {
                return err(
                    format!("{item}.topic_space"),
                    format!("no topic space named {:?}", binding.topic_space),
                );
            }
        }
        Ok(())
    }

    fn validate_roles(&self) -> Result<(), ConfigError> {
        for (i, assignment) in self.role_assignments.iter().enumerate() {
            let item = format!("role_assignments[{i}]");
            if assignment.principal.trim().is_empty() {
                return err(format!("{item}.principal"), "must not be empty");
            }
            if Role::parse(&assignment.role).is_none() {
                return err(
                    format!("{item}.role"),
                    format!(
                        "{:?} is not \"EventGrid TopicSpaces Publisher\" or \"EventGrid TopicSpaces Subscriber\" (or their ID or data action)",
                        assignment.role
                    ),
                );
            }
            if !assignment.scope.eq_ignore_ascii_case(NAMESPACE_SCOPE)
                && self.topic_space_index(&assignment.scope).is_none()
            {
                return err(
                    format!("{item}.scope"),
                    format!(
                        "{:?} is neither \"namespace\" nor a topic space name",
                        assignment.scope
                    ),
                );
            }
        }
        Ok(())
    }
}
