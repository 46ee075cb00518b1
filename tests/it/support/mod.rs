//! What the daemon's tests share: the daemon process and the simulator it talks to, a TCP/TLS
//! front that misbehaves on purpose, a notification receiver, store fixtures, a tmpfs for disk
//! faults, and the event samples. Generic waiting, temp dirs and seeds come from `testkit`.

pub(crate) mod daemon;
// The samples belong to mesolive-api's tests; one copy serves both crates.
#[path = "../../../crates/mesolive-api/tests/it/support/events.rs"]
pub(crate) mod events;
pub(crate) mod front;
pub(crate) mod fs;
pub(crate) mod pg;
pub(crate) mod receiver;
pub(crate) mod store;
pub(crate) mod wire;
