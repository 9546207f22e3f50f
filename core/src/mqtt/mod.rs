//! MQTT 3.1.1 / 5.0 codec: our own fixed-header framing and flag validation, AUTH and the short
//! v5 DISCONNECT forms, delegating the variable header and payload of the other packets to
//! `mqttbytes`, behind one version-neutral packet type. Pure functions over byte buffers.

mod packet;
mod reason;

pub use packet::*;
pub use reason::ReasonCode;
