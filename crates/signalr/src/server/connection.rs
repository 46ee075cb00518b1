//! The handle on one server-side connection: push callbacks, close it, abort it.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::codec::{self, Message, Outcome};
use crate::error::ServerCallError;
use crate::lock;

/// One client connection of a hub, as the hub (and the host) sees it. Cheap to clone.
///
/// Records are queued to the connection's writer through a bounded queue, so a client that
/// reads slowly slows down `send` (back-pressure, as ASP.NET Core awaits every write) instead
/// of growing memory.
#[derive(Clone)]
pub struct ServerConnection {
    shared: Arc<Shared>,
}

struct Shared {
    connection_id: String,
    outbound: mpsc::Sender<String>,
    /// Cancelled when the connection must end, for whatever reason: stops reader, invoker and
    /// streams. A child of `aborted`.
    closing: CancellationToken,
    /// Cancelled when the socket must be dropped without any goodbye.
    aborted: CancellationToken,
    /// The last record to send before the WS close (a Close message).
    farewell: Mutex<Option<String>>,
    streams: Mutex<HashMap<String, CancellationToken>>,
    client_results: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    next_client_result_id: AtomicU64,
    client_result_timeout: Duration,
    pings_received: AtomicU64,
    pings_sent: AtomicU64,
}

/// Keep-alive counters of one server-side connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerConnectionStats {
    /// Pings received from the client.
    pub pings_received: u64,
    /// Pings sent to the client.
    pub pings_sent: u64,
}

