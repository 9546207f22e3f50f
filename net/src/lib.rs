//! hubmq-net: everything that touches a socket.
//!
//! Per-core monoio workers with their own SO_REUSEPORT listeners (`server`), the per-worker
//! session and group shards and the data path (`worker`), one reader and one writer task per
//! connection (`conn`, with one file per personality: `conn/wps.rs`, `conn/eg.rs`), how a
//! connection ends and what each ending is called (`ending`), TLS, the HTTP head / WebSocket
//! upgrade (`io`), and the lock-free cross-core queues (`mesh`). Protocol decisions come from
//! `hubmq-core`; this crate performs them. The README's "Architecture" section draws the layers.

#![forbid(unsafe_code)]

mod auth;
mod clock;
mod conn;
mod ending;
pub mod eventgrid;
mod io;
mod lifecycle;
mod mesh;
mod registry;
mod rest;
mod server;
mod settings;
pub mod upstream;
mod worker;
mod writer;

pub use io::{http, tls, ws};

pub use auth::valid_hub_name;
pub use lifecycle::{AuthSettings, Heartbeats};
pub use server::{start, Server};
pub use settings::{HubSettings, ListenerKind, ListenerSpec, NamespaceSettings, Settings};
