//! Fault injection: what the simulator does wrong on purpose, set through `POST /faults` (merged
//! into the active set), `DELETE /faults`, or `sim` flags. Count faults stay on until used up;
//! the others until cleared. Every fault that fires is counted by kind in `GET /stats`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a lost Completion is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossMode {
    /// Drop the caller's connection right after the effect (a transport loss).
    #[default]
    Drop,
    /// Never answer; the connection stays up (a caller times out).
    Silence,
}

/// What a new Event Hub connection is told of the active signals and errors before anything
/// else (API §4.2, §6.5: the server may push the current state on connect, and those pushes
/// may lack EventId/EventSeqId or carry values already below the caller's cursor). Every form
/// the API allows is a behaviour the daemon must handle, not a fault; it lives here so it can be
/// set like one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ConnectPush {
    /// Each active event with its EventId and without its EventSeqId.
    #[default]
    Bare,
    /// Each active event exactly as first sent: its EventId and its original EventSeqId.
    Repeat,
    /// Nothing: the caller learns the active state from history alone.
    None,
}

/// How a server that keeps only its latest events answers a `GetEventsSince` whose cursor is
/// older than them (API §6.3: retention is UNKNOWN; a cursor older than it shows up "as an
/// error or a gap").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RetentionMode {
    /// `BadRequest`: "EventSeqId N is older than the retained history".
    #[default]
    Error,
    /// The page silently starts at the oldest event still kept.
    Gap,
}

/// Lose the Completion of the next `count` calls of `method`, after their effect is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoseCompletion {
    /// Hub method name, any hub (matched ignoring case), e.g. `SendOrder`.
    pub method: String,
    /// How many calls lose their Completion (default 1; 0 removes the fault).
    #[serde(default = "one")]
    pub count: u32,
    /// `drop` (default) or `silence`.
    #[serde(default)]
    pub mode: LossMode,
}

fn one() -> u32 {
    1
}

/// One value or a list of them (so `lose_completion` takes an object or an array).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A single value.
    One(T),
    /// Several values.
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(item) => vec![item],
            OneOrMany::Many(items) => items,
        }
    }
}

/// A change to the active faults: every field present replaces that fault's setting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPatch {
    /// Lose Completions after the effect (per method; replaces that method's entry).
    pub lose_completion: Option<OneOrMany<LoseCompletion>>,
    /// Lose the next K job-completion events from the live stream (they stay in history).
    pub lose_job_events: Option<u32>,
    /// Suppress the next K live events of any kind (they stay in history).
    pub suppress_events: Option<u32>,
    /// Deliver each of the next K live events twice.
    pub duplicate_events: Option<u32>,
    /// Delay every live event by this many ms, order preserved (0 clears).
    pub delay_events_ms: Option<u64>,
    /// The next K prepare jobs end Failed.
    pub fail_prepares: Option<u32>,
    /// Keep idempotency records Processing this long after the effect (0 clears).
    pub hold_processing_ms: Option<u64>,
    /// Answer 401 to every negotiate and upgrade until cleared.
    pub reject_auth: Option<bool>,
    /// What new Event Hub connections are pushed on connect.
    pub connect_push: Option<ConnectPush>,
    /// Keep only the latest N events for `GetEventsSince` (0 keeps everything).
    pub retention: Option<u64>,
    /// How a cursor older than the retained history is answered.
    pub retention_mode: Option<RetentionMode>,
    /// Never answer a client's Close (message or WebSocket close frame) until cleared: the
    /// connection is held open, unanswered, until the simulator closes it.
    pub ignore_close: Option<bool>,
    /// Refuse StreamUnderlyingData / GetUnderlyingSnapshot without a `Provider`, as the API
    /// says the real server does (otherwise the first agent's connector serves them).
    pub require_provider: Option<bool>,
    /// Leave every new broker order Working (never filled) until cleared; a CancelOrder still
    /// cancels it.
    pub never_fill: Option<bool>,
}

/// The active faults, as `GET /faults` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Faults {
    /// Pending lost Completions, one entry per method.
    pub lose_completion: Vec<LoseCompletion>,
    /// Job-completion events still to lose from the live stream.
    pub lose_job_events: u32,
    /// Live events still to suppress.
    pub suppress_events: u32,
    /// Live events still to duplicate.
    pub duplicate_events: u32,
    /// Live delay in ms.
    pub delay_events_ms: u64,
    /// Prepares still to fail.
    pub fail_prepares: u32,
    /// Processing hold in ms.
    pub hold_processing_ms: u64,
    /// Whether auth is refused.
    pub reject_auth: bool,
    /// What new Event Hub connections are pushed on connect.
    pub connect_push: ConnectPush,
    /// Events `GetEventsSince` still serves, the latest ones (0: all).
    pub retention: u64,
    /// How a cursor older than them is answered.
    pub retention_mode: RetentionMode,
    /// Whether clients' Close handshakes go unanswered.
    pub ignore_close: bool,
    /// Whether underlying data without a `Provider` is refused.
    pub require_provider: bool,
    /// Whether new broker orders stay Working.
    pub never_fill: bool,
}

