//! The supervised children that do the work: the event pump, position monitors, workflows,
//! intents, the reconciler and dedupe pruning. Each has one `run(ctx)` entry; restart policy is
//! the supervisor's. `sequencer` holds the pump's sequencing rules, without I/O.

pub mod dedupe;
pub mod effects;
pub mod event_pump;
pub mod intent;
pub mod position_monitor;
pub mod reconciler;
pub mod sequencer;
pub mod workflow;
