//! The client side: one [`Connection`] per hub, built by [`Connection::connect`].

mod callbacks;
mod negotiate;
mod stream;
mod task;
mod tls;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header::AUTHORIZATION};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{Connector, connect_async_tls_with_config};
use url::Url;

pub use callbacks::{Callback, CallbackReceiver};
pub use stream::HubStream;

use crate::codec::{self, CodecError, FrameDecoder, Message, Outcome};
use crate::error::{AuthStage, CloseReason, SignalrError};
use crate::lock;
use crate::transport::{Inbound, WsMessage as _};
use negotiate::{Negotiated, error_chain, redacted};
use stream::StreamSlot;
use task::{Counters, Limits, TaskParts, WsStream};

/// A bearer token (for example an API key). Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        AccessToken(token.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }

    /// `Bearer <token>`, marked sensitive so HTTP libraries never print it.
    fn bearer_header(&self) -> Result<HeaderValue, SignalrError> {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.0)).map_err(|_| {
            SignalrError::InvalidConfig(
                "the access token has characters not allowed in an HTTP header".to_owned(),
            )
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// Called for every malformed record the server sends (the record is skipped and the
/// connection kept), so an owner can count hostile input without the SignalR layer knowing
/// about metrics.
#[derive(Clone)]
pub struct MalformedRecordHook(Arc<dyn Fn(&CodecError) + Send + Sync>);

impl MalformedRecordHook {
    /// Wraps the function to call.
    pub fn new(hook: impl Fn(&CodecError) + Send + Sync + 'static) -> Self {
        MalformedRecordHook(Arc::new(hook))
    }

    pub(super) fn call(&self, error: &CodecError) {
        (self.0)(error);
    }
}

impl fmt::Debug for MalformedRecordHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MalformedRecordHook")
    }
}

/// How to reach a hub and how the connection behaves. Defaults follow the ASP.NET Core and JS
/// client defaults; tests shorten the intervals.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The hub URL (`https://host/hubs/event/v1`); `ws(s)` is accepted too.
    pub url: Url,
    /// Bearer token sent on negotiate and on the upgrade (header and `access_token` query).
    pub access_token: Option<AccessToken>,
    /// TLS settings; `None` builds one from the system's root certificates with the `ring`
    /// provider (no process-wide provider is needed).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Time limit for the negotiate request and for the WebSocket upgrade.
    pub http_timeout: Duration,
    /// Time limit for the SignalR handshake reply.
    pub handshake_timeout: Duration,
    /// A Ping is sent when nothing was sent for this long (and once right after the handshake).
    pub keep_alive_interval: Duration,
    /// The server is declared dead when no WS message arrived for this long.
    pub server_timeout: Duration,
    /// Time limit for one `invoke`.
    pub invoke_timeout: Duration,
    /// Items buffered per stream before the oldest is dropped.
    pub stream_buffer: usize,
    /// Callbacks queued and not yet received at which the connection is closed
    /// ([`SignalrError::CallbackBacklog`]).
    pub max_pending_callbacks: usize,
    /// Largest inbound WS message (and record) accepted; larger closes the connection
    /// ([`SignalrError::MessageTooLarge`]).
    pub max_message_bytes: usize,
    /// Told about every malformed record received (besides the warning logged).
    pub on_malformed_record: Option<MalformedRecordHook>,
}

impl ConnectOptions {
    /// Options with the defaults for `url` and no token.
    pub fn new(url: Url) -> Self {
        ConnectOptions {
            url,
            access_token: None,
            tls: None,
            http_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(15),
            keep_alive_interval: Duration::from_secs(15),
            server_timeout: Duration::from_secs(30),
            invoke_timeout: Duration::from_secs(30),
            stream_buffer: 64,
            max_pending_callbacks: 100_000,
            max_message_bytes: 8 * 1024 * 1024,
            on_malformed_record: None,
        }
    }

