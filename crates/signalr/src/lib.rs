//! The ASP.NET Core SignalR JSON hub protocol over WebSockets, both sides.
//!
//! - [`codec`]: handshake, hub messages, 0x1E framing; shared by client and server.
//! - [`Connection`]: the client. `connect` negotiates (v1, redirects, bearer token), opens the
//!   WebSocket (token in the `Authorization` header and the `access_token` query), does the
//!   handshake and starts one task that owns the socket: it pings, watches the server timeout,
//!   routes Completions, stream items and callbacks. It never reconnects: a reconnect is a new
//!   `Connection`, and the old one fails every pending call with
//!   [`SignalrError::ConnectionLost`] the moment it ends.
//! - [`HubHost`]: the server (axum routes, connection registry, switches to abort connections
//!   or refuse new ones, for test servers).
//!
//! # Callbacks: one ordered queue, unbounded up to a cap
//!
//! Server→client invocations go to ONE queue per connection ([`Connection::take_callbacks`]),
//! in arrival order, consumed by one task. The socket reader must never wait on that consumer
//! (a blocked reader would also block the Completions the consumer may be waiting for), and
//! events must never be dropped silently. So the queue is unbounded, guarded by
//! `max_pending_callbacks`: when the consumer falls that far behind, the connection is closed
//! with [`SignalrError::CallbackBacklog`]. The owner then reconnects and recovers what it missed
//! (a durable cursor and a replay, for example), and memory stays bounded.
//!
//! Streams are the opposite case: market data is latest-value, so each stream buffers
//! `stream_buffer` items and drops the oldest when its consumer lags ([`HubStream::dropped_items`]).

#![doc = include_str!("../README.md")]
#![warn(clippy::missing_errors_doc)]

mod client;
pub mod codec;
mod error;
mod server;
pub mod tls;
mod transport;

use std::sync::{Mutex, MutexGuard, PoisonError};

pub use client::{
    AccessToken, Callback, CallbackReceiver, ConnectOptions, Connection, ConnectionState,
    ConnectionStats, HubStream, MalformedRecordHook,
};
pub use error::{AuthStage, CloseReason, ServerCallError, SignalrError};
pub use server::{
    ClientTimeoutMode, Hub, HubHost, HubItems, HubOptions, Reply, ServerAuth, ServerConnection,
    ServerConnectionStats, TokenSource, unknown_method_error,
};

/// Locks a mutex whose critical sections never panic; recovers the data if one ever did.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
