//! MesoLive payload models (API §2–§5), PascalCase on the wire, decoded leniently through
//! [`crate::lenient::decode`]. Only `Option` fields may be absent; a missing required field
//! is a decode error (the event pump quarantines such events).
//!
//! Times are kept as the text the server sent: their exact format (offset or not) is not
//! documented, and the daemon only stores and displays them.

use std::collections::HashMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::lenient_enum;

lenient_enum! {
    /// Outcome code of the response envelope; `DuplicateRequest` and `Conflict` drive the
    /// idempotency flow (API §6.1). Members past the first three are INFERRED.
    pub enum StatusCode { Success, DuplicateRequest, Conflict, NotFound, BadRequest, ValidationError, Unauthorized, Forbidden, Timeout, InternalError }
}

lenient_enum! {
    /// State of a server idempotency record.
    pub enum IdempotencyRecordStatus { Processing, Completed, Failed }
}

lenient_enum! {
    /// Status of an async prepare job (members past Completed/Failed are INFERRED).
    pub enum PreparationStatus { Pending, Queued, Running, InProgress, Completed, Failed, Cancelled }
}

impl PreparationStatus {
    /// Whether the job will not change any more.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            PreparationStatus::Completed | PreparationStatus::Failed | PreparationStatus::Cancelled
        )
    }

    /// The member a spelling this build does not list stands for, where the API's meaning is
    /// unambiguous (`Canceled` is `Cancelled`); every other member as it is.
    pub fn normalized(self) -> PreparationStatus {
        match self {
            PreparationStatus::Unknown(text) if text.eq_ignore_ascii_case("Canceled") => {
                PreparationStatus::Cancelled
            }
            other => other,
        }
    }
}

lenient_enum! {
    /// Level-style signal state.
    pub enum SignalState { On, Off }
}

lenient_enum! {
    /// Kind of a position update (FACT, complete).
    pub enum PositionStatus { Created, Closed, Adjusted, RealizedPnLChanged }
}

lenient_enum! {
    /// Kind of a leg update (members INFERRED).
    pub enum LegStatus { Created, Closed, Adjusted, QtyChanged, RealizedPnLChanged }
}

lenient_enum! {
    /// Order lifecycle state (members INFERRED).
    pub enum OrderState { Pending, Submitted, Working, PartiallyFilled, Filled, Cancelled, Rejected, Expired }
}

impl OrderState {
    /// The state an order update stands for: its member (`Canceled` read as `Cancelled`), or
    /// `Filled` when the member is one this build does not know but the update says nothing
    /// remains and something filled (FACT fields `FilledQty`, `RemainingQty`).
    pub fn effective(
        self,
        filled: Option<rust_decimal::Decimal>,
        remaining: Option<rust_decimal::Decimal>,
    ) -> OrderState {
        match self {
            OrderState::Unknown(text) if text.eq_ignore_ascii_case("Canceled") => {
                OrderState::Cancelled
            }
            OrderState::Unknown(_)
                if remaining.is_some_and(|r| r.is_zero())
                    && filled.is_some_and(|f| !f.is_zero()) =>
            {
                OrderState::Filled
            }
            other => other,
        }
    }

    /// Whether the order will not change any more.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            OrderState::Filled | OrderState::Cancelled | OrderState::Rejected | OrderState::Expired
        )
    }
}

lenient_enum! {
    /// Order type (INFERRED from the portal manual).
    pub enum OrderType { Market, Limit, Stop, StopLimit }
}

lenient_enum! {
    /// Time in force (INFERRED spelling).
    pub enum TimeInForce { Day, Gtc }
}

lenient_enum! {
    /// Adjustment kinds; `UpdateVars` is applied server-side and needs no execution.
    pub enum PositionAdjustmentOperation { AddLegs, RemoveLegs, MoveLeg, UpdateVars }
}

lenient_enum! {
    /// Leg uniqueness rule for entries (INFERRED members).
    pub enum LiveLegSelectionConstraint { None, FullyUnique, UniqueInPosition }
}

lenient_enum! {
    /// Contract kind.
    pub enum MesoContractType { Stock, Index, Options, Futures, FuturesOptions }
}

lenient_enum! {
    /// Option right.
    pub enum MesoOptionType { Call, Put }
}

/// Structured error details of a failed response (FACT, complete).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MesoLiveApiError {
    /// Machine-readable code.
    pub code: Option<String>,
    /// Extra detail text.
    pub detail: Option<String>,
    /// Provider or broker that produced the error.
    pub provider: Option<String>,
    /// Per-field validation messages.
    pub validation_errors: Option<HashMap<String, Vec<String>>>,
}

