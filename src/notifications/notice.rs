//! What a notification says: its kind, its severity, one line for a human and structured data
//! for a program. Every constructor here is pure (no clock, no I/O), so the wording is
//! unit-tested and each cause only picks its constructor; the store writes the result in the
//! cause's own transaction (`store::outbox`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::store::{IntentRecord, TradingState, WorkflowRecord, WorkflowState};
use crate::supervisor::child::Fatal;

/// How urgent a notification is; sinks take those at or above their `min_severity`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    sqlx::Type,
)]
#[serde(rename_all = "lowercase")]
#[repr(i32)]
pub enum Severity {
    /// Something happened that an operator may like to know (a workflow done, a start).
    #[default]
    Info = 0,
    /// Something needs a look, not necessarily now (a failed workflow, a quarantined event).
    Warning = 1,
    /// Something needs a human now (a hub down, the daemon not ready, stopping on a fatal error).
    Critical = 2,
}

impl Severity {
    /// The configured and transmitted name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a notification is about: a stable name that receivers and `kinds` filters match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The daemon started (it has an event cursor).
    Startup,
    /// The daemon started with no event cursor yet.
    FirstRun,
    /// Ready: after startup, or again after a notified stretch of not being ready.
    Ready,
    /// Not ready for longer than `notify.not_ready_after`.
    NotReady,
    /// A hub connection down for longer than `notify.hub_down_after`.
    HubDown,
    /// A hub notified down is connected again.
    HubUp,
    /// A workflow executed.
    WorkflowDone,
    /// A workflow failed.
    WorkflowFailed,
    /// A workflow was cancelled (signal Off, not allowed, a limit).
    WorkflowCancelled,
    /// The server answered `DuplicateRequest` to an intent, settled through its record.
    IntentDuplicate,
    /// The server answered `Conflict` to an intent, settled through its record.
    IntentConflict,
    /// Events were quarantined (undecodable, or out of sequence).
    EventsQuarantined,
    /// A child restarted more often than the restart intensity allows: the daemon exits.
    RestartIntensity,
    /// Another fatal condition stops the daemon.
    Fatal,
    /// The outbox was full (`notify.max_pending`): the oldest notifications were dropped.
    NotificationsDropped,
    /// `mesolive-supervisor notify test`.
    Test,
    /// The trading state changed (active, reduce_only, halted).
    TradingState,
    /// A risk rule refused an intent.
    RiskRefusal,
    /// A risk rule switched the trading state (the daily-loss switch).
    RiskSwitch,
    /// This daemon became the leader of its failover group.
    Leader,
    /// This daemon became a standby of its failover group.
    Standby,
}

impl Kind {
    /// Every kind, for validating `kinds` filters.
    pub const ALL: [Kind; 21] = [
        Kind::Startup,
        Kind::FirstRun,
        Kind::Ready,
        Kind::NotReady,
        Kind::HubDown,
        Kind::HubUp,
        Kind::WorkflowDone,
        Kind::WorkflowFailed,
        Kind::WorkflowCancelled,
        Kind::IntentDuplicate,
        Kind::IntentConflict,
        Kind::EventsQuarantined,
        Kind::RestartIntensity,
        Kind::Fatal,
        Kind::NotificationsDropped,
        Kind::Test,
        Kind::TradingState,
        Kind::RiskRefusal,
        Kind::RiskSwitch,
        Kind::Leader,
        Kind::Standby,
    ];

    /// The stored and transmitted name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Startup => "startup",
            Kind::FirstRun => "first_run",
            Kind::Ready => "ready",
            Kind::NotReady => "not_ready",
            Kind::HubDown => "hub_down",
            Kind::HubUp => "hub_up",
            Kind::WorkflowDone => "workflow_done",
            Kind::WorkflowFailed => "workflow_failed",
            Kind::WorkflowCancelled => "workflow_cancelled",
            Kind::IntentDuplicate => "intent_duplicate",
            Kind::IntentConflict => "intent_conflict",
            Kind::EventsQuarantined => "events_quarantined",
            Kind::RestartIntensity => "restart_intensity",
            Kind::Fatal => "fatal",
            Kind::NotificationsDropped => "notifications_dropped",
            Kind::Test => "test",
            Kind::TradingState => "trading_state",
            Kind::RiskRefusal => "risk_refusal",
            Kind::RiskSwitch => "risk_switch",
            Kind::Leader => "leader",
            Kind::Standby => "standby",
        }
    }

    /// The kind of a name, if it is one.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A notification about to be queued.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// What it is about.
    pub kind: Kind,
    /// How urgent.
    pub severity: Severity,
    /// One line for a human (what chat sinks show).
    pub text: String,
    /// The facts behind the text, for a program (a JSON object).
    pub data: Value,
}

