//! The state store on real SQLite files: opening and migrating, recording events, the records
//! the daemon keeps, a model-based property test, a writer SIGKILLed mid-write, and the
//! newer-wins rule of re-asserted signal states.

mod crash;
mod events;
mod history_gap;
mod lease;
mod model;
mod open;
mod operator;
mod records;
mod signal_recency;
