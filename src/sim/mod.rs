//! The MesoLive simulator.

mod call;
mod control;
mod core;
mod data;
mod domain;
mod event;
mod event_log;
mod execution;
pub mod faults;
mod hub;
mod idempotency;
mod jobs;
pub mod ledger;
mod live;
mod market;
mod positions;
mod prepare;
mod seed;
mod signals;
pub mod stats;
mod world;
