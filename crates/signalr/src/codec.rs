//! The SignalR JSON hub protocol on the wire: handshake records, hub messages, 0x1E framing.
//!
//! Shared by the client and the server. Decoding is lenient the way ASP.NET Core and the JS
//! client are: unknown properties are skipped, unknown `type`s come back as
//! [`Decoded::Ignored`], `headers` are accepted and dropped. Every malformed record is a typed
//! [`CodecError`] for that record only; the [`FrameDecoder`] keeps going with the next one.

use serde::de::{Deserializer, IgnoredAny};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The byte that ends every record (ASCII record separator).
pub const RECORD_SEPARATOR: u8 = 0x1E;

/// The handshake request of the JSON protocol, version 1, separator included.
pub const JSON_HANDSHAKE_REQUEST: &str = "{\"protocol\":\"json\",\"version\":1}\u{1e}";

/// The record a server sends to accept a handshake.
pub const HANDSHAKE_ACCEPTED: &str = "{}\u{1e}";

/// A Ping record, the most frequent record of all.
pub const PING_RECORD: &str = "{\"type\":6}\u{1e}";

/// The highest JSON protocol version a server accepts (ASP.NET Core: `IsVersionSupported(v) => v <= 2`).
pub const MAX_JSON_PROTOCOL_VERSION: u32 = 2;

/// A malformed record. It concerns one record only; the rest of the frame is still decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Not JSON, not an object, or a field of the wrong JSON type.
    #[error("invalid record: {0}")]
    InvalidJson(String),
    /// A JSON object without the `type` property.
    #[error("record has no 'type' property")]
    MissingType,
    /// A known message type without one of its required properties.
    #[error("message of type {kind} lacks the required property '{field}'")]
    MissingField {
        /// The message type.
        kind: u8,
        /// The missing property.
        field: &'static str,
        /// The `invocationId`, when the record had one (lets a caller fail that call).
        invocation_id: Option<String>,
    },
    /// A Completion with both `result` and `error`.
    #[error("completion '{invocation_id}': 'error' and 'result' are mutually exclusive")]
    ConflictingCompletion {
        /// The Completion's `invocationId`.
        invocation_id: String,
    },
    /// A record (separator included) above the configured limit.
    #[error("record of at least {size} bytes exceeds the {limit}-byte limit")]
    RecordTooLarge {
        /// The record's size so far, in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A handshake record that is not a handshake (e.g. a hub message with `type`).
    #[error("invalid handshake: {0}")]
    InvalidHandshake(String),
}

impl CodecError {
    /// The invocation the bad record was about, so a pending call can fail instead of waiting.
    pub fn invocation_id(&self) -> Option<&str> {
        match self {
            CodecError::MissingField { invocation_id, .. } => invocation_id.as_deref(),
            CodecError::ConflictingCompletion { invocation_id } => Some(invocation_id),
            _ => None,
        }
    }
}

fn invalid_json(error: &serde_json::Error) -> CodecError {
    CodecError::InvalidJson(error.to_string())
}

/// How a Completion ends its invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Neither `result` nor `error`: the end of a stream, or a void result (spec form).
    Empty,
    /// A `result`, possibly `null` (ASP.NET Core answers void methods with `"result":null`).
    Value(Value),
    /// An `error` text.
    Error(String),
}