    /// The same options with a bearer token.
    pub fn with_access_token(mut self, token: impl Into<String>) -> Self {
        self.access_token = Some(AccessToken::new(token));
        self
    }

    /// Rejects settings that cannot work (a zero interval would ping in a busy loop).
    fn validate(&self) -> Result<(), SignalrError> {
        let durations = [
            ("http_timeout", self.http_timeout),
            ("handshake_timeout", self.handshake_timeout),
            ("keep_alive_interval", self.keep_alive_interval),
            ("server_timeout", self.server_timeout),
            ("invoke_timeout", self.invoke_timeout),
        ];
        if let Some((name, _)) = durations.iter().find(|(_, value)| value.is_zero()) {
            return Err(SignalrError::InvalidConfig(format!(
                "{name} must not be zero"
            )));
        }
        if self.max_message_bytes == 0 {
            return Err(SignalrError::InvalidConfig(
                "max_message_bytes must not be zero".to_owned(),
            ));
        }
        Ok(())
    }
}

/// Where a connection is in its life, published through [`Connection::state`].
#[derive(Debug, Clone)]
pub enum ConnectionState {
    /// Being built. A [`Connection`] exists only once connected, so it never reports this; it
    /// is here for owners that publish one state per hub across reconnects.
    Connecting,
    /// Usable.
    Connected,
    /// Ended for good; a reconnect is a new [`Connection`].
    Disconnected {
        /// Why it ended.
        reason: CloseReason,
    },
}

/// Keep-alive counters, for health reporting and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Pings sent to the server.
    pub pings_sent: u64,
    /// Pings received from the server.
    pub pings_received: u64,
}

/// What a handle asks the connection task to do.
enum Command {
    Invoke {
        invocation_id: String,
        record: String,
        reply: oneshot::Sender<Result<Outcome, SignalrError>>,
    },
    Stream {
        invocation_id: String,
        record: String,
        slot: Arc<StreamSlot>,
    },
    Send {
        record: String,
    },
    /// The caller stopped waiting (timeout or dropped future): a late Completion is ignored.
    Forget {
        invocation_id: String,
    },
    /// The stream handle was dropped: send CancelInvocation and ignore late items.
    CancelStream {
        invocation_id: String,
    },
    Close,
}

/// One live connection to a hub.
///
/// Every method takes `&self`; share it with an `Arc`. Dropping it closes the connection.
/// It never reconnects: when it ends (see [`Connection::closed`]) every pending call fails with
/// [`SignalrError::ConnectionLost`] and later calls fail at once; build a new one to reconnect.
pub struct Connection {
    commands: mpsc::UnboundedSender<Command>,
    state: watch::Receiver<ConnectionState>,
    callbacks: Mutex<Option<CallbackReceiver>>,
    next_invocation_id: AtomicU64,
    connection_id: String,
    invoke_timeout: Duration,
    stream_buffer: usize,
    counters: Arc<Counters>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("connection_id", &self.connection_id)
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Negotiates, opens the WebSocket, completes the handshake and starts the connection task.
    ///
    /// # Errors
    ///
    /// [`SignalrError::Unauthorized`] when the server refuses the token, a negotiate,
    /// transport or handshake error otherwise (see [`SignalrError::kind`]).
    pub async fn connect(options: ConnectOptions) -> Result<Connection, SignalrError> {
        options.validate()?;
        let tls = match &options.tls {
            Some(config) => config.clone(),
            None => tls::default_client_config()?,
        };
        let hub_url = negotiate::http_base_url(options.url.as_str())?;
        let http = http_client(&tls, options.http_timeout)?;
        let negotiated = negotiate::negotiate(&http, hub_url, options.access_token.clone()).await?;
        tracing::debug!(
            hub = %redacted(&negotiated.url),
            connection_id = %negotiated.connection_id,
            "negotiated"
        );
        let mut socket = open_websocket(&negotiated, tls, &options).await?;
        let mut decoder = FrameDecoder::new(Some(options.max_message_bytes));
        handshake(&mut socket, &mut decoder, &options).await?;
        Ok(Connection::start(
            socket,
            decoder,
            negotiated.connection_id,
            &options,
        ))
    }