impl Notice {
    /// A notice with no data beyond its text; add facts with [`Notice::with_data`]. The
    /// trading-state and risk code build theirs with this.
    pub fn new(kind: Kind, severity: Severity, text: impl Into<String>) -> Notice {
        Notice {
            kind,
            severity,
            text: text.into(),
            data: json!({}),
        }
    }

    /// With structured data (a JSON object).
    pub fn with_data(mut self, data: Value) -> Notice {
        self.data = data;
        self
    }
}

/// The start: `first_run` when the store has no event cursor yet (`first_run_from` says where
/// the first run starts), else `startup`.
pub fn started(version: &str, mode: &str, cursor: Option<i64>, first_run_from: &str) -> Notice {
    let data = json!({"version": version, "mode": mode, "cursor": cursor});
    match cursor {
        None => Notice::new(
            Kind::FirstRun,
            Severity::Info,
            format!(
                "first run: no event cursor yet, starting from {first_run_from} (version {version}, mode {mode})"
            ),
        )
        .with_data(data),
        Some(cursor) => Notice::new(
            Kind::Startup,
            Severity::Info,
            format!("started at event cursor {cursor} (version {version}, mode {mode})"),
        )
        .with_data(data),
    }
}

/// Ready: the first time after a start (`after` the start), or again after a notified stretch
/// of not being ready (`after` that stretch began).
pub fn ready(first: bool, after: Duration) -> Notice {
    let text = if first {
        format!(
            "ready after {}: hubs connected, events caught up",
            span(after)
        )
    } else {
        format!("ready again after {} not ready", span(after))
    };
    Notice::new(Kind::Ready, Severity::Info, text)
        .with_data(json!({"first": first, "after_seconds": after.as_secs_f64()}))
}

/// Not ready for `for_` (longer than `notify.not_ready_after`); `hubs_down` names the hubs down.
pub fn not_ready(for_: Duration, hubs_down: &[&str], caught_up: bool) -> Notice {
    let why = match (hubs_down, caught_up) {
        ([], true) => "starting or stopping".to_owned(),
        ([], false) => "events not caught up".to_owned(),
        (hubs, true) => format!("hub down: {}", hubs.join(", ")),
        (hubs, false) => format!("hub down: {}; events not caught up", hubs.join(", ")),
    };
    Notice::new(
        Kind::NotReady,
        Severity::Critical,
        format!("not ready for {} ({why})", span(for_)),
    )
    .with_data(json!({
        "for_seconds": for_.as_secs_f64(),
        "hubs_down": hubs_down,
        "caught_up": caught_up,
    }))
}

/// A hub connection down for `for_` (longer than `notify.hub_down_after`).
pub fn hub_down(hub: &str, for_: Duration) -> Notice {
    Notice::new(
        Kind::HubDown,
        Severity::Critical,
        format!("{hub} hub down for {}", span(for_)),
    )
    .with_data(json!({"hub": hub, "for_seconds": for_.as_secs_f64()}))
}

/// A hub notified down is connected again, `after` being down.
pub fn hub_up(hub: &str, after: Duration) -> Notice {
    Notice::new(
        Kind::HubUp,
        Severity::Info,
        format!("{hub} hub connected again after {}", span(after)),
    )
    .with_data(json!({"hub": hub, "down_seconds": after.as_secs_f64()}))
}

