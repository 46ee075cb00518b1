//! WebSocket plumbing shared by the client (tokio-tungstenite) and the server (axum): how a WS
//! message is read as hub-protocol bytes, and how queued records go out as few Text messages.

use futures_util::{Sink, SinkExt};

/// Upper bound for one coalesced outbound WS message. Several records are joined up to this
/// size (a single larger record goes alone), so a peer's message-size limit is not hit just
/// because many small records happened to be queued together.
pub(crate) const MAX_COALESCED_BYTES: usize = 64 * 1024;

/// How many queued records one writer wake-up takes at most.
pub(crate) const MAX_BATCH_RECORDS: usize = 1024;

/// What an inbound WS message means for the hub protocol.
pub(crate) enum Inbound<'a> {
    /// Text or Binary payload: protocol bytes (Binary is accepted too, to be liberal).
    Data(&'a [u8]),
    /// The peer started the WS closing handshake.
    Close,
    /// Ping/Pong and raw frames: answered by the WS library, invisible to SignalR.
    Control,
}

/// The two WS libraries' message types, seen through what the hub protocol needs.
pub(crate) trait WsMessage: From<String> {
    /// Classifies an inbound message.
    fn inbound(&self) -> Inbound<'_>;
    /// A Close frame with status 1000 (the only code a SignalR peer considers clean).
    fn normal_close() -> Self;
}

impl WsMessage for tokio_tungstenite::tungstenite::Message {
    fn inbound(&self) -> Inbound<'_> {
        use tokio_tungstenite::tungstenite::Message;
        match self {
            Message::Text(text) => Inbound::Data(text.as_bytes()),
            Message::Binary(bytes) => Inbound::Data(bytes),
            Message::Close(_) => Inbound::Close,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Inbound::Control,
        }
    }

    fn normal_close() -> Self {
        use tokio_tungstenite::tungstenite::protocol::{CloseFrame, frame::coding::CloseCode};
        Self::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        }))
    }
}

impl WsMessage for axum::extract::ws::Message {
    fn inbound(&self) -> Inbound<'_> {
        use axum::extract::ws::Message;
        match self {
            Message::Text(text) => Inbound::Data(text.as_str().as_bytes()),
            Message::Binary(bytes) => Inbound::Data(bytes),
            Message::Close(_) => Inbound::Close,
            Message::Ping(_) | Message::Pong(_) => Inbound::Control,
        }
    }

    fn normal_close() -> Self {
        Self::Close(Some(axum::extract::ws::CloseFrame {
            code: 1000,
            reason: "".into(),
        }))
    }
}

/// Sends the queued records as Text messages, joining consecutive records up to
/// [`MAX_COALESCED_BYTES`] per message (ASP.NET Core likewise flushes its whole output pipe as
/// one message), then flushes once. Records are never split: a record ends every message.
pub(crate) async fn send_records<S, M>(
    sink: &mut S,
    records: &mut Vec<String>,
) -> Result<(), S::Error>
where
    S: Sink<M> + Unpin,
    M: WsMessage,
{
    let mut queued = records.drain(..).peekable();
    while let Some(mut text) = queued.next() {
        while let Some(next) = queued.next_if(|next| text.len() + next.len() <= MAX_COALESCED_BYTES)
        {
            text.push_str(&next);
        }
        sink.feed(M::from(text)).await?;
    }
    sink.flush().await
}

/// Ends the WS connection cleanly (status 1000), as SignalR peers expect after a Close message.
pub(crate) async fn send_normal_close<S, M>(sink: &mut S) -> Result<(), S::Error>
where
    S: Sink<M> + Unpin,
    M: WsMessage,
{
    sink.send(M::normal_close()).await
}
