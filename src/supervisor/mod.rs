//! The supervision tree: startup in runbook order, restart policy, reconnect recovery, shutdown.

pub mod policy;
