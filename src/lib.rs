//! mesolive-supervisor: a restart-safe supervisor for MesoLive options-trading automation.
//!
//! Layout (one job per module; the SignalR protocol, the MesoLive API and the simulator are the
//! workspace crates `signalr`, `mesolive-api` and `mesolive-sim`; the README's "How it works"
//! follows the path of one event):
//!
//! ```text
//! bench/      end-to-end benchmarks against the simulator (`bench`)
//! check       runbook health checks and the INFERRED-details probe (`check …`)
//! config      layered settings (embedded default → --config file → MESOLIVE__* env), validation
//! control/    operator control: trading state changes, the control socket and `ctl`, reload
//! daemon/     assembles the tree: start in runbook order, run until stopped, stop E → D → C,
//!             the ops listener, watchdog and gauges; the in-process API (demo, bench)
//! demo        simulator + daemon in one process with a live view (`demo`)
//! exit        process exit statuses (sysexits)
//! ha/         failover: the send gate and the leader's lease loop (the lease is the store's)
//! notifications  telling the operator: notices, sinks (webhook, Slack, Discord, Telegram),
//!             delivery from the store's outbox, conditions over time, `notify test`
//! risk        risk limits, decided without I/O (calls, daily loss, the trading day)
//! store/      SQLite or PostgreSQL state: migrations, the lease, the cursor+dedupe+effects
//!             transaction, intents, jobs, positions, orders, signals, workflows, the trading
//!             state and operator actions, the notification outbox, and the `state` report
//! ops/        logging, health, metrics, systemd notify (sd_notify), termination signals
//! table       aligned plain-text tables for CLI output
//! supervisor/ the kit below the tasks: supervise (restart policy), drain (the stop's phases),
//!             Ctx, hub links
//! tasks/      event_pump (+ sequencer: pure), resync, position_monitor, workflow/ (admission,
//!             decide: pure; steps, retry), intent (+ the send gate), reconciler, effects, risk
//! ```
//!
//! Below `daemon/` nothing imports it: the tasks use the kit (`supervisor/`), the kit uses
//! neither. Decisions are pure functions beside their I/O (`tasks::sequencer`,
//! `tasks::workflow::decide`, `risk`, `notifications::conditions`) and are unit-tested alone.

#[cfg(feature = "sim")]
pub mod bench;
pub mod check;
pub mod config;
pub mod control;
pub mod daemon;
#[cfg(feature = "sim")]
pub mod demo;
pub mod exit;
pub mod ha;
pub mod notifications;
pub mod ops;
pub mod risk;
pub mod store;
pub mod supervisor;
pub mod table;
pub mod tasks;
