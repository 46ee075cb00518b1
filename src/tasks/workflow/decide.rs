//! The workflow's next step, decided from what the I/O gathered: a pure function of the stored
//! workflow and the [`Facts`], so every state × fact combination is unit-tested without a
//! store, a hub or a clock.
//!
//! The runner calls [`decide`] again after every change it performs: an intent that was sent
//! is a fact on the next round (completed, failed, or still in flight), never an assumption.
//!
//! Every active state has a deadline (set with each transition): a prepare job past it is
//! polled, then cancelled; live orders past it are cancelled; the workflow then fails, and a
//! failed workflow records whether and when its signal instance gets another attempt.

use std::time::Duration;

use serde_json::Value;

use super::admission::refused_by_trading_state;
use super::retry::{self, RetryPlan, RetryPolicy};
use crate::config::AutomationMode;
use crate::store::{
    JobStatus, Timestamp, TradingState, WorkflowChange, WorkflowRecord, WorkflowState,
};
use mesolive_api::FlowKind;
use mesolive_api::lenient::decode_ref;
use mesolive_api::models::{OrderState, PreparedPlan};

/// What the store says of one keyed intent of the workflow.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum IntentFact {
    /// No intent under this key yet.
    #[default]
    NotSent,
    /// Committed but not settled (pending, sent, unknown, abandoned): sending it again with
    /// the same key settles it.
    InFlight,
    /// Completed, with the server's payload.
    Completed(Value),
    /// Refused or failed, with the reason.
    Failed(String),
}

/// The prepare job as stored (from its completion event or a poll).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobFact {
    /// Where it is.
    pub status: JobStatus,
    /// The prepare result, when completed.
    pub result: Option<Value>,
    /// The failure reason, when failed.
    pub error: Option<String>,
    /// When the daemon last heard of it (start, event, poll).
    pub heard_at: Timestamp,
}

/// One live order of a leg group.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OrderFact {
    /// The live order id.
    pub order_id: i64,
    /// Its last known state (`Unknown` while only the link to its intent is known).
    pub state: OrderState,
    /// The workflow's `CancelOrder` intent for it.
    pub cancel: IntentFact,
}

/// The deadlines of `[automation]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Timeouts {
    /// `automation.job_timeout`: from the prepare call to a finished job.
    pub job: Duration,
    /// `automation.order_timeout`: from the last leg group sent to every order final.
    pub order: Duration,
}

/// One leg group of the plan: its execution intent and the orders it produced.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct GroupFact {
    /// The `SendOrder` / `ApplyPaperFills` intent.
    pub execute: IntentFact,
    /// The orders linked to that intent (live only).
    pub orders: Vec<OrderFact>,
}

/// Everything [`decide`] may look at besides the workflow itself. The I/O gathers the facts
/// the workflow's state needs; the others keep their defaults.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Facts {
    /// The wall clock now.
    pub now: Timestamp,
    /// The deadlines.
    pub timeouts: Timeouts,
    /// Whether and when failed workflows are retried.
    pub retry: RetryPolicy,
    /// `automation.mode` now.
    pub mode: AutomationMode,
    /// The trading state now: halted sends nothing new (an intent in flight is still
    /// settled); reduce_only starts and executes no entry (and no adjustment unless allowed).
    pub trading_state: TradingState,
    /// `automation.adjust_in_reduce_only`.
    pub adjust_in_reduce_only: bool,
    /// Whether the workflow's signal instance is still On.
    pub signal_on: bool,
    /// Whether the account is a known paper account (execution by paper fills).
    pub paper: bool,
    /// The adjustment operation: as the signal's condition names it, else as configured.
    pub adjustment_operation: Option<String>,
    /// The prepare intent.
    pub prepare: IntentFact,
    /// The intent cancelling the prepare job.
    pub cancel_job: IntentFact,
    /// The prepare job, once known.
    pub job: Option<JobFact>,
    /// Per leg group of the plan (by group id).
    pub groups: Vec<(i64, GroupFact)>,
}

impl Default for Facts {
    /// The configured defaults, at the epoch: tests and the I/O set what they need.
    fn default() -> Self {
        Facts {
            now: Timestamp::from(chrono::DateTime::UNIX_EPOCH),
            timeouts: Timeouts {
                job: Duration::from_secs(120),
                order: Duration::from_secs(120),
            },
            retry: RetryPolicy {
                exits: true,
                entries: false,
                backoff: Duration::from_secs(15),
                backoff_max: Duration::from_secs(300),
                max_retries: None,
            },
            mode: AutomationMode::Observe,
            trading_state: TradingState::Active,
            adjust_in_reduce_only: false,
            signal_on: false,
            paper: false,
            adjustment_operation: None,
            prepare: IntentFact::NotSent,
            cancel_job: IntentFact::NotSent,
            job: None,
            groups: Vec::new(),
        }
    }
}

/// A keyed call the workflow makes next.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Call {
    /// `StartPreparePosition*` (with the adjustment operation, for adjustments).
    Prepare { operation: Option<String> },
    /// `CancelPreparePosition*` of the workflow's job.
    CancelJob { job_id: String },
    /// `ApplyPaperFills` (paper) or `SendOrder` (live) of one leg group.
    Execute { group: i64, paper: bool },
    /// `CancelOrder` of a live order past the deadline (or left working by a failed group).
    CancelOrder { order_id: i64 },
}

impl Call {
    /// The step's part of the idempotency key: the same call always derives the same key.
    pub(crate) fn step(&self) -> String {
        match self {
            Call::Prepare { .. } => "prep".to_owned(),
            Call::CancelJob { .. } => "cancel".to_owned(),
            Call::Execute { group, .. } => format!("exec-g{group}"),
            Call::CancelOrder { order_id } => format!("cancel-o{order_id}"),
        }
    }
}