    fn start(
        socket: WsStream,
        decoder: FrameDecoder,
        connection_id: String,
        options: &ConnectOptions,
    ) -> Connection {
        let (commands, command_queue) = mpsc::unbounded_channel();
        let (state_sender, state) = watch::channel(ConnectionState::Connected);
        let (callback_sender, callback_receiver) =
            callbacks::callback_queue(options.max_pending_callbacks);
        let counters = Arc::new(Counters::default());
        let parts = TaskParts {
            socket,
            decoder,
            commands: command_queue,
            callbacks: callback_sender,
            state: state_sender,
            counters: counters.clone(),
            limits: Limits {
                keep_alive_interval: options.keep_alive_interval,
                server_timeout: options.server_timeout,
                max_message_bytes: options.max_message_bytes,
            },
            on_malformed_record: options.on_malformed_record.clone(),
        };
        let span = tracing::info_span!("signalr", %connection_id);
        tokio::spawn(tracing::Instrument::instrument(task::run(parts), span));
        Connection {
            commands,
            state,
            callbacks: Mutex::new(Some(callback_receiver)),
            next_invocation_id: AtomicU64::new(0),
            connection_id,
            invoke_timeout: options.invoke_timeout,
            stream_buffer: options.stream_buffer,
            counters,
        }
    }

    /// The public connection id from negotiate, to correlate with server logs.
    pub fn connection_id(&self) -> &str {
        &self.connection_id
    }

