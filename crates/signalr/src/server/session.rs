//! One server-side connection from the upgrade to the end: handshake, then three tasks.
//!
//! - the reader (this task): decodes records, answers pings and cancels, starts streams, runs
//!   the client timeout, and queues invocations for
//! - the invoker: calls the hub for one invocation at a time, in order;
//! - the writer: sends queued records coalesced into Text messages, pings, and the goodbye.
//!
//! Streams run in tasks of their own. Everything stops on the connection's `closing` token.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocket};
use futures_util::StreamExt;
use futures_util::stream::{SplitSink, SplitStream};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;

use super::{ClientTimeoutMode, HostShared, Hub, HubItems, Reply, ServerConnection};
use crate::codec::{
    self, CodecError, Decoded, FrameDecoder, MAX_JSON_PROTOCOL_VERSION, Message, Outcome,
};
use crate::transport::{self, Inbound, MAX_BATCH_RECORDS, WsMessage as _};

/// How long the goodbye (last records, Close, WS close) may take (ASP.NET Core `CloseTimeout`).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Invocations read ahead of the one being handled. When full, the reader waits, as ASP.NET
/// Core's reader waits for each invocation.
const INVOCATION_QUEUE: usize = 32;

/// ASP.NET Core's Close error text for protocol violations (details only in detailed-errors mode).
const CLOSED_WITH_ERROR: &str = "Connection closed with an error.";

/// One queued type-1 invocation.
struct Call {
    invocation_id: Option<String>,
    target: String,
    arguments: Vec<Value>,
}

/// Serves an upgraded socket until the connection is over.
pub(super) async fn run<H: Hub>(
    host: &Arc<HostShared<H>>,
    connection: &ServerConnection,
    queued: mpsc::Receiver<String>,
    mut socket: WebSocket,
) {
    let mut decoder = FrameDecoder::new(host.options.max_record_bytes);
    let handshake = accept_handshake(&mut socket, &mut decoder, host.options.handshake_timeout);
    if let Err(refusal) = handshake.await {
        refuse_handshake(socket, refusal).await;
        connection.abort();
        return;
    }
    connection.queue_first(codec::HANDSHAKE_ACCEPTED);
    let (sink, stream) = socket.split();
    let writer = tokio::spawn(write_loop(
        sink,
        queued,
        connection.clone(),
        host.options.keep_alive_interval,
    ));
    let (calls, call_queue) = mpsc::channel(INVOCATION_QUEUE);
    let invoker = tokio::spawn(invoke_loop(host.clone(), connection.clone(), call_queue));
    host.hub.on_connected(connection).await;
    let mut reader = Reader::new(host, connection, stream, decoder, calls);
    reader.run().await;
    // The socket goes once the writer lets go of its half too, even if a hub call still runs.
    drop(reader);
    // Whatever ended the reader, everything else stops now (no-op if already closing).
    connection.close(None, false);
    let _ = invoker.await;
    let _ = writer.await;
    host.hub.on_disconnected(connection).await;
}

/// Waits for the handshake request; `Err(Some(text))` is the refusal to send, `Err(None)` means
/// the socket is already gone.
async fn accept_handshake(
    socket: &mut WebSocket,
    decoder: &mut FrameDecoder,
    limit: Duration,
) -> Result<(), Option<String>> {
    let read = async {
        loop {
            if let Some(record) = decoder.next_record() {
                return check_handshake(record);
            }
            let message = match socket.recv().await {
                Some(Ok(message)) => message,
                Some(Err(_)) | None => return Err(None),
            };
            match message.inbound() {
                Inbound::Data(payload) => decoder.push(payload),
                Inbound::Close => return Err(None),
                Inbound::Control => {}
            }
        }
    };
    timeout(limit, read)
        .await
        .unwrap_or_else(|_| Err(Some("Handshake was canceled.".to_owned())))
}

/// ASP.NET Core's handshake rules and texts.
fn check_handshake(record: Result<&[u8], CodecError>) -> Result<(), Option<String>> {
    // An oversized request is cancelled, like ASP.NET Core's size-limited handshake read.
    let record = record.map_err(|_| Some("Handshake was canceled.".to_owned()))?;
    let request = codec::decode_handshake_request(record).map_err(|_| {
        Some("An unexpected error occurred during connection handshake.".to_owned())
    })?;
    if request.protocol != "json" {
        return Err(Some(format!(
            "The protocol '{}' is not supported.",
            request.protocol
        )));
    }
    if request.version > MAX_JSON_PROTOCOL_VERSION {
        return Err(Some(format!(
            "The server does not support version {} of the 'json' protocol.",
            request.version
        )));
    }
    Ok(())
}

async fn refuse_handshake(mut socket: WebSocket, refusal: Option<String>) {
    let Some(error) = refusal else {
        return;
    };
    tracing::debug!(%error, "handshake refused");
    let goodbye = async {
        socket
            .send(WsMessage::from(codec::encode_handshake_response(Some(
                &error,
            ))))
            .await?;
        transport::send_normal_close(&mut socket).await
    };
    let _ = timeout(CLOSE_TIMEOUT, goodbye).await;
}

