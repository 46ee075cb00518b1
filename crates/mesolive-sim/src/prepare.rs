//! The result models of prepare jobs (API §3.1.5): what an execution plan will do, priced
//! at the moment the job completes.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;

use super::domain::{Contract, ExecPlan, PlanKind, PlannedLeg};
use super::market::{Quote, float, money};
use super::world::{World, timestamp};
use mesolive_api::models::{LiveLeg, LivePrices, PositionAdjustmentOperation};
use mesolive_api::wire;

/// A quote as a `LivePrices` block.
pub(crate) fn prices(quote: Quote, time: &str) -> LivePrices {
    LivePrices {
        snapshot_time: Some(time.to_owned()),
        bid: Some(money(quote.bid)),
        ask: Some(money(quote.ask)),
        last: Some(money(quote.mark)),
        mark: Some(money(quote.mark)),
        mark_age_ms: Some(0),
    }
}

/// Greeks of a signed quantity of contracts with the given per-contract delta and quote.
pub(crate) fn greeks(time: &str, delta: f64, quote: Quote, contract: &Contract, qty: f64) -> Value {
    let days = contract.days.max(1.0);
    wire::greeks(
        time,
        delta * qty,
        0.001 * qty,
        -quote.mark / days * 0.5 * qty,
        quote.mark / days.sqrt() * 0.1 * qty,
    )
}

/// Pricing blocks shared by every prepare result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Pricing {
    leg_prices: BTreeMap<String, LivePrices>,
    leg_greeks: BTreeMap<String, Value>,
    leg_group_prices: BTreeMap<String, LivePrices>,
    leg_group_greeks: BTreeMap<String, Value>,
    position_greeks: Value,
    position_price: LivePrices,
    underlying_price: LivePrices,
}

