//! Executing plans: broker orders (`SendOrder` → Working → Filled after a delay, `CancelOrder`)
//! and paper fills (`ApplyPaperFills`, immediate). When every leg group of a plan is filled the
//! plan takes effect: an entry opens a position, an exit closes it, an adjustment changes legs.
//! Every order and paper fill is an effect in the ledger under its idempotency key.

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;

use super::call::{self, CallResult, Failure, to_value};
use super::domain::{Order, PlanKind, PlannedLeg};
use super::ledger::EffectKind;
use super::market::{Quote, money};
use super::world::{World, timestamp};
use mesolive_api::events::OrderUpdateEvent;
use mesolive_api::lenient::decode_ref;
use mesolive_api::models::{ExecutionAccepted, OrderState, OrderType, PositionStatus, TimeInForce};
use mesolive_api::wire::{args, callbacks};

/// What `ApplyPaperFills` answers: `ExecutionAccepted` plus the leg groups it filled.
#[derive(Serialize)]
struct PaperFillsAccepted {
    #[serde(flatten)]
    accepted: ExecutionAccepted,
    #[serde(rename = "LegGroupIds")]
    leg_group_ids: Vec<i64>,
}

/// The leg group order parameters the simulator honours (INFERRED `LegGroupOrder` fields).
fn order_terms(args: &Value) -> Result<(OrderType, TimeInForce, Option<Decimal>), Failure> {
    let Some(order) = args::read(args, "LegGroupOrder").filter(|v| !v.is_null()) else {
        return Ok((OrderType::Market, TimeInForce::Day, None));
    };
    let order_type = args::read(order, "OrderType")
        .map(decode_ref::<OrderType>)
        .transpose()
        .map_err(|_| Failure::invalid("LegGroupOrder.OrderType", "OrderType must be a name"))?
        .unwrap_or(OrderType::Market);
    let time_in_force = args::read(order, "TimeInForce")
        .map(decode_ref::<TimeInForce>)
        .transpose()
        .map_err(|_| Failure::invalid("LegGroupOrder.TimeInForce", "TimeInForce must be a name"))?
        .unwrap_or(TimeInForce::Day);
    let limit = call::opt_decimal(order, "LimitPrice")?;
    Ok((order_type, time_in_force, limit))
}

impl World {
    /// The plan a call executes, checked against the call's account and account kind.
    fn plan_for_execution(&self, args: &Value, paper: bool) -> Result<(String, i64), Failure> {
        let account_id = call::req_str(args, "BrokerAccountId")?;
        let plan_id = call::req_i64(args, "ExecPlanId")?;
        let account = self
            .account(&account_id)
            .ok_or_else(|| Failure::not_found(format!("unknown account '{account_id}'")))?;
        match (paper, account.paper) {
            (false, true) => {
                return Err(Failure::bad_request(format!(
                    "account '{}' is a paper account: execute with ApplyPaperFills",
                    account.id
                )));
            }
            (true, false) => {
                return Err(Failure::bad_request(format!(
                    "account '{}' is a broker account: execute with SendOrder",
                    account.id
                )));
            }
            _ => {}
        }
        let plan = self
            .plans
            .get(&plan_id)
            .ok_or_else(|| Failure::not_found(format!("unknown ExecPlanId {plan_id}")))?;
        if plan.account != account.id {
            return Err(Failure::bad_request(format!(
                "ExecPlanId {plan_id} belongs to account '{}'",
                plan.account
            )));
        }
        Ok((account.id.clone(), plan_id))
    }

    fn group_quote(&mut self, plan_id: i64, group: i64) -> Quote {
        let legs: Vec<PlannedLeg> = self
            .plans
            .get(&plan_id)
            .and_then(|p| p.groups.get(&group).cloned())
            .unwrap_or_default();
        legs.iter().fold(Quote::ZERO, |sum, planned| {
            let (contract, qty) = match planned {
                PlannedLeg::Open { contract, qty, .. } => (contract.clone(), *qty),
                PlannedLeg::Close { leg_id } => match self.legs.get(leg_id) {
                    Some(leg) => (leg.contract.clone(), -leg.qty),
                    None => return sum,
                },
            };
            let (quote, _) = self.market.option(&contract);
            sum.plus(quote.times(super::market::float(qty)))
        })
    }

