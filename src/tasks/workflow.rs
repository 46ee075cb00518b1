//! Durable workflows: signal → prepare → execute, one small state machine per signal instance,
//! persisted in SQLite so a restarted process resumes exactly where it stopped.
//!
//! ```text
//! requested ─prepare intent─▶ preparing(JobId) ─job completed─▶ prepared(plan) ─▶ executing(groups)
//!     │                           │ job failed → failed            │ gate closed → cancelled
//!     │ signal Off / not allowed  │ signal Off → cancel intent → cancelled
//!     ▼                           ▼                                 ▼ all groups executed (and, live,
//!  cancelled / observed        cancelled                            every order filled) → done
//! ```
//!
//! * One workflow per signal *instance* (the Off→On transition that started it), and never two
//!   active workflows for one scope (strategy+account for entries, the position otherwise): both
//!   are unique constraints in the store.
//! * Every call that changes the world is an intent with a key derived from the workflow and the
//!   step (`{db instance}-w{id}-prep`, `…-cancel`, `…-exec-g{group}`), so a restarted process
//!   derives the same key and [`intent::execute`] settles instead of resending.
//! * The runner is level-triggered: on every wake-up it re-reads signals and active workflows
//!   and drives each (one task per workflow at most) until it has to wait for the server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::Instrument;

use super::intent::{self, IntentError, IntentOutcome};
use crate::config::{AutomationMode, OrderStyle};
use crate::store::{
    JobStatus, NewIntent, NewWorkflow, PrepareJobUpdate, SignalRecord, SignalState, StoreError,
    WorkflowChange, WorkflowRecord, WorkflowState,
};
use crate::supervisor::child::{ChildError, Fatal};
use crate::supervisor::context::Ctx;
use mesolive_api::FlowKind;
use mesolive_api::client::ControlHub;
use mesolive_api::events::AdjustmentSignalEvent;
use mesolive_api::lenient::{decode, decode_ref};
use mesolive_api::models::{OrderState, PreparedPlan};
use mesolive_api::wire::{args, methods};

/// How often active workflows are re-driven without a wake-up.
const TICK: Duration = Duration::from_secs(1);

/// Runs the workflow runner until the daemon stops.
pub async fn run(ctx: Arc<Ctx>) -> Result<(), ChildError> {
    let mut driving: HashMap<i64, JoinHandle<Result<(), DriveError>>> = HashMap::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let result = loop {
        if let Err(err) = reap(&mut driving).await {
            break Err(err);
        }
        ctx.drives.send_replace(driving.len());
        if !ctx.shutdown.intake.is_cancelled() {
            let control = ctx.links.control.borrow().clone();
            if let Some(control) = control {
                if let Err(err) = open_workflows(&ctx).await {
                    break Err(ChildError::Failed(format!("workflow store: {err}")));
                }
                match ctx.store.active_workflows().await {
                    Ok(active) => {
                        for workflow in active {
                            driving.entry(workflow.id).or_insert_with(|| {
                                spawn_drive(ctx.clone(), control.client.clone(), workflow)
                            });
                        }
                    }
                    Err(err) => break Err(ChildError::Failed(format!("workflow store: {err}"))),
                }
                ctx.drives.send_replace(driving.len());
            }
        }
        tokio::select! {
            _ = ctx.wake.workflows.notified() => {}
            _ = tick.tick() => {}
            _ = ctx.shutdown.children.cancelled() => break Ok(()),
        }
    };
    // The grace is over: whatever is still mid-call is settled on the next start.
    for (_, handle) in driving.drain() {
        handle.abort();
    }
    ctx.drives.send_replace(0);
    result
}

/// Resolves once no workflow step is running (shutdown waits on it, within its grace).
pub async fn drained(ctx: &Ctx) {
    let mut drives = ctx.drives.subscribe();
    let _ = drives.wait_for(|running| *running == 0).await;
}

