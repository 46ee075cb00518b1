//! The state store, most of it on both backends (real SQLite files, and schemas of a
//! PostgreSQL cluster the tests start): opening and migrating, recording events, the records
//! the daemon keeps, a model-based property test, a writer SIGKILLed mid-write, the newer-wins
//! rule of re-asserted signal states, the lease, the operator tables, workflow attempts and
//! retries, and the notification outbox.

mod crash;
mod events;
mod history_gap;
mod lease;
mod model;
mod open;
mod operator;
mod outbox;
mod records;
mod signal_recency;
mod workflows;
