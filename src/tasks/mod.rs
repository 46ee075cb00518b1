//! The supervised children that do the work: the event pump, position monitors, workflows,
//! intents, the reconciler, dedupe pruning and the daily-loss watcher (`risk`). Each has one
//! `run(ctx)` entry; restart policy is the supervisor's. `sequencer` holds the pump's sequencing rules, without I/O; `resync` is
//! the pump's answer to a hole in the server's event history.

pub mod dedupe;
pub mod effects;
pub mod event_pump;
pub mod intent;
pub mod position_monitor;
pub mod reconciler;
pub mod resync;
pub mod risk;
pub mod sequencer;
pub mod workflow;