/// Fields shared by the entry, exit and adjustment results.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct PlanSummary {
    exec_plan_id: i64,
    position_name: String,
    strategy_id: i64,
    strategy_name: String,
    broker_account_id: String,
    leg_groups: BTreeMap<String, Vec<String>>,
    leg_group_qtys: BTreeMap<String, Value>,
    vars: BTreeMap<String, Decimal>,
    #[serde(flatten)]
    pricing: Pricing,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct EntryResult {
    #[serde(flatten)]
    plan: PlanSummary,
    selected_legs: BTreeMap<String, LiveLeg>,
    abort_conditions: Vec<Value>,
    entry_conditions: Vec<Value>,
    entry_allowed: bool,
    qty_multiplier: Decimal,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ExitResult {
    #[serde(flatten)]
    plan: PlanSummary,
    position_id: i64,
    position_legs: BTreeMap<String, LiveLeg>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct AdjustmentResult {
    #[serde(flatten)]
    plan: PlanSummary,
    operation: PositionAdjustmentOperation,
    condition: String,
    position_id: i64,
    order_legs: BTreeMap<String, LiveLeg>,
    qty_multiplier: Decimal,
    abort_conditions: Vec<Value>,
    adjustment_allowed: bool,
}

/// One leg a plan trades: its model, the group, and the signed quantity traded.
struct TradedLeg {
    leg: LiveLeg,
    contract: Contract,
    group: i64,
    traded_qty: f64,
}

impl World {
    fn traded_legs(&self, plan: &ExecPlan) -> Vec<TradedLeg> {
        let position_id = plan.position_id.unwrap_or(0);
        plan.groups
            .iter()
            .flat_map(|(group, legs)| legs.iter().map(move |leg| (*group, leg)))
            .filter_map(|(group, planned)| match planned {
                PlannedLeg::Open {
                    name,
                    contract,
                    qty,
                } => Some(TradedLeg {
                    leg: LiveLeg {
                        id: 0,
                        name: name.clone(),
                        live_contract: Some(contract.to_model()),
                        leg_group_id: Some(group),
                        closed_at: None,
                        live_position_id: position_id,
                        account_id: Some(plan.account.clone()),
                        underlying: Some(contract.symbol.clone()),
                        qty: *qty,
                        avg_entry_price: None,
                    },
                    contract: contract.clone(),
                    group,
                    traded_qty: float(*qty),
                }),
                PlannedLeg::Close { leg_id } => self.legs.get(leg_id).map(|leg| TradedLeg {
                    leg: leg.to_model(),
                    contract: leg.contract.clone(),
                    group,
                    traded_qty: -float(leg.qty),
                }),
            })
            .collect()
    }

    fn summary(&mut self, plan: &ExecPlan, traded: &[TradedLeg]) -> PlanSummary {
        let time = timestamp();
        let mut leg_prices = BTreeMap::new();
        let mut leg_greeks = BTreeMap::new();
        let mut group_quotes: BTreeMap<String, Quote> = BTreeMap::new();
        let mut group_greeks = BTreeMap::new();
        let mut total = Quote::ZERO;
        let mut total_delta = 0.0;
        for t in traded {
            let (quote, delta) = self.market.option(&t.contract);
            leg_prices.insert(t.leg.name.clone(), prices(quote, &time));
            leg_greeks.insert(
                t.leg.name.clone(),
                greeks(&time, delta, quote, &t.contract, 1.0),
            );
            let traded_quote = quote.times(t.traded_qty);
            let group = t.group.to_string();
            let sum = group_quotes.entry(group.clone()).or_insert(Quote::ZERO);
            *sum = sum.plus(traded_quote);
            group_greeks.insert(
                group,
                greeks(&time, delta, quote, &t.contract, t.traded_qty),
            );
            total = total.plus(traded_quote);
            total_delta += delta * t.traded_qty;
        }
        let symbol = self
            .strategies
            .get(&plan.strategy_id)
            .map(|s| s.symbol.clone())
            .unwrap_or_default();
        let underlying = self.market.underlying_quote(&symbol);
        let position = plan.position_id.and_then(|id| self.positions.get(&id));
        PlanSummary {
            exec_plan_id: plan.id,
            position_name: plan.position_name.clone(),
            strategy_id: plan.strategy_id,
            strategy_name: self
                .strategies
                .get(&plan.strategy_id)
                .map(|s| s.name.clone())
                .unwrap_or_default(),
            broker_account_id: plan.account.clone(),
            leg_groups: plan
                .groups
                .keys()
                .map(|group| {
                    let names = traded
                        .iter()
                        .filter(|t| t.group == *group)
                        .map(|t| t.leg.name.clone())
                        .collect();
                    (group.to_string(), names)
                })
                .collect(),
            leg_group_qtys: plan
                .groups
                .keys()
                .map(|group| (group.to_string(), wire::leg_group_qtys(plan.qty_multiplier)))
                .collect(),
            vars: position.map(|p| p.vars.clone()).unwrap_or_default(),
            pricing: Pricing {
                leg_prices,
                leg_greeks,
                leg_group_prices: group_quotes
                    .into_iter()
                    .map(|(group, quote)| (group, prices(quote, &time)))
                    .collect(),
                leg_group_greeks: group_greeks,
                position_greeks: wire::greeks(&time, total_delta, 0.0, 0.0, 0.0),
                position_price: prices(total, &time),
                underlying_price: prices(underlying, &time),
            },
        }
    }

    /// The `PreparePosition{Entry,Exit,Adjustment}Result` of a freshly created plan.
    pub(crate) fn prepare_result(&mut self, plan_id: i64, condition: &str) -> Value {
        let Some(plan) = self.plans.get(&plan_id).cloned() else {
            return Value::Null;
        };
        let traded = self.traded_legs(&plan);
        let by_name = |traded: &[TradedLeg]| -> BTreeMap<String, LiveLeg> {
            traded
                .iter()
                .map(|t| (t.leg.name.clone(), t.leg.clone()))
                .collect()
        };
        let legs = by_name(&traded);
        let summary = self.summary(&plan, &traded);
        let position_id = plan.position_id.unwrap_or(0);
        let result = match &plan.kind {
            PlanKind::Entry => serde_json::to_value(EntryResult {
                plan: summary,
                selected_legs: legs,
                abort_conditions: Vec::new(),
                entry_conditions: Vec::new(),
                entry_allowed: true,
                qty_multiplier: plan.qty_multiplier,
            }),
            PlanKind::Exit => serde_json::to_value(ExitResult {
                plan: summary,
                position_id,
                position_legs: legs,
            }),
            PlanKind::Adjustment(operation) => serde_json::to_value(AdjustmentResult {
                plan: summary,
                operation: operation.clone(),
                condition: condition.to_owned(),
                position_id,
                order_legs: legs,
                qty_multiplier: plan.qty_multiplier,
                abort_conditions: Vec::new(),
                adjustment_allowed: true,
            }),
        };
        result.unwrap_or(Value::Null)
    }
}
