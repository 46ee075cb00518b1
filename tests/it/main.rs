//! The daemon's integration tests, one binary (`cargo test --test it`): each module is an area,
//! `support` holds what they share. The daemon runs as a real process against the in-process
//! simulator, with real SQLite files in temp dirs and real sockets on 127.0.0.1.
//!
//! The SignalR, simulator and decoder tests live with their crates (`crates/*/tests/it`).

mod bench_smoke;
mod check;
mod config;
mod connect_push;
mod demo;
mod failover;
mod fault_campaign;
mod fuzz_decoders;
mod history_gap;
mod hostile_server;
mod local_faults;
mod monitoring_pack;
mod notifications;
mod operator;
mod security;
mod sim_cli;
mod stopping;
mod store;
mod supervisor;
mod support;
mod wire;
mod workflow_crash_matrix;
mod workflow_retries;
mod workflows;
