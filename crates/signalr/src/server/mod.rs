//! The server side, for the simulator: one [`HubHost`] serves one hub at one path.
//!
//! It behaves like ASP.NET Core SignalR where a client can tell: negotiate v0/v1, 404/409 on
//! the upgrade, the handshake texts, Text frames with coalesced records, pings, the client
//! timeout, sequential invocations, void results as `"result":null`, streams that always end
//! with a Completion, and Close before the WS close.

mod connection;
mod session;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header::AUTHORIZATION};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use futures_util::stream::BoxStream;
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub use connection::{ServerConnection, ServerConnectionStats};

use crate::error::AuthStage;
use crate::lock;

/// The items of a server→client stream: each `Err` ends the stream with that error text.
pub type HubItems = BoxStream<'static, Result<Value, String>>;

/// What a hub method answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Success; `Value::Null` for a void method (sent as `"result":null`, like ASP.NET Core).
    Value(Value),
    /// Failure; the text is the Completion's `error`.
    Error(String),
    /// Apply the effect but never send the Completion (fault injection: "response lost after
    /// the effect").
    Swallow,
}

impl Reply {
    /// The reply of a void method.
    pub fn void() -> Self {
        Reply::Value(Value::Null)
    }

    /// ASP.NET Core's reply to a method the hub does not have.
    pub fn unknown_method(method: &str) -> Self {
        Reply::Error(unknown_method_error(method))
    }
}

/// ASP.NET Core's error text for a method the hub does not have.
pub fn unknown_method_error(method: &str) -> String {
    format!("Unknown hub method '{method}'")
}

/// The behaviour of one hub. Invocations of one connection are handled one at a time, in
/// order (ASP.NET Core's `MaximumParallelInvocationsPerClient = 1`); streams run beside them.
pub trait Hub: Send + Sync + 'static {
    /// Runs after the handshake, before any invocation of the client is handled; callbacks
    /// pushed here reach the client right after the handshake reply.
    fn on_connected(&self, connection: &ServerConnection) -> impl Future<Output = ()> + Send {
        let _ = connection;
        async {}
    }

    /// Handles an Invocation (type 1). Without an invocation id the reply is discarded.
    fn invoke(
        &self,
        connection: &ServerConnection,
        method: &str,
        arguments: Vec<Value>,
    ) -> impl Future<Output = Reply> + Send;

    /// Starts a server→client stream (type 4); `Err(text)` refuses it with that error.
    ///
    /// # Errors
    ///
    /// The text sent to the client as the stream's error.
    fn stream(
        &self,
        connection: &ServerConnection,
        method: &str,
        arguments: Vec<Value>,
    ) -> Result<HubItems, String> {
        let _ = (connection, arguments);
        Err(unknown_method_error(method))
    }

    /// Runs once the connection is gone (streams already cancelled).
    fn on_disconnected(&self, connection: &ServerConnection) -> impl Future<Output = ()> + Send {
        let _ = connection;
        async {}
    }
}

/// Where the server looks for the bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer <token>` only (what non-browser clients send).
    Header,
    /// `access_token=<token>` in the query only (what browsers send on the upgrade).
    Query,
    /// Either one.
    Either,
}

/// Bearer-token check of a hub; wrong or missing tokens get 401.
#[derive(Clone)]
pub struct ServerAuth {
    /// The one accepted token.
    pub token: String,
    /// Where it may be.
    pub source: TokenSource,
    /// Check negotiate requests.
    pub on_negotiate: bool,
    /// Check WebSocket upgrades.
    pub on_upgrade: bool,
}

impl ServerAuth {
    /// Requires `token` on negotiate and on the upgrade, in the header or the query.
    pub fn bearer(token: impl Into<String>) -> Self {
        ServerAuth {
            token: token.into(),
            source: TokenSource::Either,
            on_negotiate: true,
            on_upgrade: true,
        }
    }