/// One hub message (types 1–7).
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Type 1: a call; without `invocation_id` nobody answers it.
    Invocation {
        /// Set when the caller waits for a Completion.
        invocation_id: Option<String>,
        /// The hub method or client handler name.
        target: String,
        /// The arguments; always written, even when empty.
        arguments: Vec<Value>,
        /// Upload stream ids (written only when non-empty).
        stream_ids: Vec<String>,
    },
    /// Type 2: one item of a stream.
    StreamItem {
        /// The stream's invocation id.
        invocation_id: String,
        /// The item (may be `null`).
        item: Value,
    },
    /// Type 3: the end of an invocation or stream.
    Completion {
        /// The invocation being completed.
        invocation_id: String,
        /// Result, error or nothing.
        outcome: Outcome,
    },
    /// Type 4: a call whose results come back as StreamItems.
    StreamInvocation {
        /// The stream's invocation id.
        invocation_id: String,
        /// The hub method name.
        target: String,
        /// The arguments; always written, even when empty.
        arguments: Vec<Value>,
        /// Upload stream ids (written only when non-empty).
        stream_ids: Vec<String>,
    },
    /// Type 5: stop a stream.
    CancelInvocation {
        /// The stream to stop.
        invocation_id: String,
    },
    /// Type 6: keep-alive.
    Ping,
    /// Type 7: the sender is closing the connection.
    Close {
        /// Why, when it is an error.
        error: Option<String>,
        /// Whether the peer may reconnect (written only when true).
        allow_reconnect: bool,
    },
}

impl Message {
    /// The wire `type` of this message.
    pub fn kind(&self) -> u8 {
        match self {
            Message::Invocation { .. } => 1,
            Message::StreamItem { .. } => 2,
            Message::Completion { .. } => 3,
            Message::StreamInvocation { .. } => 4,
            Message::CancelInvocation { .. } => 5,
            Message::Ping => 6,
            Message::Close { .. } => 7,
        }
    }
}

/// What one record decoded to.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A hub message to act on.
    Message(Message),
    /// A well-formed record of a type this side ignores (unknown, or Ack/Sequence 8/9).
    Ignored {
        /// The record's `type`.
        kind: i64,
    },
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("type", &self.kind())?;
        match self {
            Message::Invocation {
                invocation_id,
                target,
                arguments,
                stream_ids,
            } => {
                if let Some(id) = invocation_id {
                    map.serialize_entry("invocationId", id)?;
                }
                write_call(&mut map, target, arguments, stream_ids)?;
            }
            Message::StreamInvocation {
                invocation_id,
                target,
                arguments,
                stream_ids,
            } => {
                map.serialize_entry("invocationId", invocation_id)?;
                write_call(&mut map, target, arguments, stream_ids)?;
            }
            Message::StreamItem {
                invocation_id,
                item,
            } => {
                map.serialize_entry("invocationId", invocation_id)?;
                map.serialize_entry("item", item)?;
            }
            Message::Completion {
                invocation_id,
                outcome,
            } => {
                map.serialize_entry("invocationId", invocation_id)?;
                match outcome {
                    Outcome::Empty => {}
                    Outcome::Value(value) => map.serialize_entry("result", value)?,
                    Outcome::Error(error) => map.serialize_entry("error", error)?,
                }
            }
            Message::CancelInvocation { invocation_id } => {
                map.serialize_entry("invocationId", invocation_id)?;
            }
            Message::Ping => {}
            Message::Close {
                error,
                allow_reconnect,
            } => {
                if let Some(error) = error {
                    map.serialize_entry("error", error)?;
                }
                if *allow_reconnect {
                    map.serialize_entry("allowReconnect", &true)?;
                }
            }
        }
        map.end()
    }
}

fn write_call<M: SerializeMap>(
    map: &mut M,
    target: &str,
    arguments: &[Value],
    stream_ids: &[String],
) -> Result<(), M::Error> {
    map.serialize_entry("target", target)?;
    map.serialize_entry("arguments", arguments)?;
    if !stream_ids.is_empty() {
        map.serialize_entry("streamIds", stream_ids)?;
    }
    Ok(())
}

/// Encodes one message as a record: JSON followed by the separator.
pub fn encode(message: &Message) -> String {
    // Cannot fail: every key is a string and every value a `serde_json::Value` or a plain
    // string/number/bool, which is exactly what serde_json always serializes.
    let mut record = serde_json::to_string(message).expect("hub messages always serialize");
    record.push(RECORD_SEPARATOR as char);
    record
}

