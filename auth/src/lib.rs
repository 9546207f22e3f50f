//! hubmq-auth: everything about deciding who a client is and what it may do, kept pure (no I/O,
//! no clock reads — callers pass `now` in unix seconds). It owns JWT verification done directly
//! with `ring` (HS256 access keys with rotation, RS256/ES256 public keys from PEM), the reading of
//! Web PubSub client-token claims, the client audience rule, role-string compilation and the
//! minting of tokens and client URLs exactly as the Azure server SDKs build them. The `eventgrid`
//! module holds the Event Grid MQTT mode's policy engine (namespace model, client-group queries,
//! topic templates, permissions, Entra and custom-JWT tokens).
#![forbid(unsafe_code)]

mod audience;
mod claims;
mod der;
pub mod eventgrid;
mod jwt;
mod keys;
mod mint;
mod roles;

#[cfg(test)]
mod testkeys;

pub use audience::{client_audience_matches, parse_endpoint};
pub use claims::{client_claims, ClientClaims};
pub use jwt::{sign_hs256, verify, TokenError, VerifyOptions, MAX_TOKEN_LEN};
pub use keys::{KeyError, KeyRing};
pub use mint::{client_base_url, client_token};
pub use roles::{parse_roles, Roles};
