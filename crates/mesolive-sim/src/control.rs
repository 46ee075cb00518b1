//! The Control Hub's methods (API §3.1): reads, paged lists, prepare jobs, orders and paper
//! fills. Every state-changing call is keyed and goes through the idempotency records (API
//! §6.1) before it touches the world.

use std::sync::Arc;

use rust_decimal::Decimal;
use serde_json::Value;

use super::call::{self, CallResult, Failure, into_envelope, to_value};
use super::domain::JobRequest;
use super::idempotency::{Admission, request_hash};
use super::sim::Sim;
use super::world::{World, timestamp};
use mesolive_api::FlowKind;
use mesolive_api::lenient::decode_ref;
use mesolive_api::models::{PositionAdjustmentOperation, StatusCode};
use mesolive_api::wire::{self, envelope, methods, states};

/// Handles one Control Hub call; `None` for a method this hub does not have.
pub(crate) fn invoke(sim: &Arc<Sim>, method: &str, args: &Value) -> Option<Value> {
    let read = |f: fn(&World, &Value) -> CallResult| Some(into_envelope(f(&sim.world(), args)));
    match method {
        methods::LIST_AGENTS => read(list_agents),
        methods::LIST_ACCOUNTS => read(list_accounts),
        methods::GET_ACCOUNT => read(get_account),
        methods::LIST_STRATEGIES => read(list_strategies),
        methods::GET_STRATEGY => read(get_strategy),
        methods::LIST_POSITIONS => read(list_positions),
        methods::GET_POSITION => read(get_position),
        methods::LIST_LEGS => read(list_legs),
        methods::GET_LEGS => read(get_legs),
        methods::LIST_ORDERS => read(list_orders),
        methods::GET_IDEMPOTENCY_RECORD => read(get_idempotency_record),
        methods::SEND_ORDER => Some(keyed(sim, method, args, send_order)),
        methods::CANCEL_ORDER => Some(keyed(sim, method, args, cancel_order)),
        methods::APPLY_PAPER_FILLS => Some(keyed(sim, method, args, apply_paper_fills)),
        other => prepare_method(sim, other, args),
    }
}

/// `StartPreparePosition*`, `GetPreparePosition*Status`, `CancelPreparePosition*`.
fn prepare_method(sim: &Arc<Sim>, method: &str, args: &Value) -> Option<Value> {
    FlowKind::ALL.into_iter().find_map(|kind| {
        if method == methods::start_prepare(kind) {
            Some(keyed(sim, method, args, move |sim, world, key, args| {
                start_prepare(sim, world, key, args, kind)
            }))
        } else if method == methods::prepare_status(kind) {
            let result =
                call::req_str(args, "JobId").and_then(|job| sim.world().job_status(kind, &job));
            Some(into_envelope(result))
        } else if method == methods::cancel_prepare(kind) {
            Some(keyed(sim, method, args, move |_, world, _, args| {
                world.cancel_job(kind, &call::req_str(args, "JobId")?)
            }))
        } else {
            None
        }
    })
}

/// The idempotency protocol around a state-changing call: admit the key (or answer
/// `DuplicateRequest` / `Conflict`), apply the effect, capture the response, settle the record
/// (at once, or later under the hold-processing fault).
fn keyed(
    sim: &Arc<Sim>,
    method: &str,
    args: &Value,
    effect: impl FnOnce(&Arc<Sim>, &mut World, &str, &Value) -> CallResult,
) -> Value {
    let key = match call::req_str(args, "IdempotencyKey") {
        Ok(key) => key,
        Err(failure) => return failure.envelope(),
    };
    let hash = request_hash(method, args);
    let response = {
        let mut world = sim.world();
        let now = timestamp();
        match world.idempotency.admit(&key, method, &hash, &now) {
            Admission::New => {}
            Admission::Duplicate { original, outcome } => {
                let message = format!(
                    "IdempotencyKey '{key}' was already processed (original outcome: {outcome})"
                );
                return envelope::failure(&StatusCode::DuplicateRequest, &message, original);
            }
            Admission::Conflict(message) => {
                return envelope::failure(&StatusCode::Conflict, &message, Value::Null);
            }
        }
        let response = into_envelope(effect(sim, &mut world, &key, args));
        world.idempotency.capture(&key, &response, &now);
        response
    };
    sim.settle(key);
    response
}

