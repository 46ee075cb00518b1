//! The signalr crate's integration tests, one binary (`cargo test -p signalr`): client and
//! server over real sockets on 127.0.0.1, against each other, against scripted servers that
//! break the protocol, and (ignored unless Node.js is there) against the official JavaScript
//! client. `support` holds the test hub and its server.

mod client;
mod conformance;
mod failures;
mod hostile;
mod server;
mod streams;
mod support;
