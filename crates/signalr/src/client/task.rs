//! The connection task: the only owner of the socket.
//!
//! One `select!` loop reads WS messages, takes commands from the handles, and runs the two
//! timers (keep-alive, server timeout). Writing happens in a future owned by the same task, fed
//! through a queue that never makes the reader wait, so a slow write never stops the reader,
//! and the reader never waits on a consumer (callbacks are unbounded up to a cap, streams drop
//! the oldest item). The write queue is capped too: a server that stops reading while it keeps
//! sending (each client-result invocation needs an answer) ends the connection at
//! [`MAX_UNSENT_RECORDS`] instead of growing it without bound.

use std::collections::HashMap;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::{self, Message as WsMessage, error::CapacityError};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::callbacks::{Callback, CallbackSender};
use super::stream::StreamSlot;
use super::{Command, ConnectionState, MalformedRecordHook};
use crate::codec::{self, CodecError, Decoded, FrameDecoder, Message, Outcome};
use crate::error::{CloseReason, SignalrError};
use crate::transport::{self, Inbound, MAX_BATCH_RECORDS, WsMessage as _};

pub(super) type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a graceful close may take (the WS `CloseTimeout` of ASP.NET Core).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Records queued for the writer and not yet written at which the connection is ended: the
/// server stopped reading. Far above what a working connection queues (a few calls in flight,
/// one record per stream at a reconnect), and a few MB at most.
const MAX_UNSENT_RECORDS: usize = 10_000;

/// The answer JS gives to a client-result invocation it has no handler for.
const NO_CLIENT_RESULT: &str = "Client didn't provide a result.";

/// Ping counters, shared with the handle for `Connection::stats`.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub pings_sent: AtomicU64,
    pub pings_received: AtomicU64,
}

/// Timing and limits of one connection.
pub(super) struct Limits {
    pub keep_alive_interval: Duration,
    pub server_timeout: Duration,
    pub max_message_bytes: usize,
}

/// How to take leave of the server once the loop ends.
enum Farewell {
    /// We end it: `{"type":7}`, then WS close 1000.
    CloseMessage,
    /// The server ended it: answer with WS close 1000.
    WsClose,
    /// The socket is unusable or the server is gone: just drop it.
    Drop,
}

struct Ending {
    reason: CloseReason,
    farewell: Farewell,
}

impl Ending {
    fn abrupt(error: SignalrError) -> Self {
        Ending {
            reason: CloseReason::failure(error),
            farewell: Farewell::Drop,
        }
    }
}

pub(super) struct ConnectionTask {
    reader: SplitStream<WsStream>,
    outbound: mpsc::UnboundedSender<String>,
    /// Records queued for the writer and not yet written (see [`MAX_UNSENT_RECORDS`]).
    unsent: Arc<AtomicUsize>,
    decoder: FrameDecoder,
    commands: mpsc::UnboundedReceiver<Command>,
    invocations: HashMap<String, oneshot::Sender<Result<Outcome, SignalrError>>>,
    streams: HashMap<String, Arc<StreamSlot>>,
    callbacks: CallbackSender,
    state: watch::Sender<ConnectionState>,
    counters: Arc<Counters>,
    limits: Limits,
    last_sent: Instant,
    last_received: Instant,
    on_malformed_record: Option<MalformedRecordHook>,
}

/// Everything the task is built from.
pub(super) struct TaskParts {
    pub socket: WsStream,
    pub decoder: FrameDecoder,
    pub commands: mpsc::UnboundedReceiver<Command>,
    pub callbacks: CallbackSender,
    pub state: watch::Sender<ConnectionState>,
    pub counters: Arc<Counters>,
    pub limits: Limits,
    pub on_malformed_record: Option<MalformedRecordHook>,
}

/// Runs a connection from the end of its handshake until it is fully closed.
pub(super) async fn run(parts: TaskParts) {
    let (sink, reader) = parts.socket.split();
    let (outbound, queued) = mpsc::unbounded_channel();
    let unsent = Arc::new(AtomicUsize::new(0));
    let now = Instant::now();
    let mut task = ConnectionTask {
        reader,
        outbound,
        unsent: unsent.clone(),
        decoder: parts.decoder,
        commands: parts.commands,
        invocations: HashMap::new(),
        streams: HashMap::new(),
        callbacks: parts.callbacks,
        state: parts.state,
        counters: parts.counters,
        limits: parts.limits,
        on_malformed_record: parts.on_malformed_record,
        last_sent: now,
        last_received: now,
    };
    let mut writer = pin!(write_queued(sink, queued, unsent));
    let ending = task.serve(writer.as_mut()).await;
    task.shut_down(ending, writer).await;
}