    /// `SendOrder`: places a Working order for one leg group; returns the answer and the order
    /// id to fill later.
    pub(crate) fn send_order(
        &mut self,
        key: &str,
        args: &Value,
        at_ms: u64,
    ) -> Result<(Value, i64), Failure> {
        let (account, plan_id) = self.plan_for_execution(args, false)?;
        let group = call::req_i64(args, "LegGroupId")?;
        let plan = self
            .plans
            .get(&plan_id)
            .cloned()
            .ok_or_else(|| Failure::not_found("plan"))?;
        if !plan.groups.contains_key(&group) {
            return Err(Failure::not_found(format!(
                "ExecPlanId {plan_id} has no leg group {group}"
            )));
        }
        let (order_type, time_in_force, limit_price) = order_terms(args)?;
        if let Some(replaced) = call::opt_i64(args, "ReplacesOrder")? {
            self.cancel_order(replaced)?;
        }
        let multiplier = call::opt_decimal(args, "QtyMultiplier")?.unwrap_or(plan.qty_multiplier);
        let qty = match plan.kind {
            PlanKind::Entry => -multiplier,
            _ => multiplier,
        };
        let id = self.next_order_id();
        let now = timestamp();
        self.orders.insert(
            id,
            Order {
                id,
                plan_id,
                strategy_id: plan.strategy_id,
                account,
                group,
                state: OrderState::Working,
                qty,
                filled_qty: Decimal::ZERO,
                fill_price: None,
                limit_price,
                order_type,
                time_in_force,
                created_at: now.clone(),
                filled_at: None,
                updated_at: now,
            },
        );
        self.order_event(id);
        self.ledger
            .record(key, EffectKind::Order, plan_id, group, vec![id], at_ms);
        if let Some(record) = self.idempotency.get_mut(key) {
            record.live_exec_plan_id = Some(plan_id);
            record.live_order_ids = Some(vec![id]);
        }
        let answer = to_value(&ExecutionAccepted {
            live_order_ids: Some(vec![id]),
            exec_plan_id: Some(plan_id),
        });
        Ok((answer, id))
    }

    /// Fills a Working order at the group's current mid; a filled group may complete its plan.
    pub(crate) fn fill_order(&mut self, order_id: i64) {
        let Some(order) = self
            .orders
            .get(&order_id)
            .filter(|o| o.state == OrderState::Working)
            .cloned()
        else {
            return;
        };
        let price = money(self.group_quote(order.plan_id, order.group).mark);
        let now = timestamp();
        if let Some(stored) = self.orders.get_mut(&order_id) {
            stored.state = OrderState::Filled;
            stored.filled_qty = stored.qty;
            stored.fill_price = Some(price);
            stored.filled_at = Some(now.clone());
            stored.updated_at = now;
        }
        self.order_event(order_id);
        self.group_filled(order.plan_id, order.group);
    }

    /// `CancelOrder`: a Working order becomes Cancelled.
    pub(crate) fn cancel_order(&mut self, order_id: i64) -> CallResult {
        let order = self
            .orders
            .get_mut(&order_id)
            .ok_or_else(|| Failure::not_found(format!("unknown order {order_id}")))?;
        if order.state != OrderState::Working {
            return Err(Failure::bad_request(format!(
                "order {order_id} is already {}",
                order.state
            )));
        }
        order.state = OrderState::Cancelled;
        order.updated_at = timestamp();
        self.order_event(order_id);
        Ok(serde_json::json!({"OrderId": order_id, "State": OrderState::Cancelled}))
    }

