//! Event Hub callbacks (API §4): one model per callback, a common header, and [`HubEvent`], the
//! decoded form the event pump consumes — live (a callback's `arguments[0]`) or replayed (an item
//! of a `GetEventsSince` page).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::lenient::decode_ref;
use super::models::{
    LegStatus, LiveContract, OrderState, PositionStatus, PreparationStatus, SignalState,
};
use super::wire::{callbacks, field};
use crate::FlowKind;

/// The header every event carries (FACT: `EventId` and `EventSeqId` may be absent, e.g. in the
/// active-state pushes sent on connect, but are never null when present).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventHeader {
    /// Stable id of the event instance: the dedupe key.
    pub event_id: Option<String>,
    /// Server sequence number: the replay cursor.
    pub event_seq_id: Option<i64>,
    /// Server time of the event.
    pub event_time: Option<String>,
}

/// Entry signal for a strategy on an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EntrySignalEvent {
    /// On or Off.
    pub state: SignalState,
    /// Strategy.
    pub strategy_id: i64,
    /// Strategy name.
    pub strategy_name: Option<String>,
    /// Account the signal is for.
    pub broker_account_id: String,
    /// Entry-check details (model not recovered).
    pub entry_signal_result: Option<Value>,
}

/// Exit signal for a position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExitSignalEvent {
    /// On or Off.
    pub state: SignalState,
    /// Strategy.
    pub strategy_id: i64,
    /// Strategy name.
    pub strategy_name: Option<String>,
    /// Position to exit.
    pub position_id: i64,
    /// Position name.
    pub position_name: Option<String>,
    /// Account, when known.
    pub broker_account_id: Option<String>,
    /// Exit-check details (model not recovered).
    pub exit_signal_result: Option<Value>,
}

/// Adjustment signal for a position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AdjustmentSignalEvent {
    /// On or Off.
    pub state: SignalState,
    /// Strategy.
    pub strategy_id: i64,
    /// Strategy name.
    pub strategy_name: Option<String>,
    /// Position to adjust.
    pub position_id: i64,
    /// Position name.
    pub position_name: Option<String>,
    /// Account, when known.
    pub broker_account_id: Option<String>,
    /// Whether the adjustment time window is satisfied.
    pub adjustment_time_ok: Option<bool>,
    /// The condition evaluation behind the signal (model not recovered; see
    /// [`AdjustmentSignalEvent::condition_id`]).
    pub condition: Option<Value>,
}

impl AdjustmentSignalEvent {
    /// The condition identifier `PreparePositionAdjustmentArgs.Condition` expects. INFERRED: the
    /// evaluation is either the id itself (a string) or an object with an id/name field.
    pub fn condition_id(&self) -> Option<String> {
        match self.condition.as_ref()? {
            Value::String(text) => Some(text.clone()),
            Value::Object(map) => ["Condition", "ConditionId", "Id", "Name", "Statement"]
                .iter()
                .find_map(|name| {
                    map.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .and_then(|(_, v)| match v {
                            Value::String(s) => Some(s.clone()),
                            Value::Number(n) => Some(n.to_string()),
                            _ => None,
                        })
                }),
            _ => None,
        }
    }
}

/// Strategy-evaluation error raised or cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorEvent {
    /// Error state transition (members unknown; kept as text).
    pub state: Option<Value>,
    /// Stable id of the error instance.
    pub error_id: Option<String>,
    /// Strategy, if scoped to one.
    pub strategy_id: Option<i64>,
    /// Position, if scoped to one.
    pub position_id: Option<i64>,
    /// Human-readable text.
    pub message: Option<String>,
}

/// Order lifecycle update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OrderUpdateEvent {
    /// Live order id.
    pub order_id: i64,
    /// Account, when known.
    pub broker_account_id: Option<String>,
    /// Plan, when known.
    pub exec_plan_id: Option<i64>,
    /// Leg group, when known.
    pub leg_group_id: Option<i64>,
    /// Strategy.
    pub strategy_id: i64,
    /// Strategy name.
    pub strategy_name: Option<String>,
    /// Current state.
    pub state: OrderState,
    /// Filled so far.
    pub filled_qty: Option<Decimal>,
    /// Remaining.
    pub remaining_qty: Option<Decimal>,
    /// Last fill price.
    pub fill_price: Option<Decimal>,
    /// Average fill price.
    pub avg_fill_price: Option<Decimal>,
    /// Rejection details (model not recovered).
    pub rejection: Option<Value>,
}

