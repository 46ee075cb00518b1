//! Typed clients for the three hubs over one [`Connection`] each: method calls with the response
//! envelope unwrapped, paged lists followed to the end, and errors sorted by what the caller must
//! do next ([`HubError`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::lenient::decode;
use super::models::{
    AgentInfo, IdempotencyRecord, LatestEventSeqId, LiveAccount, LiveLeg, LivePosition,
    LiveStrategy, MesoLiveApiError, Order, PositionDataEntry, PrepareStatusResult, StatusCode,
    SubscriptionResult,
};
use super::wire::envelope::{self, Envelope};
use super::wire::history::{self, HistoryPage};
use super::wire::{Casing, Unsupported, args, call_args, methods, paging};
use crate::FlowKind;
use signalr::{Connection, HubStream, SignalrError};

/// Most pages a paged list is followed for (a server handing out tokens forever is a bug).
const MAX_PAGES: usize = 10_000;
/// Most empty history pages followed by their token before a page with events.
const MAX_EMPTY_PAGES: usize = 100;
/// What ASP.NET Core says when a method takes fewer arguments than it was given.
const EXPECTS_NO_ARGUMENT: &str = "argument(s) but target expects 0";
/// ASP.NET Core's text for arguments that do not bind to the method's types.
const BINDING_ERROR: &str = "Error binding arguments";

/// A hub call that did not produce the expected payload, sorted by what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The credentials were refused: fatal, never retried in a loop.
    #[error("MesoLive refused the API key: {0}")]
    Unauthorized(SignalrError),
    /// The call may or may not have reached the server (timeout, connection lost mid-call):
    /// a keyed intent must be settled with GetIdempotencyRecord before anything else.
    #[error("{method}: outcome unknown: {source}")]
    OutcomeUnknown {
        /// The hub method.
        method: String,
        /// What happened on the connection.
        source: SignalrError,
    },
    /// The call was not made (connection already gone, bad arguments to the transport).
    #[error("{method}: not sent: {source}")]
    NotSent {
        /// The hub method.
        method: String,
        /// Why.
        source: SignalrError,
    },
    /// The hub method threw (SignalR Completion error): the request was rejected.
    #[error("{method}: the hub failed the call: {message}")]
    Server {
        /// The hub method.
        method: String,
        /// The server's error text.
        message: String,
    },
    /// The envelope said `Status != Success`; `DuplicateRequest` and `Conflict` drive the
    /// idempotency flow and are kept distinct.
    #[error("{}: {}{}", .0.method, .0.status, .0.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Api(Box<ApiFailure>),
    /// The payload did not have the expected shape.
    #[error("{method}: unexpected payload: {reason}")]
    Decode {
        /// The hub method.
        method: String,
        /// What was wrong.
        reason: String,
    },
    /// The server writes a form the daemon cannot read without guessing: nothing may be
    /// acted on (the daemon stops, naming the dimension and the form).
    #[error("{method}: {source}")]
    Unsupported {
        /// The hub method.
        method: String,
        /// The dimension, form and what was seen.
        source: Unsupported,
    },
}

/// A response envelope whose status was not `Success`.
#[derive(Debug)]
pub struct ApiFailure {
    /// The hub method.
    pub method: String,
    /// The envelope status.
    pub status: StatusCode,
    /// The envelope message.
    pub message: Option<String>,
    /// Structured error details.
    pub error: Option<MesoLiveApiError>,
    /// The whole result as received (for logs; never contains the API key).
    pub raw: String,
}

impl HubError {
    /// The envelope status, for API errors.
    pub fn status(&self) -> Option<&StatusCode> {
        match self {
            HubError::Api(failure) => Some(&failure.status),
            _ => None,
        }
    }

