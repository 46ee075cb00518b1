//! The reconciler: what the daemon cannot know from events alone, it asks the server.
//!
//! * At startup, before any workflow moves: every intent that is not final (pending with
//!   attempts, sent, unknown, abandoned) is settled with `GetIdempotencyRecord`, and every
//!   in-flight prepare job is polled with `GetPreparePosition*Status`.
//! * After every hub reconnect (a wake-up from the links) and on a timer: in-flight jobs whose
//!   completion event has not arrived within `automation.job_poll_after` are polled, so a lost
//!   completion never leaves a workflow stuck; then the workflow runner is woken, and its
//!   per-workflow drive settles that workflow's unknown intents before anything else.
//!
//! Settling intents after startup is left to the workflow drive on purpose: one task per
//! workflow touches its intents, so two tasks never settle the same key at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use super::effects::job_status;
use super::intent::{self, IntentError, Settled};
use crate::store::{JobStatus, StoreError, Timestamp};
use crate::supervisor::child::{ChildError, Unauthorized};
use crate::supervisor::context::Ctx;
use mesolive_api::client::{ControlHub, HubError};

/// How often stale jobs are looked for.
const TICK: Duration = Duration::from_secs(2);

/// Why a reconciliation pass stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The Control Hub is not connected.
    #[error("control hub not connected")]
    NoControl,
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The credentials were refused.
    #[error(transparent)]
    Unauthorized(#[from] Unauthorized),
}

impl From<IntentError> for ReconcileError {
    fn from(err: IntentError) -> Self {
        match err {
            IntentError::Store(err) => ReconcileError::Store(err),
            IntentError::Unauthorized(refused) => ReconcileError::Unauthorized(refused),
        }
    }
}

/// The startup pass: settle every unfinished intent, poll every in-flight job.
pub async fn reconcile_once(ctx: &Ctx) -> Result<(), ReconcileError> {
    let control = current_control(ctx)?;
    for stored in ctx.store().intents_in_flight().await? {
        let settled = intent::settle(ctx.store(), &control, &stored).await?;
        tracing::info!(intent = %stored.key, operation = %stored.operation, previous = %stored.state, settled = ?settled_name(&settled), "reconciled intent");
    }
    poll_jobs(ctx, &control, Duration::ZERO).await?;
    ctx.wake().workflows.notify_one();
    Ok(())
}

/// Settles what is in flight after a resync, the way this module does at each point of the
/// daemon's life: before the workflow runner runs (startup), every intent and every job, as
/// [`reconcile_once`]; once it runs, every job, then the runner is woken (each workflow's drive
/// settles its own intents).
pub async fn settle_in_flight(ctx: &Ctx, workflows_running: bool) -> Result<(), ReconcileError> {
    if !workflows_running {
        return reconcile_once(ctx).await;
    }
    let control = current_control(ctx)?;
    poll_jobs(ctx, &control, Duration::ZERO).await?;
    ctx.wake().workflows.notify_one();
    Ok(())
}

/// Runs until the daemon stops: on every reconnect and on a timer, poll jobs that went quiet.
pub async fn run(ctx: Arc<Ctx>) -> Result<(), ChildError> {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let quiet_for = tokio::select! {
            _ = ctx.wake().reconcile.notified() => Duration::ZERO,
            _ = tick.tick() => ctx.settings().automation.job_poll_after,
            _ = ctx.drain().stopping() => return Ok(()),
        };
        let Ok(control) = current_control(&ctx) else {
            continue;
        };
        match poll_jobs(&ctx, &control, quiet_for).await {
            Ok(()) => {}
            Err(ReconcileError::Unauthorized(refused)) => return Err(refused.into()),
            Err(ReconcileError::Store(err)) => {
                return Err(ChildError::store("reconciler", err));
            }
            Err(ReconcileError::NoControl) => {}
        }
    }
}

fn current_control(ctx: &Ctx) -> Result<ControlHub, ReconcileError> {
    ctx.links()
        .current_control()
        .map(|linked| linked.client)
        .ok_or(ReconcileError::NoControl)
}

/// Polls every in-flight job not updated for `quiet_for`, storing what the server says.
async fn poll_jobs(
    ctx: &Ctx,
    control: &ControlHub,
    quiet_for: Duration,
) -> Result<(), ReconcileError> {
    let now = Timestamp::now();
    let mut changed = false;
    for job in ctx.store().prepare_jobs_in_flight().await? {
        if !quiet_since(job.updated_at, now, quiet_for) {
            continue;
        }
        match control.prepare_status(job.kind, &job.job_id).await {
            Ok(status) => {
                let new_status = job_status(&status.effective_status());
                ctx.store()
                    .set_prepare_job_status(
                        &job.job_id,
                        new_status,
                        status.result.as_ref(),
                        status.error.as_deref(),
                    )
                    .await?;
                if new_status != JobStatus::Pending && new_status != JobStatus::Running {
                    changed = true;
                    tracing::info!(job = %job.job_id, status = new_status.as_str(), "prepare job settled by polling");
                }
            }
            Err(HubError::Unauthorized(err)) => return Err(Unauthorized(err).into()),
            Err(err) => {
                ctx.metrics().error("job_poll");
                tracing::warn!(job = %job.job_id, error = %err, "prepare job status not readable now");
            }
        }
    }
    if changed {
        ctx.wake().workflows.notify_one();
    }
    Ok(())
}

/// Whether a job last heard of at `updated_at` (wall clock) has been quiet for `quiet_for` at
/// `now`. A time after `now` means the wall clock went backwards since: how long the job has
/// been quiet is unknown, so it counts as quiet and is polled (a harmless read, which also
/// restamps it) instead of being left alone for as long as the clock jumped.
fn quiet_since(updated_at: Timestamp, now: Timestamp, quiet_for: Duration) -> bool {
    updated_at <= now.minus(quiet_for) || updated_at > now
}

fn settled_name(settled: &Settled) -> &'static str {
    match settled {
        Settled::Completed(_) => "completed",
        Settled::Failed(_) => "failed",
        Settled::Pending => "still processing",
        Settled::NeverSeen => "never seen by the server (will be sent with the same key)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: i64) -> Timestamp {
        Timestamp::from(
            chrono::DateTime::from_timestamp_millis(1_700_000_000_000 + millis).unwrap_or_default(),
        )
    }

    #[test]
    fn a_job_is_quiet_once_the_poll_delay_has_passed() {
        let quiet_for = Duration::from_secs(10);
        assert!(!quiet_since(at(0), at(9_999), quiet_for));
        assert!(quiet_since(at(0), at(10_000), quiet_for));
        assert!(quiet_since(at(0), at(3_600_000), quiet_for));
    }

    #[test]
    fn a_wall_clock_that_went_backwards_does_not_postpone_the_poll() {
        let quiet_for = Duration::from_secs(10);
        // Updated at 0, then the clock was set back an hour: without the rule the job would
        // look fresh for the next hour and a lost completion would stall its workflow.
        assert!(quiet_since(at(0), at(-3_600_000), quiet_for));
        assert!(quiet_since(at(0), at(-1), quiet_for));
        assert!(!quiet_since(at(0), at(0), quiet_for));
    }
}