/// Sends queued records and pings until the connection closes, then the goodbye (unless it
/// was aborted). A write failure aborts the connection.
async fn write_loop(
    mut sink: SplitSink<WebSocket, WsMessage>,
    mut queued: mpsc::Receiver<String>,
    connection: ServerConnection,
    keep_alive_interval: Duration,
) {
    let aborted = connection.aborted_token().clone();
    let writing = async {
        let mut batch = Vec::new();
        // `interval` panics on a zero period; a zero setting means "as often as possible".
        let period = keep_alive_interval.max(Duration::from_millis(1));
        let mut pings = tokio::time::interval_at(Instant::now() + period, period);
        pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = connection.closing_token().cancelled() => break,
                received = queued.recv_many(&mut batch, MAX_BATCH_RECORDS) => {
                    if received == 0 {
                        break;
                    }
                }
                _ = pings.tick() => {
                    batch.push(codec::PING_RECORD.to_owned());
                    connection.count_ping_sent();
                }
            }
            transport::send_records(&mut sink, &mut batch).await?;
        }
        say_goodbye(&mut sink, &mut queued, &connection).await
    };
    // A client that stopped reading must not keep the connection alive forever: once closing,
    // the goodbye gets `CLOSE_TIMEOUT`, then the socket is dropped.
    let goodbye_deadline = async {
        connection.closing_token().cancelled().await;
        tokio::time::sleep(CLOSE_TIMEOUT).await;
    };
    tokio::select! {
        biased;
        () = aborted.cancelled() => {}
        () = goodbye_deadline => tracing::debug!("the goodbye timed out"),
        written = writing => {
            if let Err(error) = written {
                tracing::debug!(%error, "WebSocket write failed");
                connection.abort();
            }
        }
    }
}

/// The last queued records, the Close message (if any), then WS close 1000.
async fn say_goodbye(
    sink: &mut SplitSink<WebSocket, WsMessage>,
    queued: &mut mpsc::Receiver<String>,
    connection: &ServerConnection,
) -> Result<(), axum::Error> {
    let mut batch = Vec::new();
    while let Ok(record) = queued.try_recv() {
        batch.push(record);
    }
    batch.extend(connection.take_farewell());
    transport::send_records(sink, &mut batch).await?;
    transport::send_normal_close(sink).await
}

/// Calls the hub for each queued invocation, one at a time. A running call is never cut short
/// by a disconnect (its effect may matter); the queue behind it is dropped.
async fn invoke_loop<H: Hub>(
    host: Arc<HostShared<H>>,
    connection: ServerConnection,
    mut calls: mpsc::Receiver<Call>,
) {
    loop {
        let call = tokio::select! {
            biased;
            () = connection.closing_token().cancelled() => return,
            call = calls.recv() => match call {
                Some(call) => call,
                None => return,
            },
        };
        let reply = host
            .hub
            .invoke(&connection, &call.target, call.arguments)
            .await;
        let Some(invocation_id) = call.invocation_id else {
            continue;
        };
        let outcome = match reply {
            Reply::Value(value) => Outcome::Value(value),
            Reply::Error(error) => Outcome::Error(error),
            Reply::Swallow => continue,
        };
        let completion = Message::Completion {
            invocation_id,
            outcome,
        };
        if connection.send_message(&completion).await.is_err() {
            return;
        }
    }
}

/// Sends a stream's items, then its Completion; stops early on cancel or disconnect (the hub's
/// stream is dropped at once, so its producer stops).
async fn stream_loop(
    connection: ServerConnection,
    invocation_id: String,
    mut items: HubItems,
    cancel: CancellationToken,
) {
    let outcome = loop {
        let next = tokio::select! {
            biased;
            () = cancel.cancelled() => break Outcome::Empty,
            next = items.next() => next,
        };
        let item = match next {
            Some(Ok(item)) => item,
            Some(Err(error)) => break Outcome::Error(error),
            None => break Outcome::Empty,
        };
        let message = Message::StreamItem {
            invocation_id: invocation_id.clone(),
            item,
        };
        tokio::select! {
            biased;
            () = cancel.cancelled() => break Outcome::Empty,
            sent = connection.send_message(&message) => if sent.is_err() {
                return;
            },
        }
    };
    drop(items);
    connection.forget_stream(&invocation_id);
    let _ = connection
        .send_message(&Message::Completion {
            invocation_id,
            outcome,
        })
        .await;
}

/// How the reader loop ends.
enum End {
    /// The connection is already closing (requested elsewhere).
    Closing,
    /// The socket is gone: no goodbye possible.
    Gone,
    /// Close with this Close message.
    Close {
        error: Option<String>,
        allow_reconnect: bool,
    },
}

impl End {
    fn protocol_violation() -> Self {
        End::Close {
            error: Some(CLOSED_WITH_ERROR.to_owned()),
            allow_reconnect: true,
        }
    }
}