impl fmt::Debug for ServerConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConnection")
            .field("connection_id", &self.shared.connection_id)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl ServerConnection {
    /// A connection and the receiving end of its outbound queue (for the writer).
    pub(super) fn new(
        connection_id: String,
        outbound_capacity: usize,
        client_result_timeout: Duration,
    ) -> (Self, mpsc::Receiver<String>) {
        let (outbound, queued) = mpsc::channel(outbound_capacity.max(1));
        let aborted = CancellationToken::new();
        let shared = Shared {
            connection_id,
            outbound,
            closing: aborted.child_token(),
            aborted,
            farewell: Mutex::new(None),
            streams: Mutex::new(HashMap::new()),
            client_results: Mutex::new(HashMap::new()),
            next_client_result_id: AtomicU64::new(0),
            client_result_timeout,
            pings_received: AtomicU64::new(0),
            pings_sent: AtomicU64::new(0),
        };
        let connection = ServerConnection {
            shared: Arc::new(shared),
        };
        (connection, queued)
    }

    /// The public connection id (the one negotiate returned as `connectionId`).
    pub fn id(&self) -> &str {
        &self.shared.connection_id
    }

    /// Invokes a client method without expecting an answer (`Clients.Client(id).SendAsync`).
    /// Waits while the outbound queue is full.
    ///
    /// # Errors
    ///
    /// [`ServerCallError`] when the connection has closed.
    pub async fn send(&self, target: &str, arguments: Vec<Value>) -> Result<(), ServerCallError> {
        self.send_message(&Message::Invocation {
            invocation_id: None,
            target: target.to_owned(),
            arguments,
            stream_ids: Vec::new(),
        })
        .await
    }

    /// Invokes a client method and waits for its Completion (a .NET 7 "client result").
    /// Fails on timeout and as soon as the connection closes.
    ///
    /// # Errors
    ///
    /// [`ServerCallError`] on timeout, when the connection closes, or with the client's error.
    pub async fn invoke_client(
        &self,
        target: &str,
        arguments: Vec<Value>,
    ) -> Result<Value, ServerCallError> {
        let id = self
            .shared
            .next_client_result_id
            .fetch_add(1, Ordering::Relaxed);
        let invocation_id = format!("s{id}");
        let (reply, outcome) = oneshot::channel();
        lock(&self.shared.client_results).insert(invocation_id.clone(), reply);
        let result = self
            .await_client_result(&invocation_id, target, arguments, outcome)
            .await;
        lock(&self.shared.client_results).remove(&invocation_id);
        result
    }

    async fn await_client_result(
        &self,
        invocation_id: &str,
        target: &str,
        arguments: Vec<Value>,
        outcome: oneshot::Receiver<Outcome>,
    ) -> Result<Value, ServerCallError> {
        self.send_message(&Message::Invocation {
            invocation_id: Some(invocation_id.to_owned()),
            target: target.to_owned(),
            arguments,
            stream_ids: Vec::new(),
        })
        .await?;
        let limit = self.shared.client_result_timeout;
        let outcome = tokio::select! {
            received = tokio::time::timeout(limit, outcome) => match received {
                Err(_) => return Err(ServerCallError::Timeout(limit)),
                Ok(Err(_)) => return Err(ServerCallError::Closed),
                Ok(Ok(outcome)) => outcome,
            },
            () = self.closed() => return Err(ServerCallError::Closed),
        };
        match outcome {
            Outcome::Error(message) => Err(ServerCallError::Client(message)),
            Outcome::Value(value) => Ok(value),
            Outcome::Empty => Ok(Value::Null),
        }
    }

    /// Ends the connection politely: the queued records, a Close message with `error` and
    /// `allow_reconnect`, then WS close 1000. Streams are cancelled, `send` fails from now on.
    pub fn close(&self, error: Option<String>, allow_reconnect: bool) {
        let farewell = codec::encode(&Message::Close {
            error,
            allow_reconnect,
        });
        lock(&self.shared.farewell).get_or_insert(farewell);
        self.shared.closing.cancel();
    }

    /// Drops the socket at once, with no Close message and no WS close frame, as if the
    /// network failed (fault injection: "drop every connection now").
    pub fn abort(&self) {
        self.shared.aborted.cancel();
    }

    /// Whether the connection is closed or closing.
    pub fn is_closed(&self) -> bool {
        self.shared.closing.is_cancelled()
    }

    /// Resolves once the connection is closing or closed.
    pub async fn closed(&self) {
        self.shared.closing.cancelled().await;
    }

    /// Keep-alive counters.
    pub fn stats(&self) -> ServerConnectionStats {
        ServerConnectionStats {
            pings_received: self.shared.pings_received.load(Ordering::Relaxed),
            pings_sent: self.shared.pings_sent.load(Ordering::Relaxed),
        }
    }

    /// Sends `text` as is, separator or not: how a test server sends malformed records.
    ///
    /// # Errors
    ///
    /// [`ServerCallError`] when the connection has closed.
    pub async fn send_raw(&self, text: String) -> Result<(), ServerCallError> {
        self.send_record(text).await
    }

    pub(super) async fn send_message(&self, message: &Message) -> Result<(), ServerCallError> {
        self.send_record(codec::encode(message)).await
    }

    async fn send_record(&self, record: String) -> Result<(), ServerCallError> {
        if self.is_closed() {
            return Err(ServerCallError::Closed);
        }
        // Fails once the writer is gone, which it always is soon after `closing` fires.
        self.shared
            .outbound
            .send(record)
            .await
            .map_err(|_| ServerCallError::Closed)
    }

    /// Queues the handshake reply ahead of anything else (the queue is still empty).
    pub(super) fn queue_first(&self, record: &str) {
        if self.shared.outbound.try_send(record.to_owned()).is_err() {
            tracing::warn!("could not queue the handshake reply");
        }
    }

    pub(super) fn closing_token(&self) -> &CancellationToken {
        &self.shared.closing
    }

    pub(super) fn aborted_token(&self) -> &CancellationToken {
        &self.shared.aborted
    }

    pub(super) fn take_farewell(&self) -> Option<String> {
        lock(&self.shared.farewell).take()
    }

    pub(super) fn count_ping_received(&self) {
        self.shared.pings_received.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn count_ping_sent(&self) {
        self.shared.pings_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Registers a stream; `None` when the id is already in use.
    pub(super) fn register_stream(&self, invocation_id: &str) -> Option<CancellationToken> {
        let mut streams = lock(&self.shared.streams);
        if streams.contains_key(invocation_id) {
            return None;
        }
        let token = self.shared.closing.child_token();
        streams.insert(invocation_id.to_owned(), token.clone());
        Some(token)
    }

    pub(super) fn cancel_stream(&self, invocation_id: &str) {
        if let Some(token) = lock(&self.shared.streams).remove(invocation_id) {
            token.cancel();
        }
    }

    pub(super) fn forget_stream(&self, invocation_id: &str) {
        lock(&self.shared.streams).remove(invocation_id);
    }

    /// Hands a client's Completion to the `invoke_client` waiting for it; unknown ids are ignored.
    pub(super) fn complete_client_result(&self, invocation_id: &str, outcome: Outcome) {
        if let Some(reply) = lock(&self.shared.client_results).remove(invocation_id) {
            let _ = reply.send(outcome);
        }
    }
}
