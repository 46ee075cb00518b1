//! Every MesoLive wire detail that the API document (`docs/mesolive-api.md`) marks INFERRED, in
//! one place: the daemon's readings, and the builders of the simulator's default answers. The
//! simulator plays every other form from its own code (`mesolive-sim`'s `wire_profile`), so a
//! reading here that is wrong fails a test instead of agreeing with itself. When `check probe`
//! against a live server says otherwise, correct it here.
//!
//! | detail | reading implemented | where |
//! |---|---|---|
//! | one args object per method (`arguments: [args]`) | yes | [`call_args`] |
//! | envelope field names | `Status`, `Message`, `Error`, `Data` (+ aliases on input) | [`envelope`] |
//! | outbound values | decimals as exact JSON numbers (configurable), enums as names, flags `"All"` | [`encode`] |
//! | enum encoding | member names as strings | `lenient_enum!` |
//! | flags encoding | a single member name (`"All"`) | [`args::ALL_BLOCKS`] |
//! | page shape | `{Items, ContinuationToken}` (+ aliases, or a bare array) | [`paging`] |
//! | GetEventsSince args | `{AfterEventSeqId, Limit, ContinuationToken}` | [`args::events_since`] |
//! | GetEventsSince result | `{Events:[{EventSeqId, EventId, EventType, Payload}], ContinuationToken, HasMore}` | [`history`] |
//! | callback names of entry/exit prep and agent status | `OnPosition{Entry,Exit}Preparation{Completed,Failed}`, `OnAgentStatus` | [`callbacks`] |
//! | GetIdempotencyRecord for an unknown key | a non-success status (`NotFound`) or null data | [`envelope::Envelope::is_not_found`] |
//! | forms read leniently | camelCase (and args sent back in the server's casing), integers as text, `Status` names in any case, other payload / token / type names, bare ids, enveloped stream items, callback arguments | [`Casing`], `lenient.rs`, [`envelope`], [`paging`], [`history`], [`callback_payload`], [`stream_item`] |
//! | forms refused loudly | enums or `Status` as integers, history items without a readable type | [`Unsupported`] |
//!
//! The forms of every dimension, and which of them the daemon meets or refuses, are in
//! `docs/inferred.md`.

use serde_json::{Map, Value};

/// A wire form the daemon cannot work under (the meaning of the values was never documented):
/// the dimension and form of `docs/inferred.md`, and what was seen. The daemon stops on it
/// before acting on anything rather than misread the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("wire form not supported: {dimension}={form} (seen: {seen}); {why}")]
pub struct Unsupported {
    /// The dimension id.
    pub dimension: &'static str,
    /// The form seen.
    pub form: &'static str,
    /// What was seen, abridged.
    pub seen: String,
    /// Why the daemon cannot read it.
    pub why: &'static str,
}

impl Unsupported {
    /// Enum members written as integers (no values are documented).
    pub fn numeric_enum(seen: String) -> Unsupported {
        Unsupported {
            dimension: "enum_encoding",
            form: "numeric",
            seen,
            why: "MesoLive's enum values were never documented (API §5.0), so an integer cannot be read as a member",
        }
    }
}

/// A JSON object of the values given, moved in. What the simulator sends is built with this,
/// not `json!`: the macro writes each value it is given out again (`to_value(&v)`), a deep copy
/// of every page of events.
pub fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect(),
    )
}

/// At most this many characters of a value go into an error message.
const SEEN_CHARS: usize = 160;

/// A value, abridged for an error message.
pub fn abridged(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(SEEN_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// How the server writes property names; the daemon writes its arguments the same way, so a
/// server that binds only its own casing binds them too (API §1.3.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Casing {
    /// PascalCase, as the API documents (and the default until the server has answered).
    #[default]
    Pascal,
    /// camelCase (ASP.NET Core SignalR's default policy).
    Camel,
}

impl Casing {
    /// The casing of a result's property names (`None`: nothing to tell by).
    pub fn of(result: &Value) -> Option<Casing> {
        let first = result.as_object()?.keys().next()?.chars().next()?;
        if first.is_ascii_lowercase() {
            Some(Casing::Camel)
        } else if first.is_ascii_uppercase() {
            Some(Casing::Pascal)
        } else {
            None
        }
    }

    /// An args object written in this casing (names only; values stay as they are).
    pub fn args(self, args: Value) -> Value {
        match (self, args) {
            (Casing::Camel, Value::Object(object)) => Value::Object(
                object
                    .into_iter()
                    .map(|(name, value)| (camel_case(&name), Casing::Camel.args(value)))
                    .collect(),
            ),
            (_, other) => other,
        }
    }
}

/// System.Text.Json's camelCase: the leading capitals are lowered, except the last one of a
/// run followed by a lowercase letter (`PnlFields` → `pnlFields`, `IBKR` → `ibkr`).
pub fn camel_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = chars.clone();
    for (i, c) in chars.iter().enumerate() {
        if !c.is_uppercase() {
            break;
        }
        if i > 0 && chars.get(i + 1).is_some_and(|next| next.is_lowercase()) {
            break;
        }
        out[i] = c.to_lowercase().next().unwrap_or(*c);
    }
    out.into_iter().collect()
}

/// An integer, as a JSON number or as its text (a server writing numbers as strings).
pub fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// The payload of an Event Hub callback: its one object argument (API §1.3.7, INFERRED), or
/// the last object when the server puts something before it (a strategy id), or that object
/// written as JSON text.
pub fn callback_payload(arguments: Vec<Value>) -> Value {
    let mut parsed: Vec<Value> = arguments
        .into_iter()
        .map(|argument| match argument {
            Value::String(text) if text.trim_start().starts_with('{') => {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            }
            other => other,
        })
        .collect();
    match parsed.iter().rposition(Value::is_object) {
        Some(index) => parsed.swap_remove(index),
        None => parsed.into_iter().next().unwrap_or(Value::Null),
    }
}

/// A Data Hub stream item: the model itself (API §3.2: streams are not enveloped), or the
/// payload of an envelope around it.
pub fn stream_item(item: Value) -> Value {
    match envelope::Envelope::into_data(item) {
        Ok(data) => data,
        Err(envelope) => envelope.raw,
    }
}

/// The job id a `StartPreparePosition*` answer carries: `{JobId}` (INFERRED), or the id itself.
pub fn job_id(answer: &Value) -> Option<String> {
    match answer {
        Value::String(id) if !id.is_empty() => Some(id.clone()),
        Value::Number(id) => Some(id.to_string()),
        other => field_str(other, "JobId"),
    }
}

/// Wraps an args object as the SignalR `arguments` array (INFERRED: exactly one argument).
pub fn call_args(args: Value) -> Vec<Value> {
    vec![args]
}

/// Finds a field of a JSON object by any of its names, ignoring case.
pub fn field<'a>(object: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    field_key(object, names).map(|key| &object[key])
}

/// The key under which [`field`] finds a value (to take the value out of the object). The
/// exact spelling is looked up first (a map lookup), then any casing (a scan).
pub fn field_key<'a>(object: &'a Map<String, Value>, names: &[&str]) -> Option<&'a String> {
    names.iter().find_map(|name| {
        object
            .get_key_value(*name)
            .map(|(key, _)| key)
            .or_else(|| object.keys().find(|key| key.eq_ignore_ascii_case(name)))
    })
}