/// A connected provider/connector (model not recovered: a few INFERRED fields under the names
/// a server may use; only the count of agents is acted on, the rest is shown by
/// `check agents`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AgentInfo {
    /// Provider or connector name.
    pub name: Option<String>,
    /// Connector type: a name, or whatever the server writes (an integer, an object), kept raw.
    #[serde(alias = "Provider")]
    pub connector: Option<Value>,
    /// Whether it is connected now.
    #[serde(alias = "IsConnected")]
    pub connected: Option<bool>,
    /// When it last produced a snapshot.
    #[serde(alias = "LastSnapshotUtc")]
    pub last_snapshot_time: Option<String>,
}

/// A brokerage account linked to the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LiveAccount {
    /// Broker's account id, e.g. `ML1234`.
    pub broker_account_id: String,
    /// Broker behind the account (enum members unknown; kept as text).
    pub broker_type: Option<Value>,
    /// Account type text.
    pub account_type: Option<String>,
    /// Currency, e.g. `USD`.
    pub currency: Option<String>,
    /// Paper accounts execute with ApplyPaperFills, never SendOrder.
    pub is_paper_account: bool,
    /// Last known net liquidation value.
    pub net_liquidation_value: Option<Decimal>,
    /// Number of open positions.
    pub active_positions: Option<i64>,
}

/// A live strategy (model not recovered: INFERRED fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LiveStrategy {
    /// Strategy id.
    #[serde(alias = "StrategyId")]
    pub id: i64,
    /// Strategy name.
    #[serde(alias = "StrategyName")]
    pub name: Option<String>,
    /// Accounts the strategy is active on.
    pub active_on_accounts: Option<Vec<String>>,
    /// Underlying symbol the strategy trades (INFERRED; used for entry prepare args).
    pub symbol: Option<String>,
}

/// Summary of a live position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LivePosition {
    /// Position id.
    pub id: i64,
    /// State (members unknown; `Open`/`Closed` INFERRED).
    pub state: Option<String>,
    /// Creation time.
    pub created_at: Option<String>,
    /// Close time; `None` while open.
    pub closed_at: Option<String>,
    /// Position name.
    pub name: Option<String>,
    /// Owning account.
    pub broker_account_id: Option<String>,
    /// Strategy.
    pub live_strategy_id: i64,
    /// Strategy name.
    pub strategy_name: Option<String>,
    /// Quantity multiplier.
    pub qty_multiplier: Option<Decimal>,
}

impl LivePosition {
    /// Open means not closed: `ClosedAt` unset and no state saying otherwise.
    pub fn is_open(&self) -> bool {
        self.closed_at.is_none()
            && !self
                .state
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("closed"))
    }
}

/// An underlying (model not recovered; INFERRED: a symbol).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LiveUnderlying {
    /// Symbol, e.g. `SPX`.
    pub symbol: String,
}

/// Contract spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LiveContract {
    /// Contract kind.
    pub contract_type: MesoContractType,
    /// Underlying (shape INFERRED; kept raw).
    pub underlying: Option<Value>,
    /// Option root.
    pub root: Option<String>,
    /// Call or put.
    pub option_type: Option<MesoOptionType>,
    /// Expiry.
    pub expiration: Option<String>,
    /// Strike.
    pub strike: Option<Decimal>,
    /// Multiplier.
    pub multiplier: Option<Decimal>,
}

/// One leg of a position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LiveLeg {
    /// Leg id.
    pub id: i64,
    /// Leg name, stable inside an execution plan.
    pub name: String,
    /// Contract.
    pub live_contract: Option<LiveContract>,
    /// Leg group; 0 = ungrouped.
    pub leg_group_id: Option<i64>,
    /// Close time; `None` while open.
    pub closed_at: Option<String>,
    /// Parent position.
    pub live_position_id: i64,
    /// Owning account (named `AccountId` on the wire).
    pub account_id: Option<String>,
    /// Underlying symbol.
    pub underlying: Option<String>,
    /// Signed quantity.
    pub qty: Decimal,
    /// Average entry price including commission.
    pub avg_entry_price: Option<Decimal>,
}