async fn reap(
    driving: &mut HashMap<i64, JoinHandle<Result<(), DriveError>>>,
) -> Result<(), ChildError> {
    let finished: Vec<i64> = driving
        .iter()
        .filter(|(_, handle)| handle.is_finished())
        .map(|(id, _)| *id)
        .collect();
    for id in finished {
        let Some(handle) = driving.remove(&id) else {
            continue;
        };
        match handle.await {
            Ok(Ok(())) => {}
            Ok(Err(DriveError::Unauthorized(reason))) => {
                return Err(Fatal::Unauthorized(reason).into());
            }
            Ok(Err(DriveError::Store(err))) => {
                return Err(ChildError::Failed(format!("workflow {id}: {err}")));
            }
            Err(join) if join.is_panic() => {
                return Err(ChildError::Failed(format!("workflow {id}: step panicked")));
            }
            Err(_) => {}
        }
    }
    Ok(())
}

fn spawn_drive(
    ctx: Arc<Ctx>,
    control: ControlHub,
    workflow: WorkflowRecord,
) -> JoinHandle<Result<(), DriveError>> {
    let span = tracing::info_span!("workflow", id = workflow.id, kind = workflow.kind.as_str());
    tokio::spawn(async move { drive(&ctx, &control, workflow.id).await }.instrument(span))
}

#[derive(Debug, thiserror::Error)]
enum DriveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Unauthorized(String),
}

impl From<IntentError> for DriveError {
    fn from(err: IntentError) -> Self {
        match err {
            IntentError::Store(err) => DriveError::Store(err),
            IntentError::Unauthorized(reason) => DriveError::Unauthorized(reason),
        }
    }
}

/// Whether a step moved the workflow (drive on) or it must wait for the server.
enum Step {
    Advanced,
    Waiting,
}

/// Creates a workflow for every signal instance that is On and has none yet, deciding at
/// creation whether the configured mode lets it act.
async fn open_workflows(ctx: &Ctx) -> Result<(), StoreError> {
    for signal in ctx.store.signals().await? {
        if signal.state != SignalState::On {
            continue;
        }
        let new = plan_workflow(ctx, &signal).await?;
        if let Some(created) = ctx.store.create_workflow(&new).await? {
            ctx.metrics.workflow(created.state.as_str());
            tracing::info!(
                workflow = created.id,
                kind = created.kind.as_str(),
                strategy = created.strategy_id,
                position = ?created.position_id,
                account = ?created.account,
                state = created.state.as_str(),
                reason = created.reason.as_deref().unwrap_or(""),
                "workflow opened"
            );
        }
    }
    Ok(())
}

