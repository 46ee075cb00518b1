//! The supervision kit the tasks are built on, below them and knowing none of them:
//!
//! ```text
//! child    supervise(): restart on failure with backoff and an intensity limit; the typed
//!          errors a child ends with (ChildError, Fatal, Unauthorized)
//! policy   backoff delays and the restart-intensity window
//! drain    the stop's phases (intake closed → stopping → forced), in-flight guards, the
//!          first fatal condition
//! context  Ctx: what every child shares (settings, store, metrics, health, hub links, wake-ups,
//!          precedence, the drain, the directory)
//! links    one child per hub: connect, verify as the runbook asks, publish, report the loss
//! precedence  the workflow runner's turn before the event pump's next batch after a signal
//! ```
//!
//! The tree itself is assembled by `crate::daemon`.

pub mod child;
pub mod context;
pub mod drain;
pub mod links;
pub mod policy;
pub mod precedence;