    /// Calls a hub method and returns its raw result (`Null` for a void or null result).
    ///
    /// On timeout the id is forgotten and [`SignalrError::Timeout`] is returned: whether the
    /// server applied the call is then unknown.
    ///
    /// # Errors
    ///
    /// [`SignalrError::Timeout`], [`SignalrError::ConnectionLost`], or the server's error text
    /// as [`SignalrError::Server`].
    pub async fn invoke_raw(&self, method: &str, args: Vec<Value>) -> Result<Value, SignalrError> {
        let invocation_id = self.next_invocation_id();
        let record = codec::encode(&Message::Invocation {
            invocation_id: Some(invocation_id.clone()),
            target: method.to_owned(),
            arguments: args,
            stream_ids: Vec::new(),
        });
        let (reply, outcome) = oneshot::channel();
        self.submit(Command::Invoke {
            invocation_id: invocation_id.clone(),
            record,
            reply,
        })?;
        let pending = ForgetOnDrop {
            commands: &self.commands,
            invocation_id: Some(invocation_id),
        };
        let outcome = match timeout(self.invoke_timeout, outcome).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(self.lost()),
            Err(_) => {
                return Err(SignalrError::Timeout {
                    method: method.to_owned(),
                    after: self.invoke_timeout,
                });
            }
        };
        pending.disarm();
        task::outcome_value(method, outcome?)
    }

    /// Calls a hub method and deserializes its result (`()` or `Option<_>` for void methods).
    ///
    /// # Errors
    ///
    /// As [`Connection::invoke_raw`], and [`SignalrError::InvalidResult`] when the result does
    /// not deserialize into `T`.
    pub async fn invoke<T: DeserializeOwned>(
        &self,
        method: &str,
        args: Vec<Value>,
    ) -> Result<T, SignalrError> {
        let value = self.invoke_raw(method, args).await?;
        serde_json::from_value(value).map_err(|error| SignalrError::InvalidResult {
            method: method.to_owned(),
            detail: error.to_string(),
        })
    }

    /// Calls a hub method without waiting for (or getting) any reply. `Ok` means queued for
    /// sending, not delivered.
    ///
    /// # Errors
    ///
    /// [`SignalrError::ConnectionLost`] when the connection has ended.
    pub fn send(&self, method: &str, args: Vec<Value>) -> Result<(), SignalrError> {
        let record = codec::encode(&Message::Invocation {
            invocation_id: None,
            target: method.to_owned(),
            arguments: args,
            stream_ids: Vec::new(),
        });
        self.submit(Command::Send { record })
    }

    /// Starts a server→client stream. A server-side refusal (unknown method, error) arrives as
    /// the stream's `Err` item.
    ///
    /// # Errors
    ///
    /// [`SignalrError::ConnectionLost`] when the connection has ended.
    pub fn stream<T: DeserializeOwned>(
        &self,
        method: &str,
        args: Vec<Value>,
    ) -> Result<HubStream<T>, SignalrError> {
        let invocation_id = self.next_invocation_id();
        let record = codec::encode(&Message::StreamInvocation {
            invocation_id: invocation_id.clone(),
            target: method.to_owned(),
            arguments: args,
            stream_ids: Vec::new(),
        });
        let slot = StreamSlot::new(method, self.stream_buffer);
        self.submit(Command::Stream {
            invocation_id: invocation_id.clone(),
            record,
            slot: slot.clone(),
        })?;
        Ok(HubStream::new(invocation_id, slot, self.commands.clone()))
    }

    /// The ordered queue of server→client invocations. Only the first call gets it: one
    /// consumer sees every callback in arrival order. Callbacks that arrive before it is taken
    /// are kept.
    pub fn take_callbacks(&self) -> Option<CallbackReceiver> {
        lock(&self.callbacks).take()
    }

    /// The connection state, as a watch for health reporting.
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    /// Resolves when the connection has ended, with the reason. Pending calls have already
    /// failed by then.
    pub async fn closed(&self) -> CloseReason {
        let mut state = self.state.clone();
        let ended = state
            .wait_for(|state| matches!(state, ConnectionState::Disconnected { .. }))
            .await;
        match ended.as_deref() {
            Ok(ConnectionState::Disconnected { reason }) => reason.clone(),
            // The task publishes `Disconnected` before it ends, so this is a task that died.
            _ => CloseReason::failure(SignalrError::Transport(
                "the connection task ended".to_owned(),
            )),
        }
    }

    /// Closes gracefully (`{"type":7}`, then WS close 1000) and waits until the socket is done.
    pub async fn close(&self) -> CloseReason {
        let _ = self.commands.send(Command::Close);
        let mut state = self.state.clone();
        // The task drops its state sender only when it is completely finished.
        while state.changed().await.is_ok() {}
        self.closed().await
    }

    /// Ping counters.
    pub fn stats(&self) -> ConnectionStats {
        ConnectionStats {
            pings_sent: self.counters.pings_sent.load(Ordering::Relaxed),
            pings_received: self.counters.pings_received.load(Ordering::Relaxed),
        }
    }

    fn next_invocation_id(&self) -> String {
        self.next_invocation_id
            .fetch_add(1, Ordering::Relaxed)
            .to_string()
    }

    fn submit(&self, command: Command) -> Result<(), SignalrError> {
        self.commands.send(command).map_err(|_| self.lost())
    }

    /// The error for a call that met a finished connection.
    fn lost(&self) -> SignalrError {
        match &*self.state.borrow() {
            ConnectionState::Disconnected { reason } => reason.clone().into(),
            ConnectionState::Connecting | ConnectionState::Connected => CloseReason::failure(
                SignalrError::Transport("the connection task ended".to_owned()),
            )
            .into(),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Close);
    }
}

/// Forgets a pending invocation when its caller stops waiting (timeout or cancelled future),
/// so the pending map never keeps ids nobody waits for.
struct ForgetOnDrop<'a> {
    commands: &'a mpsc::UnboundedSender<Command>,
    invocation_id: Option<String>,
}

impl ForgetOnDrop<'_> {
    fn disarm(mut self) {
        self.invocation_id = None;
    }
}

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(invocation_id) = self.invocation_id.take() {
            let _ = self.commands.send(Command::Forget { invocation_id });
        }
    }
}

