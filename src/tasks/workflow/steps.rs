//! The workflow's I/O: opening workflows for signal instances, gathering the [`Facts`] a
//! decision needs from the store and the directory, and performing the [`Change`] decided —
//! keyed intents through [`intent::execute`] (after the risk rules of [`crate::risk`] allowed a
//! new one), store writes, one log line and one metric per transition. No decision is taken
//! here.

use serde_json::Value;

use super::admission::{self, Applicant};
use super::decide::{
    self, Call, Change, Facts, GroupFact, IntentFact, JobFact, OrderFact, Timeouts, plan_of,
};
use super::retry::{self, Reopen, RetryPolicy};
use super::{DriveError, ignores_exit_signals};
use crate::config::OrderStyle;
use crate::risk::{self, CallFacts, CallKind, Verdict};
use crate::store::{
    IntentState, JobStatus, NewIntent, NewWorkflow, PositionState, PrepareJobUpdate, Recorded,
    SignalRecord, SignalState, StoreError, Timestamp, WorkflowChange, WorkflowRecord,
    WorkflowState,
};
use crate::supervisor::child::Unauthorized;
use crate::supervisor::context::Ctx;
use crate::tasks::effects::job_status;
use crate::tasks::intent::{self, IntentOutcome, TradingGate};
use mesolive_api::FlowKind;
use mesolive_api::client::{ControlHub, HubError};
use mesolive_api::events::AdjustmentSignalEvent;
use mesolive_api::lenient::decode;
use mesolive_api::models::{OrderState, PreparedPlan};
use mesolive_api::wire::encode::InexactDecimal;
use mesolive_api::wire::{args, methods};

/// Whether a performed change moved the workflow (decide again) or it must wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Advanced,
    Waiting,
}

/// Creates a workflow for every signal instance that is On and has none yet (admitted or not
/// by [`admission::admit`]), and the next attempt of one whose planned retry is due (or
/// records why there will be none, by [`retry::reopen`]). Returns the workflows created.
pub(super) async fn open_workflows(ctx: &Ctx) -> Result<Vec<WorkflowRecord>, StoreError> {
    let mut opened = Vec::new();
    let policy = RetryPolicy::from_settings(&ctx.settings().automation);
    // Three independent reads, on three of the pool's connections at once.
    let (signals, planned, latest_attempts) = tokio::try_join!(
        ctx.store().signals(),
        ctx.store().planned_retries(),
        ctx.store().latest_attempts()
    )?;
    // A planned attempt whose signal instance is no longer On will not come: say so.
    for planned in &planned {
        let still_on = signals.iter().any(|s| {
            s.signal_key == planned.signal_key
                && s.instance == planned.signal_instance
                && s.state == SignalState::On
        });
        if !still_on {
            let why = "not retried: the signal went Off";
            tracing::info!(workflow = planned.id, why, "no further attempt");
            ctx.store().drop_retry(planned.id, why).await?;
        }
    }
    for signal in signals {
        if signal.state != SignalState::On {
            continue;
        }
        if signal.kind == FlowKind::Exit && ignores_exit_signals() {
            continue;
        }
        let attempted = latest_attempts
            .iter()
            .find(|latest| latest.signal_key == signal.signal_key);
        let attempt = match attempted {
            None => 1,
            // The two reads saw different instances (a commit between them): the next pass
            // will see one.
            Some(latest) if latest.signal_instance != signal.instance => continue,
            Some(latest) => {
                // Only a final attempt with a next one planned may lead to another.
                let Some(latest) = planned.iter().find(|w| {
                    w.signal_key == signal.signal_key
                        && w.signal_instance == signal.instance
                        && w.attempt == latest.attempt
                }) else {
                    continue;
                };
                let position_open = match latest.position_id {
                    Some(id) => ctx
                        .store()
                        .position(id)
                        .await?
                        .map(|p| p.state == PositionState::Open),
                    None => None,
                };
                match retry::reopen(latest, &policy, position_open, Timestamp::now()) {
                    Reopen::Wait => continue,
                    Reopen::Drop(why) => {
                        tracing::info!(workflow = latest.id, %why, "no further attempt");
                        ctx.store().drop_retry(latest.id, &why).await?;
                        continue;
                    }
                    Reopen::Open => latest.attempt + 1,
                }
            }
        };
        let new = new_workflow(ctx, &signal, attempt).await?;
        if let Some(created) = ctx.store().create_workflow(&new).await? {
            ctx.metrics().workflow(created.state.as_str());
            if created.attempt > 1 {
                ctx.metrics().workflow_retry(created.kind.as_str());
            }
            tracing::info!(
                workflow = created.id,
                kind = created.kind.as_str(),
                attempt = created.attempt,
                strategy = created.strategy_id,
                position = ?created.position_id,
                account = ?created.account,
                state = created.state.as_str(),
                reason = created.reason.as_deref().unwrap_or(""),
                "workflow opened"
            );
            opened.push(created);
        }
    }
    Ok(opened)
}

