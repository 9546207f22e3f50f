//! The byte-level leaves of the network layer: TLS set-up, the HTTP head and WebSocket codecs,
//! the adaptive read helper and the single-threaded wake-up flag. Nothing here knows about
//! sessions, workers or either product; everything above imports from here, never the reverse.

pub mod http;
pub mod notify;
pub mod read;
pub mod tls;
pub mod ws;
