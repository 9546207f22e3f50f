//! Who may publish and subscribe where (`eventgrid-mqtt.md` §3 RBAC and §6): a namespace is
//! compiled once into `CompiledNamespace`, each authenticated client into `ClientPermissions`
//! (publish and subscribe bit masks over topic-space indices plus its resolved templates), and
//! the per-packet decisions are then mask tests and template walks.
//!
//! Publish fast path: templates without variables are the same for every client, so the set of
//! topic spaces they match depends on the topic alone — `CompiledNamespace::topic_space_mask` is
//! what a per-worker cache memoizes (key: the topic). A PUBLISH is then
//! `mask & perms.publish != 0`, falling back to the client's own resolved variable templates.

use std::sync::Arc;

use super::model::{
    Attributes, ClientDef, ClientState, ConfigError, Namespace, Permission, Role, NAMESPACE_SCOPE,
};
use super::query::Query;
use super::topics::{validate_filter, validate_topic_name, Filter, Template};

/// How a client proved who it is; it selects the authorization model (§3 vs §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthKind {
    /// `OAUTH2-JWT`: rights come from role assignments for this principal (the token's `oid`,
    /// or `sub` when it has none). Permission bindings do not apply [unconfirmed, §3].
    Entra { oid: String },
    /// `CUSTOM-JWT`: client groups and permission bindings, attributes from the token.
    CustomJwt,
    /// A registered client resource (certificate / username, or a webhook's answer): client
    /// groups and permission bindings, attributes from the configuration.
    Registered,
}

/// An authenticated client, as the permission rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// In its original case (used for template substitution); compared ignoring case.
    pub authentication_name: String,
    pub attributes: Attributes,
    pub auth_kind: AuthKind,
}

impl ClientIdentity {
    /// The identity of a registered client resource.
    pub fn registered(def: &ClientDef) -> Self {
        ClientIdentity {
            authentication_name: def.authentication_name.clone(),
            attributes: def.attributes.clone(),
            auth_kind: AuthKind::Registered,
        }
    }

    /// True when `other` is the same principal — what re-authentication (AUTH 0x19) requires:
    /// the same method and the same authentication name, ignoring case (§3 step 2).
    pub fn same_principal(&self, other: &ClientIdentity) -> bool {
        let same_kind = match (&self.auth_kind, &other.auth_kind) {
            (AuthKind::Entra { oid: a }, AuthKind::Entra { oid: b }) => super::eq_ignore_case(a, b),
            (AuthKind::CustomJwt, AuthKind::CustomJwt) => true,
            (AuthKind::Registered, AuthKind::Registered) => true,
            _ => false,
        };
        same_kind && super::eq_ignore_case(&self.authentication_name, &other.authentication_name)
    }
}

/// Bit for topic space `index` in a mask (at most 10 spaces, so a `u64` always suffices).
fn bit(index: usize) -> u64 {
    1u64 << index
}

#[derive(Debug)]
struct CompiledSpace {
    name: String,
    /// Templates with variables, resolved per client.
    variable_templates: Vec<Template>,
}

#[derive(Debug)]
struct CompiledBinding {
    /// `None` = the built-in `$all`.
    group: Option<usize>,
    space: usize,
    permission: Permission,
}

#[derive(Debug)]
struct CompiledRole {
    principal: String,
    permission: Permission,
    /// `None` = namespace scope (every topic space).
    space: Option<usize>,
}

/// A validated namespace in the form the per-packet checks use. Immutable and `Send + Sync`;
/// share it behind an `Arc` and rebuild on configuration reload.
#[derive(Debug)]
pub struct CompiledNamespace {
    groups: Vec<Query>,
    spaces: Vec<CompiledSpace>,
    bindings: Vec<CompiledBinding>,
    roles: Vec<CompiledRole>,
    /// Variable-free templates, already filters, tagged with their topic space index; shared
    /// with every `ClientPermissions` so those stay small.
    statics: Arc<[(usize, Filter)]>,
    clients: Vec<ClientDef>,
}