async fn new_workflow(
    ctx: &Ctx,
    signal: &SignalRecord,
    attempt: i64,
) -> Result<NewWorkflow, StoreError> {
    let kind = signal.kind;
    let position = match signal.position_id {
        Some(id) => ctx.store().position(id).await?,
        None => None,
    };
    let account = signal
        .account
        .clone()
        .or_else(|| position.as_ref().map(|p| p.account.clone()))
        .filter(|a| !a.is_empty());
    let automation = &ctx.settings().automation;
    let open_positions = match (kind, account.as_deref()) {
        (FlowKind::Entry, Some(account)) => {
            ctx.store()
                .open_positions_on(account, Some(signal.strategy_id))
                .await?
        }
        _ => 0,
    };
    let (state, reason) = admission::admit(&Applicant {
        kind,
        strategy_id: signal.strategy_id,
        account: account.as_deref(),
        allowed: automation.allows(signal.strategy_id),
        mode: automation.mode,
        paper: account.as_deref().and_then(|a| ctx.directory().is_paper(a)),
        open_positions,
        max_open_positions: automation.max_open_positions_for(signal.strategy_id),
        trading_state: ctx.trading_state(),
        adjust_in_reduce_only: automation.adjust_in_reduce_only,
    });
    let facts = Facts {
        now: Timestamp::now(),
        timeouts: timeouts(ctx),
        ..Facts::default()
    };
    Ok(NewWorkflow {
        deadline: decide::deadline(state, &facts),
        attempt,
        kind,
        scope: admission::scope(
            kind,
            signal.strategy_id,
            account.as_deref(),
            signal.position_id,
        ),
        signal_key: signal.signal_key.clone(),
        signal_instance: signal.instance.clone(),
        strategy_id: signal.strategy_id,
        account,
        position_id: signal.position_id,
        condition: signal.condition.clone(),
        state,
        reason,
    })
}

/// The idempotency key of one step of a workflow: the same step always derives the same key.
fn intent_key(ctx: &Ctx, workflow: &WorkflowRecord, step: &str) -> String {
    format!("{}-w{}-{step}", ctx.store().instance_id(), workflow.id)
}

/// What the store says of the intent under `key`.
async fn intent_fact(ctx: &Ctx, key: &str) -> Result<IntentFact, StoreError> {
    Ok(match ctx.store().intent(key).await? {
        None => IntentFact::NotSent,
        Some(stored) => match stored.state {
            IntentState::Completed => IntentFact::Completed(stored.outcome.unwrap_or(Value::Null)),
            IntentState::Failed => IntentFact::Failed(intent::failure_reason(&stored)),
            _ => IntentFact::InFlight,
        },
    })
}

fn timeouts(ctx: &Ctx) -> Timeouts {
    let automation = &ctx.settings().automation;
    Timeouts {
        job: automation.job_timeout,
        order: automation.order_timeout,
    }
}

/// Gathers the facts the workflow's current state is decided on.
pub(super) async fn gather(ctx: &Ctx, workflow: &WorkflowRecord) -> Result<Facts, StoreError> {
    let settings = ctx.settings();
    let facts = Facts {
        now: Timestamp::now(),
        timeouts: timeouts(ctx),
        retry: RetryPolicy::from_settings(&settings.automation),
        mode: settings.automation.mode,
        trading_state: ctx.trading_state(),
        adjust_in_reduce_only: settings.automation.adjust_in_reduce_only,
        ..Facts::default()
    };
    // The signal and the state's own facts are independent reads: on two of the pool's
    // connections at once.
    let (signal_on, facts) = tokio::try_join!(
        signal_still_on(ctx, workflow),
        state_facts(ctx, workflow, facts)
    )?;
    Ok(Facts { signal_on, ..facts })
}