/// What the runner does next.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// Nothing until the server answers (an event, a poll, a reconnect).
    Wait,
    /// Record a change of the workflow (a transition with its reason, the plan…).
    Record(WorkflowChange),
    /// Send (or settle) a keyed call.
    Send(Call),
    /// The prepare call returned this JobId: store the job, then `preparing` until `deadline`.
    StartJob { job_id: String, deadline: Timestamp },
    /// A leg group was executed: link its orders, record the group done, and give its orders
    /// until `deadline`.
    GroupSent {
        group: i64,
        order_ids: Vec<i64>,
        deadline: Timestamp,
    },
    /// The prepare job is past its deadline and silent since: ask the server where it is.
    PollJob { job_id: String },
}

fn to(state: WorkflowState, reason: &str) -> Change {
    Change::Record(WorkflowChange::to(state).because(reason))
}

impl Facts {
    /// Whether nothing new may be sent now (trading halted).
    fn halted(&self) -> bool {
        self.trading_state == TradingState::Halted
    }

    /// Why the trading state keeps a workflow of `kind` from going further, if it does.
    fn refusal(&self, kind: FlowKind) -> Option<String> {
        refused_by_trading_state(kind, self.trading_state, self.adjust_in_reduce_only)
    }
}

/// The next step of an active workflow; `Wait` for a final one.
pub(crate) fn decide(workflow: &WorkflowRecord, facts: &Facts) -> Change {
    let change = match workflow.state {
        WorkflowState::Requested => requested(workflow, facts),
        WorkflowState::Preparing => preparing(workflow, facts),
        WorkflowState::Prepared => prepared(workflow, facts),
        WorkflowState::Executing => executing(workflow, facts),
        _ => Change::Wait,
    };
    with_deadline_and_retry(workflow, facts, change)
}

/// The deadline of a step entered at `now`.
pub(crate) fn deadline(state: WorkflowState, facts: &Facts) -> Option<Timestamp> {
    match state {
        WorkflowState::Requested | WorkflowState::Preparing => {
            Some(facts.now.plus(facts.timeouts.job))
        }
        WorkflowState::Prepared | WorkflowState::Executing => {
            Some(facts.now.plus(facts.timeouts.order))
        }
        _ => None,
    }
}

fn past_deadline(workflow: &WorkflowRecord, facts: &Facts) -> bool {
    workflow.deadline.is_some_and(|at| facts.now > at)
}

/// Completes a decided change: a new active state gets its deadline, a failure its retry
/// plan; an active workflow without a deadline (opened before deadlines existed) gets one.
fn with_deadline_and_retry(workflow: &WorkflowRecord, facts: &Facts, change: Change) -> Change {
    match change {
        Change::Record(mut change) => {
            match change.state {
                Some(WorkflowState::Failed) => {
                    let plan = retry::after_failure(
                        workflow.kind,
                        workflow.attempt,
                        facts.signal_on,
                        &facts.retry,
                        facts.now,
                    );
                    let reason = change.reason.take().unwrap_or_else(|| "failed".into());
                    change.reason = Some(match plan {
                        RetryPlan::Untouched => reason,
                        RetryPlan::At(at) => {
                            change.retry_at = Some(at);
                            format!("{reason}; attempt {} at {at}", workflow.attempt + 1)
                        }
                        RetryPlan::Never(why) => format!("{reason}; {why}"),
                    });
                }
                Some(state) => change.deadline = deadline(state, facts),
                None => {}
            }
            Change::Record(change)
        }
        Change::Wait if workflow.deadline.is_none() => match deadline(workflow.state, facts) {
            Some(at) => Change::Record(WorkflowChange::default().deadline(at)),
            None => Change::Wait,
        },
        other => other,
    }
}

fn requested(workflow: &WorkflowRecord, facts: &Facts) -> Change {
    match &facts.prepare {
        IntentFact::NotSent => {
            // Halted: the workflow waits here; on the resume its signal decides.
            if facts.halted() {
                return Change::Wait;
            }
            if !facts.signal_on {
                return to(
                    WorkflowState::Cancelled,
                    "signal went Off before the prepare was sent",
                );
            }
            let operation = match workflow.kind {
                FlowKind::Adjustment => match &facts.adjustment_operation {
                    Some(operation) => Some(operation.clone()),
                    None => {
                        return to(
                            WorkflowState::Cancelled,
                            "the adjustment signal names no operation and automation.adjustment_operation is empty",
                        );
                    }
                },
                _ => None,
            };
            let missing = match workflow.kind {
                FlowKind::Entry => workflow
                    .account
                    .is_none()
                    .then_some("entry without an account"),
                FlowKind::Exit => workflow
                    .position_id
                    .is_none()
                    .then_some("exit without a position"),
                FlowKind::Adjustment => workflow
                    .position_id
                    .is_none()
                    .then_some("adjustment without a position"),
            };
            if let Some(reason) = missing {
                return to(WorkflowState::Failed, reason);
            }
            if let Some(reason) = facts.refusal(workflow.kind) {
                return to(WorkflowState::Cancelled, &reason);
            }
            Change::Send(Call::Prepare { operation })
        }
        // Sent before: the same call settles it (never a new key).
        IntentFact::InFlight => Change::Send(Call::Prepare {
            operation: facts.adjustment_operation.clone(),
        }),
        IntentFact::Completed(data) => match mesolive_api::wire::job_id(data) {
            Some(job_id) => Change::StartJob {
                job_id,
                deadline: facts.now.plus(facts.timeouts.job),
            },
            None => to(WorkflowState::Failed, "prepare returned no JobId"),
        },
        IntentFact::Failed(reason) => {
            to(WorkflowState::Failed, &format!("prepare refused: {reason}"))
        }
    }
}

