//! Async prepare jobs (API §6.2): started Running by `StartPreparePosition*`, finished by a
//! timer into Completed (an execution plan and its result) or Failed, announced by
//! `OnPosition{Kind}Preparation{Completed|Failed}`, observable by polling and through the
//! idempotency record of the key that started them.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::call::{CallResult, Failure, to_value};
use super::domain::{Contract, ExecPlan, Job, JobRequest, PlanKind, PlannedLeg};
use super::world::{World, timestamp};
use mesolive_api::FlowKind;
use mesolive_api::events::PreparationEvent;
use mesolive_api::models::{
    MesoOptionType, PositionAdjustmentOperation, PositionStatus, PreparationStatus,
    PrepareStatusResult,
};
use mesolive_api::wire::callbacks;

impl World {
    /// Checks a prepare request against the world: who it is for, and whether it can run.
    fn prepare_target(&self, request: &JobRequest) -> Result<(i64, String), Failure> {
        match request {
            JobRequest::Entry {
                strategy_id,
                account,
                ..
            } => {
                let strategy = self
                    .strategies
                    .get(strategy_id)
                    .ok_or_else(|| Failure::not_found(format!("unknown strategy {strategy_id}")))?;
                let account = self
                    .account(account)
                    .ok_or_else(|| Failure::not_found(format!("unknown account '{account}'")))?;
                if !strategy.accounts.contains(&account.id) {
                    return Err(Failure::bad_request(format!(
                        "strategy {strategy_id} is not active on account '{}'",
                        account.id
                    )));
                }
                Ok((*strategy_id, account.id.clone()))
            }
            JobRequest::Exit { position_id } | JobRequest::Adjustment { position_id, .. } => {
                let p = self
                    .positions
                    .get(position_id)
                    .ok_or_else(|| Failure::not_found(format!("unknown position {position_id}")))?;
                if !p.is_open() {
                    return Err(Failure::bad_request(format!(
                        "position {position_id} is closed"
                    )));
                }
                Ok((p.strategy_id, p.account.clone()))
            }
        }
    }

    /// Starts a job for the call keyed `key`; returns its id.
    pub(crate) fn start_job(
        &mut self,
        key: &str,
        request: JobRequest,
        doomed: bool,
    ) -> Result<String, Failure> {
        let (strategy_id, account) = self.prepare_target(&request)?;
        let id = self.uuid();
        let now = timestamp();
        self.jobs.insert(
            id.clone(),
            Job {
                id: id.clone(),
                key: key.to_owned(),
                request,
                strategy_id,
                account,
                status: PreparationStatus::Running,
                created_at: now.clone(),
                updated_at: now,
                result: None,
                error: None,
                doomed,
            },
        );
        if let Some(record) = self.idempotency.get_mut(key) {
            record.job_id = Some(id.clone());
            record.job_status = Some(PreparationStatus::Running);
        }
        Ok(id)
    }