struct Reader<'a, H> {
    host: &'a Arc<HostShared<H>>,
    connection: &'a ServerConnection,
    stream: SplitStream<WebSocket>,
    decoder: FrameDecoder,
    calls: mpsc::Sender<Call>,
    timeout_armed: bool,
    last_message: Instant,
}

impl<'a, H: Hub> Reader<'a, H> {
    fn new(
        host: &'a Arc<HostShared<H>>,
        connection: &'a ServerConnection,
        stream: SplitStream<WebSocket>,
        decoder: FrameDecoder,
        calls: mpsc::Sender<Call>,
    ) -> Self {
        Reader {
            timeout_armed: host.options.client_timeout_mode == ClientTimeoutMode::Strict,
            host,
            connection,
            stream,
            decoder,
            calls,
            last_message: Instant::now(),
        }
    }

    async fn run(&mut self) {
        // Records that shared the handshake's WS message come first.
        let mut step = self.drain_records().await;
        while step.is_ok() {
            let deadline = self.last_message + self.host.options.client_timeout;
            step = tokio::select! {
                biased;
                () = self.connection.closing_token().cancelled() => Err(End::Closing),
                () = sleep_until(deadline), if self.timeout_armed => Err(End::Close {
                    error: None,
                    allow_reconnect: true,
                }),
                inbound = self.stream.next() => match inbound {
                    Some(Ok(message)) => self.on_ws_message(&message).await,
                    Some(Err(_)) | None => Err(End::Gone),
                },
            };
        }
        match step {
            Err(End::Gone) => self.connection.abort(),
            Err(End::Close {
                error,
                allow_reconnect,
            }) => self.connection.close(error, allow_reconnect),
            Err(End::Closing) | Ok(()) => {}
        }
    }

    async fn on_ws_message(&mut self, message: &WsMessage) -> Result<(), End> {
        match message.inbound() {
            Inbound::Data(payload) => {
                self.decoder.push(payload);
                self.drain_records().await
            }
            Inbound::Close => Err(End::Gone),
            Inbound::Control => Ok(()),
        }
    }

    async fn drain_records(&mut self) -> Result<(), End> {
        while let Some(record) = self.decoder.next_record() {
            let decoded = record.and_then(codec::decode);
            self.last_message = Instant::now();
            match decoded {
                Ok(Decoded::Message(message)) => self.on_message(message).await?,
                Ok(Decoded::Ignored { kind }) => {
                    tracing::debug!(kind, "ignoring a message of unknown type");
                }
                Err(error) => {
                    tracing::debug!(%error, "closing: the client broke the protocol");
                    return Err(End::protocol_violation());
                }
            }
        }
        Ok(())
    }

    async fn on_message(&mut self, message: Message) -> Result<(), End> {
        match message {
            Message::Invocation {
                invocation_id,
                target,
                arguments,
                ..
            } => {
                let call = Call {
                    invocation_id,
                    target,
                    arguments,
                };
                // Fails only when the invoker stopped, i.e. the connection is closing.
                self.calls.send(call).await.map_err(|_| End::Closing)?;
            }
            Message::StreamInvocation {
                invocation_id,
                target,
                arguments,
                ..
            } => self.start_stream(invocation_id, &target, arguments).await?,
            Message::CancelInvocation { invocation_id } => {
                self.connection.cancel_stream(&invocation_id);
            }
            Message::Completion {
                invocation_id,
                outcome,
            } => self
                .connection
                .complete_client_result(&invocation_id, outcome),
            Message::Ping => {
                self.connection.count_ping_received();
                self.timeout_armed = true;
            }
            Message::Close { .. } if self.host.ignore_close.load(Ordering::Relaxed) => {
                tracing::debug!("ignoring the client's Close: holding the connection unanswered");
                self.connection.closing_token().cancelled().await;
                return Err(End::Closing);
            }
            Message::Close { .. } => {
                return Err(End::Close {
                    error: None,
                    allow_reconnect: false,
                });
            }
            Message::StreamItem { .. } => {
                tracing::debug!("ignoring an upload stream item: upload streams are not supported");
            }
        }
        Ok(())
    }

    async fn start_stream(
        &mut self,
        invocation_id: String,
        target: &str,
        arguments: Vec<Value>,
    ) -> Result<(), End> {
        let Some(cancel) = self.connection.register_stream(&invocation_id) else {
            let error = format!("Invocation ID '{invocation_id}' is already in use.");
            return self.complete_with_error(invocation_id, error).await;
        };
        match self.host.hub.stream(self.connection, target, arguments) {
            Ok(items) => {
                tokio::spawn(stream_loop(
                    self.connection.clone(),
                    invocation_id,
                    items,
                    cancel,
                ));
                Ok(())
            }
            Err(error) => {
                self.connection.forget_stream(&invocation_id);
                self.complete_with_error(invocation_id, error).await
            }
        }
    }

    async fn complete_with_error(&self, invocation_id: String, error: String) -> Result<(), End> {
        let completion = Message::Completion {
            invocation_id,
            outcome: Outcome::Error(error),
        };
        self.connection
            .send_message(&completion)
            .await
            .map_err(|_| End::Closing)
    }
}