    fn accepts(&self, headers: &HeaderMap, query: &HashMap<String, String>) -> bool {
        let in_header = || {
            headers
                .get(AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer "))
                == Some(self.token.as_str())
        };
        let in_query = || query.get("access_token") == Some(&self.token);
        match self.source {
            TokenSource::Header => in_header(),
            TokenSource::Query => in_query(),
            TokenSource::Either => in_header() || in_query(),
        }
    }
}

impl fmt::Debug for ServerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerAuth")
            .field("token", &"<redacted>")
            .field("source", &self.source)
            .field("on_negotiate", &self.on_negotiate)
            .field("on_upgrade", &self.on_upgrade)
            .finish()
    }
}

/// When the server starts timing out a silent client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientTimeoutMode {
    /// After the client's first Ping, like ASP.NET Core (a client that never pings is never
    /// timed out).
    AspNet,
    /// Right after the handshake.
    Strict,
}

/// Settings of one hub. Defaults are ASP.NET Core's.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// The initial token check (`None`: anyone may connect); see [`HubHost::set_auth`].
    pub auth: Option<ServerAuth>,
    /// A Ping is sent this often.
    pub keep_alive_interval: Duration,
    /// A client silent for this long is closed with `{"type":7,"allowReconnect":true}`.
    pub client_timeout: Duration,
    /// When the client timeout starts.
    pub client_timeout_mode: ClientTimeoutMode,
    /// Time allowed for the handshake request.
    pub handshake_timeout: Duration,
    /// Largest inbound record (separator included); `None` for no limit.
    pub max_record_bytes: Option<usize>,
    /// Records queued per connection before `send` waits.
    pub outbound_capacity: usize,
    /// How long a negotiated connection waits for its WebSocket before its id expires.
    pub negotiate_ttl: Duration,
    /// Time limit of [`ServerConnection::invoke_client`].
    pub client_result_timeout: Duration,
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            auth: None,
            keep_alive_interval: Duration::from_secs(15),
            client_timeout: Duration::from_secs(30),
            client_timeout_mode: ClientTimeoutMode::AspNet,
            handshake_timeout: Duration::from_secs(15),
            max_record_bytes: Some(32 * 1024),
            outbound_capacity: 4096,
            negotiate_ttl: Duration::from_secs(15),
            client_result_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves one hub: its HTTP routes, its connections, and the admin switches over them.
/// Cheap to clone; every clone controls the same hub.
pub struct HubHost<H> {
    shared: Arc<HostShared<H>>,
}

impl<H> std::fmt::Debug for HubHost<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubHost")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl<H> Clone for HubHost<H> {
    fn clone(&self) -> Self {
        HubHost {
            shared: self.shared.clone(),
        }
    }
}

struct HostShared<H> {
    path: String,
    hub: H,
    options: HubOptions,
    auth: RwLock<Option<ServerAuth>>,
    refuse_until: Mutex<Option<Instant>>,
    /// Whether a client's Close message is left unanswered (see [`HubHost::ignore_close`]).
    ignore_close: AtomicBool,
    /// Connections by connection token.
    registry: Mutex<HashMap<String, Slot>>,
}

enum Slot {
    /// Negotiated, waiting for its WebSocket.
    Negotiated {
        connection_id: String,
        since: Instant,
    },
    Live(ServerConnection),
}