    /// Finishes a Running job: Completed with a plan, or Failed (fault, or the world changed).
    pub(crate) fn finish_job(&mut self, job_id: &str) {
        let Some(job) = self
            .jobs
            .get(job_id)
            .filter(|j| j.status == PreparationStatus::Running)
            .cloned()
        else {
            return;
        };
        let outcome = if job.doomed {
            Err("simulated failure: the prepare job failed (fault injected)".to_owned())
        } else {
            self.prepare_target(&job.request)
                .map_err(|failure| failure.message)
                .map(|_| self.create_plan(&job))
        };
        let kind = job.request.kind();
        let plan_id = outcome.as_ref().ok().copied();
        let (status, result, error) = match outcome {
            Ok(plan_id) => {
                let condition = match &job.request {
                    JobRequest::Adjustment { condition, .. } => condition.clone(),
                    _ => String::new(),
                };
                let result = self.prepare_result(plan_id, &condition);
                if let Some(record) = self.idempotency.get_mut(&job.key) {
                    record.live_exec_plan_id = Some(plan_id);
                }
                (PreparationStatus::Completed, Some(result), None)
            }
            Err(error) => (PreparationStatus::Failed, None, Some(error)),
        };
        let now = timestamp();
        if let Some(stored) = self.jobs.get_mut(job_id) {
            stored.status = status.clone();
            stored.updated_at = now.clone();
            stored.result = result.clone();
            stored.error = error.clone();
        }
        if let Some(record) = self.idempotency.get_mut(&job.key) {
            record.job_status = Some(status.clone());
            record.job_result = result.clone();
            record.job_error_message = error.clone();
            record.updated_at = now;
        }
        let completed = status == PreparationStatus::Completed;
        let event = PreparationEvent {
            job_id: job.id.clone(),
            strategy_id: job.strategy_id,
            strategy_name: self
                .strategies
                .get(&job.strategy_id)
                .map(|s| s.name.clone()),
            broker_account_id: Some(job.account.clone()),
            result,
            error,
        };
        self.emit(
            callbacks::preparation(kind, completed),
            Some(job.strategy_id),
            &event,
        );
        // A plan with nothing to execute (UpdateVars) takes effect right after its completion.
        if let Some(plan_id) = plan_id {
            self.take_effect_if_nothing_to_execute(plan_id);
        }
    }

    /// Builds the job's execution plan.
    fn create_plan(&mut self, job: &Job) -> i64 {
        let id = self.next_plan_id();
        let (kind, position_id, position_name, qty_multiplier, groups) = match &job.request {
            JobRequest::Entry {
                strategy_id,
                name,
                qty_multiplier,
                ..
            } => {
                let (strategy_name, symbol) = self
                    .strategies
                    .get(strategy_id)
                    .map(|s| (s.name.clone(), s.symbol.clone()))
                    .unwrap_or_default();
                let name = name
                    .clone()
                    .unwrap_or_else(|| format!("{strategy_name} entry"));
                let groups = self.condor(&symbol, *qty_multiplier);
                (PlanKind::Entry, None, name, *qty_multiplier, groups)
            }
            JobRequest::Exit { position_id } => {
                let mut groups: BTreeMap<i64, Vec<PlannedLeg>> = BTreeMap::new();
                for leg in self.open_legs(*position_id) {
                    groups
                        .entry(leg.group)
                        .or_default()
                        .push(PlannedLeg::Close { leg_id: leg.id });
                }
                let (name, qm) = self.position_name_and_multiplier(*position_id);
                (PlanKind::Exit, Some(*position_id), name, qm, groups)
            }
            JobRequest::Adjustment {
                position_id,
                operation,
                ..
            } => {
                let groups = self.adjustment_legs(*position_id, operation);
                let (name, qm) = self.position_name_and_multiplier(*position_id);
                (
                    PlanKind::Adjustment(operation.clone()),
                    Some(*position_id),
                    name,
                    qm,
                    groups,
                )
            }
        };
        self.plans.insert(
            id,
            ExecPlan {
                id,
                kind,
                strategy_id: job.strategy_id,
                account: job.account.clone(),
                position_id,
                position_name,
                qty_multiplier,
                groups,
                filled: Default::default(),
                done: false,
            },
        );
        id
    }

    fn position_name_and_multiplier(&self, position_id: i64) -> (String, Decimal) {
        self.positions
            .get(&position_id)
            .map(|p| (p.name.clone(), p.qty_multiplier))
            .unwrap_or((String::new(), Decimal::ONE))
    }