    /// The connection-level error behind the failure, when there was one.
    pub fn transport(&self) -> Option<&SignalrError> {
        match self {
            HubError::Unauthorized(source)
            | HubError::OutcomeUnknown { source, .. }
            | HubError::NotSent { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The wire form behind an [`HubError::Unsupported`].
    pub fn unsupported(&self) -> Option<&Unsupported> {
        match self {
            HubError::Unsupported { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Whether the server refused the arguments' types or count (ASP.NET Core's binding
    /// error): the method never ran.
    pub fn is_binding(&self) -> bool {
        matches!(self, HubError::Server { message, .. }
            if message.contains(BINDING_ERROR) || message.contains("argument(s) but target expects"))
    }

    /// Whether the call's effect may have happened without us seeing the answer.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, HubError::OutcomeUnknown { .. })
    }

    /// Whether a refused `GetEventsSince` says its cursor is older than the history the server
    /// keeps (API §6.3; the error's form is INFERRED: [`history::says_too_old`]).
    pub fn history_too_old(&self) -> bool {
        match self {
            HubError::Api(failure) => {
                let error = failure.error.as_ref();
                let codes: Vec<&str> = [
                    Some(failure.status.as_str()),
                    error.and_then(|e| e.code.as_deref()),
                ]
                .into_iter()
                .flatten()
                .collect();
                let texts: Vec<&str> = [
                    failure.message.as_deref(),
                    error.and_then(|e| e.detail.as_deref()),
                ]
                .into_iter()
                .flatten()
                .collect();
                history::says_too_old(&codes, &texts)
            }
            HubError::Server { message, .. } => history::says_too_old(&[], &[message]),
            _ => false,
        }
    }

    /// Whether the connection this call used is gone (the caller should wait for a new one).
    pub fn connection_gone(&self) -> bool {
        match self {
            HubError::OutcomeUnknown { source, .. } | HubError::NotSent { source, .. } => {
                !matches!(source, SignalrError::Timeout { .. })
            }
            _ => false,
        }
    }

    fn from_transport(method: &str, err: SignalrError) -> HubError {
        let method = method.to_owned();
        match err {
            SignalrError::Unauthorized { .. } => HubError::Unauthorized(err),
            SignalrError::Hub { message, .. } => HubError::Server { method, message },
            SignalrError::InvalidResult { detail, .. } => HubError::Decode {
                method,
                reason: detail,
            },
            SignalrError::Timeout { .. } | SignalrError::ConnectionLost(_) => {
                HubError::OutcomeUnknown {
                    method,
                    source: err,
                }
            }
            other => HubError::NotSent {
                method,
                source: other,
            },
        }
    }
}

/// What a client learned about the server's wire forms from its answers, shared by the clients
/// of one server (the three hubs are one service).
#[derive(Debug, Default)]
pub struct Learned {
    /// The server writes camelCase: arguments go out in camelCase too.
    camel: AtomicBool,
    /// Methods without fields take no argument at all (`[]`, not `[{}]`).
    no_argument: AtomicBool,
}

impl Learned {
    fn casing(&self) -> Casing {
        if self.camel.load(Ordering::Relaxed) {
            Casing::Camel
        } else {
            Casing::Pascal
        }
    }

    fn observe(&self, result: &Value) {
        if let Some(casing) = Casing::of(result) {
            self.camel.store(casing == Casing::Camel, Ordering::Relaxed);
        }
    }
}

/// One hub connection with envelope handling; the three typed clients wrap it.
#[derive(Debug, Clone)]
pub struct HubClient {
    connection: Arc<Connection>,
    learned: Arc<Learned>,
}

impl HubClient {
    /// Wraps a connected hub.
    pub fn new(connection: Arc<Connection>) -> Self {
        HubClient::sharing(connection, Arc::default())
    }

    /// Wraps a connected hub that shares what the clients of the same server learned.
    pub fn sharing(connection: Arc<Connection>, learned: Arc<Learned>) -> Self {
        HubClient {
            connection,
            learned,
        }
    }

    /// The underlying connection (state, callbacks, close).
    pub fn connection(&self) -> &Arc<Connection> {
        &self.connection
    }

    /// The casing the server answers in, as far as the clients sharing this one learned it.
    pub fn casing(&self) -> Casing {
        self.learned.casing()
    }

    /// Learns the server's casing from a result received outside [`HubClient::call_value`].
    pub fn observe(&self, result: &Value) {
        self.learned.observe(result);
    }

    /// Invokes `method` with one args object written in the server's casing (or with no
    /// argument, for a method without fields on a server that binds none); the raw result.
    async fn invoke(&self, method: &str, args: Value) -> Result<Value, HubError> {
        let empty = args.as_object().is_some_and(|object| object.is_empty());
        let arguments = if empty && self.learned.no_argument.load(Ordering::Relaxed) {
            Vec::new()
        } else {
            call_args(self.learned.casing().args(args))
        };
        let result = match self.connection.invoke_raw(method, arguments).await {
            Err(SignalrError::Hub { message, .. })
                if empty && message.contains(EXPECTS_NO_ARGUMENT) =>
            {
                self.learned.no_argument.store(true, Ordering::Relaxed);
                self.connection.invoke_raw(method, Vec::new()).await
            }
            other => other,
        }
        .map_err(|err| HubError::from_transport(method, err))?;
        self.learned.observe(&result);
        if let Some(source) = envelope::unsupported(&result) {
            return Err(HubError::Unsupported {
                method: method.to_owned(),
                source,
            });
        }
        Ok(result)
    }

    /// Calls `method` with one args object and returns the decoded envelope, whatever its status.
    pub async fn call_envelope(&self, method: &str, args: Value) -> Result<Envelope, HubError> {
        let result = self.invoke(method, args).await?;
        Ok(Envelope::from_result(result))
    }

    /// Calls `method` and returns the payload of a successful envelope (`Null` when absent).
    pub async fn call_value(&self, method: &str, args: Value) -> Result<Value, HubError> {
        let result = self.invoke(method, args).await?;
        Envelope::into_data(result).map_err(|envelope| failure(method, *envelope))
    }

    /// Calls `method` and decodes the payload of a successful envelope.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        args: Value,
    ) -> Result<T, HubError> {
        let data = self.call_value(method, args).await?;
        decode_as(method, data)
    }

    /// Calls a paged list method until the last page; `make_args` builds each page's args from
    /// the continuation token.
    pub async fn call_paged<T: DeserializeOwned>(
        &self,
        method: &str,
        make_args: impl Fn(Option<&Value>) -> Value,
    ) -> Result<Vec<T>, HubError> {
        let mut items = Vec::new();
        let mut token: Option<Value> = None;
        for _ in 0..MAX_PAGES {
            let data = self.call_value(method, make_args(token.as_ref())).await?;
            let page = paging::read_page(data).ok_or_else(|| HubError::Decode {
                method: method.to_owned(),
                reason: "not a page (expected an array or an object with items)".into(),
            })?;
            for item in page.items {
                items.push(decode_as(method, item)?);
            }
            match page.continuation {
                Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                _ => return Ok(items),
            }
        }
        Err(HubError::Decode {
            method: method.to_owned(),
            reason: format!("more than {MAX_PAGES} pages"),
        })
    }

    /// Opens a server-to-client stream (items are not enveloped, API §3.2; read each with
    /// [`crate::wire::stream_item`], then [`decode_as`]).
    pub fn stream(&self, method: &str, args: Value) -> Result<HubStream<Value>, HubError> {
        self.connection
            .stream::<Value>(method, call_args(self.learned.casing().args(args)))
            .map_err(|err| HubError::from_transport(method, err))
    }
}

/// The error for an envelope whose status is not `Success`.
fn failure(method: &str, envelope: Envelope) -> HubError {
    HubError::Api(Box::new(ApiFailure {
        method: method.to_owned(),
        status: envelope.status,
        message: envelope.message,
        error: envelope.error,
        raw: envelope.raw.to_string(),
    }))
}

/// Decodes a payload leniently, naming the method on failure.
pub fn decode_as<T: DeserializeOwned>(method: &str, data: Value) -> Result<T, HubError> {
    decode(data).map_err(|err| HubError::Decode {
        method: method.to_owned(),
        reason: err.to_string(),
    })
}

/// Control Hub: accounts, strategies, positions, prepare jobs, orders, idempotency records.
#[derive(Debug, Clone)]
pub struct ControlHub(pub HubClient);

impl ControlHub {
    /// Connected providers/agents (runbook check 1).
    pub async fn list_agents(&self) -> Result<Vec<AgentInfo>, HubError> {
        self.list_agents_raw()
            .await?
            .into_iter()
            .map(|item| decode_as(methods::LIST_AGENTS, item))
            .collect()
    }

    /// The agents exactly as the server sent them (the `AgentInfo` model was not recovered:
    /// `wire::agents` reads what it can, a check shows every field).
    pub async fn list_agents_raw(&self) -> Result<Vec<Value>, HubError> {
        let data = self
            .0
            .call_value(methods::LIST_AGENTS, serde_json::json!({}))
            .await?;
        let page = paging::read_page(data).ok_or_else(|| HubError::Decode {
            method: methods::LIST_AGENTS.into(),
            reason: "expected a list of agents".into(),
        })?;
        Ok(page.items)
    }

    /// Every account (paged). An account's `BrokerType` (an enum the API requires) written
    /// as an integer means the server writes enums as integers, whose values nobody
    /// documented: that is refused here, at the first read, before anything is acted on.
    pub async fn list_accounts(&self, page_size: u32) -> Result<Vec<LiveAccount>, HubError> {
        let accounts: Vec<LiveAccount> = self
            .0
            .call_paged(methods::LIST_ACCOUNTS, |token| {
                args::page(Some(page_size), token)
            })
            .await?;
        if let Some(account) = accounts
            .iter()
            .find(|a| a.broker_type.as_ref().is_some_and(Value::is_number))
        {
            let seen = format!(
                "ListAccounts BrokerType = {}",
                account.broker_type.as_ref().unwrap_or(&Value::Null)
            );
            return Err(HubError::Unsupported {
                method: methods::LIST_ACCOUNTS.into(),
                source: Unsupported::numeric_enum(seen),
            });
        }
        Ok(accounts)
    }

    /// Every strategy (paged).
    pub async fn list_strategies(&self, page_size: u32) -> Result<Vec<LiveStrategy>, HubError> {
        self.0
            .call_paged(methods::LIST_STRATEGIES, |token| {
                args::page(Some(page_size), token)
            })
            .await
    }

    /// Every position of a strategy (paged); callers keep the open ones.
    pub async fn list_positions(
        &self,
        strategy_id: i64,
        page_size: u32,
    ) -> Result<Vec<LivePosition>, HubError> {
        self.0
            .call_paged(methods::LIST_POSITIONS, |token| {
                args::positions_of_strategy(strategy_id, Some(page_size), token)
            })
            .await
    }

    /// Every open position of the user (paged; filtered again with
    /// [`LivePosition::is_open`], since the open-only argument is INFERRED).
    pub async fn list_open_positions(&self, page_size: u32) -> Result<Vec<LivePosition>, HubError> {
        let listed: Vec<LivePosition> = self
            .0
            .call_paged(methods::LIST_POSITIONS, |token| {
                args::open_positions(Some(page_size), token)
            })
            .await?;
        Ok(listed.into_iter().filter(LivePosition::is_open).collect())
    }

    /// One position (its detailed view read as the summary); `None` when the server does not
    /// know it.
    pub async fn get_position(&self, position_id: i64) -> Result<Option<LivePosition>, HubError> {
        let method = methods::GET_POSITION;
        let envelope = self
            .0
            .call_envelope(method, args::position(position_id))
            .await?;
        if envelope.status == StatusCode::NotFound {
            return Ok(None);
        }
        if envelope.status != StatusCode::Success {
            return Err(failure(method, envelope));
        }
        decode_as(method, envelope.data).map(Some)
    }

    /// Every leg of a position, open and closed (paged).
    pub async fn list_legs(
        &self,
        position_id: i64,
        page_size: u32,
    ) -> Result<Vec<LiveLeg>, HubError> {
        self.0
            .call_paged(methods::LIST_LEGS, |token| {
                args::legs_of_position(position_id, Some(page_size), token)
            })
            .await
    }

    /// Every order of an execution plan (paged).
    pub async fn list_orders(
        &self,
        exec_plan_id: i64,
        page_size: u32,
    ) -> Result<Vec<Order>, HubError> {
        self.0
            .call_paged(methods::LIST_ORDERS, |token| {
                args::orders_of_plan(exec_plan_id, Some(page_size), token)
            })
            .await
    }

    /// Polls a prepare job.
    pub async fn prepare_status(
        &self,
        kind: FlowKind,
        job_id: &str,
    ) -> Result<PrepareStatusResult, HubError> {
        self.0
            .call(&methods::prepare_status(kind), args::job(job_id))
            .await
    }

    /// Best-effort cancel of a prepare job (keyed).
    pub async fn cancel_prepare(
        &self,
        kind: FlowKind,
        job_id: &str,
        key: &str,
    ) -> Result<Value, HubError> {
        self.0
            .call_value(
                &methods::cancel_prepare(kind),
                args::cancel_job(job_id, key),
            )
            .await
    }

    /// Any state-changing keyed call whose args the caller built and committed.
    pub async fn keyed_call(&self, method: &str, args: Value) -> Result<Value, HubError> {
        self.0.call_value(method, args).await
    }

    /// The server's record of a keyed call; `None` when the server never saw the key.
    pub async fn idempotency_record(
        &self,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, HubError> {
        let method = methods::GET_IDEMPOTENCY_RECORD;
        let envelope = self
            .0
            .call_envelope(method, args::idempotency_record(key))
            .await?;
        if envelope.is_not_found() {
            return Ok(None);
        }
        if envelope.status != StatusCode::Success {
            return Err(failure(method, envelope));
        }
        decode_as(method, envelope.data).map(Some)
    }
}

/// Data Hub: snapshots and live streams.
#[derive(Debug, Clone)]
pub struct DataHub(pub HubClient);

impl DataHub {
    /// After `method` refused `args` with a binding error: the refusal of the flags encoding
    /// when the same call binds once its flags are left out (the server then binds flags only
    /// as integers, whose values nobody documented); `None` when the flags are not the cause.
    pub async fn flags_refused(&self, method: &str, args: Value) -> Option<Unsupported> {
        let shown: Vec<String> = args
            .as_object()?
            .iter()
            .filter(|(name, _)| args::FLAGS.iter().any(|f| f.eq_ignore_ascii_case(name)))
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        let without = self.0.call_value(method, args::without_flags(args)).await;
        let binds = !matches!(&without, Err(err) if err.is_binding());
        binds.then(|| Unsupported {
            dimension: "flags_encoding",
            form: "numeric_only",
            seen: format!(
                "{method} refuses {} and binds without them",
                shown.join(" ")
            ),
            why: "the flags' integer values were never documented (API §5.0)",
        })
    }

    /// One position's current prices/greeks/PnL.
    pub async fn position_snapshot(&self, position_id: i64) -> Result<PositionDataEntry, HubError> {
        self.0
            .call(
                methods::GET_POSITION_SNAPSHOT,
                args::position_data(position_id),
            )
            .await
    }

    /// A live stream of one position's data (raw items; decode with [`decode_as`]).
    pub fn stream_position(&self, position_id: i64) -> Result<HubStream<Value>, HubError> {
        self.0.stream(
            methods::STREAM_POSITION_DATA,
            args::position_data(position_id),
        )
    }

    /// An underlying's current prices (the provider is required by the server).
    pub async fn underlying_snapshot(
        &self,
        symbol: &str,
        provider: Option<&str>,
    ) -> Result<Value, HubError> {
        self.0
            .call_value(
                methods::GET_UNDERLYING_SNAPSHOT,
                args::underlying(symbol, provider),
            )
            .await
    }

    /// A live stream of an underlying's prices.
    pub fn stream_underlying(
        &self,
        symbol: &str,
        provider: Option<&str>,
    ) -> Result<HubStream<Value>, HubError> {
        self.0.stream(
            methods::STREAM_UNDERLYING_DATA,
            args::underlying(symbol, provider),
        )
    }
}

/// A `GetLatestEventSeqId` answer as the event pump reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatestReading {
    /// The newest EventSeqId available to the user.
    pub latest: i64,
    /// The oldest EventSeqId still available, when the server says.
    pub oldest: Option<i64>,
}

impl LatestReading {
    /// Reads a `GetLatestEventSeqId` payload: the FACT model, and the oldest EventSeqId under
    /// any of its INFERRED names.
    fn read(data: Value) -> Result<LatestReading, HubError> {
        let oldest = data
            .as_object()
            .and_then(|object| super::wire::field(object, history::OLDEST_EVENT_SEQ_ID))
            .and_then(Value::as_i64);
        let latest: LatestEventSeqId = decode_as(methods::GET_LATEST_EVENT_SEQ_ID, data)?;
        Ok(LatestReading {
            latest: latest.latest_event_seq_id,
            oldest,
        })
    }
}

/// Event Hub: subscriptions and replayable history (callbacks come through the connection).
#[derive(Debug, Clone)]
pub struct EventHub(pub HubClient);

impl EventHub {
    /// Joins the callback groups of `strategies` (`None`: all of the user's strategies).
    pub async fn subscribe(
        &self,
        strategies: Option<&[i64]>,
    ) -> Result<SubscriptionResult, HubError> {
        self.0
            .call(
                methods::SUBSCRIBE_TO_STRATEGIES,
                args::strategies(strategies),
            )
            .await
    }

    /// The newest EventSeqId available to the user.
    pub async fn latest_seq_id(&self) -> Result<i64, HubError> {
        Ok(self.latest_reading().await?.latest)
    }

    /// The newest EventSeqId available to the user, and the oldest one when the server tells
    /// it ([`history::OLDEST_EVENT_SEQ_ID`]).
    pub async fn latest_reading(&self) -> Result<LatestReading, HubError> {
        let method = methods::GET_LATEST_EVENT_SEQ_ID;
        let data = self.0.call_value(method, serde_json::json!({})).await?;
        LatestReading::read(data)
    }

    /// One page of history strictly after `after_seq_id`.
    pub async fn events_since(
        &self,
        after_seq_id: i64,
        limit: u32,
        continuation: Option<&str>,
    ) -> Result<HistoryPage, HubError> {
        let method = methods::GET_EVENTS_SINCE;
        let mut token = continuation.map(str::to_owned);
        for _ in 0..MAX_EMPTY_PAGES {
            let data = self
                .0
                .call_value(
                    method,
                    args::events_since(after_seq_id, limit, token.as_deref()),
                )
                .await?;
            let page = history::read_page(data).ok_or_else(|| HubError::Decode {
                method: method.into(),
                reason: "not a history page".into(),
            })?;
            if let Some(source) = page.unreadable {
                return Err(HubError::Unsupported {
                    method: method.into(),
                    source,
                });
            }
            // A filtered server may answer an empty page that says more follow: follow it.
            match (&page.continuation, page.has_more) {
                (Some(next), Some(true))
                    if page.events.is_empty() && token.as_ref() != Some(next) =>
                {
                    token = Some(next.clone());
                }
                _ => return Ok(page),
            }
        }
        Err(HubError::Decode {
            method: method.into(),
            reason: format!("{MAX_EMPTY_PAGES} empty pages in a row that said more follow"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_latest_reading_gives_the_oldest_event_only_when_the_server_tells_it() {
        let fact = json!({"LatestEventSeqId": 5004, "SnapshotTime": "2024-05-01T14:30:00Z"});
        assert_eq!(
            LatestReading::read(fact).unwrap(),
            LatestReading {
                latest: 5004,
                oldest: None
            }
        );
        let told = json!({"latestEventSeqId": 5004, "oldestAvailableEventSeqId": 4005});
        assert_eq!(LatestReading::read(told).unwrap().oldest, Some(4005));
        assert!(LatestReading::read(json!({"Oldest": 1})).is_err());
    }
}