/// A workflow that has just reached `done`, `failed` or `cancelled`; `None` for any other state.
pub fn workflow_finished(workflow: &WorkflowRecord) -> Option<Notice> {
    let (kind, severity) = match workflow.state {
        WorkflowState::Done => (Kind::WorkflowDone, Severity::Info),
        WorkflowState::Failed => (Kind::WorkflowFailed, Severity::Warning),
        WorkflowState::Cancelled => (Kind::WorkflowCancelled, Severity::Info),
        _ => return None,
    };
    let mut subject = vec![format!("strategy {}", workflow.strategy_id)];
    if let Some(account) = &workflow.account {
        subject.push(format!("account {account}"));
    }
    if let Some(position) = workflow.position_id {
        subject.push(format!("position {position}"));
    }
    let mut text = format!(
        "{} workflow {} {} ({})",
        workflow.kind.as_str(),
        workflow.id,
        workflow.state,
        subject.join(", ")
    );
    if let Some(reason) = workflow.reason.as_deref().filter(|r| !r.is_empty())
        && workflow.state != WorkflowState::Done
    {
        text.push_str(": ");
        text.push_str(reason);
    }
    Some(Notice::new(kind, severity, text).with_data(json!({
        "workflow": workflow.id,
        "flow": workflow.kind.as_str(),
        "state": workflow.state.as_str(),
        "strategy": workflow.strategy_id,
        "account": workflow.account,
        "position": workflow.position_id,
        "job": workflow.job_id,
        "reason": workflow.reason,
    })))
}

/// A workflow a risk rule refused (its call was not sent; the workflow is cancelled).
pub fn risk_refused(workflow: &WorkflowRecord, rule: &str) -> Notice {
    let reason = workflow.reason.as_deref().unwrap_or_default();
    Notice::new(
        Kind::RiskRefusal,
        Severity::Warning,
        format!(
            "{} workflow {} refused by risk.{rule} (strategy {}): {reason}",
            workflow.kind.as_str(),
            workflow.id,
            workflow.strategy_id
        ),
    )
    .with_data(json!({
        "workflow": workflow.id,
        "flow": workflow.kind.as_str(),
        "rule": rule,
        "strategy": workflow.strategy_id,
        "account": workflow.account,
        "reason": reason,
    }))
}

/// The trading state moved `from` → `to`, by `source` (operator, risk rule, configuration).
pub fn trading_state(from: TradingState, to: TradingState, reason: &str, source: &str) -> Notice {
    let severity = match to {
        TradingState::Active => Severity::Info,
        TradingState::ReduceOnly | TradingState::Halted => Severity::Warning,
    };
    Notice::new(
        Kind::TradingState,
        severity,
        format!("trading state {from} → {to} ({source}): {reason}"),
    )
    .with_data(
        json!({"from": from.as_str(), "to": to.as_str(), "source": source, "reason": reason}),
    )
}

/// A risk rule fired for an account on a trading day and switched the trading state (or
/// found it already as strict).
pub fn risk_switch(
    rule: &str,
    account: &str,
    from: TradingState,
    to: TradingState,
    reason: &str,
) -> Notice {
    Notice::new(
        Kind::RiskSwitch,
        Severity::Critical,
        format!("risk.{rule} fired for account {account}: trading state {from} → {to}: {reason}"),
    )
    .with_data(json!({
        "rule": rule,
        "account": account,
        "from": from.as_str(),
        "to": to.as_str(),
        "reason": reason,
    }))
}

/// An intent the server answered `answer` (`DuplicateRequest` or `Conflict`), now settled
/// through its idempotency record as `settled`.
pub fn intent_settled(answer: &str, settled: &IntentRecord) -> Notice {
    let kind = if answer == "Conflict" {
        Kind::IntentConflict
    } else {
        Kind::IntentDuplicate
    };
    Notice::new(
        kind,
        Severity::Warning,
        format!(
            "{} {} answered {answer}: settled as {} from the server's idempotency record",
            settled.operation, settled.key, settled.state
        ),
    )
    .with_data(json!({
        "key": settled.key,
        "operation": settled.operation,
        "answer": answer,
        "settled": settled.state.as_str(),
        "workflow": settled.workflow_id,
    }))
}

/// This daemon took the lease of its failover group at `epoch` and leads from now on (queued in
/// the term's first transaction, so only a term that really leads tells it). A warning: a new
/// leader means the previous one stopped, was stopped or lost the database.
pub fn leader(group: &str, holder: &str, epoch: i64) -> Notice {
    Notice::new(
        Kind::Leader,
        Severity::Warning,
        format!("{holder} leads failover group {group} (lease epoch {epoch})"),
    )
    .with_data(json!({"group": group, "holder": holder, "epoch": epoch}))
}