/// The wire shape of any hub message; `Option`s so that each type checks its own required fields.
#[derive(Deserialize)]
struct RawMessage {
    #[serde(rename = "type")]
    kind: Option<i64>,
    #[serde(rename = "invocationId")]
    invocation_id: Option<String>,
    target: Option<String>,
    arguments: Option<Vec<Value>>,
    #[serde(rename = "streamIds")]
    stream_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    item: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    result: Option<Value>,
    error: Option<String>,
    #[serde(rename = "allowReconnect")]
    allow_reconnect: Option<bool>,
}

/// Tells a present `null` (`Some(Value::Null)`) apart from a missing property (`None`).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// Reads only `type`, to classify a record whose other fields did not fit [`RawMessage`].
#[derive(Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: Option<i64>,
}

/// Decodes one record (without its separator).
///
/// # Errors
///
/// [`CodecError`] when the record is not JSON or not a hub message.
pub fn decode(record: &[u8]) -> Result<Decoded, CodecError> {
    match serde_json::from_slice::<RawMessage>(record) {
        Ok(raw) => raw.into_decoded(),
        Err(error) => classify_unfit(record, &error),
    }
}

/// A record that is not a valid [`RawMessage`] is still fine when its type is one we ignore.
fn classify_unfit(record: &[u8], error: &serde_json::Error) -> Result<Decoded, CodecError> {
    match serde_json::from_slice::<TypeOnly>(record) {
        Ok(TypeOnly { kind: Some(kind) }) if !(1..=7).contains(&kind) => {
            Ok(Decoded::Ignored { kind })
        }
        Ok(TypeOnly { kind: None }) => Err(CodecError::MissingType),
        _ => Err(invalid_json(error)),
    }
}

impl RawMessage {
    fn into_decoded(mut self) -> Result<Decoded, CodecError> {
        let kind = match self.kind {
            None => return Err(CodecError::MissingType),
            Some(kind @ 1..=7) => kind as u8,
            Some(kind) => return Ok(Decoded::Ignored { kind }),
        };
        let message = match kind {
            1 => Message::Invocation {
                target: self.required(kind, "target", |raw| raw.target.take())?,
                arguments: self.required(kind, "arguments", |raw| raw.arguments.take())?,
                stream_ids: self.stream_ids.unwrap_or_default(),
                invocation_id: self.invocation_id,
            },
            2 => Message::StreamItem {
                item: self.required(kind, "item", |raw| raw.item.take())?,
                invocation_id: self.required_id(kind)?,
            },
            3 => self.into_completion()?,
            4 => Message::StreamInvocation {
                target: self.required(kind, "target", |raw| raw.target.take())?,
                arguments: self.required(kind, "arguments", |raw| raw.arguments.take())?,
                invocation_id: self.required_id(kind)?,
                stream_ids: self.stream_ids.unwrap_or_default(),
            },
            5 => Message::CancelInvocation {
                invocation_id: self.required_id(kind)?,
            },
            6 => Message::Ping,
            _ => Message::Close {
                error: self.error,
                allow_reconnect: self.allow_reconnect.unwrap_or(false),
            },
        };
        Ok(Decoded::Message(message))
    }

    fn required<T>(
        &mut self,
        kind: u8,
        field: &'static str,
        take: impl FnOnce(&mut Self) -> Option<T>,
    ) -> Result<T, CodecError> {
        take(self).ok_or_else(|| CodecError::MissingField {
            kind,
            field,
            invocation_id: self.invocation_id.clone(),
        })
    }

    fn required_id(&mut self, kind: u8) -> Result<String, CodecError> {
        self.required(kind, "invocationId", |raw| raw.invocation_id.take())
    }

    fn into_completion(mut self) -> Result<Message, CodecError> {
        let invocation_id = self.required_id(3)?;
        let outcome = match (self.result, self.error) {
            (Some(_), Some(_)) => return Err(CodecError::ConflictingCompletion { invocation_id }),
            (None, Some(error)) => Outcome::Error(error),
            (Some(value), None) => Outcome::Value(value),
            (None, None) => Outcome::Empty,
        };
        Ok(Message::Completion {
            invocation_id,
            outcome,
        })
    }
}