/// Fault kinds as counted in `GET /stats` (`faults_injected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// A Completion lost after its effect.
    LoseCompletion,
    /// A job-completion event kept off the live stream.
    LoseJobEvent,
    /// A live event suppressed.
    SuppressEvent,
    /// A live event sent twice.
    DuplicateEvent,
    /// A live event delayed.
    DelayEvent,
    /// A prepare job failed on purpose.
    FailPrepare,
    /// An idempotency record held in Processing.
    HoldProcessing,
    /// The 401 switch turned on (counted per activation: the hub host does not report each
    /// refused request).
    RejectAuth,
    /// The switch that leaves Close handshakes unanswered turned on (counted per activation).
    IgnoreClose,
    /// A broker order left Working: it will never fill.
    NeverFill,
    /// Connections dropped on request.
    ConnectionDrop,
    /// An outage window started.
    Outage,
    /// A `GetEventsSince` asked for history older than the retention.
    Retention,
}

impl FaultKind {
    /// The name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::LoseCompletion => "lose_completion",
            FaultKind::LoseJobEvent => "lose_job_event",
            FaultKind::SuppressEvent => "suppress_event",
            FaultKind::DuplicateEvent => "duplicate_event",
            FaultKind::DelayEvent => "delay_event",
            FaultKind::FailPrepare => "fail_prepare",
            FaultKind::HoldProcessing => "hold_processing",
            FaultKind::RejectAuth => "reject_auth",
            FaultKind::IgnoreClose => "ignore_close",
            FaultKind::NeverFill => "never_fill",
            FaultKind::ConnectionDrop => "connection_drop",
            FaultKind::Outage => "outage",
            FaultKind::Retention => "retention",
        }
    }
}

/// What the live path does with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LiveFate {
    /// Not delivered live (still in history).
    Skip(FaultKind),
    /// Delivered, possibly twice, possibly late.
    Deliver { duplicate: bool, delay: Duration },
}

fn take(counter: &mut u32) -> bool {
    let fire = *counter > 0;
    *counter = counter.saturating_sub(1);
    fire
}

impl Faults {
    /// Merges a patch into the active set.
    pub fn apply(&mut self, patch: FaultPatch) {
        for entry in patch
            .lose_completion
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
        {
            self.lose_completion
                .retain(|e| !e.method.eq_ignore_ascii_case(&entry.method));
            if entry.count > 0 {
                self.lose_completion.push(entry);
            }
        }
        let set = |slot: &mut u32, value: Option<u32>| *slot = value.unwrap_or(*slot);
        set(&mut self.lose_job_events, patch.lose_job_events);
        set(&mut self.suppress_events, patch.suppress_events);
        set(&mut self.duplicate_events, patch.duplicate_events);
        set(&mut self.fail_prepares, patch.fail_prepares);
        self.delay_events_ms = patch.delay_events_ms.unwrap_or(self.delay_events_ms);
        self.hold_processing_ms = patch.hold_processing_ms.unwrap_or(self.hold_processing_ms);
        self.reject_auth = patch.reject_auth.unwrap_or(self.reject_auth);
        self.connect_push = patch.connect_push.unwrap_or(self.connect_push);
        self.retention = patch.retention.unwrap_or(self.retention);
        self.retention_mode = patch.retention_mode.unwrap_or(self.retention_mode);
        self.ignore_close = patch.ignore_close.unwrap_or(self.ignore_close);
        self.require_provider = patch.require_provider.unwrap_or(self.require_provider);
        self.never_fill = patch.never_fill.unwrap_or(self.never_fill);
    }

    /// Uses up one lost Completion of `method`, if one is pending.
    pub(crate) fn take_lost_completion(&mut self, method: &str) -> Option<LossMode> {
        let index = self
            .lose_completion
            .iter()
            .position(|e| e.method.eq_ignore_ascii_case(method))?;
        let entry = &mut self.lose_completion[index];
        let mode = entry.mode;
        entry.count -= 1;
        if entry.count == 0 {
            self.lose_completion.remove(index);
        }
        Some(mode)
    }