/// Position lifecycle update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PositionUpdateEvent {
    /// Position.
    pub position_id: i64,
    /// Strategy.
    pub strategy_id: i64,
    /// Strategy name.
    pub strategy_name: Option<String>,
    /// Position name.
    pub position_name: Option<String>,
    /// Account.
    pub broker_account_id: Option<String>,
    /// Created / Closed / Adjusted / RealizedPnLChanged.
    pub status: PositionStatus,
    /// Realized PnL at event time.
    #[serde(rename = "RealizedPnL")]
    pub realized_pnl: Option<Decimal>,
}

/// Leg lifecycle update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LegUpdateEvent {
    /// Account.
    pub broker_account_id: Option<String>,
    /// Position.
    pub position_id: i64,
    /// Strategy.
    pub strategy_id: i64,
    /// Leg.
    pub leg_id: i64,
    /// Leg name.
    pub leg_name: Option<String>,
    /// Contract.
    pub contract: Option<LiveContract>,
    /// Update kind.
    pub status: LegStatus,
    /// Current signed quantity.
    pub qty: Option<Decimal>,
    /// Realized PnL of the leg.
    #[serde(rename = "RealizedPnL")]
    pub realized_pnl: Option<Decimal>,
}

/// A prepare job finished (Completed or Failed event of any kind).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PreparationEvent {
    /// The job.
    pub job_id: String,
    /// Strategy.
    pub strategy_id: i64,
    /// Strategy name.
    pub strategy_name: Option<String>,
    /// Account, when available.
    pub broker_account_id: Option<String>,
    /// Successful result (Completed variants).
    pub result: Option<Value>,
    /// Failure reason (Failed variants).
    pub error: Option<String>,
}

/// Agent (connector) status change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AgentStatusEvent {
    /// Status (members unknown).
    pub status: Option<Value>,
    /// Human-readable text.
    pub message: Option<String>,
    /// Connector, if known.
    pub connector: Option<Value>,
}

/// A decoded event: what happened, and its header.
#[derive(Debug, Clone, PartialEq)]
pub struct HubEvent {
    /// Dedupe key and cursor position.
    pub header: EventHeader,
    /// The callback target it arrived as (canonical `On…` name).
    pub target: String,
    /// The payload.
    pub body: EventBody,
}

/// The payload of a [`HubEvent`].
#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    /// `OnEntrySignal`.
    EntrySignal(EntrySignalEvent),
    /// `OnExitSignal`.
    ExitSignal(ExitSignalEvent),
    /// `OnAdjustmentSignal`.
    AdjustmentSignal(AdjustmentSignalEvent),
    /// `OnError`.
    Error(ErrorEvent),
    /// `OnOrderUpdate`.
    OrderUpdate(OrderUpdateEvent),
    /// `OnPositionUpdate`.
    PositionUpdate(PositionUpdateEvent),
    /// `OnLegUpdate`.
    LegUpdate(LegUpdateEvent),
    /// `OnPosition{Entry,Exit,Adjustment}Preparation{Completed,Failed}`.
    Preparation {
        /// Which flow.
        kind: FlowKind,
        /// Completed or Failed.
        status: PreparationStatus,
        /// The event.
        event: PreparationEvent,
    },
    /// `OnAgentStatus`.
    AgentStatus(AgentStatusEvent),
    /// A callback this build does not know: recorded (deduped, cursor advanced), not acted on.
    Unrecognized(Value),
}

/// Why an event could not be decoded; the raw JSON goes to quarantine with this text.
#[derive(Debug, thiserror::Error)]
#[error("{target}: {reason}")]
pub struct EventDecodeError {
    /// The callback target (or `?` when unknown).
    pub target: String,
    /// What was wrong.
    pub reason: String,
    /// The header fields that could be read, so the cursor can still move past the event.
    pub header: EventHeader,
}