/// The server's record of an idempotent call and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IdempotencyRecord {
    /// The key.
    pub idempotency_key: String,
    /// Operation that used the key (enum unknown; kept as text).
    pub operation: Option<String>,
    /// Processing / Completed / Failed.
    pub status: IdempotencyRecordStatus,
    /// Creation time.
    pub created_at: Option<String>,
    /// Last update time.
    pub updated_at: Option<String>,
    /// Hash of the original request.
    pub request_hash: Option<String>,
    /// Related execution plan.
    pub live_exec_plan_id: Option<i64>,
    /// Orders created or touched by the call.
    pub live_order_ids: Option<Vec<i64>>,
    /// Failure text.
    pub error_message: Option<String>,
    /// Async job id (prepare operations).
    pub job_id: Option<String>,
    /// Async job status.
    pub job_status: Option<PreparationStatus>,
    /// Raw job result.
    pub job_result: Option<Value>,
    /// Raw job error.
    pub job_error_message: Option<String>,
    /// Status of the original response.
    pub response_status: Option<StatusCode>,
    /// Message of the original response.
    pub response_message: Option<String>,
    /// Error of the original response.
    pub response_error: Option<MesoLiveApiError>,
    /// Raw data of the original response.
    pub response_data: Option<String>,
}

/// What `SendOrder` / `ApplyPaperFills` return (INFERRED: the live order ids).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecutionAccepted {
    /// Orders created by the call.
    pub live_order_ids: Option<Vec<i64>>,
    /// The plan executed.
    pub exec_plan_id: Option<i64>,
}

impl PrepareStatusResult {
    /// The job's status as the daemon acts on it: the member (normalized), or, for a member
    /// this build does not know, `Completed` when the job carries a result and `Failed` when
    /// it carries an error (the API sets `Result` only when Completed and `Error` only when
    /// Failed, §3.1.5).
    pub fn effective_status(&self) -> PreparationStatus {
        match self.status.clone().normalized() {
            PreparationStatus::Unknown(_) if self.result.as_ref().is_some_and(|r| !r.is_null()) => {
                PreparationStatus::Completed
            }
            PreparationStatus::Unknown(_) if self.error.is_some() => PreparationStatus::Failed,
            status => status,
        }
    }
}

/// `GetPreparePosition*Status` result; `Result` is kept raw and decoded by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PrepareStatusResult {
    /// Job id.
    pub job_id: String,
    /// Current status.
    pub status: PreparationStatus,
    /// Set when Completed.
    pub result: Option<Value>,
    /// Set when Failed.
    pub error: Option<String>,
    /// Creation time.
    pub created_at: Option<String>,
    /// Last update time.
    pub updated_at: Option<String>,
}

/// The part of every prepare result (entry, exit, adjustment) that execution needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PreparedPlan {
    /// Plan to pass to SendOrder / ApplyPaperFills.
    pub exec_plan_id: i64,
    /// Target account.
    pub broker_account_id: Option<String>,
    /// Strategy.
    pub strategy_id: Option<i64>,
    /// Position (exit and adjustment results).
    pub position_id: Option<i64>,
    /// Leg group id → leg names (JSON object keys are the ids as text).
    #[serde(default)]
    pub leg_groups: HashMap<String, Vec<String>>,
    /// Entry gate (entry results).
    pub entry_allowed: Option<bool>,
    /// Adjustment gate (adjustment results, optional there too).
    pub adjustment_allowed: Option<bool>,
    /// Adjustment kind (adjustment results).
    pub operation: Option<PositionAdjustmentOperation>,
    /// Multiplier resolved by the server.
    pub qty_multiplier: Option<Decimal>,
    /// Prices per leg group (for limit prices and paper fills).
    #[serde(default)]
    pub leg_group_prices: HashMap<String, LivePrices>,
}

impl PreparedPlan {
    /// Leg group ids in ascending order (execution order).
    pub fn leg_group_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .leg_groups
            .keys()
            .filter_map(|k| k.trim().parse().ok())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Leg names of one group.
    pub fn leg_names(&self, group: i64) -> Vec<String> {
        self.leg_groups
            .iter()
            .find(|(k, _)| k.trim().parse::<i64>().ok() == Some(group))
            .map(|(_, names)| names.clone())
            .unwrap_or_default()
    }

    /// The mid price of one group (limit price, paper fill price), when the plan priced it.
    pub fn group_mid(&self, group: i64) -> Option<Decimal> {
        self.leg_group_prices
            .iter()
            .find(|(k, _)| k.trim().parse::<i64>().ok() == Some(group))
            .and_then(|(_, prices)| prices.mid())
    }

    /// Whether the server's gates allow execution.
    pub fn allowed(&self) -> bool {
        self.entry_allowed != Some(false) && self.adjustment_allowed != Some(false)
    }
}

/// Order view (`GetOrder`/`ListOrders`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Order {
    /// Order id.
    pub order_id: i64,
    /// Plan.
    pub exec_plan_id: Option<i64>,
    /// Account.
    pub broker_account_id: Option<String>,
    /// Leg group.
    pub leg_group_id: Option<i64>,
    /// State.
    pub state: OrderState,
    /// Signed quantity.
    pub qty: Option<Decimal>,
    /// Signed filled quantity.
    pub cum_qty: Option<Decimal>,
    /// Average fill price.
    pub avg_fill_price: Option<Decimal>,
}