/// The facts of the workflow's current state, added to `facts`.
async fn state_facts(
    ctx: &Ctx,
    workflow: &WorkflowRecord,
    mut facts: Facts,
) -> Result<Facts, StoreError> {
    match workflow.state {
        WorkflowState::Requested => {
            facts.prepare = intent_fact(ctx, &intent_key(ctx, workflow, "prep")).await?;
            if workflow.kind == FlowKind::Adjustment {
                facts.adjustment_operation = adjustment_operation(ctx, workflow).await?;
            }
        }
        WorkflowState::Preparing => {
            if let Some(job_id) = &workflow.job_id {
                facts.job = ctx.store().prepare_job(job_id).await?.map(|job| JobFact {
                    status: job.status,
                    result: job.result,
                    error: job.error,
                    heard_at: job.updated_at,
                });
            }
            facts.cancel_job = intent_fact(ctx, &intent_key(ctx, workflow, "cancel")).await?;
        }
        WorkflowState::Executing => {
            let plan = plan_of(workflow);
            facts.paper = ctx
                .directory()
                .is_paper(&execution_account(workflow, plan.as_ref()))
                == Some(true);
            let plan_id = plan.as_ref().map(|p| p.exec_plan_id);
            for group in plan.map(|p| p.leg_group_ids()).unwrap_or_default() {
                let key = intent_key(ctx, workflow, &format!("exec-g{group}"));
                let mut linked = ctx.store().orders_for_intent(&key).await?;
                if let (true, Some(plan_id)) = (linked.is_empty(), plan_id) {
                    // The answer named no order (INFERRED payload, docs/inferred.md
                    // execution_payload): the plan's orders of this group, as order updates
                    // reported them, are this intent's.
                    linked = ctx.store().orders_of_leg_group(plan_id, group).await?;
                    for order in &linked {
                        ctx.store()
                            .link_order_to_intent(order.order_id, &key, workflow.strategy_id)
                            .await?;
                    }
                }
                let mut orders = Vec::new();
                for order in linked {
                    let cancel = Call::CancelOrder {
                        order_id: order.order_id,
                    };
                    orders.push(OrderFact {
                        order_id: order.order_id,
                        state: OrderState::from_name(order.state.as_deref().unwrap_or("")),
                        cancel: intent_fact(ctx, &intent_key(ctx, workflow, &cancel.step()))
                            .await?,
                    });
                }
                let execute = intent_fact(ctx, &key).await?;
                facts.groups.push((group, GroupFact { execute, orders }));
            }
        }
        _ => {}
    }
    Ok(facts)
}

async fn signal_still_on(ctx: &Ctx, workflow: &WorkflowRecord) -> Result<bool, StoreError> {
    Ok(ctx
        .store()
        .signal(&workflow.signal_key)
        .await?
        .is_some_and(|s| s.state == SignalState::On && s.instance == workflow.signal_instance))
}

/// The operation of an adjustment: as the signal's condition names it, else as configured.
async fn adjustment_operation(
    ctx: &Ctx,
    workflow: &WorkflowRecord,
) -> Result<Option<String>, StoreError> {
    let named = ctx
        .store()
        .signal(&workflow.signal_key)
        .await?
        .and_then(|signal| decode::<AdjustmentSignalEvent>(signal.payload).ok())
        .and_then(|event| event.condition)
        .and_then(|condition| mesolive_api::wire::adjustment_operation(&condition));
    let configured = &ctx.settings().automation.adjustment_operation;
    Ok(named.or_else(|| (!configured.is_empty()).then(|| configured.clone())))
}

/// The account a plan executes on: the workflow's, else the plan's.
fn execution_account(workflow: &WorkflowRecord, plan: Option<&PreparedPlan>) -> String {
    workflow
        .account
        .clone()
        .or_else(|| plan.and_then(|p| p.broker_account_id.clone()))
        .unwrap_or_default()
}

