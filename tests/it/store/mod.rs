//! The state store on real SQLite files: opening and migrating, recording events, the records
//! the daemon keeps, a model-based property test, and a writer SIGKILLed mid-write.

mod crash;
mod events;
mod model;
mod open;
mod records;