/// Price block with quote ages (FACT).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LivePrices {
    /// Server evaluation time.
    pub snapshot_time: Option<String>,
    /// Bid.
    pub bid: Option<Decimal>,
    /// Ask.
    pub ask: Option<Decimal>,
    /// Last.
    pub last: Option<Decimal>,
    /// Mark.
    pub mark: Option<Decimal>,
    /// Age of the mark in ms.
    pub mark_age_ms: Option<i64>,
}

impl LivePrices {
    /// Mid of bid/ask, else mark, else last: the paper fill price.
    pub fn mid(&self) -> Option<Decimal> {
        match (self.bid, self.ask) {
            (Some(bid), Some(ask)) => Some((bid + ask) / Decimal::TWO),
            _ => self.mark.or(self.last),
        }
    }
}

/// PnL block (FACT).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LivePnL {
    /// Server evaluation time.
    pub snapshot_time: Option<String>,
    /// Realized part.
    pub realized: Option<Decimal>,
    /// Running PnL at mark.
    pub mark: Option<Decimal>,
}

/// One update of a position's market data (`StreamPositionData` item, `GetPositionSnapshot`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PositionDataEntry {
    /// Position prices.
    pub position_prices: Option<LivePrices>,
    /// Position greeks (model not recovered; raw).
    pub position_greeks: Option<Value>,
    /// Position PnL.
    #[serde(alias = "PositionPnL")]
    pub position_pn_ls: Option<LivePnL>,
    /// Leg prices by leg id.
    pub leg_prices: Option<HashMap<String, LivePrices>>,
}

/// `GetLatestEventSeqId` result (FACT).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LatestEventSeqId {
    /// Newest sequence id available to the user.
    pub latest_event_seq_id: i64,
    /// Time of the read.
    pub snapshot_time: Option<String>,
}

/// `SubscribeToStrategies` / `UnsubscribeFromStrategies` result (FACT).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubscriptionResult {
    /// Strategies joined (or left).
    #[serde(default)]
    pub successful_strategies: Vec<i64>,
    /// Strategies that failed.
    #[serde(default)]
    pub failed_strategies: Vec<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lenient::decode;
    use serde_json::json;

    #[test]
    fn aliases_match_case_insensitively() {
        let s: LiveStrategy = decode(json!({"strategyId": 5, "strategyName": "IC"})).unwrap();
        assert_eq!(s.id, 5);
        assert_eq!(s.name.as_deref(), Some("IC"));
    }

    #[test]
    fn decimals_from_numbers_and_strings() {
        let p: LivePrices = decode(json!({"bid": 1.1, "ASK": "1.3", "mark": null})).unwrap();
        assert_eq!(p.bid, Some(Decimal::new(11, 1)));
        assert_eq!(p.mid(), Some(Decimal::new(12, 1)));
    }

    #[test]
    fn unknown_members_read_by_what_the_fields_say() {
        let done = OrderState::Unknown("Done".into());
        assert_eq!(
            done.clone()
                .effective(Some(Decimal::ONE), Some(Decimal::ZERO)),
            OrderState::Filled
        );
        assert_eq!(
            done.clone()
                .effective(Some(Decimal::ZERO), Some(Decimal::ONE)),
            done
        );
        assert_eq!(
            OrderState::Unknown("canceled".into()).effective(None, None),
            OrderState::Cancelled
        );
        let job = |status: &str, result: Value, error: Option<&str>| PrepareStatusResult {
            job_id: "j".into(),
            status: PreparationStatus::from_name(status),
            result: Some(result),
            error: error.map(str::to_owned),
            created_at: None,
            updated_at: None,
        };
        assert_eq!(
            job("Succeeded", json!({"ExecPlanId": 1}), None).effective_status(),
            PreparationStatus::Completed
        );
        assert_eq!(
            job("Error", Value::Null, Some("no legs")).effective_status(),
            PreparationStatus::Failed
        );
        assert_eq!(
            job("Aborted", Value::Null, None).effective_status(),
            PreparationStatus::Unknown("Aborted".into())
        );
        assert_eq!(
            job("Canceled", Value::Null, None).effective_status(),
            PreparationStatus::Cancelled
        );
    }

    #[test]
    fn plan_leg_groups_in_order() {
        let plan: PreparedPlan = decode(json!({
            "ExecPlanId": 9, "LegGroups": {"2": ["b"], "1": ["a"]}, "EntryAllowed": false
        }))
        .unwrap();
        assert_eq!(plan.leg_group_ids(), vec![1, 2]);
        assert!(!plan.allowed());
    }
}