/// Performs one decided change.
pub(super) async fn perform(
    ctx: &Ctx,
    control: &ControlHub,
    workflow: &WorkflowRecord,
    change: Change,
) -> Result<Step, DriveError> {
    match change {
        Change::Wait => Ok(Step::Waiting),
        Change::Record(change) => {
            settle_cancelled_job(ctx, workflow, &change).await?;
            record(ctx, workflow, change).await
        }
        Change::Send(call) => send(ctx, control, workflow, &call).await,
        Change::PollJob { job_id } => poll_job(ctx, control, workflow, &job_id).await,
        Change::StartJob { job_id, deadline } => {
            ctx.store()
                .upsert_prepare_job(&PrepareJobUpdate {
                    job_id: job_id.clone(),
                    kind: workflow.kind,
                    intent_key: Some(intent_key(ctx, workflow, "prep")),
                    strategy_id: workflow.strategy_id,
                    position_id: workflow.position_id,
                    account: workflow.account.clone(),
                    status: JobStatus::Pending,
                    result: None,
                    error: None,
                })
                .await?;
            record(
                ctx,
                workflow,
                WorkflowChange::to(WorkflowState::Preparing)
                    .job(&job_id)
                    .deadline(deadline),
            )
            .await
        }
        Change::GroupSent {
            group,
            order_ids,
            deadline,
        } => {
            let key = intent_key(ctx, workflow, &format!("exec-g{group}"));
            for order_id in order_ids {
                ctx.store()
                    .link_order_to_intent(order_id, &key, workflow.strategy_id)
                    .await?;
            }
            record(
                ctx,
                workflow,
                WorkflowChange::default()
                    .group_done(group)
                    .deadline(deadline),
            )
            .await
        }
    }
}

/// A workflow leaving `preparing` for good after its job's cancel completed: the server took
/// the cancel, so the job is stored cancelled unless it already ended. Otherwise a server that
/// names a cancelled job in a way the daemon does not read (`Aborted`) would leave it
/// "running" in the store, and polled, for ever.
async fn settle_cancelled_job(
    ctx: &Ctx,
    workflow: &WorkflowRecord,
    change: &WorkflowChange,
) -> Result<(), StoreError> {
    let (WorkflowState::Preparing, Some(job_id), Some(next)) =
        (workflow.state, workflow.job_id.as_deref(), change.state)
    else {
        return Ok(());
    };
    if next.is_active() {
        return Ok(());
    }
    if let IntentFact::Completed(_) = intent_fact(ctx, &intent_key(ctx, workflow, "cancel")).await?
    {
        ctx.store()
            .set_prepare_job_status(
                job_id,
                JobStatus::Cancelled,
                None,
                Some("cancelled by the daemon: its CancelPreparePosition call completed"),
            )
            .await?;
    }
    Ok(())
}

/// Asks the server where a prepare job past its deadline is, and stores the answer (which
/// also restamps the job as heard of). A poll that fails waits for the next wake-up.
async fn poll_job(
    ctx: &Ctx,
    control: &ControlHub,
    workflow: &WorkflowRecord,
    job_id: &str,
) -> Result<Step, DriveError> {
    match control.prepare_status(workflow.kind, job_id).await {
        Ok(status) => {
            let new_status = job_status(&status.effective_status());
            ctx.store()
                .set_prepare_job_status(
                    job_id,
                    new_status,
                    status.result.as_ref(),
                    status.error.as_deref(),
                )
                .await?;
            tracing::info!(workflow = workflow.id, job = %job_id, status = new_status.as_str(), "prepare job past its deadline polled");
            Ok(Step::Advanced)
        }
        Err(HubError::Unauthorized(err)) => Err(Unauthorized(err).into()),
        Err(err) => {
            ctx.metrics().error("job_poll");
            tracing::warn!(workflow = workflow.id, job = %job_id, error = %err, "prepare job past its deadline not readable now");
            Ok(Step::Waiting)
        }
    }
}

/// Records a change: the store first, then one log line and one metric per transition.
async fn record(
    ctx: &Ctx,
    workflow: &WorkflowRecord,
    change: WorkflowChange,
) -> Result<Step, DriveError> {
    let updated = ctx.store().update_workflow(workflow.id, &change).await?;
    if change.state.is_some_and(|state| state != updated.state) {
        // It ended meanwhile (an operator cancelled it): a final state stays.
        tracing::info!(
            workflow = workflow.id,
            state = updated.state.as_str(),
            "workflow already ended; change not applied"
        );
        return Ok(Step::Advanced);
    }
    if let Some(state) = change.state {
        ctx.metrics().workflow(state.as_str());
        tracing::info!(
            workflow = workflow.id,
            from = workflow.state.as_str(),
            to = state.as_str(),
            reason = change.reason.as_deref().unwrap_or(""),
            "workflow transition"
        );
    }
    ctx.wake().workflows.notify_one();
    Ok(Step::Advanced)
}