fn start_prepare(
    sim: &Arc<Sim>,
    world: &mut World,
    key: &str,
    args: &Value,
    kind: FlowKind,
) -> CallResult {
    let request = match kind {
        FlowKind::Entry => JobRequest::Entry {
            strategy_id: call::req_i64(args, "StrategyId")?,
            account: call::req_str(args, "BrokerAccountId")?,
            name: call::opt_str(args, "PositionName")?,
            qty_multiplier: call::opt_decimal(args, "QtyMultiplier")?.unwrap_or(Decimal::ONE),
        },
        FlowKind::Exit => JobRequest::Exit {
            position_id: call::req_i64(args, "PositionId")?,
        },
        FlowKind::Adjustment => JobRequest::Adjustment {
            position_id: call::req_i64(args, "PositionId")?,
            operation: adjustment_operation(args)?,
            condition: call::opt_str(args, "Condition")?.unwrap_or_default(),
        },
    };
    let doomed = sim.faults().take_failed_prepare();
    let job_id = world.start_job(key, request, doomed)?;
    if doomed {
        sim.stats.fault(super::faults::FaultKind::FailPrepare);
    }
    let finishing = job_id.clone();
    sim.after(sim.timing.prepare_delay, move |world| {
        world.finish_job(&finishing)
    });
    Ok(serde_json::json!({"JobId": job_id}))
}

fn adjustment_operation(args: &Value) -> Result<PositionAdjustmentOperation, Failure> {
    let invalid = || {
        Failure::invalid(
            "Operation",
            "Operation must be AddLegs, RemoveLegs, MoveLeg or UpdateVars",
        )
    };
    let value = wire::args::read(args, "Operation")
        .filter(|v| !v.is_null())
        .ok_or_else(|| Failure::invalid("Operation", "Operation is required"))?;
    match decode_ref::<PositionAdjustmentOperation>(value) {
        Ok(PositionAdjustmentOperation::Unknown(_)) | Err(_) => Err(invalid()),
        Ok(operation) => Ok(operation),
    }
}

fn send_order(sim: &Arc<Sim>, world: &mut World, key: &str, args: &Value) -> CallResult {
    let (answer, order_id) = world.send_order(key, args, sim.stats.elapsed_ms())?;
    if sim.faults().never_fill {
        sim.stats.fault(super::faults::FaultKind::NeverFill);
    } else {
        sim.after(sim.timing.fill_delay, move |world| {
            world.fill_order(order_id)
        });
    }
    Ok(answer)
}

fn cancel_order(_: &Arc<Sim>, world: &mut World, _: &str, args: &Value) -> CallResult {
    let order_id = match call::opt_i64(args, "LiveOrderId")? {
        Some(id) => id,
        None => call::req_i64(args, "OrderId")?,
    };
    world.cancel_order(order_id)
}

fn apply_paper_fills(sim: &Arc<Sim>, world: &mut World, key: &str, args: &Value) -> CallResult {
    world.apply_paper_fills(key, args, sim.stats.elapsed_ms())
}

fn list_agents(world: &World, _: &Value) -> CallResult {
    let now = timestamp();
    let agents: Vec<Value> = world
        .agents
        .iter()
        .map(|agent| {
            let mut agent = agent.clone();
            agent.last_snapshot_time = Some(now.clone());
            to_value(&agent)
        })
        .collect();
    Ok(Value::Array(agents))
}

fn list_accounts(world: &World, args: &Value) -> CallResult {
    call::page(
        args,
        world
            .accounts
            .iter()
            .map(|a| a.view(world.active_positions(&a.id))),
    )
}

fn get_account(world: &World, args: &Value) -> CallResult {
    let id = call::req_str(args, "BrokerAccountId")?;
    let account = world
        .account(&id)
        .ok_or_else(|| Failure::not_found(format!("unknown account '{id}'")))?;
    Ok(to_value(&account.view(world.active_positions(&account.id))))
}

fn list_strategies(world: &World, args: &Value) -> CallResult {
    let accounts = call::opt_str_list(args, "ActiveOnAccounts")?;
    call::page(
        args,
        world
            .strategies
            .values()
            .filter(|s| {
                accounts
                    .as_ref()
                    .is_none_or(|wanted| s.accounts.iter().any(|a| wanted.contains(a)))
            })
            .map(|s| s.to_model()),
    )
}

fn get_strategy(world: &World, args: &Value) -> CallResult {
    let id = call::req_i64(args, "StrategyId")?;
    world
        .strategies
        .get(&id)
        .map(|s| to_value(&s.to_model()))
        .ok_or_else(|| Failure::not_found(format!("unknown strategy {id}")))
}

