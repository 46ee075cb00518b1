//! Positions and legs changing: opened, adjusted, closed — each change with its `OnLegUpdate`
//! and `OnPositionUpdate` events, and the signals it ends turned Off.

use std::collections::BTreeMap;

use chrono::{Duration as Days, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;

use super::domain::{Contract, Leg, PlannedLeg, Position};
use super::market::{float, money};
use super::world::{World, timestamp};
use mesolive_api::events::{AgentStatusEvent, LegUpdateEvent, PositionUpdateEvent};
use mesolive_api::models::{LegStatus, MesoOptionType, PositionStatus};
use mesolive_api::wire::{callbacks, states};

/// Days to expiry of every simulated entry.
const ENTRY_DAYS: i64 = 45;

/// `LegUpdateEvent` and the documented fields it leaves out.
#[derive(Serialize)]
struct LegUpdateView {
    #[serde(flatten)]
    event: LegUpdateEvent,
    #[serde(rename = "PositionName")]
    position_name: String,
    #[serde(rename = "StrategyName")]
    strategy_name: String,
}

fn round_to(value: f64, step: f64) -> Decimal {
    Decimal::from(((value / step).round() * step) as i64)
}

impl World {
    /// The legs of a new iron condor on `symbol` around the current price: puts in leg group 1,
    /// calls in leg group 2.
    pub(crate) fn condor(
        &mut self,
        symbol: &str,
        qty_multiplier: Decimal,
    ) -> BTreeMap<i64, Vec<PlannedLeg>> {
        let spot = self.market.spot(symbol);
        let step = if spot > 1000.0 { 5.0 } else { 1.0 };
        let width = (spot * 0.005 / step).round().max(1.0) * step;
        let expiration = format!(
            "{}T00:00:00Z",
            (Utc::now() + Days::days(ENTRY_DAYS)).format("%Y-%m-%d")
        );
        let leg =
            |name: &str, option_type: MesoOptionType, strike: f64, qty: i64| PlannedLeg::Open {
                name: name.to_owned(),
                contract: Contract {
                    symbol: symbol.to_owned(),
                    option_type,
                    strike: round_to(strike, step),
                    expiration: expiration.clone(),
                    days: ENTRY_DAYS as f64,
                },
                qty: Decimal::from(qty) * qty_multiplier,
            };
        let short_put = spot * 0.95;
        let short_call = spot * 1.05;
        BTreeMap::from([
            (
                1,
                vec![
                    leg("ShortPut", MesoOptionType::Put, short_put, -1),
                    leg("LongPut", MesoOptionType::Put, short_put - width, 1),
                ],
            ),
            (
                2,
                vec![
                    leg("ShortCall", MesoOptionType::Call, short_call, -1),
                    leg("LongCall", MesoOptionType::Call, short_call + width, 1),
                ],
            ),
        ])
    }

    /// Opens a position with the `Open` legs of `groups`; emits a Created event per leg, then
    /// the position's Created event, and turns the strategy's entry signal Off.
    pub(crate) fn open_position(
        &mut self,
        strategy_id: i64,
        account: &str,
        name: Option<String>,
        qty_multiplier: Decimal,
        groups: &BTreeMap<i64, Vec<PlannedLeg>>,
    ) -> i64 {
        let id = self.next_position_id();
        let (strategy_name, symbol) = self
            .strategies
            .get(&strategy_id)
            .map(|s| (s.name.clone(), s.symbol.clone()))
            .unwrap_or_default();
        let name = name.unwrap_or_else(|| format!("{strategy_name} #{id}"));
        self.positions.insert(
            id,
            Position {
                id,
                name,
                strategy_id,
                strategy_name,
                account: account.to_owned(),
                symbol,
                created_at: timestamp(),
                closed_at: None,
                qty_multiplier,
                realized_pnl: Decimal::ZERO,
                vars: BTreeMap::new(),
                leg_ids: Vec::new(),
            },
        );
        self.apply_legs(id, groups);
        self.position_event(id, PositionStatus::Created);
        self.end_entry_signal(strategy_id, account);
        id
    }

    /// Opens and closes legs of an open position as `groups` says (entry and adjustment
    /// plans), one `OnLegUpdate` per leg.
    pub(crate) fn apply_legs(&mut self, position_id: i64, groups: &BTreeMap<i64, Vec<PlannedLeg>>) {
        for (group, legs) in groups {
            for planned in legs {
                match planned {
                    PlannedLeg::Open {
                        name,
                        contract,
                        qty,
                    } => self.add_leg(position_id, name, contract, *qty, *group),
                    PlannedLeg::Close { leg_id } => self.close_leg(*leg_id),
                }
            }
        }
    }

    fn add_leg(
        &mut self,
        position_id: i64,
        name: &str,
        contract: &Contract,
        qty: Decimal,
        group: i64,
    ) {
        let Some(account) = self.positions.get(&position_id).map(|p| p.account.clone()) else {
            return;
        };
        let id = self.next_leg_id();
        let (quote, _) = self.market.option(contract);
        self.legs.insert(
            id,
            Leg {
                id,
                name: name.to_owned(),
                position_id,
                account,
                contract: contract.clone(),
                group,
                qty,
                entry_price: money(quote.mark),
                created_at: timestamp(),
                closed_at: None,
                realized_pnl: Decimal::ZERO,
            },
        );
        if let Some(position) = self.positions.get_mut(&position_id) {
            position.leg_ids.push(id);
        }
        self.leg_event(id, LegStatus::Created);
    }

    /// Closes an open leg at the current mark, books its realized PnL on the position.
    fn close_leg(&mut self, leg_id: i64) {
        let Some(leg) = self.legs.get(&leg_id).filter(|l| l.is_open()).cloned() else {
            return;
        };
        let (quote, _) = self.market.option(&leg.contract);
        let pnl = money((quote.mark - float(leg.entry_price)) * float(leg.qty) * 100.0);
        if let Some(leg) = self.legs.get_mut(&leg_id) {
            leg.closed_at = Some(timestamp());
            leg.realized_pnl = pnl;
        }
        if let Some(position) = self.positions.get_mut(&leg.position_id) {
            position.realized_pnl += pnl;
        }
        self.leg_event(leg_id, LegStatus::Closed);
    }

    /// Closes every open leg and the position; ends its exit and adjustment signals and wakes
    /// its data streams. Returns false when it was not open.
    pub(crate) fn close_position(&mut self, position_id: i64) -> bool {
        let Some(position) = self.positions.get(&position_id).filter(|p| p.is_open()) else {
            return false;
        };
        let leg_ids = position.leg_ids.clone();
        for leg_id in leg_ids {
            self.close_leg(leg_id);
        }
        if let Some(position) = self.positions.get_mut(&position_id) {
            position.closed_at = Some(timestamp());
        }
        self.position_event(position_id, PositionStatus::Closed);
        self.end_position_signals(position_id);
        self.notify_closed();
        true
    }

    /// Emits `OnPositionUpdate` with the position's current realized PnL.
    pub(crate) fn position_event(&mut self, position_id: i64, status: PositionStatus) {
        let Some(p) = self.positions.get(&position_id) else {
            return;
        };
        let event = PositionUpdateEvent {
            position_id,
            strategy_id: p.strategy_id,
            strategy_name: Some(p.strategy_name.clone()),
            position_name: Some(p.name.clone()),
            broker_account_id: Some(p.account.clone()),
            status,
            realized_pnl: Some(p.realized_pnl),
        };
        self.emit(callbacks::POSITION_UPDATE, Some(p.strategy_id), &event);
    }

    fn leg_event(&mut self, leg_id: i64, status: LegStatus) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        let Some(p) = self.positions.get(&leg.position_id) else {
            return;
        };
        let view = LegUpdateView {
            event: LegUpdateEvent {
                broker_account_id: Some(leg.account.clone()),
                position_id: p.id,
                strategy_id: p.strategy_id,
                leg_id,
                leg_name: Some(leg.name.clone()),
                contract: Some(leg.contract.to_model()),
                status,
                qty: Some(if leg.is_open() {
                    leg.qty
                } else {
                    Decimal::ZERO
                }),
                realized_pnl: Some(leg.realized_pnl),
            },
            position_name: p.name.clone(),
            strategy_name: p.strategy_name.clone(),
        };
        let strategy_id = p.strategy_id;
        self.emit(callbacks::LEG_UPDATE, Some(strategy_id), &view);
    }

    /// Emits `count` events with real effects, round-robin over the open positions: each
    /// books a small realized PnL change (`OnPositionUpdate` RealizedPnLChanged). With nothing
    /// open, agents report their status (`OnAgentStatus`) instead.
    pub(crate) fn emit_generic(&mut self, count: usize) {
        let open: Vec<i64> = self
            .positions
            .values()
            .filter(|p| p.is_open())
            .map(|p| p.id)
            .collect();
        for _ in 0..count {
            self.generic_cursor = self.generic_cursor.wrapping_add(1);
            if open.is_empty() {
                let agent = self
                    .agents
                    .get(self.generic_cursor % self.agents.len().max(1));
                let name = agent
                    .and_then(|a| a.name.clone())
                    .unwrap_or_else(|| "agent".into());
                let event = AgentStatusEvent {
                    status: Some(Value::String(states::AGENT_CONNECTED.into())),
                    message: Some(format!("{name} heartbeat")),
                    connector: agent.and_then(|a| a.connector.clone()),
                };
                self.emit(callbacks::AGENT_STATUS, None, &event);
                continue;
            }
            let id = open[self.generic_cursor % open.len()];
            let change = Decimal::new(self.rng.i64(-500..=500), 2);
            if let Some(position) = self.positions.get_mut(&id) {
                position.realized_pnl += change;
            }
            self.position_event(id, PositionStatus::RealizedPnLChanged);
        }
    }

    /// Opens `count` positions server-side, round-robin over every (strategy, account) pair.
    pub(crate) fn open_positions(&mut self, count: usize) -> Vec<i64> {
        let pairs: Vec<(i64, String, String)> = self
            .strategies
            .values()
            .flat_map(|s| {
                s.accounts
                    .iter()
                    .map(|a| (s.id, a.clone(), s.symbol.clone()))
            })
            .collect();
        if pairs.is_empty() {
            return Vec::new();
        }
        (0..count)
            .map(|i| {
                let (strategy_id, account, symbol) = pairs[i % pairs.len()].clone();
                let groups = self.condor(&symbol, Decimal::ONE);
                self.open_position(strategy_id, &account, None, Decimal::ONE, &groups)
            })
            .collect()
    }
}