/// Sends (or settles) one keyed call. Its outcome is committed by [`intent::execute`] and
/// becomes a fact on the next decision; an unsettled one waits for a later wake-up.
async fn send(
    ctx: &Ctx,
    control: &ControlHub,
    workflow: &WorkflowRecord,
    call: &Call,
) -> Result<Step, DriveError> {
    let key = intent_key(ctx, workflow, &call.step());
    let (operation, call_args) = match request(ctx, workflow, call, &key) {
        Ok(request) => request,
        Err(inexact) => {
            return record(
                ctx,
                workflow,
                WorkflowChange::to(WorkflowState::Failed).because(&inexact.to_string()),
            )
            .await;
        }
    };
    let new = NewIntent {
        key,
        operation,
        workflow_id: Some(workflow.id.to_string()),
        args: call_args,
    };
    let trading = TradingGate::new(ctx.subscribe_trading_state());
    let recorded = match ctx.store().intent(&new.key).await? {
        Some(stored) => Some(Recorded::Existing(stored)),
        // Halted: nothing new is checked or committed until the resume.
        None if trading.is_closed() => {
            intent::held(&new.key, &new.operation);
            None
        }
        None => {
            // A new intent: the risk rules are checked and the intent committed under one
            // lock, so two workflows cannot both take the last unit of a limit.
            let _checking = RISK_CHECKS.lock().await;
            match risk_verdict(ctx, workflow, call).await? {
                Verdict::Allow => intent::record(ctx.store(), ctx.gate(), &new, &trading).await?,
                Verdict::Refuse(breach) => {
                    ctx.metrics().risk_refused(breach.rule);
                    tracing::warn!(workflow = workflow.id, rule = breach.rule, reason = %breach.reason, "risk limit: workflow refused");
                    return record(
                        ctx,
                        workflow,
                        WorkflowChange::to(WorkflowState::Cancelled)
                            .because(&breach.reason)
                            .refused_by(breach.rule),
                    )
                    .await;
                }
                Verdict::Wait(breach) => {
                    tracing::info!(workflow = workflow.id, rule = breach.rule, reason = %breach.reason, "risk limit: call waits for the window");
                    return Ok(Step::Waiting);
                }
            }
        }
    };
    let Some(recorded) = recorded else {
        return Ok(Step::Waiting);
    };
    match intent::execute(ctx.store(), ctx.gate(), control, recorded, &trading).await? {
        IntentOutcome::Unsettled => Ok(Step::Waiting),
        IntentOutcome::Completed(_) | IntentOutcome::Failed(_) => Ok(Step::Advanced),
    }
}

/// Held while a new intent is checked against the risk rules and committed.
static RISK_CHECKS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the risk rules say of a new call of `workflow`, from the counts of its account.
async fn risk_verdict(
    ctx: &Ctx,
    workflow: &WorkflowRecord,
    call: &Call,
) -> Result<Verdict, StoreError> {
    // Cancels only take risk off: no rule holds them back.
    if matches!(call, Call::CancelJob { .. } | Call::CancelOrder { .. }) {
        return Ok(Verdict::Allow);
    }
    let settings = ctx.settings();
    let limits = &settings.risk;
    let Some(account) = workflow.account.as_deref() else {
        return Ok(Verdict::Allow);
    };
    let kind = match (call, workflow.kind) {
        (Call::Prepare { .. }, FlowKind::Entry) => CallKind::OpeningEntry,
        (Call::Prepare { .. }, FlowKind::Adjustment) => CallKind::OpeningAdjustment,
        _ => CallKind::FollowUp,
    };
    let store = ctx.store();
    let mut facts = CallFacts {
        kind,
        calls_in_window: 0,
        entries_today: 0,
        open_positions: 0,
    };
    if limits.max_orders_per_minute.is_some() {
        let since = Timestamp::now().minus(risk::ORDER_WINDOW);
        facts.calls_in_window = store.account_intents_since(account, None, since).await?;
    }
    if kind == CallKind::OpeningEntry {
        if limits.max_entries_per_day.is_some() {
            let day = risk::trading_day(chrono::Utc::now(), limits.timezone());
            let prepare = methods::start_prepare(FlowKind::Entry);
            facts.entries_today = store
                .account_intents_since(account, Some(&prepare), day.start)
                .await?;
        }
        if limits.max_open_positions_total.is_some() {
            let open = store.open_positions_on(account, None).await?;
            let opening = store
                .active_workflows()
                .await?
                .iter()
                .filter(|w| {
                    w.id != workflow.id
                        && w.kind == FlowKind::Entry
                        && w.account.as_deref() == Some(account)
                        && w.state != WorkflowState::Requested
                })
                .count();
            facts.open_positions =
                u32::try_from(open.saturating_add(opening as u64)).unwrap_or(u32::MAX);
        }
    }
    Ok(risk::check_call(limits, account, &facts))
}

