//! Every MesoLive wire detail that SPEC.md marks INFERRED, in one place, shared by the daemon's
//! clients and the simulator so both change together. When `check probe` against a live server
//! says otherwise, correct it here (and the tests in `tests/hubs_wire.rs`).
//!
//! | detail | reading implemented | where |
//! |---|---|---|
//! | one args object per method (`arguments: [args]`) | yes | [`call_args`] |
//! | envelope field names | `Status`, `Message`, `Error`, `Data` (+ aliases on input) | [`envelope`] |
//! | enum encoding | member names as strings; integers accepted | `lenient_enum!` |
//! | flags encoding | a single member name (`"All"`) | [`args::ALL_BLOCKS`] |
//! | page shape | `{Items, ContinuationToken}` (+ aliases, or a bare array) | [`paging`] |
//! | GetEventsSince args | `{AfterEventSeqId, Limit, ContinuationToken}` | [`args::events_since`] |
//! | GetEventsSince result | `{Events:[{EventSeqId, EventId, EventType, Payload}], ContinuationToken, HasMore}` | [`history`] |
//! | callback names of entry/exit prep and agent status | `OnPosition{Entry,Exit}Preparation{Completed,Failed}`, `OnAgentStatus` | [`callbacks`] |
//! | GetIdempotencyRecord for an unknown key | a non-success status (`NotFound`) or null data | [`envelope::Envelope::is_not_found`] |

use serde_json::{Map, Value};

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