fn preparing(workflow: &WorkflowRecord, facts: &Facts) -> Change {
    let Some(job_id) = workflow.job_id.clone() else {
        return Change::Record(WorkflowChange::to(WorkflowState::Requested));
    };
    // A cancel sent before is settled before anything else moves the workflow.
    if facts.cancel_job == IntentFact::InFlight {
        return Change::Send(Call::CancelJob { job_id });
    }
    let cancelling = facts.cancel_job != IntentFact::NotSent;
    if let Some(job) = &facts.job {
        match job.status {
            JobStatus::Completed => {
                return plan_outcome(job.result.clone().unwrap_or(Value::Null));
            }
            // Cancelled by our own cancel: its outcome is told below, whichever was heard first.
            JobStatus::Cancelled if cancelling => {}
            JobStatus::Failed | JobStatus::Cancelled => {
                let error = job.error.as_deref().unwrap_or("job failed");
                return to(WorkflowState::Failed, &format!("prepare job: {error}"));
            }
            JobStatus::Pending | JobStatus::Running => {}
        }
    }
    if facts.signal_on && !cancelling {
        if !past_deadline(workflow, facts) {
            return Change::Wait;
        }
        // Past the deadline: hear from the job once more before giving up on it.
        let heard_since = match (&facts.job, workflow.deadline) {
            (Some(job), Some(deadline)) => job.heard_at > deadline,
            _ => false,
        };
        if !heard_since {
            return Change::PollJob { job_id };
        }
    }
    // The signal went Off, or the job stayed silent past its deadline: cancel it, then stop.
    let why = if facts.signal_on {
        "prepare job not finished within automation.job_timeout"
    } else {
        "signal went Off while preparing"
    };
    let state = if facts.signal_on {
        WorkflowState::Failed
    } else {
        WorkflowState::Cancelled
    };
    match &facts.cancel_job {
        IntentFact::NotSent if facts.halted() => Change::Wait,
        IntentFact::NotSent | IntentFact::InFlight => Change::Send(Call::CancelJob { job_id }),
        IntentFact::Completed(_) => to(state, &format!("{why}; job cancelled")),
        IntentFact::Failed(_) => to(state, &format!("{why}; job cancel refused (best effort)")),
    }
}

/// What a completed prepare job's result leads to.
fn plan_outcome(result: Value) -> Change {
    match decode_ref::<PreparedPlan>(&result) {
        Ok(plan) if !plan.allowed() => to(
            WorkflowState::Cancelled,
            "the server's gate (EntryAllowed/AdjustmentAllowed) is closed",
        ),
        Ok(plan)
            if plan
                .operation
                .as_ref()
                .is_some_and(|op| op.as_str() == "UpdateVars") =>
        {
            Change::Record(
                WorkflowChange::to(WorkflowState::Done)
                    .plan(result)
                    .because("UpdateVars is applied by the server; nothing to execute"),
            )
        }
        Ok(plan) if plan.leg_group_ids().is_empty() => Change::Record(
            WorkflowChange::to(WorkflowState::Failed)
                .plan(result)
                .because("the plan has no leg groups"),
        ),
        Ok(_) => Change::Record(WorkflowChange::to(WorkflowState::Prepared).plan(result)),
        Err(err) => to(
            WorkflowState::Failed,
            &format!("unreadable prepare result: {err}"),
        ),
    }
}

fn prepared(workflow: &WorkflowRecord, facts: &Facts) -> Change {
    if facts.halted() {
        return Change::Wait;
    }
    if let Some(reason) = facts.refusal(workflow.kind) {
        return to(
            WorkflowState::Cancelled,
            &format!("{reason} (the prepared plan is not executed)"),
        );
    }
    if facts.mode == AutomationMode::Observe {
        return to(
            WorkflowState::Observed,
            "observe mode: would execute the prepared plan",
        );
    }
    Change::Record(WorkflowChange::to(WorkflowState::Executing))
}

/// The plan of a workflow, when it has a readable one.
pub(crate) fn plan_of(workflow: &WorkflowRecord) -> Option<PreparedPlan> {
    workflow
        .plan
        .as_ref()
        .and_then(|p| decode_ref::<PreparedPlan>(p).ok())
}

fn executing(workflow: &WorkflowRecord, facts: &Facts) -> Change {
    let Some(plan) = plan_of(workflow) else {
        return to(WorkflowState::Failed, "executing without a readable plan");
    };
    // A cancel sent before is settled before anything else moves the workflow.
    let unsettled_cancel = facts
        .groups
        .iter()
        .flat_map(|(_, group)| &group.orders)
        .find(|order| order.cancel == IntentFact::InFlight);
    if let Some(order) = unsettled_cancel {
        return Change::Send(Call::CancelOrder {
            order_id: order.order_id,
        });
    }
    for group in plan.leg_group_ids() {
        if workflow.groups_done.contains(&group) {
            continue;
        }
        return match group_of(facts, group).execute {
            // Halted mid-execution: the groups left wait for the resume.
            IntentFact::NotSent if facts.halted() => Change::Wait,
            IntentFact::NotSent | IntentFact::InFlight => Change::Send(Call::Execute {
                group,
                paper: facts.paper,
            }),
            IntentFact::Completed(data) => Change::GroupSent {
                group,
                order_ids: mesolive_api::wire::order_ids(&data),
                deadline: facts.now.plus(facts.timeouts.order),
            },
            IntentFact::Failed(reason) => {
                let reason = format!("leg group {group}: {reason}");
                fail_after_cancelling(&plan, facts, reason)
            }
        };
    }
    if facts.paper {
        return to(WorkflowState::Done, "every leg group filled on paper");
    }
    live_outcome(workflow, &plan, facts)
}

