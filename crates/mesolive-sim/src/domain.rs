//! The simulated MesoLive domain as plain records, and their wire views. Wire views are the
//! `hubs::models` structs (what the daemon decodes) plus, flattened beside them, the documented
//! fields the daemon does not read.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;

use mesolive_api::FlowKind;
use mesolive_api::models::{
    LiveAccount, LiveContract, LiveLeg, LivePosition, LiveStrategy, LiveUnderlying,
    MesoContractType, MesoOptionType, Order as OrderModel, OrderState, OrderType,
    PositionAdjustmentOperation, PreparationStatus, TimeInForce,
};
use mesolive_api::wire::states;

/// A brokerage account.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub id: String,
    pub paper: bool,
    pub broker_type: &'static str,
    pub net_liquidation: Decimal,
    pub created_at: String,
}

/// A live strategy, active on some accounts, trading one symbol.
#[derive(Debug, Clone)]
pub(crate) struct Strategy {
    pub id: i64,
    pub name: String,
    pub symbol: String,
    pub accounts: Vec<String>,
}

/// An option contract.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Contract {
    pub symbol: String,
    pub option_type: MesoOptionType,
    pub strike: Decimal,
    pub expiration: String,
    /// Days to expiry used for pricing (time decay is not simulated).
    pub days: f64,
}

/// Contract multiplier of every simulated option.
pub(crate) const MULTIPLIER: i64 = 100;

impl Contract {
    pub(crate) fn to_model(&self) -> LiveContract {
        LiveContract {
            contract_type: MesoContractType::Options,
            underlying: serde_json::to_value(LiveUnderlying {
                symbol: self.symbol.clone(),
            })
            .ok(),
            root: Some(self.symbol.clone()),
            option_type: Some(self.option_type.clone()),
            expiration: Some(self.expiration.clone()),
            strike: Some(self.strike),
            multiplier: Some(Decimal::from(MULTIPLIER)),
        }
    }
}

/// A position.
#[derive(Debug, Clone)]
pub(crate) struct Position {
    pub id: i64,
    pub name: String,
    pub strategy_id: i64,
    pub strategy_name: String,
    pub account: String,
    pub symbol: String,
    pub created_at: String,
    pub closed_at: Option<String>,
    pub qty_multiplier: Decimal,
    pub realized_pnl: Decimal,
    pub vars: BTreeMap<String, Decimal>,
    /// Every leg ever added, open or closed, in creation order.
    pub leg_ids: Vec<i64>,
}

impl Position {
    pub(crate) fn is_open(&self) -> bool {
        self.closed_at.is_none()
    }

    pub(crate) fn to_model(&self) -> LivePosition {
        LivePosition {
            id: self.id,
            state: Some(
                if self.is_open() {
                    states::POSITION_OPEN
                } else {
                    states::POSITION_CLOSED
                }
                .into(),
            ),
            created_at: Some(self.created_at.clone()),
            closed_at: self.closed_at.clone(),
            name: Some(self.name.clone()),
            broker_account_id: Some(self.account.clone()),
            live_strategy_id: self.strategy_id,
            strategy_name: Some(self.strategy_name.clone()),
            qty_multiplier: Some(self.qty_multiplier),
        }
    }
}

/// A leg of a position.
#[derive(Debug, Clone)]
pub(crate) struct Leg {
    pub id: i64,
    pub name: String,
    pub position_id: i64,
    pub account: String,
    pub contract: Contract,
    pub group: i64,
    pub qty: Decimal,
    pub entry_price: Decimal,
    pub created_at: String,
    pub closed_at: Option<String>,
    pub realized_pnl: Decimal,
}

/// `LiveLeg` and the documented fields it leaves out.
#[derive(Debug, Serialize)]
pub(crate) struct LegView {
    #[serde(flatten)]
    pub leg: LiveLeg,
    #[serde(rename = "CreatedAt")]
    pub created_at: String,
    #[serde(rename = "UserSetRealizedPnL")]
    pub user_set_realized_pnl: Option<Decimal>,
    #[serde(rename = "TrackedRealizedPnL")]
    pub tracked_realized_pnl: Decimal,
}

impl Leg {
    pub(crate) fn is_open(&self) -> bool {
        self.closed_at.is_none()
    }

    pub(crate) fn to_model(&self) -> LiveLeg {
        LiveLeg {
            id: self.id,
            name: self.name.clone(),
            live_contract: Some(self.contract.to_model()),
            leg_group_id: Some(self.group),
            closed_at: self.closed_at.clone(),
            live_position_id: self.position_id,
            account_id: Some(self.account.clone()),
            underlying: Some(self.contract.symbol.clone()),
            qty: self.qty,
            avg_entry_price: Some(self.entry_price),
        }
    }

    pub(crate) fn view(&self) -> LegView {
        LegView {
            leg: self.to_model(),
            created_at: self.created_at.clone(),
            user_set_realized_pnl: None,
            tracked_realized_pnl: self.realized_pnl,
        }
    }
}

/// A leg an execution plan will open, or an open leg it will close.
#[derive(Debug, Clone)]
pub(crate) enum PlannedLeg {
    Open {
        name: String,
        contract: Contract,
        qty: Decimal,
    },
    Close {
        leg_id: i64,
    },
}