    /// `ApplyPaperFills`: fills one leg group (or every unfilled one) at once.
    pub(crate) fn apply_paper_fills(&mut self, key: &str, args: &Value, at_ms: u64) -> CallResult {
        let (_, plan_id) = self.plan_for_execution(args, true)?;
        let plan = self
            .plans
            .get(&plan_id)
            .cloned()
            .ok_or_else(|| Failure::not_found("plan"))?;
        let groups: Vec<i64> = match call::opt_i64(args, "LegGroupId")? {
            Some(group) if plan.groups.contains_key(&group) => vec![group],
            Some(group) => {
                return Err(Failure::not_found(format!(
                    "ExecPlanId {plan_id} has no leg group {group}"
                )));
            }
            None => plan
                .groups
                .keys()
                .filter(|g| !plan.filled.contains(g))
                .copied()
                .collect(),
        };
        for group in &groups {
            self.ledger.record(
                key,
                EffectKind::PaperFill,
                plan_id,
                *group,
                Vec::new(),
                at_ms,
            );
            self.group_filled(plan_id, *group);
        }
        if let Some(record) = self.idempotency.get_mut(key) {
            record.live_exec_plan_id = Some(plan_id);
            record.live_order_ids = Some(Vec::new());
        }
        Ok(to_value(&PaperFillsAccepted {
            accepted: ExecutionAccepted {
                live_order_ids: Some(Vec::new()),
                exec_plan_id: Some(plan_id),
            },
            leg_group_ids: groups,
        }))
    }

    fn group_filled(&mut self, plan_id: i64, group: i64) {
        let Some(plan) = self.plans.get_mut(&plan_id) else {
            return;
        };
        plan.filled.insert(group);
        if !plan.done && plan.groups.keys().all(|g| plan.filled.contains(g)) {
            self.take_effect(plan_id);
        }
    }

    /// Applies a plan to the world once: entry opens, exit closes, adjustment changes legs.
    pub(crate) fn take_effect(&mut self, plan_id: i64) {
        let Some(plan) = self.plans.get_mut(&plan_id).filter(|p| !p.done) else {
            return;
        };
        plan.done = true;
        let plan = plan.clone();
        match plan.kind {
            PlanKind::Entry => {
                let id = self.open_position(
                    plan.strategy_id,
                    &plan.account,
                    Some(plan.position_name.clone()),
                    plan.qty_multiplier,
                    &plan.groups,
                );
                if let Some(stored) = self.plans.get_mut(&plan_id) {
                    stored.position_id = Some(id);
                }
            }
            PlanKind::Exit => {
                if let Some(id) = plan.position_id {
                    self.close_position(id);
                }
            }
            PlanKind::Adjustment(_) => {
                let Some(id) = plan
                    .position_id
                    .filter(|id| self.positions.get(id).is_some_and(|p| p.is_open()))
                else {
                    return;
                };
                if plan.groups.is_empty() {
                    self.update_vars(id);
                } else {
                    self.apply_legs(id, &plan.groups);
                    self.position_event(id, PositionStatus::Adjusted);
                }
            }
        }
    }

    fn order_event(&mut self, order_id: i64) {
        let Some(order) = self.orders.get(&order_id) else {
            return;
        };
        let event = OrderUpdateEvent {
            order_id,
            broker_account_id: Some(order.account.clone()),
            exec_plan_id: Some(order.plan_id),
            leg_group_id: Some(order.group),
            strategy_id: order.strategy_id,
            strategy_name: self
                .strategies
                .get(&order.strategy_id)
                .map(|s| s.name.clone()),
            state: order.state.clone(),
            filled_qty: Some(order.filled_qty),
            remaining_qty: Some(order.qty - order.filled_qty),
            fill_price: order.fill_price,
            avg_fill_price: order.fill_price,
            rejection: None,
        };
        let strategy_id = order.strategy_id;
        self.emit(callbacks::ORDER_UPDATE, Some(strategy_id), &event);
    }
}