/// What was gathered about one leg group (nothing yet: the defaults).
fn group_of(facts: &Facts, group: i64) -> GroupFact {
    facts
        .groups
        .iter()
        .find(|(g, _)| *g == group)
        .map(|(_, fact)| fact.clone())
        .unwrap_or_default()
}

/// Live execution is done when every order of the plan filled. It fails when an order ended
/// unfilled, or when orders are still open past the deadline — after the open ones are
/// cancelled, so a failed workflow never leaves a working order behind.
fn live_outcome(workflow: &WorkflowRecord, plan: &PreparedPlan, facts: &Facts) -> Change {
    let mut all_filled = true;
    let mut ended_unfilled = None;
    for group in plan.leg_group_ids() {
        let fact = group_of(facts, group);
        if fact.orders.is_empty() {
            all_filled = false;
        }
        for order in &fact.orders {
            match order.state {
                OrderState::Filled => {}
                OrderState::Rejected | OrderState::Cancelled | OrderState::Expired => {
                    all_filled = false;
                    // An order this workflow cancelled is the deadline's doing, not its own.
                    if order.cancel == IntentFact::NotSent && ended_unfilled.is_none() {
                        ended_unfilled = Some(format!("order {} {}", order.order_id, order.state));
                    }
                }
                _ => all_filled = false,
            }
        }
    }
    if all_filled {
        return to(WorkflowState::Done, "every order filled");
    }
    if let Some(reason) = ended_unfilled {
        return fail_after_cancelling(plan, facts, reason);
    }
    if !past_deadline(workflow, facts) {
        return Change::Wait;
    }
    let reason = format!(
        "orders not final within automation.order_timeout ({}s): cancelled through keyed CancelOrder",
        facts.timeouts.order.as_secs()
    );
    fail_after_cancelling(plan, facts, reason)
}