/// A string field of a JSON object (any casing), numbers given as text.
pub fn field_str(value: &Value, name: &str) -> Option<String> {
    match field(value.as_object()?, &[name])? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The live order ids an execution call returned (INFERRED: `LiveOrderIds`, `OrderIds`, a
/// single `OrderId`, or the ids bare: a number or a list; numbers may come as text).
pub fn order_ids(value: &Value) -> Vec<i64> {
    let listed = |ids: &Vec<Value>| ids.iter().filter_map(int).collect();
    match value {
        Value::Array(ids) => listed(ids),
        Value::Object(object) => {
            if let Some(Value::Array(ids)) = field(object, &["LiveOrderIds", "OrderIds"]) {
                return listed(ids);
            }
            field(object, &["OrderId", "LiveOrderId"])
                .and_then(int)
                .into_iter()
                .collect()
        }
        bare => int(bare).into_iter().collect(),
    }
}

/// The adjustment operation an adjustment signal's condition evaluation names, if any
/// (INFERRED: the `ConditionEvaluation` model was not recovered; read `Operation` or
/// `AdjustmentOperation`).
pub fn adjustment_operation(condition: &Value) -> Option<String> {
    let object = condition.as_object()?;
    match field(object, &["Operation", "AdjustmentOperation"])? {
        Value::String(name) if !name.is_empty() => Some(name.clone()),
        _ => None,
    }
}

/// `ListAgents` entries (the `AgentInfo` model was not recovered, INFERRED): which field names
/// the data provider an agent serves and whether it is connected, in the spellings seen so far.
pub mod agents {
    use serde_json::Value;

    use super::field;

    /// Fields that may name the provider, most specific first (`Name` is the last resort).
    pub const PROVIDER_FIELDS: [&str; 4] = ["Provider", "DataProvider", "Connector", "Name"];
    /// Fields that may say whether the agent is connected.
    pub const CONNECTED_FIELDS: [&str; 3] = ["Connected", "IsConnected", "Online"];

    /// The provider an agent serves: the first of [`PROVIDER_FIELDS`] that holds a name (or a
    /// number, should the enum travel as one).
    pub fn provider(agent: &Value) -> Option<String> {
        let object = agent.as_object()?;
        PROVIDER_FIELDS
            .iter()
            .find_map(|name| match field(object, &[name])? {
                Value::String(text) if !text.trim().is_empty() => Some(text.trim().to_owned()),
                Value::Number(number) => Some(number.to_string()),
                _ => None,
            })
    }

    /// Whether an agent says it is connected: a boolean, or a status word (`Connected`,
    /// `Disconnected`); `None` when it does not say.
    pub fn connected(agent: &Value) -> Option<bool> {
        let object = agent.as_object()?;
        match field(object, &CONNECTED_FIELDS)? {
            Value::Bool(connected) => Some(*connected),
            Value::String(text) => match text.to_ascii_lowercase().as_str() {
                "true" | "connected" | "online" => Some(true),
                "false" | "disconnected" | "offline" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// The provider to ask for free-standing data: that of the first connected agent, else of
    /// the first that does not say (never of one that says it is disconnected).
    pub fn pick_provider(agents: &[Value]) -> Option<String> {
        let of = |wanted: Option<bool>| {
            agents
                .iter()
                .filter(|agent| connected(agent) == wanted)
                .find_map(provider)
        };
        of(Some(true)).or_else(|| of(None))
    }

    #[cfg(test)]
    mod tests {
        use serde_json::json;

        use super::*;

        #[test]
        fn the_provider_of_a_connected_agent_is_picked_whatever_the_field_names() {
            let inferred = [
                json!({"Name": "Agent-IBKR", "Connector": "IBKR", "Connected": false}),
                json!({"Name": "Agent-Paper", "Connector": "MesoLivePaper", "Connected": true}),
            ];
            assert_eq!(pick_provider(&inferred).as_deref(), Some("MesoLivePaper"));
            let other = [json!({"provider": "TastyTrade", "connector": "TT", "isConnected": true})];
            assert_eq!(pick_provider(&other).as_deref(), Some("TastyTrade"));
            let silent = [json!({"Name": "Agent-1"})];
            assert_eq!(pick_provider(&silent).as_deref(), Some("Agent-1"));
            let numeric = [json!({"Provider": 2, "Status": "Connected"})];
            assert_eq!(pick_provider(&numeric).as_deref(), Some("2"));
            let down = [json!({"Provider": "IBKR", "IsConnected": "Disconnected"})];
            assert_eq!(pick_provider(&down), None);
            assert_eq!(pick_provider(&[]), None);
        }
    }
}

/// Hub method names (FACT unless noted in API §3).
pub mod methods {
    use crate::FlowKind;

    /// Control: connected providers.
    pub const LIST_AGENTS: &str = "ListAgents";
    /// Control: accounts (paged).
    pub const LIST_ACCOUNTS: &str = "ListAccounts";
    /// Control: one account.
    pub const GET_ACCOUNT: &str = "GetAccount";
    /// Control: strategies (paged).
    pub const LIST_STRATEGIES: &str = "ListStrategies";
    /// Control: one strategy.
    pub const GET_STRATEGY: &str = "GetStrategy";
    /// Control: positions (paged, INFERRED).
    pub const LIST_POSITIONS: &str = "ListPositions";
    /// Control: one position, detailed.
    pub const GET_POSITION: &str = "GetPosition";
    /// Control: legs (paged).
    pub const LIST_LEGS: &str = "ListLegs";
    /// Control: legs by id.
    pub const GET_LEGS: &str = "GetLegs";
    /// Control: submit one leg group to the broker.
    pub const SEND_ORDER: &str = "SendOrder";
    /// Control: cancel a live order.
    pub const CANCEL_ORDER: &str = "CancelOrder";
    /// Control: execute a plan on a paper account.
    pub const APPLY_PAPER_FILLS: &str = "ApplyPaperFills";
    /// Control: orders (INFERRED).
    pub const LIST_ORDERS: &str = "ListOrders";
    /// Control: the server's record of a keyed call.
    pub const GET_IDEMPOTENCY_RECORD: &str = "GetIdempotencyRecord";
    /// Data: one position's prices/greeks/PnL.
    pub const GET_POSITION_SNAPSHOT: &str = "GetPositionSnapshot";
    /// Data: stream of one position's data.
    pub const STREAM_POSITION_DATA: &str = "StreamPositionData";
    /// Data: an underlying's prices (provider required).
    pub const GET_UNDERLYING_SNAPSHOT: &str = "GetUnderlyingSnapshot";
    /// Data: stream of an underlying's prices (provider required).
    pub const STREAM_UNDERLYING_DATA: &str = "StreamUnderlyingData";
    /// Event: join strategy groups (`null` = all).
    pub const SUBSCRIBE_TO_STRATEGIES: &str = "SubscribeToStrategies";
    /// Event: leave strategy groups.
    pub const UNSUBSCRIBE_FROM_STRATEGIES: &str = "UnsubscribeFromStrategies";
    /// Event: the newest EventSeqId.
    pub const GET_LATEST_EVENT_SEQ_ID: &str = "GetLatestEventSeqId";
    /// Event: history after a sequence id, paged.
    pub const GET_EVENTS_SINCE: &str = "GetEventsSince";

    /// `StartPreparePosition{Entry,Exit,Adjustment}`.
    pub fn start_prepare(kind: FlowKind) -> String {
        format!("StartPreparePosition{}", kind.infix())
    }

    /// `GetPreparePosition{Entry,Exit,Adjustment}Status`.
    pub fn prepare_status(kind: FlowKind) -> String {
        format!("GetPreparePosition{}Status", kind.infix())
    }

    /// `CancelPreparePosition{Entry,Exit,Adjustment}`.
    pub fn cancel_prepare(kind: FlowKind) -> String {
        format!("CancelPreparePosition{}", kind.infix())
    }

    /// Methods that change state on the server: never sent in observe mode, always keyed.
    pub fn is_state_changing(method: &str) -> bool {
        method.starts_with("StartPreparePosition")
            || method.starts_with("CancelPreparePosition")
            || matches!(method, SEND_ORDER | CANCEL_ORDER | APPLY_PAPER_FILLS)
    }
}

/// Callback (server→client) target names.
pub mod callbacks {
    use std::sync::LazyLock;

    use crate::FlowKind;
    use crate::models::PreparationStatus;

    /// Entry signal.
    pub const ENTRY_SIGNAL: &str = "OnEntrySignal";
    /// Exit signal.
    pub const EXIT_SIGNAL: &str = "OnExitSignal";
    /// Adjustment signal.
    pub const ADJUSTMENT_SIGNAL: &str = "OnAdjustmentSignal";
    /// Strategy-evaluation error.
    pub const ERROR: &str = "OnError";
    /// Order update.
    pub const ORDER_UPDATE: &str = "OnOrderUpdate";
    /// Position update.
    pub const POSITION_UPDATE: &str = "OnPositionUpdate";
    /// Leg update.
    pub const LEG_UPDATE: &str = "OnLegUpdate";
    /// Agent status (name INFERRED).
    pub const AGENT_STATUS: &str = "OnAgentStatus";

    /// What every preparation target starts with, before the flow's infix.
    const PREPARATION_PREFIX: &str = "OnPosition";
    /// What a preparation target ends with, after the infix: completed, failed.
    const PREPARATION_COMPLETED: &str = "PreparationCompleted";
    const PREPARATION_FAILED: &str = "PreparationFailed";

    /// `OnPosition{Entry,Exit,Adjustment}Preparation{Completed,Failed}` (entry/exit INFERRED).
    pub fn preparation(kind: FlowKind, completed: bool) -> String {
        let outcome = if completed {
            PREPARATION_COMPLETED
        } else {
            PREPARATION_FAILED
        };
        format!("{PREPARATION_PREFIX}{}{outcome}", kind.infix())
    }

    /// Every known target, in the API document's order.
    pub fn all() -> Vec<String> {
        let mut names: Vec<String> = [
            ENTRY_SIGNAL,
            EXIT_SIGNAL,
            ADJUSTMENT_SIGNAL,
            ERROR,
            ORDER_UPDATE,
            POSITION_UPDATE,
            LEG_UPDATE,
            AGENT_STATUS,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for kind in FlowKind::ALL {
            names.push(preparation(kind, true));
            names.push(preparation(kind, false));
        }
        names
    }

    /// [`all`], built once: every event is matched against it.
    static KNOWN: LazyLock<Vec<String>> = LazyLock::new(all);

    /// Maps any spelling the server may use — `OnOrderUpdate`, `onorderupdate`,
    /// `OrderUpdateEvent`, `OrderUpdate` — to the canonical callback name; unknown names are
    /// returned unchanged.
    pub fn canonical_target(name: &str) -> String {
        let bare = name.strip_suffix("Event").unwrap_or(name);
        // `get` rather than slicing: a hostile name may have a multi-byte character there.
        let bare = match (bare.get(..2), bare.get(2..)) {
            (Some(on), Some(rest)) if !rest.is_empty() && on.eq_ignore_ascii_case("on") => rest,
            _ => bare,
        };
        let known = |bare: &str| {
            KNOWN
                .iter()
                .find(|known| known[2..].eq_ignore_ascii_case(bare))
                .cloned()
        };
        // The INFERRED names may lack `Position` (`OnEntryPreparationCompleted`) or end in
        // `Changed` (`OnAgentStatusChanged`).
        known(bare)
            .or_else(|| known(&format!("Position{bare}")))
            .or_else(|| {
                let stem = bare.get(..bare.len().checked_sub(7)?)?;
                bare.get(stem.len()..)?
                    .eq_ignore_ascii_case("Changed")
                    .then(|| known(stem))?
            })
            .unwrap_or_else(|| name.to_owned())
    }

    /// For a canonical preparation target, its kind and outcome.
    pub fn preparation_target(target: &str) -> Option<(FlowKind, PreparationStatus)> {
        let rest = target.strip_prefix(PREPARATION_PREFIX)?;
        let (infix, status) = match rest.strip_suffix(PREPARATION_COMPLETED) {
            Some(infix) => (infix, PreparationStatus::Completed),
            None => (
                rest.strip_suffix(PREPARATION_FAILED)?,
                PreparationStatus::Failed,
            ),
        };
        FlowKind::ALL
            .into_iter()
            .find(|kind| kind.infix() == infix)
            .map(|kind| (kind, status))
    }
}

/// The response envelope `MesoLiveApiResponse<T>` (API §2; field names INFERRED).
pub mod envelope {
    use serde_json::{Map, Value, json};

    use super::{Unsupported, field, field_key};
    use crate::lenient::decode_ref;
    use crate::models::{MesoLiveApiError, StatusCode};

    const STATUS: &[&str] = &["Status", "StatusCode"];
    const MESSAGE: &[&str] = &["Message"];
    const ERROR: &[&str] = &["Error"];
    const DATA: &[&str] = &["Data", "Payload", "Result", "Value"];
    /// Members a server may add to every envelope that are never its payload (ASP.NET Core
    /// writes `traceId` into problem details): left out when the payload is found by
    /// elimination, so `{"Status":"Success","TraceId":"…"}` reads as a success without data.
    const METADATA: &[&str] = &["TraceId", "RequestId", "CorrelationId", "Timestamp"];

    fn status_of(object: &Map<String, Value>) -> StatusCode {
        field(object, STATUS)
            .and_then(|v| decode_ref::<StatusCode>(v).ok())
            .unwrap_or(StatusCode::Unknown("?".into()))
    }

    /// The key of the payload: a known name, else the one member that is not the status, the
    /// message, the error or metadata such as a trace id (INFERRED: the envelope's payload name
    /// was never documented). When
    /// several unknown members are left, the one holding an object or a list; `None` when that
    /// still leaves a choice (or nothing).
    fn data_key(object: &Map<String, Value>) -> Option<&String> {
        if let Some(key) = field_key(object, DATA) {
            return Some(key);
        }
        let envelope = [STATUS, MESSAGE, ERROR, METADATA].concat();
        let others: Vec<&String> = object
            .keys()
            .filter(|key| !envelope.iter().any(|name| key.eq_ignore_ascii_case(name)))
            .collect();
        if let [only] = others.as_slice() {
            return Some(only);
        }
        let structured: Vec<&String> = others
            .into_iter()
            .filter(|key| object[key.as_str()].is_object() || object[key.as_str()].is_array())
            .collect();
        match structured.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// A result whose `Status` is written as an integer: the daemon cannot tell Success from
    /// a failure without the documented values.
    pub fn unsupported(raw: &Value) -> Option<Unsupported> {
        let status = field(raw.as_object()?, STATUS)?;
        status.is_number().then(|| Unsupported {
            dimension: "status_code_spelling",
            form: "numeric",
            seen: format!("Status = {status}"),
            why: "the StatusCode values were never documented (API §2.2), so Success cannot be told from a failure",
        })
    }

    /// The `Error` member: the `MesoLiveApiError` object, or a plain text taken as its detail.
    fn error_of(value: &Value) -> Option<MesoLiveApiError> {
        match value {
            Value::Null => None,
            Value::String(text) => Some(MesoLiveApiError {
                detail: Some(text.clone()),
                ..MesoLiveApiError::default()
            }),
            other => decode_ref::<MesoLiveApiError>(other).ok(),
        }
    }

    /// A decoded envelope; `raw` is kept for logs and for `check probe`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Envelope {
        /// Outcome code.
        pub status: StatusCode,
        /// Human-readable message.
        pub message: Option<String>,
        /// Structured error.
        pub error: Option<MesoLiveApiError>,
        /// Payload (`Null` when absent).
        pub data: Value,
        /// The whole result as received.
        pub raw: Value,
    }

    impl Envelope {
        /// Reads an invocation result. A result without a status field is taken as a bare
        /// successful payload (lenient: the envelope shape is INFERRED).
        pub fn from_result(raw: Value) -> Envelope {
            let Some(object) = raw.as_object().filter(|o| field(o, STATUS).is_some()) else {
                return Envelope {
                    status: StatusCode::Success,
                    message: None,
                    error: None,
                    data: raw.clone(),
                    raw,
                };
            };
            let status = status_of(object);
            let message = field(object, MESSAGE).and_then(|v| v.as_str().map(str::to_owned));
            let error = field(object, ERROR).and_then(error_of);
            let data = data_key(object)
                .map(|key| object[key.as_str()].clone())
                .unwrap_or(Value::Null);
            Envelope {
                status,
                message,
                error,
                data,
                raw,
            }
        }

        /// The payload of a successful result, moved out of it (a replay page is large: it
        /// is not copied); any other result as its [`Envelope`].
        pub fn into_data(raw: Value) -> Result<Value, Box<Envelope>> {
            let Value::Object(mut object) = raw else {
                return Ok(raw);
            };
            if field(&object, STATUS).is_none() {
                return Ok(Value::Object(object));
            }
            if status_of(&object) != StatusCode::Success {
                return Err(Box::new(Envelope::from_result(Value::Object(object))));
            }
            Ok(data_key(&object)
                .cloned()
                .and_then(|key| object.remove(&key))
                .unwrap_or(Value::Null))
        }

        /// INFERRED: how GetIdempotencyRecord says "never seen this key": `NotFound`, a
        /// success without a record (no data, `null`, `{}`, or an object that names no
        /// `IdempotencyKey`: a record always names its key, and a server adding its own members
        /// to every object turns `{}` into `{"ServerRevision": 7}`), or a failure whose error
        /// code says the key was not found (`IdempotencyKeyNotFound`, `KeyNotFound`).
        pub fn is_not_found(&self) -> bool {
            let no_record = match &self.data {
                Value::Null => true,
                Value::Object(object) => {
                    super::field(object, &["IdempotencyKey"]).is_none_or(Value::is_null)
                }
                _ => false,
            };
            let code_says_not_found = self
                .error
                .as_ref()
                .and_then(|e| e.code.as_deref())
                .is_some_and(|code| code.to_ascii_lowercase().ends_with("notfound"));
            matches!(self.status, StatusCode::NotFound)
                || (self.status == StatusCode::Success && no_record)
                || (self.status != StatusCode::Success && code_says_not_found)
        }
    }

    /// Builds an envelope as the simulator sends it.
    pub fn success(data: Value) -> Value {
        super::object([
            ("Status", "Success".into()),
            ("Message", Value::Null),
            ("Error", Value::Null),
            ("Data", data),
        ])
    }

    /// Builds a failed envelope as the simulator sends it.
    pub fn failure(status: &StatusCode, message: &str, data: Value) -> Value {
        json!({
            "Status": status.as_str(),
            "Message": message,
            "Error": {"Code": status.as_str(), "Detail": message},
            "Data": data,
        })
    }

    /// Builds a validation failure naming the offending argument (`MesoLiveApiError`'s
    /// `ValidationErrors`, FACT model; the `ValidationError` status name is INFERRED).
    pub fn invalid(field: &str, message: &str) -> Value {
        let status = StatusCode::ValidationError;
        json!({
            "Status": status.as_str(),
            "Message": message,
            "Error": {"Code": status.as_str(), "Detail": message, "ValidationErrors": {field: [message]}},
            "Data": null,
        })
    }
}

/// Paged lists (`ContinuationToken`, API §3.1.3; wrapper shape INFERRED).
pub mod paging {
    use serde_json::Value;

    use super::field;

    const ITEMS: &[&str] = &["Items", "Data", "Results", "Values", "Records"];
    const TOKEN: &[&str] = &[
        "ContinuationToken",
        "NextContinuationToken",
        "NextToken",
        "NextPageToken",
    ];

    /// One page: raw items and the token for the next page (`None` on the last page).
    #[derive(Debug, Clone, PartialEq)]
    pub struct RawPage {
        /// Items as received.
        pub items: Vec<Value>,
        /// The token to send back, as received (opaque: usually text, possibly an object or
        /// a number), if more pages exist.
        pub continuation: Option<Value>,
    }

    /// Reads a page payload: a bare array, or an object with an items array and a token.
    pub fn read_page(payload: Value) -> Option<RawPage> {
        match payload {
            Value::Array(items) => Some(RawPage {
                items,
                continuation: None,
            }),
            Value::Object(object) => {
                let continuation = field(&object, TOKEN)
                    .filter(|token| match token {
                        Value::String(text) => !text.is_empty(),
                        Value::Null => false,
                        _ => true,
                    })
                    .cloned();
                let items = field(&object, ITEMS)
                    .or_else(|| object.values().find(|v| v.is_array()))
                    .and_then(|v| v.as_array().cloned())?;
                Some(RawPage {
                    items,
                    continuation,
                })
            }
            Value::Null => Some(RawPage {
                items: Vec::new(),
                continuation: None,
            }),
            _ => None,
        }
    }

    /// Builds a page as the simulator sends it.
    pub fn page(items: Vec<Value>, continuation: Option<String>) -> Value {
        super::object([
            ("Items", Value::Array(items)),
            ("ContinuationToken", continuation.into()),
        ])
    }
}

/// `GetEventsSince` results (shape INFERRED, API §3.3).
pub mod history {
    use serde_json::Value;

    use super::{Unsupported, abridged, field, field_key};

    const EVENTS: &[&str] = &["Events", "Items", "Data", "Results"];
    const TYPE: &[&str] = &[
        "EventType",
        "Type",
        "Target",
        "CallbackName",
        "EventName",
        "Name",
        "$type",
    ];
    const PAYLOAD: &[&str] = &["Payload", "Event", "Data", "EventData", "Body"];
    const TOKEN: &[&str] = &["ContinuationToken", "NextContinuationToken"];
    const HAS_MORE: &[&str] = &["HasMore", "More"];

    /// One replayed event before decoding: its callback name and payload.
    #[derive(Debug, Clone, PartialEq)]
    pub struct HistoricEvent {
        /// Callback or model name as the server gave it (`None` if absent).
        pub event_type: Option<String>,
        /// The event model (header fields merged in from the wrapper when missing).
        pub payload: Value,
    }

    impl HistoricEvent {
        /// The event's EventSeqId, if it has a readable one.
        pub fn seq_id(&self) -> Option<i64> {
            field(self.payload.as_object()?, &["EventSeqId"]).and_then(super::int)
        }
    }

    /// A page asked for after `after` that starts below it: the server did not read the
    /// sequence argument (it expects another name), so every replay would start from its
    /// beginning and a page without a token would never reach the cursor.
    pub fn ignores_cursor(after: i64, page: &HistoryPage) -> Option<Unsupported> {
        let first = page.events.first()?.seq_id()?;
        (first < after).then(|| Unsupported {
            dimension: "history_args",
            form: "other_name",
            seen: format!("GetEventsSince after {after} answered from EventSeqId {first}"),
            why: "the server does not read AfterEventSeqId (API §3.3 leaves the name open), so a replay cannot start at the cursor",
        })
    }

    /// One page of history.
    #[derive(Debug, Clone, PartialEq)]
    pub struct HistoryPage {
        /// Events in ascending EventSeqId order as the server sent them.
        pub events: Vec<HistoricEvent>,
        /// Token for the next page.
        pub continuation: Option<String>,
        /// Whether the server says more pages exist (`None`: not stated).
        pub has_more: Option<bool>,
        /// Set when an item carries no type name (none, or an integer): its event could only
        /// be guessed, so the page must not be applied.
        pub unreadable: Option<Unsupported>,
    }

    /// Why an item's type cannot be read, if it cannot: an integer (API §4.1 gives names, no
    /// numbers), or no type at all.
    fn unreadable_type(item: &Value) -> Option<Unsupported> {
        let form = match item.as_object().and_then(|object| field(object, TYPE)) {
            Some(Value::String(_)) => return None,
            Some(_) => "numeric_type",
            None => "untyped",
        };
        Some(Unsupported {
            dimension: "history_item_payload",
            form,
            seen: abridged(item),
            why: "a history item must name its callback or model (API §3.3, §4.1); guessing the event from its fields could misread it",
        })
    }

    /// Reads a `GetEventsSince` payload: an object with an events array (or a bare array).
    /// The page is taken apart, not copied: every event's payload moves out of it.
    pub fn read_page(payload: Value) -> Option<HistoryPage> {
        let (items, continuation, has_more) = match payload {
            Value::Array(items) => (items, None, None),
            Value::Object(mut object) => {
                let continuation = field(&object, TOKEN)
                    .and_then(|v| v.as_str())
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned);
                let has_more = field(&object, HAS_MORE).and_then(Value::as_bool);
                let key = field_key(&object, EVENTS)
                    .or_else(|| object.iter().find(|(_, v)| v.is_array()).map(|(k, _)| k))?
                    .clone();
                let Some(Value::Array(items)) = object.remove(&key) else {
                    return None;
                };
                (items, continuation, has_more)
            }
            Value::Null => (Vec::new(), None, Some(false)),
            _ => return None,
        };
        let unreadable = items.iter().find_map(unreadable_type);
        Some(HistoryPage {
            events: items.into_iter().map(read_item).collect(),
            continuation,
            has_more,
            unreadable,
        })
    }

    fn read_item(item: Value) -> HistoricEvent {
        let Value::Object(mut wrapper) = item else {
            return HistoricEvent {
                event_type: None,
                payload: item,
            };
        };
        let event_type = field(&wrapper, TYPE)
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let inner = field_key(&wrapper, PAYLOAD)
            .cloned()
            .and_then(|key| wrapper.remove(&key))
            .map(|p| match p {
                // Some servers store the payload as serialized JSON text.
                Value::String(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
                other => other,
            });
        let payload = match inner {
            Some(Value::Object(mut inner)) => {
                for name in ["EventId", "EventSeqId", "EventTime"] {
                    if field(&inner, &[name]).is_none()
                        && let Some(v) = field(&wrapper, &[name])
                    {
                        inner.insert(name.to_owned(), v.clone());
                    }
                }
                Value::Object(inner)
            }
            Some(other) => other,
            None => Value::Object(wrapper),
        };
        HistoricEvent {
            event_type,
            payload,
        }
    }

    /// Error codes (`Error.Code`, or the envelope status) that say a `GetEventsSince` cursor
    /// is older than the history the server keeps (API §6.3: "an error or a gap"; the
    /// error's form is UNKNOWN, these spellings are INFERRED). Compared ignoring case.
    pub const TOO_OLD_CODES: &[&str] = &[
        "CursorTooOld",
        "EventSeqIdTooOld",
        "CursorExpired",
        "HistoryExpired",
        "HistoryTruncated",
        "HistoryUnavailable",
        "Gone",
    ];

    /// Words of an error message (or detail) that say the same, compared ignoring case. A
    /// message about a continuation token never counts: tokens may expire (API §3.1.3), and
    /// the answer to that is to ask again, not to give history up.
    pub const TOO_OLD_WORDS: &[&str] = &[
        "older than the retained",
        "older than the oldest",
        "too old",
        "no longer retained",
        "no longer available",
        "outside the retention",
        "beyond the retention",
        "retention window",
        "purged",
    ];

    /// Whether a refused `GetEventsSince` says its cursor is older than the retained history,
    /// from the error's codes (error code, status) and texts (message, detail).
    pub fn says_too_old(codes: &[&str], texts: &[&str]) -> bool {
        let by_code = codes.iter().any(|code| {
            TOO_OLD_CODES
                .iter()
                .any(|c| c.eq_ignore_ascii_case(code.trim()))
        });
        let by_text = texts.iter().any(|text| {
            let text = text.to_ascii_lowercase();
            !text.contains("token") && TOO_OLD_WORDS.iter().any(|word| text.contains(word))
        });
        by_code || by_text
    }

    /// How the simulator words that refusal (as a `BadRequest`).
    pub fn too_old_message(after: i64, oldest: i64) -> String {
        format!("EventSeqId {after} is older than the retained history (oldest retained: {oldest})")
    }

    /// Names under which a `GetLatestEventSeqId` result may give the oldest EventSeqId still
    /// available (not in the FACT model, which has `LatestEventSeqId` and `SnapshotTime`;
    /// read when present, so a server that tells it lets a too-old cursor be seen before any
    /// replay).
    pub const OLDEST_EVENT_SEQ_ID: &[&str] = &[
        "OldestEventSeqId",
        "OldestAvailableEventSeqId",
        "FirstEventSeqId",
        "MinEventSeqId",
    ];

    /// One history item as the simulator sends it.
    pub fn item(seq_id: i64, event_id: &str, target: &str, payload: Value) -> Value {
        super::object([
            ("EventSeqId", seq_id.into()),
            ("EventId", event_id.into()),
            ("EventType", target.into()),
            ("Payload", payload),
        ])
    }

    /// A history page as the simulator sends it.
    pub fn page(events: Vec<Value>, continuation: Option<String>, has_more: bool) -> Value {
        super::object([
            ("Events", Value::Array(events)),
            ("ContinuationToken", continuation.into()),
            ("HasMore", has_more.into()),
        ])
    }
}

/// How the values the daemon sends are written (API §0, §5.0): every outbound encoding
/// choice in one place.
///
/// | value | written as | open? |
/// |---|---|---|
/// | `Decimal` | a JSON number with the decimal's exact digits ([`DecimalForm::Number`]) | yes: `hubs.wire.decimal = "number" \| "string"` |
/// | `int` | a JSON number | no: every reading binds numbers |
/// | enum | its member name (`"Limit"`, `"Day"`, `"UpdateVars"`), INFERRED from API §5.0 | would need the members' integer values, which nobody documented; `check probe` reports a server that writes integers |
/// | flags | the member name `"All"` ([`args::ALL_BLOCKS`]) | as enums; `check probe` asks a snapshot with `"All"` and with a name list |
/// | `datetime` | none is sent | — |
pub mod encode {
    use std::str::FromStr;

    use rust_decimal::Decimal;
    use serde::Deserialize;
    use serde_json::{Number, Value};

    /// `hubs.wire.decimal`: how a `Decimal` argument is written. ASP.NET Core's default JSON
    /// hub protocol binds a decimal from a number only; a string binds only where the server
    /// allows reading numbers from strings (UNKNOWN for MesoLive). A number binds on both.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
    #[serde(rename_all = "lowercase")]
    pub enum DecimalForm {
        /// A JSON number carrying the decimal's exact digits (the default).
        #[default]
        Number,
        /// A JSON string (`"2.35"`): rust_decimal's own serde form.
        String,
    }

    /// A decimal that a JSON number here cannot carry digit for digit (more than about 15
    /// significant digits): refused rather than sent rounded.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    #[error(
        "the decimal {0} cannot be written as a JSON number without changing a digit; not sent \
         (hubs.wire.decimal = \"string\" would send it as text)"
    )]
    pub struct InexactDecimal(pub Decimal);

    /// The outbound encodings in force (built from `[hubs.wire]`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct Outbound {
        /// How decimals are written.
        pub decimal: DecimalForm,
    }

    impl Outbound {
        /// `value` as the configured form.
        pub fn decimal(&self, value: Decimal) -> Result<Value, InexactDecimal> {
            match self.decimal {
                DecimalForm::String => Ok(Value::String(value.to_string())),
                DecimalForm::Number => exact_number(value)
                    .map(Value::Number)
                    .ok_or(InexactDecimal(value)),
            }
        }

        /// `null` for `None`, else [`Outbound::decimal`].
        pub fn optional_decimal(&self, value: Option<Decimal>) -> Result<Value, InexactDecimal> {
            value.map_or(Ok(Value::Null), |value| self.decimal(value))
        }
    }

    /// The JSON number whose written text is exactly `value` (serde_json keeps numbers as
    /// `f64` and writes the shortest text that reads back to it: for up to 15 significant
    /// digits that text is the decimal's own; beyond, it is checked and refused).
    fn exact_number(value: Decimal) -> Option<Number> {
        let float = f64::from_str(&value.normalize().to_string()).ok()?;
        let number = Number::from_f64(float)?;
        let written = number.to_string();
        let read_back = Decimal::from_str(&written)
            .or_else(|_| Decimal::from_scientific(&written))
            .ok()?;
        (read_back == value).then_some(number)
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use serde_json::json;

        #[test]
        fn decimals_are_exact_numbers_or_refused() {
            let numbers = Outbound::default();
            for (text, written) in [
                ("2.35", "2.35"),
                ("1", "1.0"),
                ("-0.05", "-0.05"),
                ("1234567.125", "1234567.125"),
                ("0.0000001", "1e-7"),
                ("123456789012.345", "123456789012.345"),
            ] {
                let value = Decimal::from_str(text).unwrap();
                let json = numbers.decimal(value).unwrap();
                assert!(json.is_number(), "{text}");
                assert_eq!(json.to_string(), written, "{text}");
            }
            let long = Decimal::from_str("0.3333333333333333333333333333").unwrap();
            assert_eq!(numbers.decimal(long), Err(InexactDecimal(long)));
            let strings = Outbound {
                decimal: DecimalForm::String,
            };
            assert_eq!(
                strings.decimal(long),
                Ok(json!("0.3333333333333333333333333333"))
            );
            assert_eq!(numbers.optional_decimal(None), Ok(Value::Null));
        }
    }
}

/// Argument objects (field names INFERRED unless the API document marks them FACT).
pub mod args {
    use rust_decimal::Decimal;
    use serde_json::{Value, json};

    use super::encode::{InexactDecimal, Outbound};
    use crate::models::{OrderType, PreparedPlan, TimeInForce};

    /// `LiveDataInclude` / `LiveQuoteFields` value asking for everything (flags encoding INFERRED).
    pub const ALL_BLOCKS: &str = "All";

    /// A paged list request; `continuation` is the token exactly as the server gave it.
    pub fn page(limit: Option<u32>, continuation: Option<&Value>) -> Value {
        json!({"Limit": limit, "ContinuationToken": continuation})
    }

    /// `ListPositions` for one strategy (filter name FACT).
    pub fn positions_of_strategy(
        strategy_id: i64,
        limit: Option<u32>,
        continuation: Option<&Value>,
    ) -> Value {
        json!({"LiveStrategyId": strategy_id, "Limit": limit, "ContinuationToken": continuation})
    }

    /// `ListPositions` restricted to open positions.
    pub fn open_positions(limit: Option<u32>, continuation: Option<&Value>) -> Value {
        json!({super::OPEN_ONLY_ARG: true, "Limit": limit, "ContinuationToken": continuation})
    }

    /// `GetPosition` (argument name INFERRED).
    pub fn position(position_id: i64) -> Value {
        json!({"PositionId": position_id})
    }

    /// `ListLegs` of one position (filter name INFERRED).
    pub fn legs_of_position(
        position_id: i64,
        limit: Option<u32>,
        continuation: Option<&Value>,
    ) -> Value {
        json!({"LivePositionId": position_id, "Limit": limit, "ContinuationToken": continuation})
    }

    /// `ListOrders` of one execution plan (filter name INFERRED, API §6.2).
    pub fn orders_of_plan(
        exec_plan_id: i64,
        limit: Option<u32>,
        continuation: Option<&Value>,
    ) -> Value {
        json!({"ExecPlanId": exec_plan_id, "Limit": limit, "ContinuationToken": continuation})
    }

    /// `GetEventsSince`: events strictly after `after_seq_id`.
    pub fn events_since(after_seq_id: i64, limit: u32, continuation: Option<&str>) -> Value {
        json!({"AfterEventSeqId": after_seq_id, "Limit": limit, "ContinuationToken": continuation})
    }

    /// `SubscribeToStrategies` / `UnsubscribeFromStrategies` (FACT): `None` means all.
    pub fn strategies(ids: Option<&[i64]>) -> Value {
        json!({"Strategies": ids})
    }

    /// `GetIdempotencyRecord` (field name FACT).
    pub fn idempotency_record(key: &str) -> Value {
        json!({"IdempotencyKey": key})
    }

    /// `GetPreparePosition*Status`.
    pub fn job(job_id: &str) -> Value {
        json!({"JobId": job_id})
    }

    /// `CancelPreparePosition*`.
    pub fn cancel_job(job_id: &str, key: &str) -> Value {
        json!({"JobId": job_id, "IdempotencyKey": key})
    }

    /// `CancelOrder` (INFERRED fields: the key, the live order id, its account).
    pub fn cancel_order(key: &str, order_id: i64, account: &str) -> Value {
        json!({"IdempotencyKey": key, "OrderId": order_id, "BrokerAccountId": account})
    }

    /// `StreamPositionData` / `GetPositionSnapshot` asking for every block (fields FACT).
    pub fn position_data(position_id: i64) -> Value {
        json!({
            "PositionId": position_id,
            "PriceFields": ALL_BLOCKS, "GreekFields": ALL_BLOCKS, "PnlFields": ALL_BLOCKS,
            "IncludePosition": ALL_BLOCKS, "IncludeLegs": ALL_BLOCKS, "IncludeLegGroups": ALL_BLOCKS,
            "Provider": null,
        })
    }

    /// The flags arguments of the Data Hub (`LiveQuoteFields`, `LiveDataInclude`).
    pub const FLAGS: &[&str] = &[
        "PriceFields",
        "GreekFields",
        "PnlFields",
        "IncludePosition",
        "IncludeLegs",
        "IncludeLegGroups",
    ];

    /// `args` without its flags arguments (to tell whether a server refuses them).
    pub fn without_flags(mut args: Value) -> Value {
        if let Some(object) = args.as_object_mut() {
            object.retain(|name, _| !FLAGS.iter().any(|flag| flag.eq_ignore_ascii_case(name)));
        }
        args
    }

    /// `GetUnderlyingSnapshot` / `StreamUnderlyingData` (provider required by the server). The
    /// symbol goes both ways the API allows (API §3.2.3: `Symbol`, or a `LiveUnderlying`), so a
    /// server binding either finds it.
    pub fn underlying(symbol: &str, provider: Option<&str>) -> Value {
        json!({
            "Symbol": symbol,
            "Underlying": {"Symbol": symbol},
            "PriceFields": ALL_BLOCKS,
            "Provider": provider,
        })
    }

    /// `StartPreparePositionEntry` (fields FACT; `Underlying` shape INFERRED).
    pub fn prepare_entry(
        key: &str,
        position_name: &str,
        strategy_id: i64,
        account: &str,
        leg_selection_constraint: &str,
        symbol: &str,
    ) -> Value {
        json!({
            "IdempotencyKey": key,
            "PositionName": position_name,
            "StrategyId": strategy_id,
            "BrokerAccountId": account,
            "LegSelectionConstraint": leg_selection_constraint,
            "Underlying": {"Symbol": symbol},
            "DataProvider": null,
        })
    }

    /// `StartPreparePositionExit` (INFERRED fields).
    pub fn prepare_exit(key: &str, position_id: i64) -> Value {
        json!({"IdempotencyKey": key, "PositionId": position_id, "DataProvider": null})
    }

    /// `StartPreparePositionAdjustment` (`Operation` and `Condition` FACT; the rest INFERRED).
    pub fn prepare_adjustment(
        key: &str,
        position_id: i64,
        operation: &str,
        condition: Option<&str>,
    ) -> Value {
        json!({
            "IdempotencyKey": key,
            "PositionId": position_id,
            "Operation": operation,
            "Condition": condition,
            "DataProvider": null,
        })
    }

    /// `ApplyPaperFills` for one leg group at the plan's mid price (INFERRED fields).
    pub fn paper_fills(
        key: &str,
        account: &str,
        plan: &PreparedPlan,
        group: i64,
        wire: &Outbound,
    ) -> Result<Value, InexactDecimal> {
        Ok(json!({
            "IdempotencyKey": key,
            "BrokerAccountId": account,
            "ExecPlanId": plan.exec_plan_id,
            "LegGroupId": group,
            "FillPrice": wire.optional_decimal(plan.group_mid(group))?,
        }))
    }

    /// `SendOrder` for one leg group (SendOrderArgs FACT; the `LegGroupOrder` model was not
    /// recovered: `{OrderType, TimeInForce, LimitPrice, StopPrice, LegNames}` INFERRED, API
    /// §3.1.2): a limit order at `limit` when given, else a market order; day order; new (not
    /// replacing).
    pub fn send_order(
        key: &str,
        account: &str,
        plan: &PreparedPlan,
        group: i64,
        qty_multiplier: Option<Decimal>,
        limit: Option<Decimal>,
        wire: &Outbound,
    ) -> Result<Value, InexactDecimal> {
        let order_type = if limit.is_some() {
            OrderType::Limit
        } else {
            OrderType::Market
        };
        Ok(json!({
            "IdempotencyKey": key,
            "ReplacesOrder": null,
            "BrokerAccountId": account,
            "ExecPlanId": plan.exec_plan_id,
            "QtyMultiplier": wire.optional_decimal(qty_multiplier)?,
            "LegGroupId": group,
            "LegGroupOrder": {
                "OrderType": order_type.as_str(),
                "TimeInForce": TimeInForce::Day.as_str(),
                "LimitPrice": wire.optional_decimal(limit)?,
                "StopPrice": null,
                "LegNames": plan.leg_names(group),
            },
        }))
    }

    /// Reads an args object field by any casing (simulator side).
    pub fn read<'a>(args: &'a Value, name: &str) -> Option<&'a Value> {
        args.as_object().and_then(|o| super::field(o, &[name]))
    }
}

/// `LiveGreeks` as the simulator sends it (model not recovered, API §3.2.4; INFERRED: one set
/// of greeks at mark per block). Clients keep greeks as raw JSON.
pub fn greeks(snapshot_time: &str, delta: f64, gamma: f64, theta: f64, vega: f64) -> Value {
    let round = |x: f64| (x * 10_000.0).round() / 10_000.0;
    serde_json::json!({
        "SnapshotTime": snapshot_time,
        "Delta": round(delta), "Gamma": round(gamma), "Theta": round(theta), "Vega": round(vega),
    })
}

/// `LegGroupQtys` as the simulator sends it (model not recovered; INFERRED).
pub fn leg_group_qtys(qty: rust_decimal::Decimal) -> Value {
    serde_json::json!({"Qty": qty})
}

/// Text values of enums whose members were never documented (API §5.1, all INFERRED).
pub mod states {
    /// `LivePosition.State` of an open position.
    pub const POSITION_OPEN: &str = "Open";
    /// `LivePosition.State` of a closed position.
    pub const POSITION_CLOSED: &str = "Closed";
    /// `ErrorEvent.State` when an error is raised.
    pub const ERROR_RAISED: &str = "Raised";
    /// `ErrorEvent.State` when an error is cleared.
    pub const ERROR_CLEARED: &str = "Cleared";
    /// `AgentStatusEvent.Status` of a connected agent.
    pub const AGENT_CONNECTED: &str = "Connected";
    /// `AgentStatusEvent.Status` of a disconnected agent.
    pub const AGENT_DISCONNECTED: &str = "Disconnected";
    /// Order side of a buy (FACT: `"B"`).
    pub const SIDE_BUY: &str = "B";
    /// Order side of a sell (FACT: `"S"`).
    pub const SIDE_SELL: &str = "S";
}

/// The `ListPositions`/`ListLegs` argument asking for open items only (name INFERRED; the
/// simulator also accepts `State: "Open"`). Clients should still filter with
/// [`crate::models::LivePosition::is_open`].
pub const OPEN_ONLY_ARG: &str = "OpenOnly";

/// The sequence-id arg name `GetEventsSince` is read with on the simulator side (aliases of the
/// INFERRED `AfterEventSeqId`).
pub const EVENTS_SINCE_ARG_NAMES: &[&str] = &["AfterEventSeqId", "SinceEventSeqId", "EventSeqId"];

/// How a `datetime` without an offset is read (`EventTime`): API §0 says every time is UTC,
/// and .NET writes a DateTime of unspecified kind without an offset, so it is read as UTC.
/// Times with `Z` or an offset are RFC 3339 (any number of fraction digits).
pub const NAIVE_DATETIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.f";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_targets() {
        assert_eq!(
            callbacks::canonical_target("OrderUpdateEvent"),
            "OnOrderUpdate"
        );
        assert_eq!(
            callbacks::canonical_target("onorderupdate"),
            "OnOrderUpdate"
        );
        assert_eq!(callbacks::canonical_target("OrderUpdate"), "OnOrderUpdate");
        assert_eq!(
            callbacks::canonical_target("PositionExitPreparationCompletedEvent"),
            "OnPositionExitPreparationCompleted"
        );
        assert_eq!(
            callbacks::canonical_target("OnSomethingNew"),
            "OnSomethingNew"
        );
    }

    #[test]
    fn hostile_target_names_are_returned_unchanged_without_panicking() {
        for name in ["0é", "é", "Oé", "On", "o", "", "Onégin", "\u{1F600}Event"] {
            let canonical = callbacks::canonical_target(name);
            assert!(!canonical.is_empty() || name.is_empty(), "{name}");
        }
        assert_eq!(callbacks::canonical_target("0éh"), "0éh");
    }

    #[test]
    fn preparation_targets_round_trip() {
        use crate::FlowKind;
        use crate::models::PreparationStatus;
        for kind in FlowKind::ALL {
            for (completed, status) in [
                (true, PreparationStatus::Completed),
                (false, PreparationStatus::Failed),
            ] {
                let target = callbacks::preparation(kind, completed);
                assert_eq!(callbacks::preparation_target(&target), Some((kind, status)));
            }
        }
        for other in [
            "OnOrderUpdate",
            "OnPositionPreparationCompleted",
            "OnPositionEntryPreparation",
            "OnPositionEntryPreparationFailedX",
        ] {
            assert_eq!(callbacks::preparation_target(other), None, "{other}");
        }
    }

    #[test]
    fn envelope_variants() {
        let e = envelope::Envelope::from_result(json!({"status":"Conflict","message":"busy"}));
        assert_eq!(e.status, crate::models::StatusCode::Conflict);
        assert_eq!(e.message.as_deref(), Some("busy"));
        let bare = envelope::Envelope::from_result(json!([1, 2]));
        assert_eq!(bare.data, json!([1, 2]));
        let data = envelope::Envelope::into_data(json!({"status": "Success", "data": {"A": 1}}));
        assert_eq!(data, Ok(json!({"A": 1})));
        assert_eq!(
            envelope::Envelope::into_data(json!({"Status": "Success"})),
            Ok(Value::Null)
        );
        assert_eq!(envelope::Envelope::into_data(json!([1])), Ok(json!([1])));
        let failed = envelope::Envelope::into_data(json!({"Status": "Conflict", "Data": 5}));
        assert_eq!(
            failed.map_err(|e| (e.status, e.data)),
            Err((crate::models::StatusCode::Conflict, json!(5)))
        );
    }

    #[test]
    fn other_forms_read_leniently() {
        // envelope payload under a name nobody guessed; Error as text
        let e = envelope::Envelope::from_result(
            json!({"status": "badRequest", "error": "no such account", "response": {"A": 1}}),
        );
        assert_eq!(e.data, json!({"A": 1}));
        assert_eq!(
            e.error.and_then(|e| e.detail).as_deref(),
            Some("no such account")
        );
        let extra = envelope::Envelope::from_result(
            json!({"Status": "Success", "TraceId": "t", "Response": [1]}),
        );
        assert_eq!(extra.data, json!([1]));
        // a bare string payload beside a trace id; no payload at all but a trace id
        let bare = envelope::Envelope::from_result(
            json!({"Status": "Success", "traceId": "t", "Response": "job-1"}),
        );
        assert_eq!(bare.data, json!("job-1"));
        // unknown keys
        for not_found in [
            json!({"Status": "Success"}),
            json!({"Status": "Success", "TraceId": "00-trace"}),
            json!({"Status": "Success", "Data": {"ServerRevision": 7}}),
            json!({"Status": "Success", "Data": {}}),
            json!({"Status": "BadRequest", "Error": {"Code": "IdempotencyKeyNotFound"}}),
        ] {
            assert!(
                envelope::Envelope::from_result(not_found.clone()).is_not_found(),
                "{not_found}"
            );
        }
        assert!(!envelope::Envelope::from_result(json!({"Status": "BadRequest"})).is_not_found());
        assert!(envelope::unsupported(&json!({"Status": 0, "Data": null})).is_some());
        assert!(envelope::unsupported(&json!({"Status": "Success"})).is_none());
        // ids
        assert_eq!(order_ids(&json!(901)), vec![901]);
        assert_eq!(order_ids(&json!(["901", 902])), vec![901, 902]);
        assert_eq!(order_ids(&json!({"orderIds": ["7"]})), vec![7]);
        assert_eq!(order_ids(&Value::Null), Vec::<i64>::new());
        assert_eq!(job_id(&json!("j-1")).as_deref(), Some("j-1"));
        assert_eq!(job_id(&json!({"jobId": 17})).as_deref(), Some("17"));
        // callbacks
        assert_eq!(
            callback_payload(vec![json!(101), json!({"OrderId": 1})]),
            json!({"OrderId": 1})
        );
        assert_eq!(
            callback_payload(vec![json!("{\"OrderId\":1}")]),
            json!({"OrderId": 1})
        );
        assert_eq!(callback_payload(vec![json!(5)]), json!(5));
        assert_eq!(callback_payload(Vec::new()), Value::Null);
        assert_eq!(
            stream_item(json!({"status": "Success", "data": {"Mark": 1}})),
            json!({"Mark": 1})
        );
        assert_eq!(
            callbacks::canonical_target("OnEntryPreparationCompleted"),
            "OnPositionEntryPreparationCompleted"
        );
        assert_eq!(
            callbacks::canonical_target("OnAgentStatusChanged"),
            "OnAgentStatus"
        );
    }

    #[test]
    fn arguments_follow_the_servers_casing() {
        assert_eq!(Casing::of(&json!({"status": 1})), Some(Casing::Camel));
        assert_eq!(Casing::of(&json!({"Status": 1})), Some(Casing::Pascal));
        assert_eq!(Casing::of(&json!([1])), None);
        assert_eq!(
            Casing::Camel
                .args(json!({"PnlFields": "All", "LegGroupOrder": {"LegNames": ["ShortPut"]}})),
            json!({"pnlFields": "All", "legGroupOrder": {"legNames": ["ShortPut"]}})
        );
        for (pascal, camel) in [
            ("IBKR", "ibkr"),
            ("PnL", "pnL"),
            ("EventSeqId", "eventSeqId"),
        ] {
            assert_eq!(camel_case(pascal), camel);
        }
    }

    #[test]
    fn unreadable_history_is_named() {
        for (item, form) in [
            (
                json!({"EventSeqId": 5, "EventType": 4, "Payload": {}}),
                "numeric_type",
            ),
            (json!({"EventSeqId": 5, "OrderId": 1}), "untyped"),
        ] {
            let page = history::read_page(json!({"Events": [item]})).unwrap();
            assert_eq!(page.unreadable.map(|u| u.form), Some(form));
        }
        let typed = history::read_page(
            json!({"Events": [{"$type": "OrderUpdateEvent", "EventSeqId": "5", "OrderId": 1}]}),
        )
        .unwrap();
        assert!(typed.unreadable.is_none());
        assert_eq!(typed.events[0].seq_id(), Some(5));
        assert!(history::ignores_cursor(4, &typed).is_none());
        assert_eq!(
            history::ignores_cursor(9, &typed).map(|u| u.form),
            Some("other_name")
        );
    }

    #[test]
    fn history_wrapper_and_string_payload() {
        let page = history::read_page(json!({
            "events": [
                {"eventSeqId": 5, "eventId": "a", "eventType": "OnOrderUpdate", "payload": "{\"OrderId\":1}"},
                {"EventSeqId": 6, "EventId": "b", "Type": "PositionUpdateEvent", "Payload": {"PositionId": 2}}
            ],
            "hasMore": true
        }))
        .unwrap();
        assert_eq!(page.has_more, Some(true));
        assert_eq!(page.events[0].payload["OrderId"], 1);
        assert_eq!(page.events[0].payload["EventSeqId"], 5);
        assert_eq!(
            page.events[1].event_type.as_deref(),
            Some("PositionUpdateEvent")
        );
    }

    #[test]
    fn a_cursor_older_than_the_retained_history_is_told_by_code_or_words_never_by_a_token() {
        use history::says_too_old;
        let message = history::too_old_message(4, 4001);
        assert!(says_too_old(&["BadRequest"], &[&message]));
        assert!(says_too_old(&["cursortooold"], &["oldest retained 9000"]));
        assert!(says_too_old(&["Gone"], &[]));
        assert!(says_too_old(
            &["ValidationError"],
            &["EventSeqId 4 is too old"]
        ));
        assert!(!says_too_old(
            &["ValidationError"],
            &["unknown or expired ContinuationToken"]
        ));
        assert!(!says_too_old(
            &["ValidationError"],
            &["the token is too old"]
        ));
        assert!(!says_too_old(&["BadRequest"], &["Limit must be positive"]));
    }
}
