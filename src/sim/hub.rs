//! The three hubs the simulator serves and where they live.

use serde::{Deserialize, Serialize};

/// One of the MesoLive hubs (SPEC §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hub {
    /// `/hubs/control/v1`: request/response.
    Control,
    /// `/hubs/data/v1`: snapshots and streams.
    Data,
    /// `/hubs/event/v1`: callbacks, subscribe, replay.
    Event,
}

impl Hub {
    /// Every hub.
    pub const ALL: [Hub; 3] = [Hub::Control, Hub::Data, Hub::Event];

    /// The documented path (FACT).
    pub fn path(self) -> &'static str {
        match self {
            Hub::Control => "/hubs/control/v1",
            Hub::Data => "/hubs/data/v1",
            Hub::Event => "/hubs/event/v1",
        }
    }

    /// Lowercase name, as in admin JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Hub::Control => "control",
            Hub::Data => "data",
            Hub::Event => "event",
        }
    }
}
