//! Operations: logging, systemd notification, and (with the supervisor) health and metrics.

pub mod logging;
pub mod notify;
