//! The Event Grid MQTT mode's policy engine (`eventgrid-mqtt.md`), pure and sans-I/O like the rest
//! of this crate: the namespace model read from configuration (`model`), the client-group query
//! language (`query`), topic templates and filter coverage (`topics`), per-client permission
//! compilation and the PUBLISH / SUBSCRIBE decisions (`policy`), and the turning of an
//! `OAUTH2-JWT` or `CUSTOM-JWT` token (`token`) or of an X.509 client certificate (`cert`) into a
//! client identity. The broker wires these to CONNECT, AUTH, PUBLISH and SUBSCRIBE; nothing here
//! reads files, sockets or the clock.
//!
//! Typical use:
//! ```text
//! let ns = CompiledNamespace::compile(&namespace)?;               // at start-up / reload
//! let id = verify_custom_jwt(token, &custom, &hosts, now)?;        // CONNECT or AUTH 0x19
//! let id = authenticate_certificate(&ns, username, &peer_chain)?;  // or, at CONNECT, a cert
//! let perms = ns.permissions(&id.identity);                        // once per (re)auth
//! let mask = ns.topic_space_mask(topic);                           // memoizable per worker
//! check_publish_with_mask(&perms, mask, topic);                    // per PUBLISH
//! check_subscribe(&perms, filter);                                 // per SUBSCRIBE filter
//! ```

mod attrs;
pub mod cert;
pub mod model;
pub mod policy;
pub mod query;
pub mod token;
pub mod topics;
pub mod webhook;

pub use cert::{
    authenticate_certificate, authenticate_certificate_with, parse_certificate, CertError,
    CertInfo, ChainTrust,
};
pub use model::{
    normalize_thumbprint, AttrValue, Attributes, ConfigError, Namespace, Permission,
    ValidationScheme,
};
pub use policy::{
    check_publish, check_publish_with_mask, check_subscribe, AuthKind, ClientIdentity,
    ClientPermissions, CompiledNamespace,
};
pub use query::{Query, QueryError};
pub use token::{
    verify_custom_jwt, verify_entra, CustomJwtVerifier, EgTokenError, EntraVerifier, VerifiedToken,
};
pub use topics::{validate_filter, validate_topic_name, Filter, Template, TopicError};
pub use webhook::{WebhookDecision, WebhookError, WebhookRequest};

/// Case-insensitive equality for authentication names, which Event Grid compares ignoring case
/// [doc]. ASCII names (the usual case) take the fast path; others fold with Unicode lowercase.
pub(crate) fn eq_ignore_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}