    /// Legs an adjustment trades, all in leg group 1: AddLegs buys a further-out put,
    /// RemoveLegs closes the newest open leg, MoveLeg rolls the first short leg; UpdateVars
    /// trades nothing.
    fn adjustment_legs(
        &mut self,
        position_id: i64,
        operation: &PositionAdjustmentOperation,
    ) -> BTreeMap<i64, Vec<PlannedLeg>> {
        let open: Vec<_> = self.open_legs(position_id).into_iter().cloned().collect();
        let serial = self
            .positions
            .get(&position_id)
            .map_or(0, |p| p.leg_ids.len());
        let legs = match operation {
            PositionAdjustmentOperation::AddLegs => open
                .iter()
                .find(|l| l.contract.option_type == MesoOptionType::Put)
                .map(|anchor| {
                    let mut contract: Contract = anchor.contract.clone();
                    contract.strike -= anchor.contract.strike * Decimal::new(2, 2);
                    contract.strike = contract.strike.round();
                    vec![PlannedLeg::Open {
                        name: format!("HedgePut{serial}"),
                        contract,
                        qty: anchor.qty.abs(),
                    }]
                })
                .unwrap_or_default(),
            PositionAdjustmentOperation::RemoveLegs => open
                .last()
                .map(|leg| vec![PlannedLeg::Close { leg_id: leg.id }])
                .unwrap_or_default(),
            PositionAdjustmentOperation::MoveLeg => open
                .iter()
                .find(|l| l.qty.is_sign_negative())
                .map(|leg| {
                    let mut contract = leg.contract.clone();
                    let shift = leg.contract.strike * Decimal::new(1, 2);
                    contract.strike = match contract.option_type {
                        MesoOptionType::Call => contract.strike + shift,
                        _ => contract.strike - shift,
                    }
                    .round();
                    vec![
                        PlannedLeg::Close { leg_id: leg.id },
                        PlannedLeg::Open {
                            name: format!("{}Moved{serial}", leg.name),
                            contract,
                            qty: leg.qty,
                        },
                    ]
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        if legs.is_empty() {
            BTreeMap::new()
        } else {
            BTreeMap::from([(1, legs)])
        }
    }

    /// Plans without leg groups (UpdateVars, or nothing left to trade) take effect at once.
    fn take_effect_if_nothing_to_execute(&mut self, plan_id: i64) {
        if self
            .plans
            .get(&plan_id)
            .is_some_and(|p| p.groups.is_empty())
        {
            self.take_effect(plan_id);
        }
    }

    /// `GetPreparePosition{Kind}Status`.
    pub(crate) fn job_status(&self, kind: FlowKind, job_id: &str) -> CallResult {
        let job = self
            .jobs
            .get(job_id)
            .filter(|j| j.request.kind() == kind)
            .ok_or_else(|| {
                Failure::not_found(format!("unknown {} job '{job_id}'", kind.as_str()))
            })?;
        Ok(to_value(&PrepareStatusResult {
            job_id: job.id.clone(),
            status: job.status.clone(),
            result: job.result.clone(),
            error: job.error.clone(),
            created_at: Some(job.created_at.clone()),
            updated_at: Some(job.updated_at.clone()),
        }))
    }

    /// `CancelPreparePosition{Kind}`: best effort — a Running job becomes Cancelled (no event);
    /// a finished one is left as it is. Answers the job's status.
    pub(crate) fn cancel_job(&mut self, kind: FlowKind, job_id: &str) -> CallResult {
        let job = self
            .jobs
            .get_mut(job_id)
            .filter(|j| j.request.kind() == kind)
            .ok_or_else(|| {
                Failure::not_found(format!("unknown {} job '{job_id}'", kind.as_str()))
            })?;
        if job.status == PreparationStatus::Running {
            job.status = PreparationStatus::Cancelled;
            job.updated_at = timestamp();
            let key = job.key.clone();
            if let Some(record) = self.idempotency.get_mut(&key) {
                record.job_status = Some(PreparationStatus::Cancelled);
            }
        }
        self.job_status(kind, job_id)
    }

    /// UpdateVars and empty plans: mark done and announce the adjustment.
    pub(crate) fn update_vars(&mut self, position_id: i64) {
        if let Some(position) = self.positions.get_mut(&position_id) {
            *position.vars.entry("AdjustmentCount".into()).or_default() += Decimal::ONE;
        }
        self.position_event(position_id, PositionStatus::Adjusted);
    }
}