impl CompiledNamespace {
    /// Validates `ns` (see `Namespace::validate`) and compiles it.
    pub fn compile(ns: &Namespace) -> Result<Self, ConfigError> {
        ns.validate()?;
        // After `validate` every query, template and reference below is known good; the
        // `ConfigError`s built here only guard against the two drifting apart.
        let internal = |what: &str| ConfigError {
            item: what.to_owned(),
            reason: "failed to compile after validation".to_owned(),
        };
        let mut groups = Vec::with_capacity(ns.client_groups.len());
        for group in &ns.client_groups {
            groups.push(Query::parse(&group.query).map_err(|_| internal(&group.name))?);
        }
        let mut spaces = Vec::with_capacity(ns.topic_spaces.len());
        let mut statics = Vec::new();
        for (index, space) in ns.topic_spaces.iter().enumerate() {
            let mut variable_templates = Vec::new();
            for text in &space.templates {
                let template = Template::parse(text).map_err(|_| internal(&space.name))?;
                if template.has_variables() {
                    variable_templates.push(template);
                } else {
                    let filter = template
                        .resolve("", &Attributes::new())
                        .ok_or_else(|| internal(&space.name))?;
                    statics.push((index, filter));
                }
            }
            spaces.push(CompiledSpace {
                name: space.name.clone(),
                variable_templates,
            });
        }
        let mut bindings = Vec::with_capacity(ns.permission_bindings.len());
        for b in &ns.permission_bindings {
            bindings.push(CompiledBinding {
                group: ns
                    .group_index(&b.client_group)
                    .ok_or_else(|| internal(&b.name))?,
                space: ns
                    .topic_space_index(&b.topic_space)
                    .ok_or_else(|| internal(&b.name))?,
                permission: b.permission,
            });
        }
        let mut roles = Vec::with_capacity(ns.role_assignments.len());
        for r in &ns.role_assignments {
            let role = Role::parse(&r.role).ok_or_else(|| internal(&r.role))?;
            let space = if r.scope.eq_ignore_ascii_case(NAMESPACE_SCOPE) {
                None
            } else {
                Some(
                    ns.topic_space_index(&r.scope)
                        .ok_or_else(|| internal(&r.scope))?,
                )
            };
            roles.push(CompiledRole {
                principal: r.principal.trim().to_owned(),
                permission: role.permission(),
                space,
            });
        }
        Ok(CompiledNamespace {
            groups,
            spaces,
            bindings,
            roles,
            statics: statics.into(),
            clients: ns.clients.clone(),
        })
    }

    /// Names of the topic spaces, by index (the bit positions of the masks).
    pub fn topic_space_names(&self) -> impl Iterator<Item = &str> {
        self.spaces.iter().map(|s| s.name.as_str())
    }

    /// The enabled registered client with this authentication name (compared ignoring case).
    /// `None` for unknown and for disabled clients, both refused with 0x87.
    pub fn registered_client(&self, authentication_name: &str) -> Option<&ClientDef> {
        self.clients.iter().find(|c| {
            c.state == ClientState::Enabled
                && super::eq_ignore_case(&c.authentication_name, authentication_name)
        })
    }

    /// Bit `i` set when the client is in configured client group `i` (`$all` is implicit).
    pub fn group_membership(&self, client: &ClientIdentity) -> u64 {
        self.groups
            .iter()
            .enumerate()
            .filter(|(_, q)| q.matches(&client.authentication_name, &client.attributes))
            .fold(0, |mask, (i, _)| mask | bit(i))
    }