/// The method and arguments of a call. For a key already stored, the stored arguments are
/// what is sent: these only matter the first time. A decimal a JSON number cannot carry digit
/// for digit is refused (`hubs.wire.decimal`), never rounded.
fn request(
    ctx: &Ctx,
    workflow: &WorkflowRecord,
    call: &Call,
    key: &str,
) -> Result<(String, Value), InexactDecimal> {
    let settings = ctx.settings();
    let automation = &settings.automation;
    let wire = settings.hubs.wire.outbound();
    match call {
        Call::Prepare { operation } => Ok((
            methods::start_prepare(workflow.kind),
            prepare_args(ctx, workflow, key, operation.as_deref()),
        )),
        Call::CancelJob { job_id } => Ok((
            methods::cancel_prepare(workflow.kind),
            args::cancel_job(job_id, key),
        )),
        Call::CancelOrder { order_id } => Ok((
            methods::CANCEL_ORDER.to_owned(),
            args::cancel_order(
                key,
                *order_id,
                &execution_account(workflow, plan_of(workflow).as_ref()),
            ),
        )),
        Call::Execute { group, paper } => {
            // decide() executes only workflows with a readable plan.
            let Some(plan) = plan_of(workflow) else {
                return Ok((methods::APPLY_PAPER_FILLS.to_owned(), Value::Null));
            };
            let account = execution_account(workflow, Some(&plan));
            if *paper {
                return Ok((
                    methods::APPLY_PAPER_FILLS.to_owned(),
                    args::paper_fills(key, &account, &plan, *group, &wire)?,
                ));
            }
            let multiplier = (workflow.kind == FlowKind::Entry)
                .then(|| automation.qty_multiplier_for(workflow.strategy_id));
            let limit = match automation.order_type {
                OrderStyle::Market => None,
                OrderStyle::LimitMid => plan.group_mid(*group),
            };
            Ok((
                methods::SEND_ORDER.to_owned(),
                args::send_order(key, &account, &plan, *group, multiplier, limit, &wire)?,
            ))
        }
    }
}

/// `StartPreparePosition*` arguments; decide() checked the account, position and operation.
fn prepare_args(ctx: &Ctx, workflow: &WorkflowRecord, key: &str, operation: Option<&str>) -> Value {
    let position_id = workflow.position_id.unwrap_or_default();
    match workflow.kind {
        FlowKind::Entry => {
            let directory = ctx.directory();
            let strategy = directory.strategies.get(&workflow.strategy_id);
            let symbol = strategy
                .and_then(|s| s.symbol.clone())
                .unwrap_or_else(|| ctx.settings().hubs.probe_symbol.clone());
            let name = format!(
                "{}-w{}",
                strategy
                    .and_then(|s| s.name.clone())
                    .unwrap_or_else(|| format!("strategy{}", workflow.strategy_id)),
                workflow.id
            );
            args::prepare_entry(
                key,
                &name,
                workflow.strategy_id,
                workflow.account.as_deref().unwrap_or_default(),
                &ctx.settings().automation.leg_selection_constraint,
                &symbol,
            )
        }
        FlowKind::Exit => args::prepare_exit(key, position_id),
        FlowKind::Adjustment => args::prepare_adjustment(
            key,
            position_id,
            operation.unwrap_or_default(),
            workflow.condition.as_deref(),
        ),
    }
}
