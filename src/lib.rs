//! mesolive-supervisor: a restart-safe supervisor for MesoLive options-trading automation.
//!
//! Layout (one job per module; see `../shared/DESIGN.md` for the path of one event):
//!
//! ```text
//! config      layered settings (embedded default → --config file → MESOLIVE__* env), validation
//! exit        process exit statuses (sysexits)
//! hubs/       MesoLive models, callbacks, lenient decoding; wire.rs holds every INFERRED detail
//! ops/        logging, systemd notify (sd_notify)
//! signalr/    SignalR JSON hub protocol: codec, client connection, server side (for the simulator)
//! sim/        the MesoLive simulator: three hubs over real WebSockets, admin API, faults
//! ```
#![warn(missing_docs)]

pub mod config;
pub mod exit;
pub mod hubs;
pub mod ops;
pub mod signalr;
pub mod sim;