/// Sends queued records, coalesced, until the queue closes; then closes the WS with 1000.
/// `unsent` goes down once records are written.
async fn write_queued(
    mut sink: SplitSink<WsStream, WsMessage>,
    mut queued: mpsc::UnboundedReceiver<String>,
    unsent: Arc<AtomicUsize>,
) -> Result<(), tungstenite::Error> {
    let mut batch = Vec::new();
    while queued.recv_many(&mut batch, MAX_BATCH_RECORDS).await > 0 {
        let taken = batch.len();
        transport::send_records(&mut sink, &mut batch).await?;
        unsent.fetch_sub(taken, Ordering::Relaxed);
    }
    transport::send_normal_close(&mut sink).await?;
    sink.close().await
}

impl ConnectionTask {
    async fn serve(
        &mut self,
        mut writer: Pin<&mut impl Future<Output = Result<(), tungstenite::Error>>>,
    ) -> Ending {
        self.send_ping();
        if let Err(ending) = self.drain_records() {
            return ending;
        }
        let mut commands = Vec::new();
        loop {
            let ping_at = self.last_sent + self.limits.keep_alive_interval;
            let dead_at = self.last_received + self.limits.server_timeout;
            let step = tokio::select! {
                inbound = self.reader.next() => self.on_inbound(inbound),
                received = self.commands.recv_many(&mut commands, MAX_BATCH_RECORDS) => {
                    self.on_commands(received, &mut commands)
                }
                written = writer.as_mut() => Err(writer_ended(written)),
                () = sleep_until(ping_at) => {
                    self.send_ping();
                    Ok(())
                }
                () = sleep_until(dead_at) => Err(Ending::abrupt(SignalrError::ServerTimeout(
                    self.limits.server_timeout,
                ))),
            };
            if let Err(ending) = step {
                return ending;
            }
            if self.unsent.load(Ordering::Relaxed) > MAX_UNSENT_RECORDS {
                return Ending::abrupt(SignalrError::Transport(format!(
                    "the server stopped reading: more than {MAX_UNSENT_RECORDS} records unsent"
                )));
            }
        }
    }

    fn on_inbound(
        &mut self,
        inbound: Option<Result<WsMessage, tungstenite::Error>>,
    ) -> Result<(), Ending> {
        let message = match inbound {
            Some(Ok(message)) => message,
            Some(Err(error)) => return Err(Ending::abrupt(self.read_error(error))),
            None => {
                return Err(Ending::abrupt(SignalrError::Transport(
                    "the server dropped the socket".to_owned(),
                )));
            }
        };
        match message.inbound() {
            Inbound::Data(payload) => {
                self.last_received = Instant::now();
                self.decoder.push(payload);
                self.drain_records()
            }
            Inbound::Close => Err(Ending {
                reason: CloseReason::failure(SignalrError::Transport(
                    "the server closed the WebSocket without a Close message".to_owned(),
                )),
                farewell: Farewell::WsClose,
            }),
            Inbound::Control => Ok(()),
        }
    }

    fn read_error(&self, error: tungstenite::Error) -> SignalrError {
        match error {
            tungstenite::Error::Capacity(CapacityError::MessageTooLong { .. }) => {
                SignalrError::MessageTooLarge {
                    limit: self.limits.max_message_bytes,
                }
            }
            other => SignalrError::Transport(format!("WebSocket read failed: {other}")),
        }
    }

    /// Handles every complete record buffered so far, in order; a bad record is logged and
    /// skipped, the others still count.
    fn drain_records(&mut self) -> Result<(), Ending> {
        while let Some(record) = self.decoder.next_record() {
            match record.and_then(codec::decode) {
                Ok(Decoded::Message(message)) => self.on_message(message)?,
                Ok(Decoded::Ignored { kind }) => {
                    tracing::debug!(kind, "ignoring a message of unknown type");
                }
                Err(CodecError::RecordTooLarge { .. }) => {
                    return Err(Ending::abrupt(SignalrError::MessageTooLarge {
                        limit: self.limits.max_message_bytes,
                    }));
                }
                Err(error) => self.on_bad_record(error),
            }
        }
        if self.decoder.partial_len() > 0 {
            tracing::debug!(
                bytes = self.decoder.partial_len(),
                "WS message ended inside a record; keeping the rest for the next one"
            );
        }
        Ok(())
    }