async fn plan_workflow(ctx: &Ctx, signal: &SignalRecord) -> Result<NewWorkflow, StoreError> {
    let kind = signal.kind;
    let position = match signal.position_id {
        Some(id) => ctx.store.position(id).await?,
        None => None,
    };
    let account = signal
        .account
        .clone()
        .or_else(|| position.as_ref().map(|p| p.account.clone()))
        .filter(|a| !a.is_empty());
    let scope = match (kind, signal.position_id) {
        (FlowKind::Entry, _) | (_, None) => format!(
            "entry:{}:{}",
            signal.strategy_id,
            account.as_deref().unwrap_or("?")
        ),
        (_, Some(position_id)) => format!("position:{position_id}"),
    };
    let (state, reason) = admission(ctx, kind, signal, account.as_deref()).await?;
    Ok(NewWorkflow {
        kind,
        scope,
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

/// Whether the configured mode, allow list and limits let this signal lead to actions.
async fn admission(
    ctx: &Ctx,
    kind: FlowKind,
    signal: &SignalRecord,
    account: Option<&str>,
) -> Result<(WorkflowState, Option<String>), StoreError> {
    let automation = &ctx.settings.automation;
    let what = format!("{} for strategy {}", kind.as_str(), signal.strategy_id);
    if !automation.allows(signal.strategy_id) {
        return Ok((
            WorkflowState::Cancelled,
            Some(format!(
                "{what}: strategy not in automation.allow_strategies"
            )),
        ));
    }
    if automation.mode == AutomationMode::Observe {
        return Ok((
            WorkflowState::Observed,
            Some(format!(
                "observe mode: would prepare and execute {what} on account {}",
                account.unwrap_or("?")
            )),
        ));
    }
    let Some(account) = account else {
        return Ok((
            WorkflowState::Cancelled,
            Some(format!("{what}: account unknown")),
        ));
    };
    let paper = ctx.directory().is_paper(account);
    if automation.mode == AutomationMode::Paper && paper != Some(true) {
        return Ok((
            WorkflowState::Cancelled,
            Some(format!(
                "paper mode: account {account} is not a known paper account"
            )),
        ));
    }
    if kind == FlowKind::Entry {
        let open = ctx
            .store
            .open_positions()
            .await?
            .iter()
            .filter(|p| p.strategy_id == signal.strategy_id && p.account == account)
            .count();
        if open >= automation.max_open_positions_for(signal.strategy_id) as usize {
            return Ok((
                WorkflowState::Cancelled,
                Some(format!(
                    "strategy {} already has {open} open position(s) on {account} (automation.max_open_positions)",
                    signal.strategy_id
                )),
            ));
        }
    }
    Ok((WorkflowState::Requested, None))
}

/// Advances one workflow until it has to wait or ends.
async fn drive(ctx: &Ctx, control: &ControlHub, id: i64) -> Result<(), DriveError> {
    loop {
        let Some(workflow) = ctx.store.workflow(id).await? else {
            return Ok(());
        };
        let step = match workflow.state {
            WorkflowState::Requested => prepare(ctx, control, &workflow).await?,
            WorkflowState::Preparing => await_job(ctx, control, &workflow).await?,
            WorkflowState::Prepared => begin_execution(ctx, &workflow).await?,
            WorkflowState::Executing => execute(ctx, control, &workflow).await?,
            _ => Step::Waiting,
        };
        if matches!(step, Step::Waiting) {
            return Ok(());
        }
    }
}

fn intent_key(ctx: &Ctx, workflow: &WorkflowRecord, step: &str) -> String {
    format!("{}-w{}-{step}", ctx.store.instance_id(), workflow.id)
}

/// Records a decision: new state, optional reason, one log line, one metric.
async fn transition(
    ctx: &Ctx,
    workflow: &WorkflowRecord,
    change: WorkflowChange,
) -> Result<Step, DriveError> {
    let state = change.state;
    let reason = change.reason.clone();
    ctx.store.update_workflow(workflow.id, &change).await?;
    if let Some(state) = state {
        ctx.metrics.workflow(state.as_str());
        tracing::info!(
            workflow = workflow.id,
            from = workflow.state.as_str(),
            to = state.as_str(),
            reason = reason.as_deref().unwrap_or(""),
            "workflow transition"
        );
    }
    ctx.wake.workflows.notify_one();
    Ok(Step::Advanced)
}

async fn signal_still_on(ctx: &Ctx, workflow: &WorkflowRecord) -> Result<bool, StoreError> {
    Ok(ctx
        .store
        .signal(&workflow.signal_key)
        .await?
        .is_some_and(|s| s.state == SignalState::On && s.instance == workflow.signal_instance))
}

async fn prepare(
    ctx: &Ctx,
    control: &ControlHub,
    workflow: &WorkflowRecord,
) -> Result<Step, DriveError> {
    let key = intent_key(ctx, workflow, "prep");
    let fresh = ctx.store.intent(&key).await?.is_none();
    if fresh && !signal_still_on(ctx, workflow).await? {
        return transition(
            ctx,
            workflow,
            WorkflowChange::to(WorkflowState::Cancelled)
                .because("signal went Off before the prepare was sent"),
        )
        .await;
    }
    let kind = workflow.kind;
    let operation = match kind {
        FlowKind::Adjustment => match adjustment_operation(ctx, workflow).await? {
            Some(operation) => Some(operation),
            None => {
                return transition(ctx, workflow, WorkflowChange::to(WorkflowState::Cancelled).because("the adjustment signal names no operation and automation.adjustment_operation is empty")).await;
            }
        },
        _ => None,
    };
    let prepare_args = match prepare_args(ctx, workflow, &key, operation.as_deref()) {
        Ok(args) => args,
        Err(reason) => {
            return transition(
                ctx,
                workflow,
                WorkflowChange::to(WorkflowState::Failed).because(&reason),
            )
            .await;
        }
    };
    let new = NewIntent {
        key: key.clone(),
        operation: methods::start_prepare(kind),
        workflow_id: Some(workflow.id.to_string()),
        args: prepare_args,
    };
    match intent::execute(&ctx.store, control, &new).await? {
        IntentOutcome::Completed(data) => {
            let Some(job_id) = mesolive_api::wire::job_id(&data) else {
                return transition(
                    ctx,
                    workflow,
                    WorkflowChange::to(WorkflowState::Failed).because("prepare returned no JobId"),
                )
                .await;
            };
            ctx.store
                .upsert_prepare_job(&PrepareJobUpdate {
                    job_id: job_id.clone(),
                    kind: workflow.kind,
                    intent_key: Some(key),
                    strategy_id: workflow.strategy_id,
                    position_id: workflow.position_id,
                    account: workflow.account.clone(),
                    status: JobStatus::Pending,
                    result: None,
                    error: None,
                })
                .await?;
            transition(
                ctx,
                workflow,
                WorkflowChange::to(WorkflowState::Preparing).job(&job_id),
            )
            .await
        }
        IntentOutcome::Failed(reason) => {
            transition(
                ctx,
                workflow,
                WorkflowChange::to(WorkflowState::Failed)
                    .because(&format!("prepare refused: {reason}")),
            )
            .await
        }
        IntentOutcome::Unsettled => Ok(Step::Waiting),
    }
}

/// The operation of an adjustment: as the signal's condition names it, else as configured.
async fn adjustment_operation(
    ctx: &Ctx,
    workflow: &WorkflowRecord,
) -> Result<Option<String>, StoreError> {
    let named = ctx
        .store
        .signal(&workflow.signal_key)
        .await?
        .and_then(|signal| decode::<AdjustmentSignalEvent>(signal.payload).ok())
        .and_then(|event| event.condition)
        .and_then(|condition| mesolive_api::wire::adjustment_operation(&condition));
    let configured = &ctx.settings.automation.adjustment_operation;
    Ok(named.or_else(|| (!configured.is_empty()).then(|| configured.clone())))
}

fn prepare_args(
    ctx: &Ctx,
    workflow: &WorkflowRecord,
    key: &str,
    operation: Option<&str>,
) -> Result<Value, String> {
    match workflow.kind {
        FlowKind::Entry => {
            let directory = ctx.directory();
            let strategy = directory.strategies.get(&workflow.strategy_id);
            let symbol = strategy
                .and_then(|s| s.symbol.clone())
                .unwrap_or_else(|| ctx.settings.hubs.probe_symbol.clone());
            let name = format!(
                "{}-w{}",
                strategy
                    .and_then(|s| s.name.clone())
                    .unwrap_or_else(|| format!("strategy{}", workflow.strategy_id)),
                workflow.id
            );
            let account = workflow
                .account
                .as_deref()
                .ok_or("entry without an account")?;
            Ok(args::prepare_entry(
                key,
                &name,
                workflow.strategy_id,
                account,
                &ctx.settings.automation.leg_selection_constraint,
                &symbol,
            ))
        }
        FlowKind::Exit => Ok(args::prepare_exit(
            key,
            workflow.position_id.ok_or("exit without a position")?,
        )),
        FlowKind::Adjustment => Ok(args::prepare_adjustment(
            key,
            workflow
                .position_id
                .ok_or("adjustment without a position")?,
            operation.ok_or("adjustment without an operation")?,
            workflow.condition.as_deref(),
        )),
    }
}

async fn await_job(
    ctx: &Ctx,
    control: &ControlHub,
    workflow: &WorkflowRecord,
) -> Result<Step, DriveError> {
    let Some(job_id) = workflow.job_id.as_deref() else {
        return transition(ctx, workflow, WorkflowChange::to(WorkflowState::Requested)).await;
    };
    let job = ctx.store.prepare_job(job_id).await?;
    match job.as_ref().map(|j| j.status) {
        Some(JobStatus::Completed) => {
            let result = job.and_then(|j| j.result).unwrap_or(Value::Null);
            match decode_ref::<PreparedPlan>(&result) {
                Ok(plan) if !plan.allowed() => {
                    transition(
                        ctx,
                        workflow,
                        WorkflowChange::to(WorkflowState::Cancelled).because(
                            "the server's gate (EntryAllowed/AdjustmentAllowed) is closed",
                        ),
                    )
                    .await
                }
                Ok(plan)
                    if plan
                        .operation
                        .as_ref()
                        .is_some_and(|op| op.as_str() == "UpdateVars") =>
                {
                    transition(
                        ctx,
                        workflow,
                        WorkflowChange::to(WorkflowState::Done)
                            .plan(result)
                            .because("UpdateVars is applied by the server; nothing to execute"),
                    )
                    .await
                }
                Ok(plan) if plan.leg_group_ids().is_empty() => {
                    transition(
                        ctx,
                        workflow,
                        WorkflowChange::to(WorkflowState::Failed)
                            .plan(result)
                            .because("the plan has no leg groups"),
                    )
                    .await
                }
                Ok(_) => {
                    transition(
                        ctx,
                        workflow,
                        WorkflowChange::to(WorkflowState::Prepared).plan(result),
                    )
                    .await
                }
                Err(err) => {
                    transition(
                        ctx,
                        workflow,
                        WorkflowChange::to(WorkflowState::Failed)
                            .because(&format!("unreadable prepare result: {err}")),
                    )
                    .await
                }
            }
        }
        Some(JobStatus::Failed) | Some(JobStatus::Cancelled) => {
            let error = job
                .and_then(|j| j.error)
                .unwrap_or_else(|| "job failed".into());
            transition(
                ctx,
                workflow,
                WorkflowChange::to(WorkflowState::Failed).because(&format!("prepare job: {error}")),
            )
            .await
        }
        _ if !signal_still_on(ctx, workflow).await? => {
            cancel_prepare(ctx, control, workflow, job_id).await
        }
        _ => Ok(Step::Waiting),
    }
}

/// Signal went Off while preparing: cancel the job (best effort), then stop.
async fn cancel_prepare(
    ctx: &Ctx,
    control: &ControlHub,
    workflow: &WorkflowRecord,
    job_id: &str,
) -> Result<Step, DriveError> {
    let key = intent_key(ctx, workflow, "cancel");
    let kind = workflow.kind;
    let new = NewIntent {
        key: key.clone(),
        operation: methods::cancel_prepare(kind),
        workflow_id: Some(workflow.id.to_string()),
        args: args::cancel_job(job_id, &key),
    };
    match intent::execute(&ctx.store, control, &new).await? {
        IntentOutcome::Unsettled => Ok(Step::Waiting),
        outcome => {
            let how = if matches!(outcome, IntentOutcome::Completed(_)) {
                "cancelled"
            } else {
                "cancel refused (best effort)"
            };
            transition(
                ctx,
                workflow,
                WorkflowChange::to(WorkflowState::Cancelled)
                    .because(&format!("signal went Off while preparing; job {how}")),
            )
            .await
        }
    }
}

async fn begin_execution(ctx: &Ctx, workflow: &WorkflowRecord) -> Result<Step, DriveError> {
    if ctx.settings.automation.mode == AutomationMode::Observe {
        return transition(
            ctx,
            workflow,
            WorkflowChange::to(WorkflowState::Observed)
                .because("observe mode: would execute the prepared plan"),
        )
        .await;
    }
    transition(ctx, workflow, WorkflowChange::to(WorkflowState::Executing)).await
}

async fn execute(
    ctx: &Ctx,
    control: &ControlHub,
    workflow: &WorkflowRecord,
) -> Result<Step, DriveError> {
    let Some(plan) = workflow
        .plan
        .as_ref()
        .and_then(|p| decode_ref::<PreparedPlan>(p).ok())
    else {
        return transition(
            ctx,
            workflow,
            WorkflowChange::to(WorkflowState::Failed).because("executing without a readable plan"),
        )
        .await;
    };
    let account = workflow
        .account
        .clone()
        .or_else(|| plan.broker_account_id.clone())
        .unwrap_or_default();
    let paper = ctx.directory().is_paper(&account) == Some(true);
    for group in plan.leg_group_ids() {
        if workflow.groups_done.contains(&group) {
            continue;
        }
        let key = intent_key(ctx, workflow, &format!("exec-g{group}"));
        let wire = ctx.settings.hubs.wire.outbound();
        let (operation, call_args) = if paper {
            (
                methods::APPLY_PAPER_FILLS,
                args::paper_fills(&key, &account, &plan, group, &wire),
            )
        } else {
            let multiplier = (workflow.kind == FlowKind::Entry).then(|| {
                ctx.settings
                    .automation
                    .qty_multiplier_for(workflow.strategy_id)
            });
            let limit = match ctx.settings.automation.order_type {
                OrderStyle::Market => None,
                OrderStyle::LimitMid => plan.group_mid(group),
            };
            (
                methods::SEND_ORDER,
                args::send_order(&key, &account, &plan, group, multiplier, limit, &wire),
            )
        };
        let call_args = match call_args {
            Ok(call_args) => call_args,
            Err(inexact) => {
                return transition(
                    ctx,
                    workflow,
                    WorkflowChange::to(WorkflowState::Failed)
                        .because(&format!("leg group {group}: {inexact}")),
                )
                .await;
            }
        };
        let new = NewIntent {
            key: key.clone(),
            operation: operation.to_owned(),
            workflow_id: Some(workflow.id.to_string()),
            args: call_args,
        };
        match intent::execute(&ctx.store, control, &new).await? {
            IntentOutcome::Completed(data) => {
                for order_id in mesolive_api::wire::order_ids(&data) {
                    ctx.store
                        .link_order_to_intent(order_id, &key, workflow.strategy_id)
                        .await?;
                }
                return transition(ctx, workflow, WorkflowChange::default().group_done(group))
                    .await;
            }
            IntentOutcome::Failed(reason) => {
                return transition(
                    ctx,
                    workflow,
                    WorkflowChange::to(WorkflowState::Failed)
                        .because(&format!("leg group {group}: {reason}")),
                )
                .await;
            }
            IntentOutcome::Unsettled => return Ok(Step::Waiting),
        }
    }
    if paper {
        return transition(
            ctx,
            workflow,
            WorkflowChange::to(WorkflowState::Done).because("every leg group filled on paper"),
        )
        .await;
    }
    orders_outcome(ctx, workflow, &plan).await
}

/// Live execution is done when every order of the plan filled; failed if one was rejected.
async fn orders_outcome(
    ctx: &Ctx,
    workflow: &WorkflowRecord,
    plan: &PreparedPlan,
) -> Result<Step, DriveError> {
    let mut all_filled = true;
    for group in plan.leg_group_ids() {
        let key = intent_key(ctx, workflow, &format!("exec-g{group}"));
        let mut orders = ctx.store.orders_for_intent(&key).await?;
        if orders.is_empty() {
            // The answer named no order (INFERRED payload, docs/inferred.md execution_payload):
            // the plan's orders of this group, as order updates reported them, are this
            // intent's.
            orders = ctx
                .store
                .orders_of_leg_group(plan.exec_plan_id, group)
                .await?;
            for order in &orders {
                ctx.store
                    .link_order_to_intent(order.order_id, &key, workflow.strategy_id)
                    .await?;
            }
        }
        if orders.is_empty() {
            all_filled = false;
        }
        for order in orders {
            let state = OrderState::from_name(order.state.as_deref().unwrap_or(""));
            match state {
                OrderState::Filled => {}
                OrderState::Rejected | OrderState::Cancelled | OrderState::Expired => {
                    return transition(
                        ctx,
                        workflow,
                        WorkflowChange::to(WorkflowState::Failed)
                            .because(&format!("order {} {state}", order.order_id)),
                    )
                    .await;
                }
                _ => all_filled = false,
            }
        }
    }
    if all_filled {
        return transition(
            ctx,
            workflow,
            WorkflowChange::to(WorkflowState::Done).because("every order filled"),
        )
        .await;
    }
    Ok(Step::Waiting)
}
