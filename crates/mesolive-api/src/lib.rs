//! The MesoLive hubs as typed Rust: payload models, callbacks, and every INFERRED wire detail.
//!
//! * [`wire`] — the one place to correct INFERRED details against a live server.
//! * [`lenient`] — case-insensitive, unknown-tolerant decoding used for every inbound payload.
//! * [`models`] — Control/Data Hub payloads; [`events`] — Event Hub callbacks.
//! * [`client`] — typed Control / Data / Event clients over one SignalR connection each.
//! * [`Hub`] — which hub: metrics labels, health, the simulator's routes and admin API.
//! * [`FlowKind`] — entry, exit, adjustment: the infix of method and callback names.
//!
#![doc = include_str!("../README.md")]

pub mod client;
pub mod events;
mod flow;
pub mod lenient;
pub mod models;
pub mod wire;

use serde::{Deserialize, Serialize};

pub use flow::{FlowKind, UnknownFlowKind};

/// The three MesoLive hubs (API §1.1), in runbook order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hub {
    /// `/hubs/control/v1`: accounts, strategies, positions, jobs, orders (request/response).
    Control,
    /// `/hubs/data/v1`: snapshots and streams.
    Data,
    /// `/hubs/event/v1`: callbacks, subscriptions, replayable history.
    Event,
}

impl Hub {
    /// All hubs in runbook order (the startup order).
    pub const ALL: [Hub; 3] = [Hub::Control, Hub::Data, Hub::Event];

    /// The documented path (FACT); the daemon reads its paths from `hubs.*_path`, whose
    /// defaults are these.
    pub fn path(self) -> &'static str {
        match self {
            Hub::Control => "/hubs/control/v1",
            Hub::Data => "/hubs/data/v1",
            Hub::Event => "/hubs/event/v1",
        }
    }

    /// Lower-case name used in labels, logs and the simulator's admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Hub::Control => "control",
            Hub::Data => "data",
            Hub::Event => "event",
        }
    }
}
