//! hubmq-core: the sans-I/O heart of the broker.
//!
//! Owns the MQTT codec wrapper, the shared vocabulary (ids, reason codes, permissions) and the
//! per-connection protocol state machine. It must not do I/O, read clocks (callers pass `now`),
//! spawn threads or use `async`: the same inputs always give the same outputs.
#![forbid(unsafe_code)]

pub mod connect;
pub mod ids;
pub mod limits;
pub mod message;
pub mod mqtt;
pub mod odata;
pub mod perm;
pub mod rate;
pub mod session;
pub mod timers;
pub mod topic;
pub mod trie;
