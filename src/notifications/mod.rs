//! Telling the operator: notifications through a durable outbox.
//!
//! A notification is a row written in the same store transaction as its cause, so a crash
//! never loses one and never invents one (`store::outbox`); conditions observed over time are
//! written when observed ([`conditions`], from the daemon's upkeep). One loop per sink delivers
//! them in order, at least once, each under a stable id ([`delivery`]), in the sink's format
//! ([`sink`]). `mesolive-supervisor notify test` ([`command`]) sends one straight to every sink.
//!
//! Where notifications come from:
//!
//! | cause | where it is written |
//! |---|---|
//! | a workflow reaching done, failed or cancelled | `Store::update_workflow`, `Store::create_workflow` |
//! | an event quarantined | `Store::apply_events` (one notice per batch) |
//! | a `DuplicateRequest`/`Conflict` intent settled | `Store::settle_intent_after_answer` |
//! | the start (first run or not); a failover leader's term | `Store::open_outbox`, the term's first transaction, with the sinks' registration |
//! | a failover daemon standing by | `Store::tell_standby`, in a lease transaction |
//! | ready, not ready, a hub down and back | the term's upkeep ([`conditions`]) |
//! | a fatal exit (restart intensity exceeded, …) | the daemon, best effort before it exits (and before it releases a lease) |
//! | the trading state, a risk refusal or switch | their own store transactions, through `store::outbox::enqueue` |
//!
//! On PostgreSQL only the leader delivers (a delivery is a fenced write), and a standby's one
//! write is its `standby` notification.

pub mod command;
pub mod conditions;
pub mod delivery;
pub mod notice;
pub mod sink;

pub use notice::{Kind, Notice, Severity};