/// This daemon stands by in its failover group while `leader` holds the lease at `epoch` (or
/// nobody, for a moment): at start (`lost` is `None`; info), or after losing its leadership
/// (`lost` says how; a warning).
pub fn standby(
    group: &str,
    holder: &str,
    leader: Option<&str>,
    epoch: i64,
    lost: Option<&str>,
) -> Notice {
    let why = lost.map_or_else(
        || "at start".to_owned(),
        |how| format!("leadership lost: {how}"),
    );
    let led_by = leader.map_or_else(
        || format!("lease epoch {epoch}, free"),
        |leader| format!("{leader} leads at lease epoch {epoch}"),
    );
    Notice::new(
        Kind::Standby,
        standby_severity(lost.is_some()),
        format!("{holder} stands by in failover group {group} ({why}); {led_by}"),
    )
    .with_data(json!({
        "group": group,
        "holder": holder,
        "leader": leader,
        "epoch": epoch,
        "lost": lost,
    }))
}

/// How urgent a [`standby`] notice is: info at start, a warning after a lost leadership.
pub fn standby_severity(lost: bool) -> Severity {
    if lost {
        Severity::Warning
    } else {
        Severity::Info
    }
}

/// How many quarantined events a notice lists (the count covers all of them).
const QUARANTINE_LISTED: usize = 5;

/// One quarantined event, as a notice lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quarantined<'a> {
    /// The hub callback it arrived on.
    pub target: &'a str,
    /// Its EventSeqId, if it had one.
    pub seq_id: Option<i64>,
    /// Why it was quarantined.
    pub error: &'a str,
}

