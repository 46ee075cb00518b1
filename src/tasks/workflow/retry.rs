//! Retries: a failed exit or adjustment (an entry only with `automation.entry_retry`) whose
//! signal is still On gets a new attempt — a new workflow of the same signal instance, so new
//! intent keys — after a doubling backoff. Pure: when a workflow fails, [`after_failure`]
//! decides whether and when; when that time comes, [`reopen`] decides again with what is known
//! then (the policy may have changed over a restart, the position may have closed).

use std::time::Duration;

use crate::config::AutomationSettings;
use crate::store::{Timestamp, WorkflowRecord};
use mesolive_api::FlowKind;

/// The retry settings of `[automation]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RetryPolicy {
    /// `automation.exit_retry`: exits and adjustments.
    pub exits: bool,
    /// `automation.entry_retry`.
    pub entries: bool,
    /// `automation.exit_retry_backoff`: the first delay, doubled for each further retry.
    pub backoff: Duration,
    /// `automation.exit_retry_backoff_max`.
    pub backoff_max: Duration,
    /// `automation.exit_retry_max`: most retries after the first attempt (`None`: no limit).
    pub max_retries: Option<u32>,
}

impl RetryPolicy {
    /// The policy as configured.
    pub(crate) fn from_settings(automation: &AutomationSettings) -> Self {
        RetryPolicy {
            exits: automation.exit_retry,
            entries: automation.entry_retry,
            backoff: automation.exit_retry_backoff,
            backoff_max: automation.exit_retry_backoff_max,
            max_retries: automation.exit_retry_max,
        }
    }

    /// Whether workflows of `kind` are retried at all.
    fn covers(&self, kind: FlowKind) -> bool {
        match kind {
            FlowKind::Entry => self.entries,
            FlowKind::Exit | FlowKind::Adjustment => self.exits,
        }
    }

    /// The delay after the failure of `attempt` (1-based): the backoff, doubled per earlier
    /// retry, never above the maximum.
    pub(crate) fn delay_after(&self, attempt: i64) -> Duration {
        let doublings = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        self.backoff
            .saturating_mul(1 << doublings)
            .min(self.backoff_max)
    }

    /// Why `attempt` is the last one allowed, if it is.
    fn limit_reached(&self, attempt: i64) -> Option<String> {
        let max = self.max_retries?;
        (attempt > i64::from(max))
            .then(|| format!("not retried: automation.exit_retry_max ({max} retries) reached"))
    }
}

/// What a failed workflow records about its next attempt.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RetryPlan {
    /// Not a retried kind: nothing to add (an entry is tried once by default).
    Untouched,
    /// The next attempt may open at this time.
    At(Timestamp),
    /// No next attempt, and why (recorded in the reason: never silence).
    Never(String),
}

/// Whether and when a workflow of `kind` that failed on `attempt` is tried again.
pub(crate) fn after_failure(
    kind: FlowKind,
    attempt: i64,
    signal_on: bool,
    policy: &RetryPolicy,
    now: Timestamp,
) -> RetryPlan {
    if !policy.covers(kind) {
        return match kind {
            FlowKind::Entry => RetryPlan::Untouched,
            _ => RetryPlan::Never("not retried: automation.exit_retry is off".into()),
        };
    }
    if !signal_on {
        return RetryPlan::Never("not retried: the signal is no longer On".into());
    }
    if let Some(why) = policy.limit_reached(attempt) {
        return RetryPlan::Never(why);
    }
    RetryPlan::At(now.plus(policy.delay_after(attempt)))
}

/// What to do, now, about the planned next attempt of a final workflow.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reopen {
    /// Nothing planned, or not yet time.
    Wait,
    /// Open the next attempt.
    Open,
    /// Drop the plan, and why.
    Drop(String),
}