    fn on_message(&mut self, message: Message) -> Result<(), Ending> {
        match message {
            Message::Invocation {
                invocation_id: None,
                target,
                arguments,
                ..
            } => self
                .callbacks
                .deliver(Callback { target, arguments })
                .map_err(|error| Ending {
                    reason: CloseReason::failure(error),
                    farewell: Farewell::CloseMessage,
                })?,
            Message::Invocation {
                invocation_id: Some(invocation_id),
                target,
                ..
            } => {
                tracing::debug!(%target, "the server asked for a client result; none is provided");
                self.send_message(&Message::Completion {
                    invocation_id,
                    outcome: Outcome::Error(NO_CLIENT_RESULT.to_owned()),
                });
            }
            Message::StreamItem {
                invocation_id,
                item,
            } => {
                if let Some(stream) = self.streams.get(&invocation_id) {
                    stream.push(item);
                }
            }
            Message::Completion {
                invocation_id,
                outcome,
            } => self.complete(&invocation_id, outcome),
            Message::Ping => {
                self.counters.pings_received.fetch_add(1, Ordering::Relaxed);
            }
            Message::Close {
                error,
                allow_reconnect,
            } => {
                return Err(Ending {
                    reason: CloseReason {
                        error: Some(SignalrError::ServerClosed { message: error }),
                        allow_reconnect,
                    },
                    farewell: Farewell::WsClose,
                });
            }
            other @ (Message::StreamInvocation { .. } | Message::CancelInvocation { .. }) => {
                tracing::debug!(kind = other.kind(), "ignoring a message servers never send");
            }
        }
        Ok(())
    }

    fn complete(&mut self, invocation_id: &str, outcome: Outcome) {
        if let Some(reply) = self.invocations.remove(invocation_id) {
            // The caller may have given up meanwhile; then nobody needs the outcome.
            let _ = reply.send(Ok(outcome));
        } else if let Some(stream) = self.streams.remove(invocation_id) {
            let error = match outcome {
                Outcome::Error(message) => Some(SignalrError::Hub {
                    method: stream.method().to_owned(),
                    message,
                }),
                Outcome::Empty | Outcome::Value(_) => None,
            };
            stream.finish(error);
        } else {
            tracing::trace!(
                invocation_id,
                "completion for an unknown invocation ignored"
            );
        }
    }

    /// A malformed record that names a pending call fails that call instead of leaving it to
    /// its timeout.
    fn on_bad_record(&mut self, error: CodecError) {
        tracing::warn!(%error, "skipping a malformed record");
        if let Some(hook) = &self.on_malformed_record {
            hook.call(&error);
        }
        let Some(invocation_id) = error.invocation_id().map(str::to_owned) else {
            return;
        };
        if let Some(reply) = self.invocations.remove(&invocation_id) {
            let _ = reply.send(Err(SignalrError::Protocol(error)));
        } else if let Some(stream) = self.streams.remove(&invocation_id) {
            stream.finish(Some(SignalrError::Protocol(error)));
            self.send_message(&Message::CancelInvocation { invocation_id });
        }
    }

    fn on_commands(&mut self, received: usize, commands: &mut Vec<Command>) -> Result<(), Ending> {
        if received == 0 {
            // Every handle is gone: nobody can use the connection any more.
            return Err(Ending {
                reason: CloseReason::local(),
                farewell: Farewell::CloseMessage,
            });
        }
        // Every command of the batch is taken in, even after a Close: the calls it registers
        // are then failed with the close reason like any other pending call.
        let mut outcome = Ok(());
        for command in commands.drain(..) {
            let step = self.on_command(command);
            if outcome.is_ok() {
                outcome = step;
            }
        }
        outcome
    }

    fn on_command(&mut self, command: Command) -> Result<(), Ending> {
        match command {
            Command::Invoke {
                invocation_id,
                record,
                reply,
            } => {
                self.invocations.insert(invocation_id, reply);
                self.send_record(record);
            }
            Command::Stream {
                invocation_id,
                record,
                slot,
            } => {
                self.streams.insert(invocation_id, slot);
                self.send_record(record);
            }
            Command::Send { record } => self.send_record(record),
            Command::Forget { invocation_id } => {
                self.invocations.remove(&invocation_id);
            }
            Command::CancelStream { invocation_id } => {
                if self.streams.remove(&invocation_id).is_some() {
                    self.send_message(&Message::CancelInvocation { invocation_id });
                }
            }
            Command::Close => {
                return Err(Ending {
                    reason: CloseReason::local(),
                    farewell: Farewell::CloseMessage,
                });
            }
        }
        Ok(())
    }

