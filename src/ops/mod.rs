//! Operations: logging, health, metrics, systemd notification, termination signals.

pub mod crash;
pub mod health;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod signals;