/// Decides about the planned next attempt of `latest` (the signal instance's latest workflow,
/// its signal still On). `position_open`: the position's state as stored (`None`: unknown).
pub(crate) fn reopen(
    latest: &WorkflowRecord,
    policy: &RetryPolicy,
    position_open: Option<bool>,
    now: Timestamp,
) -> Reopen {
    let Some(at) = latest.retry_at else {
        return Reopen::Wait;
    };
    if latest.state.is_active() {
        return Reopen::Wait;
    }
    if !policy.covers(latest.kind) {
        let key = match latest.kind {
            FlowKind::Entry => "automation.entry_retry",
            _ => "automation.exit_retry",
        };
        return Reopen::Drop(format!("not retried: {key} is off"));
    }
    if let Some(why) = policy.limit_reached(latest.attempt) {
        return Reopen::Drop(why);
    }
    if latest.kind != FlowKind::Entry && position_open == Some(false) {
        return Reopen::Drop(format!(
            "not retried: position {} is closed",
            latest.position_id.unwrap_or_default()
        ));
    }
    if now < at {
        return Reopen::Wait;
    }
    Reopen::Open
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::WorkflowState;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            exits: true,
            entries: false,
            backoff: Duration::from_secs(15),
            backoff_max: Duration::from_secs(300),
            max_retries: None,
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from(
            chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap_or_default(),
        )
    }

    fn failed(kind: FlowKind, attempt: i64, retry_at: Option<Timestamp>) -> WorkflowRecord {
        WorkflowRecord {
            id: 3,
            kind,
            scope: "position:5".into(),
            signal_key: "k".into(),
            signal_instance: "i".into(),
            strategy_id: 101,
            account: Some("PAPER-1".into()),
            position_id: Some(5),
            condition: None,
            state: WorkflowState::Failed,
            job_id: None,
            plan: None,
            groups_done: Vec::new(),
            reason: None,
            attempt,
            deadline: None,
            retry_at,
            created_at: at(0),
            updated_at: at(0),
        }
    }

    #[test]
    fn the_backoff_doubles_up_to_its_maximum() {
        let p = policy();
        let delays: Vec<u64> = (1..=7).map(|a| p.delay_after(a).as_secs()).collect();
        assert_eq!(delays, [15, 30, 60, 120, 240, 300, 300]);
        assert_eq!(p.delay_after(i64::MAX).as_secs(), 300);
        assert_eq!(p.delay_after(0).as_secs(), 15);
    }

    #[test]
    fn a_failed_exit_is_retried_while_its_signal_holds() {
        let p = policy();
        assert_eq!(
            after_failure(FlowKind::Exit, 1, true, &p, at(0)),
            RetryPlan::At(at(15))
        );
        assert_eq!(
            after_failure(FlowKind::Adjustment, 3, true, &p, at(0)),
            RetryPlan::At(at(60))
        );
        assert!(matches!(
            after_failure(FlowKind::Exit, 1, false, &p, at(0)),
            RetryPlan::Never(why) if why.contains("no longer On")
        ));
    }

    #[test]
    fn entries_are_retried_only_when_configured() {
        let p = policy();
        assert_eq!(
            after_failure(FlowKind::Entry, 1, true, &p, at(0)),
            RetryPlan::Untouched
        );
        let entries = RetryPolicy { entries: true, ..p };
        assert_eq!(
            after_failure(FlowKind::Entry, 1, true, &entries, at(0)),
            RetryPlan::At(at(15))
        );
    }

    #[test]
    fn the_retry_limit_and_the_switch_are_recorded_reasons() {
        let limited = RetryPolicy {
            max_retries: Some(2),
            ..policy()
        };
        assert!(matches!(
            after_failure(FlowKind::Exit, 2, true, &limited, at(0)),
            RetryPlan::At(_)
        ));
        assert!(matches!(
            after_failure(FlowKind::Exit, 3, true, &limited, at(0)),
            RetryPlan::Never(why) if why.contains("exit_retry_max (2 retries)")
        ));
        let off = RetryPolicy {
            exits: false,
            ..policy()
        };
        assert!(matches!(
            after_failure(FlowKind::Exit, 1, true, &off, at(0)),
            RetryPlan::Never(why) if why.contains("exit_retry is off")
        ));
    }

    #[test]
    fn the_next_attempt_opens_when_due_unless_something_changed() {
        let p = policy();
        let planned = failed(FlowKind::Exit, 1, Some(at(15)));
        assert_eq!(reopen(&planned, &p, Some(true), at(14)), Reopen::Wait);
        assert_eq!(reopen(&planned, &p, Some(true), at(15)), Reopen::Open);
        assert_eq!(reopen(&planned, &p, None, at(15)), Reopen::Open);
        assert!(matches!(
            reopen(&planned, &p, Some(false), at(15)),
            Reopen::Drop(why) if why.contains("position 5 is closed")
        ));
        let off = RetryPolicy {
            exits: false,
            ..policy()
        };
        assert!(matches!(
            reopen(&planned, &off, Some(true), at(15)),
            Reopen::Drop(_)
        ));
        let limited = RetryPolicy {
            max_retries: Some(1),
            ..policy()
        };
        let second = failed(FlowKind::Exit, 2, Some(at(15)));
        assert!(matches!(
            reopen(&second, &limited, Some(true), at(15)),
            Reopen::Drop(_)
        ));
        assert_eq!(
            reopen(&failed(FlowKind::Exit, 1, None), &p, Some(true), at(99)),
            Reopen::Wait
        );
        let mut active = planned;
        active.state = WorkflowState::Executing;
        assert_eq!(reopen(&active, &p, Some(true), at(99)), Reopen::Wait);
    }
}