    fn send_ping(&mut self) {
        self.send_record(codec::PING_RECORD.to_owned());
        self.counters.pings_sent.fetch_add(1, Ordering::Relaxed);
    }

    fn send_message(&mut self, message: &Message) {
        self.send_record(codec::encode(message));
    }

    /// Queues a record for the writer. If the writer is gone, the loop learns it from the
    /// writer future itself, so the record can be dropped here.
    fn send_record(&mut self, record: String) {
        // Counted before sending so the writer's decrement can never come first.
        self.unsent.fetch_add(1, Ordering::Relaxed);
        if self.outbound.send(record).is_err() {
            self.unsent.fetch_sub(1, Ordering::Relaxed);
        }
        self.last_sent = Instant::now();
    }

    /// Publishes the end, fails everything pending at once, then takes leave of the server.
    async fn shut_down(
        mut self,
        ending: Ending,
        writer: Pin<&mut impl Future<Output = Result<(), tungstenite::Error>>>,
    ) {
        let reason = ending.reason;
        match &reason.error {
            None => tracing::debug!("connection closed"),
            Some(error) => tracing::info!(%error, "connection lost"),
        }
        self.state.send_replace(ConnectionState::Disconnected {
            reason: reason.clone(),
        });
        self.fail_pending(&reason);
        if matches!(ending.farewell, Farewell::CloseMessage) {
            self.send_message(&Message::Close {
                error: None,
                allow_reconnect: false,
            });
        }
        // The state sender stays alive until the very end: `Connection::close` waits for it.
        let ConnectionTask {
            mut reader,
            outbound,
            state: _state,
            ..
        } = self;
        match ending.farewell {
            Farewell::CloseMessage => {
                finish_writing(outbound, writer).await;
                await_peer_close(&mut reader).await;
            }
            Farewell::WsClose => finish_writing(outbound, writer).await,
            Farewell::Drop => {}
        }
    }

    fn fail_pending(&mut self, reason: &CloseReason) {
        let lost = || SignalrError::from(reason.clone());
        for (_, reply) in self.invocations.drain() {
            let _ = reply.send(Err(lost()));
        }
        for (_, stream) in self.streams.drain() {
            stream.finish(Some(lost()));
        }
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Invoke { reply, .. } => {
                    let _ = reply.send(Err(lost()));
                }
                Command::Stream { slot, .. } => slot.finish(Some(lost())),
                Command::Send { .. }
                | Command::Forget { .. }
                | Command::CancelStream { .. }
                | Command::Close => {}
            }
        }
    }
}

/// Closes the writer's queue and lets it send what is queued and the WS close frame.
async fn finish_writing(
    outbound: mpsc::UnboundedSender<String>,
    writer: Pin<&mut impl Future<Output = Result<(), tungstenite::Error>>>,
) {
    drop(outbound);
    match timeout(CLOSE_TIMEOUT, writer).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::debug!(%error, "closing write failed"),
        Err(_) => tracing::debug!("closing write timed out"),
    }
}

/// Reads until the server's answering close frame (or EOF), as the WS close handshake asks.
async fn await_peer_close(reader: &mut SplitStream<WsStream>) {
    let drained = async { while let Some(Ok(_)) = reader.next().await {} };
    let _ = timeout(CLOSE_TIMEOUT, drained).await;
}

fn writer_ended(written: Result<(), tungstenite::Error>) -> Ending {
    let detail = match written {
        Ok(()) => "the writer stopped".to_owned(),
        Err(error) => format!("WebSocket write failed: {error}"),
    };
    Ending::abrupt(SignalrError::Transport(detail))
}

/// The result a Completion gives an `invoke`: `Null` for a void or null result.
pub(super) fn outcome_value(method: &str, outcome: Outcome) -> Result<Value, SignalrError> {
    match outcome {
        Outcome::Value(value) => Ok(value),
        Outcome::Empty => Ok(Value::Null),
        Outcome::Error(message) => Err(SignalrError::Hub {
            method: method.to_owned(),
            message,
        }),
    }
}