fn http_client(
    tls: &Arc<rustls::ClientConfig>,
    request_timeout: Duration,
) -> Result<reqwest::Client, SignalrError> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(rustls::ClientConfig::clone(tls))
        .timeout(request_timeout)
        .user_agent(concat!(
            env!("CARGO_PKG_NAME"),
            "/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .map_err(|error| SignalrError::Tls(format!("HTTP client: {}", error_chain(&error))))
}

async fn open_websocket(
    negotiated: &Negotiated,
    tls: Arc<rustls::ClientConfig>,
    options: &ConnectOptions,
) -> Result<WsStream, SignalrError> {
    let url = negotiate::websocket_url(
        &negotiated.url,
        &negotiated.connection_token,
        negotiated.access_token.as_ref(),
    )?;
    let mut request = url.as_str().into_client_request().map_err(|error| {
        SignalrError::InvalidConfig(format!("cannot build the WebSocket request: {error}"))
    })?;
    if let Some(token) = &negotiated.access_token {
        request
            .headers_mut()
            .insert(AUTHORIZATION, token.bearer_header()?);
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(options.max_message_bytes))
        .max_frame_size(Some(options.max_message_bytes));
    let connecting =
        connect_async_tls_with_config(request, Some(config), true, Some(Connector::Rustls(tls)));
    let (socket, _) = timeout(options.http_timeout, connecting)
        .await
        .map_err(|_| SignalrError::Transport("the WebSocket upgrade timed out".to_owned()))?
        .map_err(upgrade_error)?;
    Ok(socket)
}

fn upgrade_error(error: tungstenite::Error) -> SignalrError {
    match error {
        tungstenite::Error::Http(response) => match response.status().as_u16() {
            status @ (401 | 403) => SignalrError::Unauthorized {
                stage: AuthStage::Upgrade,
                status,
            },
            status => SignalrError::Transport(format!(
                "the WebSocket upgrade was answered with HTTP {status}"
            )),
        },
        other => {
            SignalrError::Transport(format!("WebSocket upgrade failed: {}", error_chain(&other)))
        }
    }
}

/// Sends the JSON handshake and waits for the reply. Records after the reply's separator stay
/// in `decoder` for the connection task.
async fn handshake(
    socket: &mut WsStream,
    decoder: &mut FrameDecoder,
    options: &ConnectOptions,
) -> Result<(), SignalrError> {
    socket
        .send(WsMessage::text(codec::JSON_HANDSHAKE_REQUEST))
        .await
        .map_err(|error| SignalrError::Handshake(format!("sending the request failed: {error}")))?;
    timeout(options.handshake_timeout, handshake_reply(socket, decoder))
        .await
        .map_err(|_| {
            SignalrError::Handshake(format!("no reply within {:?}", options.handshake_timeout))
        })?
}

async fn handshake_reply(
    socket: &mut WsStream,
    decoder: &mut FrameDecoder,
) -> Result<(), SignalrError> {
    loop {
        if let Some(record) = decoder.next_record() {
            let refused = |text: String| SignalrError::Handshake(text);
            let record = record.map_err(|error| refused(error.to_string()))?;
            return codec::decode_handshake_response(record)
                .map_err(|error| refused(error.to_string()))?
                .map_err(refused);
        }
        let message = match socket.next().await {
            Some(Ok(message)) => message,
            Some(Err(error)) => {
                return Err(SignalrError::Handshake(format!(
                    "reading the reply failed: {error}"
                )));
            }
            None => {
                return Err(SignalrError::Handshake(
                    "the server closed the socket before replying".to_owned(),
                ));
            }
        };
        match message.inbound() {
            Inbound::Data(payload) => decoder.push(payload),
            Inbound::Close => {
                return Err(SignalrError::Handshake(
                    "the server closed the WebSocket before replying".to_owned(),
                ));
            }
            Inbound::Control => {}
        }
    }
}