/// The client's first record.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HandshakeRequest {
    /// The hub protocol name (`json`).
    pub protocol: String,
    /// The protocol version.
    pub version: u32,
}

/// Decodes the client's handshake record (without its separator).
///
/// # Errors
///
/// [`CodecError`] when the record is not a handshake request.
pub fn decode_handshake_request(record: &[u8]) -> Result<HandshakeRequest, CodecError> {
    serde_json::from_slice(record).map_err(|error| invalid_json(&error))
}

/// Encodes the server's handshake reply: `{}` to accept, `{"error":..}` to refuse.
pub fn encode_handshake_response(error: Option<&str>) -> String {
    match error {
        None => HANDSHAKE_ACCEPTED.to_owned(),
        Some(error) => {
            let mut record = serde_json::json!({ "error": error }).to_string();
            record.push(RECORD_SEPARATOR as char);
            record
        }
    }
}

#[derive(Deserialize)]
struct RawHandshakeResponse {
    error: Option<String>,
    #[serde(rename = "type")]
    kind: Option<IgnoredAny>,
}

/// Decodes the server's handshake reply: `Ok(Ok(()))` accepted, `Ok(Err(text))` refused.
///
/// # Errors
///
/// [`CodecError`] when the record is not a handshake response.
pub fn decode_handshake_response(record: &[u8]) -> Result<Result<(), String>, CodecError> {
    let raw: RawHandshakeResponse =
        serde_json::from_slice(record).map_err(|error| invalid_json(&error))?;
    if raw.kind.is_some() {
        return Err(CodecError::InvalidHandshake(
            "Expected a handshake response from the server.".to_owned(),
        ));
    }
    Ok(match raw.error {
        Some(error) => Err(error),
        None => Ok(()),
    })
}

/// Splits WebSocket payloads into records, across payload boundaries.
///
/// Bytes after the last separator are kept and completed by the next payload. Payloads are
/// appended to one reused buffer, so records are borrowed slices, not fresh allocations.
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    /// Where the next record starts in `buffer`.
    start: usize,
    /// How far `buffer` was searched for a separator without finding one.
    scanned: usize,
    max_record_bytes: Option<usize>,
}

impl FrameDecoder {
    /// A decoder that rejects records (separator included) above `max_record_bytes`.
    pub fn new(max_record_bytes: Option<usize>) -> Self {
        FrameDecoder {
            buffer: Vec::new(),
            start: 0,
            scanned: 0,
            max_record_bytes,
        }
    }

    /// Appends one WebSocket payload.
    pub fn push(&mut self, payload: &[u8]) {
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buffer.extend_from_slice(payload);
    }

    /// The next complete record (without its separator), in order; `None` once only a partial
    /// record (or nothing) is left. An oversized record is reported once and skipped.
    pub fn next_record(&mut self) -> Option<Result<&[u8], CodecError>> {
        let search_from = self.scanned.max(self.start);
        let Some(offset) = self.buffer[search_from..]
            .iter()
            .position(|&byte| byte == RECORD_SEPARATOR)
        else {
            self.scanned = self.buffer.len();
            return self.reject_oversized_partial().map(Err);
        };
        let record_start = self.start;
        let separator = search_from + offset;
        self.start = separator + 1;
        self.scanned = self.start;
        if let Some(error) = self.size_error(self.start - record_start) {
            return Some(Err(error));
        }
        Some(Ok(&self.buffer[record_start..separator]))
    }

    /// Bytes of an incomplete record waiting for the next payload.
    pub fn partial_len(&self) -> usize {
        self.buffer.len() - self.start
    }

    fn reject_oversized_partial(&mut self) -> Option<CodecError> {
        let error = self.size_error(self.partial_len())?;
        self.buffer.clear();
        self.start = 0;
        self.scanned = 0;
        Some(error)
    }

    fn size_error(&self, size: usize) -> Option<CodecError> {
        let limit = self.max_record_bytes?;
        (size > limit).then_some(CodecError::RecordTooLarge { size, limit })
    }
}

#[cfg(test)]
mod tests;
