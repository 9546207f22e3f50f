//! MQTT 3.1.1 / 5.0 codec: fixed-header framing and flag validation, every packet of both
//! versions (AUTH and the short v5 DISCONNECT forms included) behind one version-neutral packet
//! type. Pure functions over byte buffers; `codec.rs` says why `mqttbytes` is only a test oracle.

mod ack;
mod codec;
mod connect;
mod control;
mod packet;
mod props;
mod publish;
mod reason;
mod subscribe;
mod wire;

#[cfg(test)]
mod codec_tests;

pub use codec::{decode, encode, encode_publish_parts, publish_len, CodecError, PublishParts};
pub use packet::*;
pub use reason::ReasonCode;
