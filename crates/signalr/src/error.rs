//! Typed errors at the SignalR module boundary.
//!
//! Foreign errors (reqwest, tungstenite, serde) are stored as redacted text, never as sources:
//! it lets one close reason be cloned into every failed call and into the state watch, and it
//! guarantees that no URL carrying the `access_token` query ever ends up in an error or a log.

use std::fmt;
use std::time::Duration;

use super::codec::CodecError;

/// Everything that can go wrong when connecting to a hub or using a connection.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SignalrError {
    /// The connect options cannot work (URL scheme, token characters): fix the configuration,
    /// retrying won't help.
    #[error("invalid connect options: {0}")]
    InvalidConfig(String),

    /// The TLS client configuration could not be built.
    #[error("TLS setup failed: {0}")]
    Tls(String),

    /// The server refused the credentials (HTTP 401/403). Kept apart from other failures so the
    /// supervisor does not retry a bad API key in a tight loop.
    #[error("unauthorized: the server answered HTTP {status} to the {stage}")]
    Unauthorized {
        /// Which request was refused.
        stage: AuthStage,
        /// The HTTP status (401 or 403).
        status: u16,
    },

    /// Negotiate failed: `{"error":..}` body, unexpected status, unusable body, redirect loop.
    #[error("negotiate failed: {0}")]
    Negotiate(String),

    /// The HTTP request or the WebSocket upgrade could not be carried out (DNS, TCP, TLS, HTTP).
    #[error("could not reach the hub: {0}")]
    Transport(String),

    /// The SignalR handshake was refused, malformed or timed out.
    #[error("handshake failed: {0}")]
    Handshake(String),

    /// An invocation got no Completion within its timeout; its id has been forgotten, so a late
    /// Completion is ignored. The outcome on the server is unknown.
    #[error("'{method}' got no reply within {after:?}")]
    Timeout {
        /// The hub method called.
        method: String,
        /// The timeout that elapsed.
        after: Duration,
    },

    /// The hub method (or stream) failed on the server; `message` is the server's error text.
    #[error("'{method}' failed on the server: {message}")]
    Hub {
        /// The hub method called.
        method: String,
        /// The `error` text of the Completion.
        message: String,
    },

    /// The result (or stream item) did not deserialize into the requested type.
    #[error("unexpected result shape from '{method}': {detail}")]
    InvalidResult {
        /// The hub method called.
        method: String,
        /// The serde error.
        detail: String,
    },

    /// The peer broke the hub protocol for one message (the connection itself survives).
    #[error("protocol error: {0}")]
    Protocol(#[from] CodecError),

    /// The connection ended while the call was pending, or before it was made. A reconnect is a
    /// new `Connection`.
    #[error("connection lost: {0}")]
    ConnectionLost(Box<CloseReason>),

    /// The server sent a Close message (type 7); `message` is its `error`, if any.
    #[error("the server closed the connection ({})", message.as_deref().unwrap_or("no error"))]
    ServerClosed {
        /// The `error` field of the Close message.
        message: Option<String>,
    },

    /// Nothing arrived from the server for the configured server timeout.
    #[error("no message from the server for {0:?}")]
    ServerTimeout(Duration),

    /// An inbound WebSocket message or record exceeded the configured size limit.
    #[error("an inbound message exceeded the {limit}-byte limit")]
    MessageTooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },

    /// The callback consumer fell `limit` callbacks behind, so the connection was closed rather
    /// than drop an event or grow memory without bound; the caller reconnects and replays.
    #[error("the callback consumer fell {limit} callbacks behind")]
    CallbackBacklog {
        /// The configured `max_pending_callbacks`.
        limit: usize,
    },
}

impl SignalrError {
    /// A short, stable name of the failure class, for metric labels (`errors_total{kind}`):
    /// the variant, or for a lost connection the error that ended it.
    pub fn kind(&self) -> &'static str {
        match self {
            SignalrError::InvalidConfig(_) => "invalid_config",
            SignalrError::Tls(_) => "tls",
            SignalrError::Unauthorized { .. } => "unauthorized",
            SignalrError::Negotiate(_) => "negotiate",
            SignalrError::Transport(_) => "transport",
            SignalrError::Handshake(_) => "handshake",
            SignalrError::Timeout { .. } => "timeout",
            SignalrError::Hub { .. } => "hub_error",
            SignalrError::InvalidResult { .. } => "invalid_result",
            SignalrError::Protocol(_) => "protocol",
            SignalrError::ConnectionLost(reason) => reason.kind(),
            SignalrError::ServerClosed { .. } => "server_closed",
            SignalrError::ServerTimeout(_) => "server_timeout",
            SignalrError::MessageTooLarge { .. } => "message_too_large",
            SignalrError::CallbackBacklog { .. } => "callback_backlog",
        }
    }
}

/// Which request of the connect sequence was refused with 401/403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStage {
    /// The `POST …/negotiate` request.
    Negotiate,
    /// The WebSocket upgrade request.
    Upgrade,
}

impl fmt::Display for AuthStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthStage::Negotiate => "negotiate request",
            AuthStage::Upgrade => "WebSocket upgrade",
        })
    }
}

/// Why a connection ended: what `closed()` resolves to and what every failed call carries.
#[derive(Debug, Clone)]
pub struct CloseReason {
    /// `None` for a clean local close; otherwise what ended the connection.
    pub error: Option<SignalrError>,
    /// Whether the peer allows a reconnect (`allowReconnect` of a Close message; true for
    /// transport losses and timeouts, false for a local close).
    pub allow_reconnect: bool,
}

impl CloseReason {
    /// The reason for a close asked for by this side.
    pub(crate) fn local() -> Self {
        CloseReason {
            error: None,
            allow_reconnect: false,
        }
    }

    /// The reason for a failure after which reconnecting makes sense.
    pub(crate) fn failure(error: SignalrError) -> Self {
        CloseReason {
            error: Some(error),
            allow_reconnect: true,
        }
    }

    /// [`SignalrError::kind`] of the error that ended the connection; `closed` for a local close.
    pub fn kind(&self) -> &'static str {
        self.error.as_ref().map_or("closed", SignalrError::kind)
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            None => f.write_str("closed by the client"),
            Some(error) => error.fmt(f),
        }
    }
}

impl From<CloseReason> for SignalrError {
    fn from(reason: CloseReason) -> Self {
        SignalrError::ConnectionLost(Box::new(reason))
    }
}

/// Why a server→client call failed (server side, `ServerConnection`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerCallError {
    /// The connection is closed or closing.
    #[error("the connection is closed")]
    Closed,
    /// The client did not answer a client-result invocation in time.
    #[error("the client did not answer within {0:?}")]
    Timeout(Duration),
    /// The client answered a client-result invocation with an error.
    #[error("the client answered with an error: {0}")]
    Client(String),
}
