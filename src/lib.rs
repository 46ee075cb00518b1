//! mesolive-supervisor: a restart-safe supervisor for MesoLive options-trading automation.
//!
//! Layout (one job per module; the README's "How it works" follows the path of one event):
//!
//! ```text
//! bench/      end-to-end benchmarks against the simulator (`bench`)
//! check       runbook health checks and the INFERRED-details probe (`check …`)
//! config      layered settings (embedded default → --config file → MESOLIVE__* env), validation
//! demo        simulator + daemon in one process with a live view (`demo`)
//! exit        process exit statuses (sysexits)
//! hubs/       MesoLive models, callbacks, lenient decoding; wire.rs holds every INFERRED detail
//! signalr/    SignalR JSON hub protocol: codec, client connection, server side (for the simulator)
//! sim/        the MesoLive simulator: three hubs over real WebSockets, admin API, faults
//! store/      SQLite state: migrations, the cursor+dedupe+effects transaction, intents, jobs,
//!             positions, orders, signals, workflows, and the `state` report
//! ops/        logging, health, metrics, systemd notify (sd_notify), termination signals
//! table       aligned plain-text tables for CLI output
//! tls         rustls (ring) provider and trust roots for every outbound connection
//! supervisor/ the tree: hub links, restart policy (backoff, intensity), startup order, shutdown
//! tasks/      event_pump, position_monitor, workflow, intent, reconciler, effects
//! ```

#[cfg(feature = "sim")]
pub mod bench;
pub mod check;
pub mod config;
#[cfg(feature = "sim")]
pub mod demo;
pub mod exit;
pub mod ops;
pub mod store;
pub mod supervisor;
pub mod table;
pub mod tasks;
