//! The simulator's integration tests, one binary (`cargo test -p mesolive-sim`): its Control,
//! Data and Event hubs through the project's own SignalR client, its fault injection, and
//! (ignored unless Node.js is there) a session of the official JavaScript client. `support`
//! starts simulators and calls their admin API.

mod conformance;
mod control;
mod data;
mod events;
mod faults;
mod support;
mod wire;
