//! mesolive-supervisor: a restart-safe supervisor for MesoLive options-trading automation.
//!
//! Layout (one job per module; see `../shared/DESIGN.md` for the path of one event):
//!
//! ```text
//! config      layered settings (embedded default → --config file → MESOLIVE__* env), validation
//! store/      SQLite state: migrations, the cursor+dedupe+effects transaction, intents, jobs
//! signalr/    SignalR JSON hub protocol: codec, client connection, server side (for the simulator)
//! ```
#![warn(missing_docs)]

pub mod signalr;