/// Events quarantined by one committed batch.
pub fn events_quarantined(events: &[Quarantined<'_>]) -> Notice {
    let listed: Vec<Value> = events
        .iter()
        .take(QUARANTINE_LISTED)
        .map(|e| json!({"target": e.target, "seq_id": e.seq_id, "error": e.error}))
        .collect();
    let first = events.first().map_or_else(String::new, |e| {
        let seq = e.seq_id.map_or_else(String::new, |s| format!(" {s}"));
        format!(": {}{seq}: {}", e.target, e.error)
    });
    let count = events.len();
    let text = if count == 1 {
        format!("1 event quarantined{first}")
    } else {
        format!("{count} events quarantined (first{first})")
    };
    Notice::new(Kind::EventsQuarantined, Severity::Warning, text)
        .with_data(json!({"count": count, "events": listed}))
}

/// The daemon stops on a fatal condition (written best effort before it exits; delivered
/// after the next start if not before).
pub fn fatal(fatal: &Fatal, exit_status: u8) -> Notice {
    let kind = match fatal {
        Fatal::Intensity(_) => Kind::RestartIntensity,
        _ => Kind::Fatal,
    };
    Notice::new(
        kind,
        Severity::Critical,
        format!("stopping with exit status {exit_status}: {fatal}"),
    )
    .with_data(json!({"exit_status": exit_status}))
}

/// `dropped` notifications (in all) were dropped to keep the outbox within `max_pending`.
pub fn notifications_dropped(dropped: i64, max_pending: i64) -> Notice {
    let noun = if dropped == 1 {
        "notification"
    } else {
        "notifications"
    };
    Notice::new(
        Kind::NotificationsDropped,
        Severity::Warning,
        format!(
            "{dropped} {noun} dropped: the outbox holds at most {max_pending} undelivered (notify.max_pending); the oldest went first"
        ),
    )
    .with_data(json!({"dropped": dropped, "max_pending": max_pending}))
}

/// The notification `mesolive-supervisor notify test` sends to every sink.
pub fn test(version: &str) -> Notice {
    Notice::new(
        Kind::Test,
        Severity::Info,
        format!("test notification from mesolive-supervisor {version}"),
    )
    .with_data(json!({"version": version}))
}

/// A duration as an operator reads it: `850ms`, `4.2s`, `2m 5s`.
fn span(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{}ms", duration.as_millis())
    } else if duration < Duration::from_secs(10) {
        format!("{:.1}s", duration.as_secs_f64())
    } else {
        humantime::format_duration(Duration::from_secs(duration.as_secs())).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{IntentState, Timestamp};
    use crate::supervisor::policy::IntensityExceeded;
    use mesolive_api::FlowKind;

    fn workflow(state: WorkflowState, reason: Option<&str>) -> WorkflowRecord {
        WorkflowRecord {
            id: 7,
            kind: FlowKind::Entry,
            scope: "entry:101:PAPER-1".into(),
            signal_key: "k".into(),
            signal_instance: "i".into(),
            strategy_id: 101,
            account: Some("PAPER-1".into()),
            position_id: None,
            condition: None,
            state,
            job_id: Some("job-1".into()),
            plan: None,
            groups_done: vec![],
            reason: reason.map(str::to_owned),
            attempt: 1,
            deadline: None,
            retry_at: None,
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
        }
    }

    #[test]
    fn leadership_and_standing_by_say_who_where_and_at_which_epoch() {
        let leader = leader("default", "host-a:41", 7);
        assert_eq!(leader.kind, Kind::Leader);
        assert_eq!(leader.severity, Severity::Warning);
        assert_eq!(
            leader.text,
            "host-a:41 leads failover group default (lease epoch 7)"
        );
        assert_eq!(leader.data["epoch"], 7);
        let at_start = standby("default", "host-b:42", Some("host-a:41"), 7, None);
        assert_eq!(at_start.kind, Kind::Standby);
        assert_eq!(at_start.severity, Severity::Info);
        assert_eq!(
            at_start.text,
            "host-b:42 stands by in failover group default (at start); host-a:41 leads at lease epoch 7"
        );
        let lost = standby(
            "default",
            "host-a:41",
            Some("host-b:42"),
            8,
            Some("epoch 7 moved on"),
        );
        assert_eq!(lost.severity, Severity::Warning);
        assert!(lost.text.contains("(leadership lost: epoch 7 moved on)"));
        assert_eq!(lost.data["leader"], "host-b:42");
        assert_eq!(lost.data["lost"], "epoch 7 moved on");
    }

    #[test]
    fn a_finished_workflow_says_what_where_and_why() {
        let done =
            workflow_finished(&workflow(WorkflowState::Done, Some("executed"))).expect("a notice");
        assert_eq!(done.kind, Kind::WorkflowDone);
        assert_eq!(done.severity, Severity::Info);
        assert_eq!(
            done.text,
            "entry workflow 7 done (strategy 101, account PAPER-1)"
        );
        assert_eq!(done.data["workflow"], 7);
        let failed = workflow_finished(&workflow(
            WorkflowState::Failed,
            Some("prepare job failed: no legs"),
        ))
        .expect("a notice");
        assert_eq!(failed.kind, Kind::WorkflowFailed);
        assert_eq!(failed.severity, Severity::Warning);
        assert_eq!(
            failed.text,
            "entry workflow 7 failed (strategy 101, account PAPER-1): prepare job failed: no legs"
        );
        let cancelled = workflow_finished(&workflow(WorkflowState::Cancelled, Some("signal Off")))
            .expect("a notice");
        assert_eq!(cancelled.kind, Kind::WorkflowCancelled);
        for state in [
            WorkflowState::Requested,
            WorkflowState::Preparing,
            WorkflowState::Prepared,
            WorkflowState::Executing,
            WorkflowState::Observed,
        ] {
            assert_eq!(workflow_finished(&workflow(state, None)), None, "{state}");
        }
    }

    #[test]
    fn the_start_is_a_first_run_only_without_a_cursor() {
        let first = started("0.1.0", "paper", None, "the server's latest event");
        assert_eq!(first.kind, Kind::FirstRun);
        assert!(
            first.text.starts_with(
                "first run: no event cursor yet, starting from the server's latest event"
            ),
            "{}",
            first.text
        );
        let again = started("0.1.0", "paper", Some(42), "the server's latest event");
        assert_eq!(again.kind, Kind::Startup);
        assert_eq!(
            again.text,
            "started at event cursor 42 (version 0.1.0, mode paper)"
        );
    }

    #[test]
    fn conditions_over_time_name_their_duration() {
        assert_eq!(
            hub_down("control", Duration::from_secs(61)).text,
            "control hub down for 1m 1s"
        );
        assert_eq!(
            hub_up("data", Duration::from_millis(4_250)).text,
            "data hub connected again after 4.2s"
        );
        let not_ready = not_ready(Duration::from_secs(125), &["event"], false);
        assert_eq!(
            not_ready.text,
            "not ready for 2m 5s (hub down: event; events not caught up)"
        );
        assert_eq!(not_ready.severity, Severity::Critical);
        assert_eq!(
            ready(true, Duration::from_millis(850)).text,
            "ready after 850ms: hubs connected, events caught up"
        );
        assert_eq!(
            ready(false, Duration::from_secs(180)).text,
            "ready again after 3m not ready"
        );
    }

    #[test]
    fn quarantined_events_are_counted_and_the_first_named() {
        let one = events_quarantined(&[Quarantined {
            target: "OnOrderUpdate",
            seq_id: Some(12),
            error: "missing OrderId",
        }]);
        assert_eq!(
            one.text,
            "1 event quarantined: OnOrderUpdate 12: missing OrderId"
        );
        let many: Vec<Quarantined<'_>> = (0..8)
            .map(|n| Quarantined {
                target: "OnLegUpdate",
                seq_id: if n == 0 { None } else { Some(n) },
                error: "bad",
            })
            .collect();
        let notice = events_quarantined(&many);
        assert_eq!(
            notice.text,
            "8 events quarantined (first: OnLegUpdate: bad)"
        );
        assert_eq!(notice.data["count"], 8);
        assert_eq!(
            notice.data["events"].as_array().map(Vec::len),
            Some(QUARANTINE_LISTED)
        );
    }

    #[test]
    fn a_settled_duplicate_or_conflict_names_the_key_and_the_outcome() {
        let intent = IntentRecord {
            key: "ab12-w3-prep".into(),
            operation: "StartPreparePositionEntry".into(),
            workflow_id: Some("3".into()),
            args: json!({}),
            state: IntentState::Completed,
            outcome: None,
            attempts: 1,
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
        };
        let conflict = intent_settled("Conflict", &intent);
        assert_eq!(conflict.kind, Kind::IntentConflict);
        assert_eq!(
            conflict.text,
            "StartPreparePositionEntry ab12-w3-prep answered Conflict: settled as completed from the server's idempotency record"
        );
        assert_eq!(
            intent_settled("DuplicateRequest", &intent).kind,
            Kind::IntentDuplicate
        );
    }

    #[test]
    fn fatal_conditions_say_the_exit_status_and_restart_intensity_has_its_kind() {
        let exceeded = IntensityExceeded {
            child: "event_pump".into(),
            restarts: 11,
            max: 10,
            window: Duration::from_secs(60),
        };
        let notice = fatal(&Fatal::Intensity(exceeded), 1);
        assert_eq!(notice.kind, Kind::RestartIntensity);
        assert_eq!(notice.severity, Severity::Critical);
        assert!(
            notice
                .text
                .starts_with("stopping with exit status 1: event_pump restarted 11 times"),
            "{}",
            notice.text
        );
        let ahead = fatal(
            &Fatal::CursorAhead {
                cursor: 9,
                latest: 3,
            },
            76,
        );
        assert_eq!(ahead.kind, Kind::Fatal);
    }

    #[test]
    fn every_kind_has_a_distinct_name_that_reads_back() {
        let mut names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        for kind in Kind::ALL {
            assert_eq!(Kind::from_name(kind.as_str()), Some(kind));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Kind::ALL.len());
        assert_eq!(Kind::from_name("nope"), None);
        assert!(Severity::Critical > Severity::Warning && Severity::Warning > Severity::Info);
    }

    #[test]
    fn the_dropped_notice_counts_what_went() {
        assert_eq!(
            notifications_dropped(1, 5).text,
            "1 notification dropped: the outbox holds at most 5 undelivered (notify.max_pending); the oldest went first"
        );
        assert_eq!(notifications_dropped(12, 5).data["dropped"], 12);
    }
}