/// What executing a plan does to the world.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PlanKind {
    Entry,
    Exit,
    Adjustment(PositionAdjustmentOperation),
}

/// A server-side execution plan produced by a prepare job.
#[derive(Debug, Clone)]
pub(crate) struct ExecPlan {
    pub id: i64,
    pub kind: PlanKind,
    pub strategy_id: i64,
    pub account: String,
    /// The position an exit/adjustment acts on; for an entry, the position it created.
    pub position_id: Option<i64>,
    pub position_name: String,
    pub qty_multiplier: Decimal,
    pub groups: BTreeMap<i64, Vec<PlannedLeg>>,
    pub filled: BTreeSet<i64>,
    /// Whether the plan took effect (every group filled, or nothing to execute).
    pub done: bool,
}

/// A broker order for one leg group of a plan.
#[derive(Debug, Clone)]
pub(crate) struct Order {
    pub id: i64,
    pub plan_id: i64,
    pub strategy_id: i64,
    pub account: String,
    pub group: i64,
    pub state: OrderState,
    pub qty: Decimal,
    pub filled_qty: Decimal,
    pub fill_price: Option<Decimal>,
    pub limit_price: Option<Decimal>,
    pub order_type: OrderType,
    pub time_in_force: TimeInForce,
    pub created_at: String,
    pub filled_at: Option<String>,
    pub updated_at: String,
}

/// `Order` and the documented fields it leaves out.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct OrderView {
    #[serde(flatten)]
    pub order: OrderModel,
    pub created_at: String,
    pub filled_at: Option<String>,
    pub side: &'static str,
    pub last_fill_price: Option<Decimal>,
    pub limit_price: Option<Decimal>,
    pub stop_price: Option<Decimal>,
    pub order_type: OrderType,
    pub time_in_force: TimeInForce,
    pub last_updated: String,
}

impl Order {
    pub(crate) fn view(&self) -> OrderView {
        OrderView {
            order: OrderModel {
                order_id: self.id,
                exec_plan_id: Some(self.plan_id),
                broker_account_id: Some(self.account.clone()),
                leg_group_id: Some(self.group),
                state: self.state.clone(),
                qty: Some(self.qty),
                cum_qty: Some(self.filled_qty),
                avg_fill_price: self.fill_price,
            },
            created_at: self.created_at.clone(),
            filled_at: self.filled_at.clone(),
            side: if self.qty.is_sign_negative() {
                states::SIDE_SELL
            } else {
                states::SIDE_BUY
            },
            last_fill_price: self.fill_price,
            limit_price: self.limit_price,
            stop_price: None,
            order_type: self.order_type.clone(),
            time_in_force: self.time_in_force.clone(),
            last_updated: self.updated_at.clone(),
        }
    }
}

/// `LiveAccount` and the documented fields it leaves out.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AccountView {
    #[serde(flatten)]
    pub account: LiveAccount,
    pub created_at: String,
    pub cash: Decimal,
}

impl Account {
    pub(crate) fn view(&self, active_positions: i64) -> AccountView {
        AccountView {
            account: LiveAccount {
                broker_account_id: self.id.clone(),
                broker_type: Some(Value::String(self.broker_type.into())),
                account_type: Some("Individual".into()),
                currency: Some("USD".into()),
                is_paper_account: self.paper,
                net_liquidation_value: Some(self.net_liquidation),
                active_positions: Some(active_positions),
            },
            created_at: self.created_at.clone(),
            cash: self.net_liquidation,
        }
    }
}

impl Strategy {
    pub(crate) fn to_model(&self) -> LiveStrategy {
        LiveStrategy {
            id: self.id,
            name: Some(self.name.clone()),
            active_on_accounts: Some(self.accounts.clone()),
            symbol: Some(self.symbol.clone()),
        }
    }
}

/// What a job was asked to prepare.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JobRequest {
    Entry {
        strategy_id: i64,
        account: String,
        name: Option<String>,
        qty_multiplier: Decimal,
    },
    Exit {
        position_id: i64,
    },
    Adjustment {
        position_id: i64,
        operation: PositionAdjustmentOperation,
        condition: String,
    },
}

impl JobRequest {
    pub(crate) fn kind(&self) -> FlowKind {
        match self {
            JobRequest::Entry { .. } => FlowKind::Entry,
            JobRequest::Exit { .. } => FlowKind::Exit,
            JobRequest::Adjustment { .. } => FlowKind::Adjustment,
        }
    }
}

/// One prepare job.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub id: String,
    pub key: String,
    pub request: JobRequest,
    pub strategy_id: i64,
    pub account: String,
    pub status: PreparationStatus,
    pub created_at: String,
    pub updated_at: String,
    pub result: Option<Value>,
    pub error: Option<String>,
    /// Set by the fail-prepares fault when the job started.
    pub doomed: bool,
}

/// What an active signal is about: at most one active signal per key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SignalKey {
    Entry { strategy_id: i64, account: String },
    Exit { position_id: i64 },
    Adjustment { position_id: i64 },
}