/// The live order ids an execution call returned (INFERRED: `LiveOrderIds`, or `OrderIds`, or
/// a single `OrderId`).
pub fn order_ids(value: &Value) -> Vec<i64> {
    let Some(object) = value.as_object() else {
        return Vec::new();
    };
    if let Some(Value::Array(ids)) = field(object, &["LiveOrderIds", "OrderIds"]) {
        return ids.iter().filter_map(Value::as_i64).collect();
    }
    field(object, &["OrderId", "LiveOrderId"])
        .and_then(Value::as_i64)
        .into_iter()
        .collect()
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

/// Hub method names (FACT unless noted in SPEC §3).
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

    /// Every known target, in SPEC order.
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
        KNOWN
            .iter()
            .find(|known| known[2..].eq_ignore_ascii_case(bare))
            .map_or_else(|| name.to_owned(), Clone::clone)
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

/// The response envelope `MesoLiveApiResponse<T>` (SPEC §2; field names INFERRED).
pub mod envelope {
    use serde_json::{Map, Value, json};

    use super::{field, field_key};
    use crate::lenient::decode_ref;
    use crate::models::{MesoLiveApiError, StatusCode};

    const STATUS: &[&str] = &["Status", "StatusCode"];
    const MESSAGE: &[&str] = &["Message"];
    const ERROR: &[&str] = &["Error"];
    const DATA: &[&str] = &["Data", "Payload", "Result", "Value"];

    fn status_of(object: &Map<String, Value>) -> StatusCode {
        field(object, STATUS)
            .and_then(|v| decode_ref::<StatusCode>(v).ok())
            .unwrap_or(StatusCode::Unknown("?".into()))
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
            let error = field(object, ERROR)
                .filter(|v| !v.is_null())
                .and_then(|v| decode_ref::<MesoLiveApiError>(v).ok());
            let data = field(object, DATA).cloned().unwrap_or(Value::Null);
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
            Ok(field_key(&object, DATA)
                .cloned()
                .and_then(|key| object.remove(&key))
                .unwrap_or(Value::Null))
        }

        /// INFERRED: how GetIdempotencyRecord says "never seen this key".
        pub fn is_not_found(&self) -> bool {
            matches!(self.status, StatusCode::NotFound)
                || (self.status == StatusCode::Success && self.data.is_null())
        }
    }

    /// Builds an envelope as the simulator sends it.
    pub fn success(data: Value) -> Value {
        json!({"Status": "Success", "Message": null, "Error": null, "Data": data})
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

/// Paged lists (`ContinuationToken`, SPEC §3.1.3; wrapper shape INFERRED).
pub mod paging {
    use serde_json::{Value, json};

    use super::field;

    const ITEMS: &[&str] = &["Items", "Data", "Results", "Values", "Records"];
    const TOKEN: &[&str] = &["ContinuationToken", "NextContinuationToken", "NextToken"];

    /// One page: raw items and the token for the next page (`None` on the last page).
    #[derive(Debug, Clone, PartialEq)]
    pub struct RawPage {
        /// Items as received.
        pub items: Vec<Value>,
        /// Opaque token to send back, if more pages exist.
        pub continuation: Option<String>,
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
                    .and_then(|v| v.as_str())
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned);
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
        json!({"Items": items, "ContinuationToken": continuation})
    }
}

/// `GetEventsSince` results (shape INFERRED, SPEC §3.3).
pub mod history {
    use serde_json::{Value, json};

    use super::{field, field_key};

    const EVENTS: &[&str] = &["Events", "Items", "Data", "Results"];
    const TYPE: &[&str] = &[
        "EventType",
        "Type",
        "Target",
        "CallbackName",
        "EventName",
        "Name",
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

    /// One page of history.
    #[derive(Debug, Clone, PartialEq)]
    pub struct HistoryPage {
        /// Events in ascending EventSeqId order as the server sent them.
        pub events: Vec<HistoricEvent>,
        /// Token for the next page.
        pub continuation: Option<String>,
        /// Whether the server says more pages exist (`None`: not stated).
        pub has_more: Option<bool>,
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
        Some(HistoryPage {
            events: items.into_iter().map(read_item).collect(),
            continuation,
            has_more,
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

    /// One history item as the simulator sends it.
    pub fn item(seq_id: i64, event_id: &str, target: &str, payload: Value) -> Value {
        json!({"EventSeqId": seq_id, "EventId": event_id, "EventType": target, "Payload": payload})
    }

    /// A history page as the simulator sends it.
    pub fn page(events: Vec<Value>, continuation: Option<String>, has_more: bool) -> Value {
        json!({"Events": events, "ContinuationToken": continuation, "HasMore": has_more})
    }
}

/// Argument objects (field names INFERRED unless SPEC marks them FACT).
pub mod args {
    use rust_decimal::Decimal;
    use serde_json::{Value, json};

    use crate::models::{LegGroupOrder, OrderType, PreparedPlan, TimeInForce};

    /// `LiveDataInclude` / `LiveQuoteFields` value asking for everything (flags encoding INFERRED).
    pub const ALL_BLOCKS: &str = "All";

    /// A paged list request.
    pub fn page(limit: Option<u32>, continuation: Option<&str>) -> Value {
        json!({"Limit": limit, "ContinuationToken": continuation})
    }

    /// `ListPositions` for one strategy (filter name FACT).
    pub fn positions_of_strategy(
        strategy_id: i64,
        limit: Option<u32>,
        continuation: Option<&str>,
    ) -> Value {
        json!({"LiveStrategyId": strategy_id, "Limit": limit, "ContinuationToken": continuation})
    }

    /// `ListPositions` restricted to open positions.
    pub fn open_positions(limit: Option<u32>, continuation: Option<&str>) -> Value {
        json!({super::OPEN_ONLY_ARG: true, "Limit": limit, "ContinuationToken": continuation})
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

    /// `GetUnderlyingSnapshot` / `StreamUnderlyingData` (provider required by the server).
    pub fn underlying(symbol: &str, provider: Option<&str>) -> Value {
        json!({"Symbol": symbol, "PriceFields": ALL_BLOCKS, "Provider": provider})
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
    pub fn paper_fills(key: &str, account: &str, plan: &PreparedPlan, group: i64) -> Value {
        json!({
            "IdempotencyKey": key,
            "BrokerAccountId": account,
            "ExecPlanId": plan.exec_plan_id,
            "LegGroupId": group,
            "FillPrice": plan.group_mid(group),
        })
    }

    /// `SendOrder` for one leg group (SendOrderArgs FACT; `LegGroupOrder` fields INFERRED): a
    /// limit order at `limit` when given, else a market order; day order; new (not replacing).
    pub fn send_order(
        key: &str,
        account: &str,
        plan: &PreparedPlan,
        group: i64,
        qty_multiplier: Option<Decimal>,
        limit: Option<Decimal>,
    ) -> Value {
        let order = LegGroupOrder {
            order_type: if limit.is_some() {
                OrderType::Limit
            } else {
                OrderType::Market
            },
            time_in_force: TimeInForce::Day,
            limit_price: limit,
            stop_price: None,
            leg_names: plan.leg_names(group),
        };
        json!({
            "IdempotencyKey": key,
            "ReplacesOrder": null,
            "BrokerAccountId": account,
            "ExecPlanId": plan.exec_plan_id,
            "QtyMultiplier": qty_multiplier,
            "LegGroupId": group,
            "LegGroupOrder": order,
        })
    }

    /// Reads an args object field by any casing (simulator side).
    pub fn read<'a>(args: &'a Value, name: &str) -> Option<&'a Value> {
        args.as_object().and_then(|o| super::field(o, &[name]))
    }

    /// The first argument of a call, or `Null`.
    pub fn first(arguments: &[Value]) -> Value {
        arguments.first().cloned().unwrap_or(Value::Null)
    }
}

/// `LiveGreeks` as the simulator sends it (model not recovered, SPEC §3.2.4; INFERRED: one set
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

/// Text values of enums whose members were never documented (SPEC §5.1, all INFERRED).
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

/// A JSON object from pairs (small helper for the simulator's payloads).
pub fn object(pairs: &[(&str, Value)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}

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
}