    /// Compiles what `client` may do: from role assignments for Entra identities, from
    /// permission bindings of the groups it belongs to otherwise; then resolves the variable
    /// templates of every topic space it holds a right on. Call at CONNECT and after every
    /// successful re-authentication.
    pub fn permissions(&self, client: &ClientIdentity) -> ClientPermissions {
        let (mut publish, mut subscribe) = (0u64, 0u64);
        let mut grant = |permission: Permission, mask: u64| match permission {
            Permission::Publisher => publish |= mask,
            Permission::Subscriber => subscribe |= mask,
        };
        let every_space = bit(self.spaces.len()) - 1;
        match &client.auth_kind {
            AuthKind::Entra { oid } => {
                for role in &self.roles {
                    if super::eq_ignore_case(&role.principal, oid) {
                        grant(role.permission, role.space.map_or(every_space, bit));
                    }
                }
            }
            AuthKind::CustomJwt | AuthKind::Registered => {
                let groups = self.group_membership(client);
                for b in &self.bindings {
                    if b.group.is_none_or(|g| groups & bit(g) != 0) {
                        grant(b.permission, bit(b.space));
                    }
                }
            }
        }
        let mut dynamic = Vec::new();
        for (index, space) in self.spaces.iter().enumerate() {
            if (publish | subscribe) & bit(index) == 0 {
                continue;
            }
            for template in &space.variable_templates {
                if let Some(filter) =
                    template.resolve(&client.authentication_name, &client.attributes)
                {
                    dynamic.push((index, filter));
                }
            }
        }
        ClientPermissions {
            publish,
            subscribe,
            dynamic,
            statics: Arc::clone(&self.statics),
        }
    }

    /// Topic spaces whose variable-free templates match `topic` — the same for every client, so
    /// a per-worker cache can memoize it by topic. Templates with variables are not included
    /// (they are checked per client by `check_publish_with_mask`).
    pub fn topic_space_mask(&self, topic: &str) -> u64 {
        self.statics
            .iter()
            .filter(|(_, filter)| filter.matches(topic))
            .fold(0, |mask, (space, _)| mask | bit(*space))
    }
}

/// What one client may do, computed at CONNECT / re-auth by `CompiledNamespace::permissions`.
#[derive(Debug, Clone)]
pub struct ClientPermissions {
    /// Topic spaces (bit = index) the client may PUBLISH to.
    pub publish: u64,
    /// Topic spaces the client may SUBSCRIBE in.
    pub subscribe: u64,
    /// The client's resolved variable templates, tagged with their topic space.
    dynamic: Vec<(usize, Filter)>,
    /// The namespace's variable-free templates (shared).
    statics: Arc<[(usize, Filter)]>,
}

impl ClientPermissions {
    /// The client's resolved templates of topic space `space` (variable-free ones included;
    /// a template whose variable the client lacks is absent).
    pub fn templates(&self, space: usize) -> impl Iterator<Item = &Filter> {
        self.statics
            .iter()
            .chain(self.dynamic.iter())
            .filter(move |(s, _)| *s == space)
            .map(|(_, f)| f)
    }

    /// True when the client holds no right at all (it may still connect, §3).
    pub fn is_empty(&self) -> bool {
        self.publish == 0 && self.subscribe == 0
    }

    fn any_template(&self, rights: u64, test: impl Fn(&Filter) -> bool) -> bool {
        self.statics
            .iter()
            .chain(self.dynamic.iter())
            .any(|(space, filter)| rights & bit(*space) != 0 && test(filter))
    }
}

/// May the client PUBLISH to `topic`? Validates the topic name first (an invalid one is never
/// allowed; callers answer 0x90 after `validate_topic_name` anyway).
pub fn check_publish(perms: &ClientPermissions, topic: &str) -> bool {
    validate_topic_name(topic).is_ok()
        && perms.any_template(perms.publish, |filter| filter.matches(topic))
}

/// The cached form of `check_publish`: `static_mask` is `CompiledNamespace::topic_space_mask`
/// for `topic` (memoized per worker), and `topic` must already be a valid topic name.
pub fn check_publish_with_mask(perms: &ClientPermissions, static_mask: u64, topic: &str) -> bool {
    static_mask & perms.publish != 0
        || perms
            .dynamic
            .iter()
            .any(|(space, filter)| perms.publish & bit(*space) != 0 && filter.matches(topic))
}

/// May the client SUBSCRIBE with `filter`? Allowed iff one template of a topic space it may
/// subscribe in covers the whole filter (§6; several templates together do not count
/// [unconfirmed]). An invalid or `$share` filter is never allowed.
pub fn check_subscribe(perms: &ClientPermissions, filter: &str) -> bool {
    validate_filter(filter).is_ok()
        && perms.any_template(perms.subscribe, |template| template.covers(filter))
}

#[cfg(test)]
mod tests;