impl HubEvent {
    /// Decodes a live callback: `target` and its single argument (borrowed: the caller keeps
    /// the payload for the effects that store it verbatim, and for quarantine). A header field
    /// of the wrong type fails the event like a bad body field: an event whose place in the
    /// sequence cannot be read must not be applied as if it had none.
    pub fn from_callback(target: &str, payload: &Value) -> Result<HubEvent, EventDecodeError> {
        let target = callbacks::canonical_target(target);
        let (header, header_error) = read_header(payload);
        let body = match header_error {
            Some(reason) => Err(reason),
            None => decode_body(&target, payload).map_err(|err| err.to_string()),
        };
        match body {
            Ok(body) => Ok(HubEvent {
                header,
                target,
                body,
            }),
            Err(reason) => Err(EventDecodeError {
                target,
                reason,
                header,
            }),
        }
    }

    /// Whether the event is one the supervisor acts on (not merely records).
    pub fn is_recognized(&self) -> bool {
        !matches!(self.body, EventBody::Unrecognized(_))
    }

    /// The enum members this build does not know, as `Field=value` (an unknown signal state
    /// never starts a trade; other unknown members are stored as sent). Empty for most events.
    pub fn unknown_members(&self) -> Vec<String> {
        let fields: Vec<(&str, Option<&str>)> = match &self.body {
            EventBody::EntrySignal(e) => vec![("State", e.state.unknown_name())],
            EventBody::ExitSignal(e) => vec![("State", e.state.unknown_name())],
            EventBody::AdjustmentSignal(e) => vec![("State", e.state.unknown_name())],
            EventBody::OrderUpdate(e) => vec![("State", e.state.unknown_name())],
            EventBody::PositionUpdate(e) => vec![("Status", e.status.unknown_name())],
            EventBody::LegUpdate(e) => {
                let contract = e.contract.as_ref();
                vec![
                    ("Status", e.status.unknown_name()),
                    (
                        "Contract.ContractType",
                        contract.and_then(|c| c.contract_type.unknown_name()),
                    ),
                    (
                        "Contract.OptionType",
                        contract.and_then(|c| c.option_type.as_ref()?.unknown_name()),
                    ),
                ]
            }
            EventBody::Error(_)
            | EventBody::Preparation { .. }
            | EventBody::AgentStatus(_)
            | EventBody::Unrecognized(_) => Vec::new(),
        };
        fields
            .into_iter()
            .filter_map(|(field, unknown)| Some(format!("{field}={}", unknown?)))
            .collect()
    }
}

/// The header, and the reason it is unusable when a field is present with the wrong type (the
/// fields that could be read are kept either way, for the quarantine record). A payload that is
/// not an object has no header at all.
fn read_header(payload: &Value) -> (EventHeader, Option<String>) {
    let Some(object) = payload.as_object() else {
        return (EventHeader::default(), None);
    };
    match decode_ref::<EventHeader>(payload) {
        Ok(header) => (header, None),
        Err(error) => {
            // A malformed header field must not hide the others: read them one by one.
            let field = |name: &str| field(object, &[name]);
            let header = EventHeader {
                event_id: field("EventId").and_then(Value::as_str).map(str::to_owned),
                event_seq_id: field("EventSeqId").and_then(Value::as_i64),
                event_time: field("EventTime")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            };
            (header, Some(error.to_string()))
        }
    }
}

fn decode_body(target: &str, payload: &Value) -> Result<EventBody, serde_json::Error> {
    use callbacks as c;
    Ok(match target {
        c::ENTRY_SIGNAL => EventBody::EntrySignal(decode_ref(payload)?),
        c::EXIT_SIGNAL => EventBody::ExitSignal(decode_ref(payload)?),
        c::ADJUSTMENT_SIGNAL => EventBody::AdjustmentSignal(decode_ref(payload)?),
        c::ERROR => EventBody::Error(decode_ref(payload)?),
        c::ORDER_UPDATE => EventBody::OrderUpdate(decode_ref(payload)?),
        c::POSITION_UPDATE => EventBody::PositionUpdate(decode_ref(payload)?),
        c::LEG_UPDATE => EventBody::LegUpdate(decode_ref(payload)?),
        c::AGENT_STATUS => EventBody::AgentStatus(decode_ref(payload)?),
        other => match c::preparation_target(other) {
            Some((kind, status)) => EventBody::Preparation {
                kind,
                status,
                event: decode_ref(payload)?,
            },
            None => EventBody::Unrecognized(payload.clone()),
        },
    })
}
