//! Failover: several daemons on one PostgreSQL database, one leader at a time.
//!
//! ```text
//! gate     the send gate every intent passes: open only while the lease is fresh (boot clock)
//! keeper   the leader's lease loop: renew every ttl/3, step down on loss (epoch moved, a
//!          fenced write, the database gone past the margin)
//! ```
//!
//! The lease itself (a row per group, a fencing epoch, expiry by the server's clock) and the
//! fencing of every write are the store's (`store::lease`); the roles — standby, leader terms,
//! stepping down without exiting — are the daemon's (`daemon::roles`).

pub mod gate;
pub mod keeper;

pub use gate::{BootInstant, SendGate};
pub use keeper::{LeaseTimes, Loss};