/// Cancels the next order of the plan that is still open and not yet cancelled by this
/// workflow; once none is left, fails with `reason` (or notes the cancels that were refused).
fn fail_after_cancelling(plan: &PreparedPlan, facts: &Facts, reason: String) -> Change {
    let mut refused = Vec::new();
    for group in plan.leg_group_ids() {
        for order in group_of(facts, group).orders {
            if order.state.is_terminal() {
                continue;
            }
            match order.cancel {
                // Halted: the cancel is sent on the resume (an operator may cancel by hand).
                IntentFact::NotSent if facts.halted() => return Change::Wait,
                IntentFact::NotSent | IntentFact::InFlight => {
                    return Change::Send(Call::CancelOrder {
                        order_id: order.order_id,
                    });
                }
                IntentFact::Completed(_) => {}
                IntentFact::Failed(why) => {
                    refused.push(format!("cancel of order {} refused: {why}", order.order_id))
                }
            }
        }
    }
    if refused.is_empty() {
        to(WorkflowState::Failed, &reason)
    } else {
        to(
            WorkflowState::Failed,
            &format!("{reason}; {}", refused.join("; ")),
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::Timestamp;

    fn workflow(kind: FlowKind, state: WorkflowState) -> WorkflowRecord {
        WorkflowRecord {
            id: 7,
            kind,
            scope: "scope".into(),
            signal_key: "signal".into(),
            signal_instance: "instance".into(),
            strategy_id: 101,
            account: Some("PAPER-1".into()),
            position_id: (kind != FlowKind::Entry).then_some(5),
            condition: None,
            state,
            job_id: (state != WorkflowState::Requested).then(|| "job-1".into()),
            plan: None,
            groups_done: Vec::new(),
            reason: None,
            attempt: 1,
            deadline: state.is_active().then(|| at(120)),
            retry_at: None,
            created_at: at(0),
            updated_at: at(0),
        }
    }

    /// `secs` after the test's epoch.
    fn at(secs: i64) -> Timestamp {
        Timestamp::from(
            chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap_or_default(),
        )
    }

    fn facts() -> Facts {
        Facts {
            now: at(10),
            mode: AutomationMode::Paper,
            signal_on: true,
            ..Facts::default()
        }
    }

    /// The facts once the workflow's deadline (120 s) has passed.
    fn late() -> Facts {
        Facts {
            now: at(121),
            ..facts()
        }
    }

    fn plan(groups: &[i64]) -> Value {
        let leg_groups: serde_json::Map<String, Value> = groups
            .iter()
            .map(|g| (g.to_string(), json!([format!("leg{g}")])))
            .collect();
        json!({"ExecPlanId": 9, "LegGroups": leg_groups})
    }

    fn executing_with(groups_done: &[i64]) -> WorkflowRecord {
        let mut w = workflow(FlowKind::Entry, WorkflowState::Executing);
        w.plan = Some(plan(&[1, 2]));
        w.groups_done = groups_done.to_vec();
        w
    }

    fn state_of(change: &Change) -> Option<WorkflowState> {
        match change {
            Change::Record(change) => change.state,
            _ => None,
        }
    }

    fn reason_of(change: &Change) -> String {
        match change {
            Change::Record(change) => change.reason.clone().unwrap_or_default(),
            other => panic!("not a recorded change: {other:?}"),
        }
    }

    fn job(status: JobStatus, result: Option<Value>) -> Option<JobFact> {
        Some(JobFact {
            status,
            result,
            error: Some("boom".into()),
            heard_at: at(5),
        })
    }

    #[test]
    fn a_requested_workflow_sends_its_prepare_while_the_signal_holds() {
        let w = workflow(FlowKind::Exit, WorkflowState::Requested);
        assert_eq!(
            decide(&w, &facts()),
            Change::Send(Call::Prepare { operation: None })
        );
        let off = Facts {
            signal_on: false,
            ..facts()
        };
        assert_eq!(state_of(&decide(&w, &off)), Some(WorkflowState::Cancelled));
    }

    #[test]
    fn a_prepare_already_sent_is_settled_even_if_the_signal_went_off() {
        let w = workflow(FlowKind::Entry, WorkflowState::Requested);
        let f = Facts {
            signal_on: false,
            prepare: IntentFact::InFlight,
            ..facts()
        };
        assert_eq!(
            decide(&w, &f),
            Change::Send(Call::Prepare { operation: None })
        );
    }

    #[test]
    fn the_prepare_outcome_starts_the_job_or_fails_the_workflow() {
        let w = workflow(FlowKind::Entry, WorkflowState::Requested);
        let done = Facts {
            prepare: IntentFact::Completed(json!({"JobId": "J1"})),
            ..facts()
        };
        assert_eq!(
            decide(&w, &done),
            Change::StartJob {
                job_id: "J1".into(),
                deadline: at(130)
            }
        );
        let no_job = Facts {
            prepare: IntentFact::Completed(json!({})),
            ..facts()
        };
        assert_eq!(reason_of(&decide(&w, &no_job)), "prepare returned no JobId");
        let refused = Facts {
            prepare: IntentFact::Failed("position 5 is closed".into()),
            ..facts()
        };
        let change = decide(&w, &refused);
        assert_eq!(state_of(&change), Some(WorkflowState::Failed));
        assert!(reason_of(&change).ends_with("is closed"));
    }

    #[test]
    fn an_adjustment_needs_an_operation_and_a_position_needs_an_id() {
        let w = workflow(FlowKind::Adjustment, WorkflowState::Requested);
        assert_eq!(
            state_of(&decide(&w, &facts())),
            Some(WorkflowState::Cancelled)
        );
        let named = Facts {
            adjustment_operation: Some("AddLegs".into()),
            ..facts()
        };
        assert_eq!(
            decide(&w, &named),
            Change::Send(Call::Prepare {
                operation: Some("AddLegs".into())
            })
        );
        let mut orphan = workflow(FlowKind::Exit, WorkflowState::Requested);
        orphan.position_id = None;
        assert!(reason_of(&decide(&orphan, &facts())).starts_with("exit without a position"));
        let mut no_account = workflow(FlowKind::Entry, WorkflowState::Requested);
        no_account.account = None;
        assert_eq!(
            reason_of(&decide(&no_account, &facts())),
            "entry without an account"
        );
    }

    #[test]
    fn a_preparing_workflow_follows_its_job() {
        let w = workflow(FlowKind::Entry, WorkflowState::Preparing);
        assert_eq!(decide(&w, &facts()), Change::Wait);
        let running = Facts {
            job: job(JobStatus::Running, None),
            ..facts()
        };
        assert_eq!(decide(&w, &running), Change::Wait);
        for status in [JobStatus::Failed, JobStatus::Cancelled] {
            let failed = Facts {
                job: job(status, None),
                ..facts()
            };
            assert_eq!(reason_of(&decide(&w, &failed)), "prepare job: boom");
        }
        let completed = Facts {
            job: job(JobStatus::Completed, Some(plan(&[1, 2]))),
            ..facts()
        };
        assert_eq!(
            state_of(&decide(&w, &completed)),
            Some(WorkflowState::Prepared)
        );
        let mut lost = w.clone();
        lost.job_id = None;
        assert_eq!(
            state_of(&decide(&lost, &facts())),
            Some(WorkflowState::Requested)
        );
    }

    #[test]
    fn a_completed_job_is_judged_by_its_plan() {
        let w = workflow(FlowKind::Adjustment, WorkflowState::Preparing);
        let with = |result: Value| Facts {
            job: job(JobStatus::Completed, Some(result)),
            ..facts()
        };
        let closed =
            json!({"ExecPlanId": 1, "LegGroups": {"1": ["a"]}, "AdjustmentAllowed": false});
        assert_eq!(
            state_of(&decide(&w, &with(closed))),
            Some(WorkflowState::Cancelled)
        );
        let vars = json!({"ExecPlanId": 1, "Operation": "UpdateVars"});
        assert_eq!(
            state_of(&decide(&w, &with(vars))),
            Some(WorkflowState::Done)
        );
        let empty = json!({"ExecPlanId": 1});
        assert!(reason_of(&decide(&w, &with(empty))).starts_with("the plan has no leg groups"));
        let unreadable = json!("not a plan");
        assert!(reason_of(&decide(&w, &with(unreadable))).starts_with("unreadable"));
    }

    #[test]
    fn the_signal_going_off_while_preparing_cancels_the_job() {
        let w = workflow(FlowKind::Entry, WorkflowState::Preparing);
        let off = Facts {
            signal_on: false,
            job: job(JobStatus::Running, None),
            ..facts()
        };
        assert_eq!(
            decide(&w, &off),
            Change::Send(Call::CancelJob {
                job_id: "job-1".into()
            })
        );
        for (cancel, reason) in [
            (IntentFact::Completed(json!({})), "job cancelled"),
            (IntentFact::Failed("too late".into()), "best effort"),
        ] {
            let settled = Facts {
                cancel_job: cancel,
                ..off.clone()
            };
            let change = decide(&w, &settled);
            assert_eq!(state_of(&change), Some(WorkflowState::Cancelled));
            assert!(reason_of(&change).contains(reason));
        }
        // The job heard of as cancelled once our cancel was sent: still our cancel, not a failure.
        let heard_cancelled = Facts {
            cancel_job: IntentFact::Completed(json!({})),
            job: job(JobStatus::Cancelled, None),
            ..off.clone()
        };
        assert_eq!(
            state_of(&decide(&w, &heard_cancelled)),
            Some(WorkflowState::Cancelled)
        );
        // A job the server cancelled on its own fails the workflow.
        let server_cancelled = Facts {
            job: job(JobStatus::Cancelled, None),
            ..facts()
        };
        assert_eq!(
            state_of(&decide(&w, &server_cancelled)),
            Some(WorkflowState::Failed)
        );
        // A job that completed before the Off was seen still counts.
        let completed = Facts {
            job: job(JobStatus::Completed, Some(plan(&[1]))),
            ..off
        };
        assert_eq!(
            state_of(&decide(&w, &completed)),
            Some(WorkflowState::Prepared)
        );
    }

    #[test]
    fn a_prepared_plan_is_executed_unless_observing() {
        let w = workflow(FlowKind::Exit, WorkflowState::Prepared);
        assert_eq!(
            state_of(&decide(&w, &facts())),
            Some(WorkflowState::Executing)
        );
        let observe = Facts {
            mode: AutomationMode::Observe,
            ..facts()
        };
        assert_eq!(
            state_of(&decide(&w, &observe)),
            Some(WorkflowState::Observed)
        );
    }

    #[test]
    fn leg_groups_are_executed_in_order_each_once() {
        let paper = Facts {
            paper: true,
            ..facts()
        };
        assert_eq!(
            decide(&executing_with(&[]), &paper),
            Change::Send(Call::Execute {
                group: 1,
                paper: true
            })
        );
        let sent = Facts {
            groups: vec![(
                1,
                GroupFact {
                    execute: IntentFact::Completed(json!({"LiveOrderIds": [44]})),
                    orders: Vec::new(),
                },
            )],
            ..paper.clone()
        };
        assert_eq!(
            decide(&executing_with(&[]), &sent),
            Change::GroupSent {
                group: 1,
                order_ids: vec![44],
                deadline: at(130)
            }
        );
        assert_eq!(
            decide(&executing_with(&[1]), &paper),
            Change::Send(Call::Execute {
                group: 2,
                paper: true
            })
        );
        assert_eq!(
            state_of(&decide(&executing_with(&[1, 2]), &paper)),
            Some(WorkflowState::Done)
        );
        let refused = Facts {
            groups: vec![(
                1,
                GroupFact {
                    execute: IntentFact::Failed("no".into()),
                    orders: Vec::new(),
                },
            )],
            ..paper
        };
        assert_eq!(
            reason_of(&decide(&executing_with(&[]), &refused)),
            "leg group 1: no"
        );
        let mut unreadable = executing_with(&[]);
        unreadable.plan = None;
        assert_eq!(
            state_of(&decide(&unreadable, &facts())),
            Some(WorkflowState::Failed)
        );
    }

    fn live_orders(states: [OrderState; 2]) -> Facts {
        let [first, second] = states;
        let group = |order_id: i64, state: OrderState| GroupFact {
            execute: IntentFact::Completed(json!({})),
            orders: vec![OrderFact {
                order_id,
                state,
                cancel: IntentFact::NotSent,
            }],
        };
        Facts {
            groups: vec![(1, group(11, first)), (2, group(12, second))],
            ..facts()
        }
    }

    #[test]
    fn live_execution_ends_with_its_orders() {
        let w = executing_with(&[1, 2]);
        let filled = live_orders([OrderState::Filled, OrderState::Filled]);
        assert_eq!(reason_of(&decide(&w, &filled)), "every order filled");
        let working = live_orders([OrderState::Filled, OrderState::Working]);
        assert_eq!(decide(&w, &working), Change::Wait);
        for bad in [
            OrderState::Rejected,
            OrderState::Cancelled,
            OrderState::Expired,
        ] {
            let failed = live_orders([OrderState::Filled, bad]);
            assert_eq!(state_of(&decide(&w, &failed)), Some(WorkflowState::Failed));
        }
        let unknown = Facts {
            groups: Vec::new(),
            ..facts()
        };
        assert_eq!(decide(&w, &unknown), Change::Wait);
    }

    fn halted() -> Facts {
        Facts {
            trading_state: TradingState::Halted,
            ..facts()
        }
    }

    fn working(order_id: i64, cancel: IntentFact) -> OrderFact {
        OrderFact {
            order_id,
            state: OrderState::Working,
            cancel,
        }
    }

    fn with_orders(first: OrderFact, second: OrderFact) -> Facts {
        let group = |order: OrderFact| GroupFact {
            execute: IntentFact::Completed(json!({})),
            orders: vec![order],
        };
        Facts {
            groups: vec![(1, group(first)), (2, group(second))],
            ..late()
        }
    }

    #[test]
    fn halted_sends_nothing_new_but_settles_what_is_in_flight() {
        let requested = workflow(FlowKind::Entry, WorkflowState::Requested);
        assert_eq!(decide(&requested, &halted()), Change::Wait);
        // Even with the signal gone Off: it is cancelled on the resume, not while halted.
        let off = Facts {
            signal_on: false,
            ..halted()
        };
        assert_eq!(decide(&requested, &off), Change::Wait);
        let in_flight = Facts {
            prepare: IntentFact::InFlight,
            ..halted()
        };
        assert_eq!(
            decide(&requested, &in_flight),
            Change::Send(Call::Prepare { operation: None })
        );
        let preparing = workflow(FlowKind::Entry, WorkflowState::Preparing);
        assert_eq!(decide(&preparing, &off), Change::Wait);
        // A job that completed is read while halted; the plan then waits.
        let completed = Facts {
            job: job(JobStatus::Completed, Some(plan(&[1]))),
            ..halted()
        };
        assert_eq!(
            state_of(&decide(&preparing, &completed)),
            Some(WorkflowState::Prepared)
        );
        let prepared = workflow(FlowKind::Exit, WorkflowState::Prepared);
        assert_eq!(decide(&prepared, &halted()), Change::Wait);
        let paper = Facts {
            paper: true,
            ..halted()
        };
        assert_eq!(decide(&executing_with(&[1]), &paper), Change::Wait);
    }

    #[test]
    fn reduce_only_stops_entries_before_they_send_or_execute() {
        let reduce = Facts {
            trading_state: TradingState::ReduceOnly,
            ..facts()
        };
        let entry = workflow(FlowKind::Entry, WorkflowState::Requested);
        let change = decide(&entry, &reduce);
        assert_eq!(state_of(&change), Some(WorkflowState::Cancelled));
        assert!(reason_of(&change).contains("reduce_only"));
        let prepared = workflow(FlowKind::Entry, WorkflowState::Prepared);
        assert!(reason_of(&decide(&prepared, &reduce)).contains("not executed"));
        // An entry already executing completes: half a position is worse than a whole one.
        let paper = Facts {
            paper: true,
            ..reduce.clone()
        };
        assert_eq!(
            decide(&executing_with(&[1]), &paper),
            Change::Send(Call::Execute {
                group: 2,
                paper: true
            })
        );
        let exit = workflow(FlowKind::Exit, WorkflowState::Requested);
        assert_eq!(
            decide(&exit, &reduce),
            Change::Send(Call::Prepare { operation: None })
        );
        let adjustment = workflow(FlowKind::Adjustment, WorkflowState::Requested);
        let named = Facts {
            adjustment_operation: Some("AddLegs".into()),
            ..reduce.clone()
        };
        assert_eq!(
            state_of(&decide(&adjustment, &named)),
            Some(WorkflowState::Cancelled)
        );
        let allowed = Facts {
            adjust_in_reduce_only: true,
            ..named
        };
        assert!(matches!(
            decide(&adjustment, &allowed),
            Change::Send(Call::Prepare { .. })
        ));
    }

    #[test]
    fn every_new_active_state_gets_its_deadline() {
        let prepared = workflow(FlowKind::Exit, WorkflowState::Prepared);
        match decide(&prepared, &facts()) {
            Change::Record(change) => {
                assert_eq!(change.state, Some(WorkflowState::Executing));
                assert_eq!(change.deadline, Some(at(130)), "now + order_timeout");
            }
            other => panic!("{other:?}"),
        }
        let preparing = workflow(FlowKind::Exit, WorkflowState::Preparing);
        let mut lost = preparing.clone();
        lost.job_id = None;
        match decide(&lost, &facts()) {
            Change::Record(change) => {
                assert_eq!(change.deadline, Some(at(130)), "now + job_timeout")
            }
            other => panic!("{other:?}"),
        }
        // A workflow opened before deadlines existed gets one instead of waiting forever.
        let mut legacy = preparing;
        legacy.deadline = None;
        assert_eq!(
            decide(&legacy, &facts()),
            Change::Record(WorkflowChange::default().deadline(at(130)))
        );
        let done = decide(
            &executing_with(&[1, 2]),
            &Facts {
                paper: true,
                ..facts()
            },
        );
        assert!(matches!(done, Change::Record(c) if c.deadline.is_none()));
    }

    #[test]
    fn a_failed_exit_records_its_next_attempt_an_entry_does_not() {
        let refused = |signal_on: bool| Facts {
            signal_on,
            prepare: IntentFact::Failed("busy".into()),
            ..facts()
        };
        let exit = workflow(FlowKind::Exit, WorkflowState::Requested);
        match decide(&exit, &refused(true)) {
            Change::Record(change) => {
                assert_eq!(change.state, Some(WorkflowState::Failed));
                assert_eq!(change.retry_at, Some(at(25)), "now + the first backoff");
                assert!(
                    change
                        .reason
                        .as_deref()
                        .unwrap_or_default()
                        .contains("attempt 2 at"),
                    "{change:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        let mut third = exit.clone();
        third.attempt = 3;
        assert!(
            matches!(decide(&third, &refused(true)), Change::Record(c) if c.retry_at == Some(at(70)))
        );
        match decide(&exit, &refused(false)) {
            Change::Record(change) => {
                assert_eq!(change.retry_at, None);
                assert!(change.reason.unwrap_or_default().ends_with("no longer On"));
            }
            other => panic!("{other:?}"),
        }
        let entry = workflow(FlowKind::Entry, WorkflowState::Requested);
        assert_eq!(
            decide(&entry, &refused(true)),
            to(WorkflowState::Failed, "prepare refused: busy")
        );
    }

    #[test]
    fn a_job_past_its_deadline_is_polled_then_cancelled() {
        let w = workflow(FlowKind::Exit, WorkflowState::Preparing);
        let silent = Facts {
            job: job(JobStatus::Running, None),
            ..late()
        };
        assert_eq!(
            decide(&w, &silent),
            Change::PollJob {
                job_id: "job-1".into()
            }
        );
        let still_running = Facts {
            job: job(JobStatus::Running, None).map(|j| JobFact {
                heard_at: at(121),
                ..j
            }),
            ..late()
        };
        assert_eq!(
            decide(&w, &still_running),
            Change::Send(Call::CancelJob {
                job_id: "job-1".into()
            })
        );
        let cancelled = Facts {
            cancel_job: IntentFact::Completed(json!({})),
            ..still_running.clone()
        };
        let change = decide(&w, &cancelled);
        assert_eq!(state_of(&change), Some(WorkflowState::Failed));
        assert!(reason_of(&change).contains("automation.job_timeout; job cancelled"));
        assert!(
            reason_of(&change).contains("attempt 2"),
            "an exit is retried"
        );
        // The job heard of as cancelled (our cancel) before or after the cancel's answer: the
        // same outcome, whichever came first.
        let heard_cancelled = Facts {
            job: job(JobStatus::Cancelled, None).map(|j| JobFact {
                heard_at: at(122),
                ..j
            }),
            ..cancelled.clone()
        };
        assert_eq!(decide(&w, &heard_cancelled), change);
        assert!(matches!(
            decide(
                &w,
                &Facts {
                    cancel_job: IntentFact::InFlight,
                    ..heard_cancelled
                }
            ),
            Change::Send(Call::CancelJob { .. })
        ));
        // A cancel once sent is settled even if the job was heard of meanwhile.
        let in_flight = Facts {
            cancel_job: IntentFact::InFlight,
            ..still_running
        };
        assert!(matches!(
            decide(&w, &in_flight),
            Change::Send(Call::CancelJob { .. })
        ));
        // Before the deadline a silent job is waited for.
        assert_eq!(
            decide(
                &w,
                &Facts {
                    now: at(119),
                    ..silent
                }
            ),
            Change::Wait
        );
    }

    #[test]
    fn orders_past_their_deadline_are_cancelled_then_the_workflow_fails() {
        let w = executing_with(&[1, 2]);
        let both = with_orders(
            working(11, IntentFact::NotSent),
            working(12, IntentFact::NotSent),
        );
        assert_eq!(
            decide(
                &w,
                &Facts {
                    now: at(100),
                    ..both.clone()
                }
            ),
            Change::Wait,
            "not before the deadline"
        );
        assert_eq!(
            decide(&w, &both),
            Change::Send(Call::CancelOrder { order_id: 11 })
        );
        let first_cancelled = with_orders(
            working(11, IntentFact::Completed(json!({}))),
            working(12, IntentFact::NotSent),
        );
        assert_eq!(
            decide(&w, &first_cancelled),
            Change::Send(Call::CancelOrder { order_id: 12 })
        );
        // The cancel's own order event (Cancelled) is not mistaken for an unfilled order.
        let both_cancelled = with_orders(
            OrderFact {
                state: OrderState::Cancelled,
                ..working(11, IntentFact::Completed(json!({})))
            },
            working(12, IntentFact::InFlight),
        );
        assert_eq!(
            decide(&w, &both_cancelled),
            Change::Send(Call::CancelOrder { order_id: 12 })
        );
        // A cancel whose answer was lost is settled even once its order shows Cancelled, and
        // even once every order filled: no intent is left in flight behind a final workflow.
        for state in [OrderState::Cancelled, OrderState::Filled] {
            let lost = with_orders(
                OrderFact {
                    state: state.clone(),
                    ..working(11, IntentFact::InFlight)
                },
                OrderFact {
                    state: OrderState::Filled,
                    ..working(12, IntentFact::NotSent)
                },
            );
            assert_eq!(
                decide(&w, &lost),
                Change::Send(Call::CancelOrder { order_id: 11 })
            );
        }
        let settled = with_orders(
            working(11, IntentFact::Completed(json!({}))),
            working(12, IntentFact::Failed("order 12 is already Filled".into())),
        );
        let change = decide(&w, &settled);
        assert_eq!(state_of(&change), Some(WorkflowState::Failed));
        assert!(reason_of(&change).starts_with("orders not final within automation.order_timeout"));
        assert!(reason_of(&change).contains("cancel of order 12 refused"));
    }

    #[test]
    fn a_failed_order_or_group_cancels_the_orders_still_working() {
        let w = executing_with(&[1, 2]);
        let rejected = with_orders(
            OrderFact {
                state: OrderState::Rejected,
                ..working(11, IntentFact::NotSent)
            },
            working(12, IntentFact::NotSent),
        );
        let rejected = Facts {
            now: at(10),
            ..rejected
        };
        assert_eq!(
            decide(&w, &rejected),
            Change::Send(Call::CancelOrder { order_id: 12 })
        );
        let mut after = rejected.clone();
        after.groups[1].1.orders[0].cancel = IntentFact::Completed(json!({}));
        assert!(reason_of(&decide(&w, &after)).starts_with("order 11 Rejected"));

        let half = executing_with(&[1]);
        let group_refused = Facts {
            now: at(10),
            groups: vec![
                (
                    1,
                    GroupFact {
                        execute: IntentFact::Completed(json!({})),
                        orders: vec![working(11, IntentFact::NotSent)],
                    },
                ),
                (
                    2,
                    GroupFact {
                        execute: IntentFact::Failed("no margin".into()),
                        orders: Vec::new(),
                    },
                ),
            ],
            ..facts()
        };
        assert_eq!(
            decide(&half, &group_refused),
            Change::Send(Call::CancelOrder { order_id: 11 })
        );
    }

    #[test]
    fn a_final_workflow_has_nothing_to_do() {
        for state in [
            WorkflowState::Done,
            WorkflowState::Failed,
            WorkflowState::Cancelled,
            WorkflowState::Observed,
        ] {
            assert_eq!(
                decide(&workflow(FlowKind::Exit, state), &facts()),
                Change::Wait
            );
        }
    }
}