    /// Decides the live fate of the next event (`job_event`: a preparation Completed/Failed).
    pub(crate) fn take_live(&mut self, job_event: bool) -> LiveFate {
        if job_event && take(&mut self.lose_job_events) {
            return LiveFate::Skip(FaultKind::LoseJobEvent);
        }
        if take(&mut self.suppress_events) {
            return LiveFate::Skip(FaultKind::SuppressEvent);
        }
        LiveFate::Deliver {
            duplicate: take(&mut self.duplicate_events),
            delay: Duration::from_millis(self.delay_events_ms),
        }
    }

    /// Uses up one prepare failure, if one is pending.
    pub(crate) fn take_failed_prepare(&mut self) -> bool {
        take(&mut self.fail_prepares)
    }

    /// How long records stay Processing after their effect (`None`: settle at once).
    pub(crate) fn processing_hold(&self) -> Option<Duration> {
        (self.hold_processing_ms > 0).then(|| Duration::from_millis(self.hold_processing_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patch(value: serde_json::Value) -> FaultPatch {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn patches_merge_and_counts_run_out() {
        let mut faults = Faults::default();
        faults.apply(patch(
            json!({"lose_completion": {"method": "SendOrder", "count": 2}}),
        ));
        faults.apply(patch(json!({"lose_completion": [{"method": "CancelOrder", "mode": "silence"}], "suppress_events": 1})));
        assert_eq!(
            faults.take_lost_completion("sendorder"),
            Some(LossMode::Drop)
        );
        assert_eq!(
            faults.take_lost_completion("SendOrder"),
            Some(LossMode::Drop)
        );
        assert_eq!(faults.take_lost_completion("SendOrder"), None);
        assert_eq!(
            faults.take_lost_completion("CancelOrder"),
            Some(LossMode::Silence)
        );
        assert_eq!(
            faults.take_live(false),
            LiveFate::Skip(FaultKind::SuppressEvent)
        );
        assert_eq!(
            faults.take_live(false),
            LiveFate::Deliver {
                duplicate: false,
                delay: Duration::ZERO
            }
        );
        assert_eq!(faults, Faults::default());
    }

    #[test]
    fn job_events_are_lost_before_anything_else() {
        let mut faults = Faults::default();
        faults.apply(patch(
            json!({"lose_job_events": 1, "duplicate_events": 1, "delay_events_ms": 5}),
        ));
        assert_eq!(
            faults.take_live(false),
            LiveFate::Deliver {
                duplicate: true,
                delay: Duration::from_millis(5)
            }
        );
        assert_eq!(
            faults.take_live(true),
            LiveFate::Skip(FaultKind::LoseJobEvent)
        );
        assert_eq!(
            faults.take_live(true),
            LiveFate::Deliver {
                duplicate: false,
                delay: Duration::from_millis(5)
            }
        );
    }

    #[test]
    fn the_connect_push_form_is_set_like_a_fault_and_bare_by_default() {
        let mut faults = Faults::default();
        assert_eq!(faults.connect_push, ConnectPush::Bare);
        faults.apply(patch(json!({"connect_push": "repeat"})));
        faults.apply(patch(json!({"suppress_events": 1})));
        assert_eq!(faults.connect_push, ConnectPush::Repeat);
        assert!(serde_json::from_value::<FaultPatch>(json!({"connect_push": "fresh"})).is_err());
    }

    #[test]
    fn retention_keeps_everything_by_default_and_answers_with_an_error() {
        let mut faults = Faults::default();
        assert_eq!(
            (faults.retention, faults.retention_mode),
            (0, RetentionMode::Error)
        );
        faults.apply(patch(json!({"retention": 1000, "retention_mode": "gap"})));
        assert_eq!(
            (faults.retention, faults.retention_mode),
            (1000, RetentionMode::Gap)
        );
        assert!(serde_json::from_value::<FaultPatch>(json!({"retention_mode": "lose"})).is_err());
    }

    #[test]
    fn never_fill_stays_on_until_cleared() {
        let mut faults = Faults::default();
        faults.apply(patch(json!({"never_fill": true})));
        faults.apply(patch(json!({"suppress_events": 1})));
        assert!(faults.never_fill);
        faults.apply(patch(json!({"never_fill": false})));
        assert!(!faults.never_fill);
    }

    #[test]
    fn unknown_fault_names_are_rejected() {
        assert!(serde_json::from_value::<FaultPatch>(json!({"lose_completions": 1})).is_err());
        assert!(serde_json::from_value::<FaultPatch>(json!({"suppress_events": -1})).is_err());
    }
}