/// Whether a list call asked for open items only (`OpenOnly: true` or `State: "Open"`).
fn open_only(args: &Value) -> Result<bool, Failure> {
    let by_flag = call::opt_bool(args, wire::OPEN_ONLY_ARG)?.unwrap_or(false);
    let by_state = call::opt_str(args, "State")?
        .is_some_and(|s| s.eq_ignore_ascii_case(states::POSITION_OPEN));
    Ok(by_flag || by_state)
}

fn list_positions(world: &World, args: &Value) -> CallResult {
    let strategy = call::opt_i64(args, "LiveStrategyId")?.or(call::opt_i64(args, "StrategyId")?);
    let plan = call::opt_i64(args, "LiveExecPlanId")?;
    let account = call::opt_str(args, "BrokerAccountId")?;
    let open_only = open_only(args)?;
    let plan_position = plan.map(|id| world.plans.get(&id).and_then(|p| p.position_id));
    call::page(
        args,
        world
            .positions
            .values()
            .filter(|p| strategy.is_none_or(|id| p.strategy_id == id))
            .filter(|p| {
                account
                    .as_ref()
                    .is_none_or(|a| p.account.eq_ignore_ascii_case(a))
            })
            .filter(|p| plan_position.is_none_or(|position| position == Some(p.id)))
            .filter(|p| !open_only || p.is_open())
            .map(|p| p.to_model()),
    )
}

/// `GetPosition`'s detailed view: the summary, legs, vars and realized PnL.
fn get_position(world: &World, args: &Value) -> CallResult {
    let id = call::req_i64(args, "PositionId")?;
    let position = world
        .positions
        .get(&id)
        .ok_or_else(|| Failure::not_found(format!("unknown position {id}")))?;
    let mut detail = to_value(&position.to_model());
    if let Some(object) = detail.as_object_mut() {
        let legs: Vec<Value> = position
            .leg_ids
            .iter()
            .filter_map(|leg| world.legs.get(leg))
            .map(|leg| to_value(&leg.view()))
            .collect();
        object.insert("Legs".into(), Value::Array(legs));
        object.insert("Vars".into(), to_value(&position.vars));
        object.insert("RealizedPnL".into(), to_value(&position.realized_pnl));
        object.insert("Underlying".into(), Value::String(position.symbol.clone()));
    }
    Ok(detail)
}

fn list_legs(world: &World, args: &Value) -> CallResult {
    let position = call::opt_i64(args, "LivePositionId")?.or(call::opt_i64(args, "PositionId")?);
    let account = call::opt_str(args, "BrokerAccountId")?;
    let open_only = open_only(args)?;
    call::page(
        args,
        world
            .legs
            .values()
            .filter(|l| position.is_none_or(|id| l.position_id == id))
            .filter(|l| {
                account
                    .as_ref()
                    .is_none_or(|a| l.account.eq_ignore_ascii_case(a))
            })
            .filter(|l| !open_only || l.is_open())
            .map(|l| l.view()),
    )
}

fn get_legs(world: &World, args: &Value) -> CallResult {
    let ids = match call::opt_i64_list(args, "LegIds")? {
        Some(ids) => ids,
        None => vec![call::req_i64(args, "LegId")?],
    };
    let legs: Vec<Value> = ids
        .iter()
        .filter_map(|id| world.legs.get(id))
        .map(|leg| to_value(&leg.view()))
        .collect();
    Ok(Value::Array(legs))
}

fn list_orders(world: &World, args: &Value) -> CallResult {
    let plan = call::opt_i64(args, "ExecPlanId")?;
    let account = call::opt_str(args, "BrokerAccountId")?;
    call::page(
        args,
        world
            .orders
            .values()
            .filter(|o| plan.is_none_or(|id| o.plan_id == id))
            .filter(|o| {
                account
                    .as_ref()
                    .is_none_or(|a| o.account.eq_ignore_ascii_case(a))
            })
            .map(|o| o.view()),
    )
}

/// The record of a key; an unknown key is `NotFound` (API §6.1 INFERRED reading, see
/// [`mesolive_api::wire::envelope::Envelope::is_not_found`]).
fn get_idempotency_record(world: &World, args: &Value) -> CallResult {
    let key = call::req_str(args, "IdempotencyKey")?;
    world
        .idempotency
        .get(&key)
        .map(|record| to_value(&record.to_model()))
        .ok_or_else(|| Failure::not_found(format!("no idempotency record for key '{key}'")))
}
