//! End-to-end suite: every test starts the real `hubmq` binary (two workers, ephemeral
//! loopback ports, a throw-away config) and drives it over the wire, with independent client
//! implementations — rumqttc (3.1.1 and 5, TCP and WebSocket) and the byte-level [`harness::Raw`]
//! client for exact reason codes, malformed input and HTTP answers. One test binary with
//! modules, so the suite links once. Tests wait with deadlines, never fixed sleeps, and never
//! assert on elapsed time.

// Helpers are shared with modules other engineers add (client libraries in other languages);
// not every helper is used by every build of the suite.
#[allow(dead_code)]
mod harness;
#[allow(dead_code)]
mod raw;
#[allow(dead_code)]
mod rq;
#[allow(dead_code)]
mod wire;

mod auth;
mod clients;
mod errors;
mod eventgrid;
mod ops;
mod pubsub;
mod rest;
mod sessions;
mod tls;
mod upstream;
mod workers;