impl<H: Hub> HubHost<H> {
    /// A host for `hub` at `path` (e.g. `/hubs/event/v1`).
    pub fn new(path: &str, hub: H, options: HubOptions) -> Self {
        let path = format!("/{}", path.trim_matches('/'));
        let auth = RwLock::new(options.auth.clone());
        HubHost {
            shared: Arc::new(HostShared {
                path,
                hub,
                options,
                auth,
                refuse_until: Mutex::new(None),
                ignore_close: AtomicBool::new(false),
                registry: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The routes: `POST {path}/negotiate` and the WebSocket endpoint `GET {path}`. Merge it
    /// into the app's router.
    pub fn router(&self) -> Router {
        let path = &self.shared.path;
        Router::new()
            .route(&format!("{path}/negotiate"), post(negotiate::<H>))
            .route(path, get(upgrade::<H>))
            .with_state(self.shared.clone())
    }

    /// The hub itself, e.g. to reach the simulator state it holds.
    pub fn hub(&self) -> &H {
        &self.shared.hub
    }

    /// The live connections (handshake done or under way, not closing).
    pub fn connections(&self) -> Vec<ServerConnection> {
        lock(&self.shared.registry)
            .values()
            .filter_map(|slot| match slot {
                Slot::Live(connection) if !connection.is_closed() => Some(connection.clone()),
                Slot::Live(_) | Slot::Negotiated { .. } => None,
            })
            .collect()
    }

    /// Drops every live connection at once, with no goodbye (as a network failure would);
    /// returns how many there were.
    pub fn abort_all(&self) -> usize {
        let connections = self.connections();
        for connection in &connections {
            connection.abort();
        }
        connections.len()
    }

    /// Answers 503 to negotiate and upgrade requests for `duration` (`Duration::ZERO` stops).
    pub fn refuse_for(&self, duration: Duration) {
        *lock(&self.shared.refuse_until) = Some(Instant::now() + duration);
    }

    /// A server that never answers the close handshake (`true`): a client's Close message
    /// makes its connection stop reading — the WebSocket close frame that follows is never
    /// answered — and the connection is held open until the host closes or aborts it. For
    /// testing a client's bound on closing.
    pub fn ignore_close(&self, ignore: bool) {
        self.shared.ignore_close.store(ignore, Ordering::Relaxed);
    }

    /// Replaces the token check (`None`: anyone may connect); applies to new requests.
    pub fn set_auth(&self, auth: Option<ServerAuth>) {
        *self
            .shared
            .auth
            .write()
            .unwrap_or_else(PoisonError::into_inner) = auth;
    }
}

impl<H> HostShared<H> {
    /// 503 while refusing, 401 when the token check fails.
    fn gate(
        &self,
        headers: &HeaderMap,
        query: &HashMap<String, String>,
        stage: AuthStage,
    ) -> Option<StatusCode> {
        if lock(&self.refuse_until).is_some_and(|until| Instant::now() < until) {
            return Some(StatusCode::SERVICE_UNAVAILABLE);
        }
        let auth = self.auth.read().unwrap_or_else(PoisonError::into_inner);
        let checked = auth.as_ref().filter(|auth| match stage {
            AuthStage::Negotiate => auth.on_negotiate,
            AuthStage::Upgrade => auth.on_upgrade,
        });
        match checked {
            Some(auth) if !auth.accepts(headers, query) => Some(StatusCode::UNAUTHORIZED),
            _ => None,
        }
    }

    /// Records a negotiated connection; returns (connection id, connection token). In v0 the
    /// id is the token. Expired negotiations are swept on the way.
    fn register_negotiated(&self, version: i64) -> (String, String) {
        let connection_id = random_id();
        let token = if version >= 1 {
            random_id()
        } else {
            connection_id.clone()
        };
        let ttl = self.options.negotiate_ttl;
        let mut registry = lock(&self.registry);
        registry.retain(|_, slot| match slot {
            Slot::Negotiated { since, .. } => since.elapsed() < ttl,
            Slot::Live(_) => true,
        });
        registry.insert(
            token.clone(),
            Slot::Negotiated {
                connection_id: connection_id.clone(),
                since: Instant::now(),
            },
        );
        (connection_id, token)
    }

    /// Opens the connection an upgrade asks for, atomically: no id → a fresh one
    /// (skip-negotiation); unknown or expired → 404; already has a socket → 409. Returns its
    /// token, its handle and its outbound queue.
    fn open_connection(
        &self,
        requested: Option<&String>,
    ) -> Result<(String, ServerConnection, mpsc::Receiver<String>), StatusCode> {
        let mut registry = lock(&self.registry);
        let (token, connection_id) = match requested {
            None => (random_id(), random_id()),
            Some(token) => match registry.get(token) {
                Some(Slot::Live(_)) => return Err(StatusCode::CONFLICT),
                Some(Slot::Negotiated {
                    connection_id,
                    since,
                }) if since.elapsed() < self.options.negotiate_ttl => {
                    (token.clone(), connection_id.clone())
                }
                _ => return Err(StatusCode::NOT_FOUND),
            },
        };
        let (connection, queued) = ServerConnection::new(
            connection_id,
            self.options.outbound_capacity,
            self.options.client_result_timeout,
        );
        registry.insert(token.clone(), Slot::Live(connection.clone()));
        Ok((token, connection, queued))
    }

    fn release(&self, token: &str) {
        lock(&self.registry).remove(token);
    }
}

async fn negotiate<H: Hub>(
    State(host): State<Arc<HostShared<H>>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(status) = host.gate(&headers, &query, AuthStage::Negotiate) {
        return status.into_response();
    }
    let version = match negotiate_version(query.get("negotiateVersion")) {
        Ok(version) => version,
        Err(error) => return Json(json!({ "error": error })).into_response(),
    };
    let (connection_id, token) = host.register_negotiated(version);
    let transports = json!([{ "transport": "WebSockets", "transferFormats": ["Text", "Binary"] }]);
    let body = if version >= 1 {
        json!({
            "negotiateVersion": 1,
            "connectionId": connection_id,
            "connectionToken": token,
            "availableTransports": transports,
        })
    } else {
        json!({
            "negotiateVersion": 0,
            "connectionId": connection_id,
            "availableTransports": transports,
        })
    };
    Json(body).into_response()
}

/// ASP.NET Core's version rules: absent → 0, above 1 → 1, non-integer or negative → error.
fn negotiate_version(requested: Option<&String>) -> Result<i64, String> {
    let Some(requested) = requested else {
        return Ok(0);
    };
    match requested.parse::<i64>() {
        Err(_) => Err("The client requested a non-integer protocol version.".to_owned()),
        Ok(version) if version < 0 => Err(format!(
            "The client requested version '{version}', but the server does not support this version."
        )),
        Ok(version) => Ok(version.min(1)),
    }
}

async fn upgrade<H: Hub>(
    State(host): State<Arc<HostShared<H>>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    websocket: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Some(status) = host.gate(&headers, &query, AuthStage::Upgrade) {
        return status.into_response();
    }
    let websocket = match websocket {
        Ok(websocket) => websocket,
        Err(rejection) => return rejection.into_response(),
    };
    let (token, connection, queued) = match host.open_connection(query.get("id")) {
        Ok(opened) => opened,
        Err(status) => return status.into_response(),
    };
    let on_failure = {
        let host = host.clone();
        let token = token.clone();
        move |error: axum::Error| {
            tracing::debug!(%error, "WebSocket upgrade failed");
            host.release(&token);
        }
    };
    websocket
        .on_failed_upgrade(on_failure)
        .on_upgrade(move |socket| async move {
            session::run(&host, &connection, queued, socket).await;
            host.release(&token);
        })
}

/// A 22-character random id, the length of ASP.NET Core's (not cryptographically strong:
/// this is a simulator).
fn random_id() -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(22)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiate_version_follows_aspnet_core() {
        assert_eq!(negotiate_version(None), Ok(0));
        assert_eq!(negotiate_version(Some(&"1".to_owned())), Ok(1));
        assert_eq!(negotiate_version(Some(&"7".to_owned())), Ok(1));
        assert_eq!(
            negotiate_version(Some(&"x".to_owned())),
            Err("The client requested a non-integer protocol version.".to_owned())
        );
        assert!(negotiate_version(Some(&"-1".to_owned())).is_err());
    }
}
