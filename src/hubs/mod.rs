//! The MesoLive hubs as typed Rust: payload models, callbacks, and every INFERRED wire detail.
//!
//! * [`wire`] — the one place to correct INFERRED details against a live server.
//! * [`lenient`] — case-insensitive, unknown-tolerant decoding used for every inbound payload.
//! * [`models`] — Control/Data Hub payloads; [`events`] — Event Hub callbacks.
//! * [`client`] — typed Control / Data / Event clients over one SignalR connection each.

pub mod client;
pub mod events;
pub mod lenient;
pub mod models;
pub mod wire;
