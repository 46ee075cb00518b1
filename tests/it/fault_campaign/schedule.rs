//! The seeded schedule of one run: every action and the instant it happens, drawn up front
//! from the seed, so a failing seed replays the same actions in the same order at the same
//! offsets (process timing still varies; the schedule does not).

use std::time::Duration;

use crate::support::wire::random_profile;

/// Mixed into a run's seed for its wire profile: the profile has its own random stream, so a
/// seed's actions are what they were before runs had profiles.
const WIRE_STREAM: u64 = 0x5749_5245_5052_4F46;

/// Hub methods whose Completion the campaign loses after the effect.
const LOSABLE: [&str; 4] = [
    "StartPreparePositionEntry",
    "StartPreparePositionExit",
    "ApplyPaperFills",
    "SendOrder",
];

/// `(strategy, account)` of entry signals, by weight: 101 and 103 are allowed (103 on LIVE-1
/// sends orders, on PAPER-1 applies paper fills); 102 is outside the allow list.
const ENTRIES: [(i64, &str); 6] = [
    (101, "PAPER-1"),
    (101, "PAPER-1"),
    (102, "PAPER-1"),
    (103, "LIVE-1"),
    (103, "LIVE-1"),
    (103, "PAPER-1"),
];

/// Which daemons a run has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// One daemon on SQLite.
    Single,
    /// Two daemons with `ha.enabled` on one PostgreSQL: process faults hit the leader, pauses
    /// may outlast its lease, and PostgreSQL itself is restarted and stopped.
    Failover,
}

/// A pause at least this long outlasts the failover group's lease (ttl 5 s).
const PAST_LEASE_MS: u64 = 6_000;

/// One thing the campaign does to the simulator or the daemon.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Emit events with real effects.
    Emit(u64),
    /// A burst of 10,000+ events at once.
    Burst(u64),
    /// Drop the connections of one hub, or of all (`None`).
    Drop(Option<&'static str>),
    /// Drop everything and refuse connections for this many ms.
    Outage(u64),
    /// Lose the Completion of the next `count` calls of `method` after their effect.
    LoseCompletion {
        method: &'static str,
        mode: &'static str,
        count: u32,
    },
    /// Keep the next K job-completion events off the live stream.
    LoseJobEvents(u32),
    /// Deliver each of the next K live events twice.
    DuplicateEvents(u32),
    /// Keep the next K live events off the live stream.
    SuppressEvents(u32),
    /// Delay every live event by this many ms (0 clears).
    DelayEvents(u64),
    /// The next K prepare jobs fail.
    FailPrepares(u32),
    /// What new Event Hub connections are pushed on connect: `bare`, `repeat` or `none`.
    ConnectPush(&'static str),
    /// SIGKILL (the leader's, in failover mode), stay down this many ms, start again.
    Kill { down_ms: u64 },
    /// SIGTERM (the leader's), wait for the clean exit, start again.
    Term,
    /// SIGSTOP (the leader's) for this many ms, then SIGCONT: a consumer that stops reading,
    /// or in failover mode a leader that outlives its lease and wakes up fenced.
    Pause(u64),
    /// Failover mode: PostgreSQL restarted (fast shutdown, start).
    PostgresRestart,
    /// Failover mode: PostgreSQL stopped (immediate) for this many ms, then started.
    PostgresStop(u64),
    /// An entry signal Off then On (a new signal instance).
    Entry {
        strategy: i64,
        account: &'static str,
    },
    /// An exit signal Off then On for the `pick`-th open position the campaign did not open.
    Exit { pick: u64 },
    /// Open positions server-side (churn).
    OpenPositions(u64),
    /// Close the `pick`-th churn position server-side.
    ClosePosition { pick: u64 },
    /// The last action of every run: a position opened server-side, its first prepare failed
    /// on purpose, its exit signal turned On and left On — the liveness phase then checks that
    /// the exit was seen through.
    FailedExit,
}

impl Action {
    /// The kind, as the report counts it.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Action::Emit(_) => "emit",
            Action::Burst(_) => "burst_10k",
            Action::Drop(Some(_)) => "drop_hub",
            Action::Drop(None) => "drop_all",
            Action::Outage(_) => "outage",
            Action::LoseCompletion { mode: "drop", .. } => "lose_completion_drop",
            Action::LoseCompletion { .. } => "lose_completion_silence",
            Action::LoseJobEvents(_) => "lose_job_events",
            Action::DuplicateEvents(_) => "duplicate_events",
            Action::SuppressEvents(_) => "suppress_events",
            Action::DelayEvents(0) => "delay_events_clear",
            Action::DelayEvents(_) => "delay_events",
            Action::FailPrepares(_) => "fail_prepares",
            Action::ConnectPush("bare") => "connect_push_bare",
            Action::ConnectPush("repeat") => "connect_push_repeat",
            Action::ConnectPush(_) => "connect_push_none",
            Action::Kill { .. } => "sigkill_restart",
            Action::Term => "sigterm_restart",
            Action::Pause(ms) if *ms >= PAST_LEASE_MS => "sigstop_past_lease",
            Action::Pause(_) => "sigstop_pause",
            Action::PostgresRestart => "postgres_restart",
            Action::PostgresStop(_) => "postgres_stop",
            Action::Entry { .. } => "entry_signal",
            Action::Exit { .. } => "exit_signal",
            Action::OpenPositions(_) => "open_positions",
            Action::ClosePosition { .. } => "close_position",
            Action::FailedExit => "failed_exit",
        }
    }
}

/// One action at its offset from the start of the run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Step {
    pub at: Duration,
    pub action: Action,
}

/// Daemon settings that vary per seed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Variant {
    /// `hubs.max_pending_callbacks`: small makes a burst overflow the callback queue (the
    /// connection is recycled and replayed: the slow-consumer path).
    pub max_pending_callbacks: u64,
    pub batch_max: u64,
    pub replay_page_size: u64,
    pub order_type: &'static str,
}

impl Variant {
    /// The daemon's environment for this variant.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("MESOLIVE__EVENTS__FIRST_RUN", "all".into()),
            ("MESOLIVE__AUTOMATION__MODE", "live".into()),
            ("MESOLIVE__AUTOMATION__ALLOW_STRATEGIES", "101,103".into()),
            ("MESOLIVE__AUTOMATION__MAX_OPEN_POSITIONS", "3".into()),
            ("MESOLIVE__AUTOMATION__ORDER_TYPE", self.order_type.into()),
            // Retries and deadlines short enough for the quiet phase to see them through.
            ("MESOLIVE__AUTOMATION__EXIT_RETRY_BACKOFF", "500ms".into()),
            ("MESOLIVE__AUTOMATION__EXIT_RETRY_BACKOFF_MAX", "2s".into()),
            (
                "MESOLIVE__AUTOMATION__JOB_TIMEOUT",
                format!("{}s", super::liveness::JOB_TIMEOUT.as_secs()),
            ),
            ("MESOLIVE__AUTOMATION__ORDER_TIMEOUT", "20s".into()),
            (
                "MESOLIVE__HUBS__MAX_PENDING_CALLBACKS",
                self.max_pending_callbacks.to_string(),
            ),
            ("MESOLIVE__EVENTS__BATCH_MAX", self.batch_max.to_string()),
            (
                "MESOLIVE__EVENTS__REPLAY_PAGE_SIZE",
                self.replay_page_size.to_string(),
            ),
        ]
    }
}

/// Everything one run does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Schedule {
    pub seed: u64,
    pub mode: Mode,
    pub variant: Variant,
    /// The wire profile the simulator plays (`random:` drawn from the seed, among the forms the
    /// daemon meets and a campaign can survive).
    pub wire: String,
    pub steps: Vec<Step>,
}

fn pick<T: Copy>(rng: &mut fastrand::Rng, items: &[T]) -> T {
    items[rng.usize(..items.len())]
}

impl Schedule {
    /// The schedule of `seed` for a run of `length` in `mode`: an action every 50–900 ms, one
    /// burst of 10,000–15,000 events between 20 % and 70 % of the run, every delay cleared
    /// again, and a failed exit at the end. A seed's single-mode schedule does not depend on the
    /// failover actions: failover mode draws them from the same stream only in that mode.
    pub(crate) fn generate(seed: u64, length: Duration, mode: Mode) -> Schedule {
        let mut rng = fastrand::Rng::with_seed(seed);
        let variant = Variant {
            max_pending_callbacks: pick(&mut rng, &[2_000, 100_000]),
            batch_max: pick(&mut rng, &[32, 512]),
            replay_page_size: pick(&mut rng, &[100, 1_000]),
            order_type: pick(&mut rng, &["market", "limit_mid"]),
        };
        let burst_at = length.mul_f64(0.2 + 0.5 * rng.f64());
        let mut burst = Some(Action::Burst(rng.u64(10_000..=15_000)));
        let mut steps = Vec::new();
        let mut at = Duration::ZERO;
        loop {
            at += Duration::from_millis(rng.u64(50..900));
            if at >= length {
                break;
            }
            if at >= burst_at
                && let Some(action) = burst.take()
            {
                steps.push(Step { at, action });
                continue;
            }
            let action = random_action(&mut rng, mode);
            if let Action::DelayEvents(ms) = action
                && ms > 0
            {
                let clear = at + Duration::from_millis(rng.u64(500..4_000));
                steps.push(Step {
                    at: clear,
                    action: Action::DelayEvents(0),
                });
            }
            steps.push(Step { at, action });
        }
        steps.sort_by_key(|step| step.at);
        steps.push(Step {
            at: length,
            action: Action::FailedExit,
        });
        Schedule {
            seed,
            mode,
            variant,
            // Orders are always bound strictly, like a stock ASP.NET Core server.
            wire: format!(
                "{},argument_binding=strict_stj",
                random_profile(seed ^ WIRE_STREAM, true)
            ),
            steps,
        }
    }
}

/// One action, by weight: activity and connection faults most often, process faults less; in
/// failover mode, one in twenty a PostgreSQL fault or a pause past the lease.
fn random_action(rng: &mut fastrand::Rng, mode: Mode) -> Action {
    if mode == Mode::Failover && rng.u32(0..20) == 0 {
        return match rng.u32(0..3) {
            0 => Action::PostgresRestart,
            1 => Action::PostgresStop(rng.u64(1_000..8_000)),
            _ => Action::Pause(rng.u64(PAST_LEASE_MS..PAST_LEASE_MS + 3_000)),
        };
    }
    match rng.u32(0..100) {
        0..10 => Action::Emit(rng.u64(50..2_000)),
        10..26 => {
            let (strategy, account) = pick(rng, &ENTRIES);
            Action::Entry { strategy, account }
        }
        26..36 => Action::Exit { pick: rng.u64(..) },
        36..40 => Action::OpenPositions(rng.u64(1..=3)),
        40..43 => Action::ClosePosition { pick: rng.u64(..) },
        43..48 => Action::Drop(Some(pick(rng, &["control", "data", "event"]))),
        48..51 => Action::Drop(None),
        51..54 => Action::Outage(rng.u64(200..3_000)),
        54..63 => Action::LoseCompletion {
            method: pick(rng, &LOSABLE),
            mode: pick(rng, &["drop", "silence"]),
            count: rng.u32(1..=2),
        },
        63..67 => Action::LoseJobEvents(rng.u32(1..=3)),
        67..71 => Action::DuplicateEvents(rng.u32(1..=50)),
        71..75 => Action::SuppressEvents(rng.u32(1..=20)),
        75..78 => Action::DelayEvents(rng.u64(20..400)),
        78..80 => Action::FailPrepares(1),
        80..87 => Action::Kill {
            down_ms: rng.u64(0..1_500),
        },
        87..90 => Action::Term,
        90..94 => Action::Pause(rng.u64(300..2_500)),
        94..97 => Action::ConnectPush(pick(rng, &["bare", "repeat", "none"])),
        _ => Action::Emit(rng.u64(1..50)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_always_gives_the_same_schedule_with_one_burst() {
        let length = Duration::from_secs(45);
        let schedule = Schedule::generate(7, length, Mode::Single);
        assert_eq!(schedule, Schedule::generate(7, length, Mode::Single));
        assert_ne!(
            schedule.steps,
            Schedule::generate(8, length, Mode::Single).steps
        );
        let bursts = schedule
            .steps
            .iter()
            .filter(|s| matches!(s.action, Action::Burst(n) if n >= 10_000))
            .count();
        assert_eq!(bursts, 1);
        assert_eq!(
            schedule.steps.last().map(|s| &s.action),
            Some(&Action::FailedExit)
        );
        assert!(schedule.steps.windows(2).all(|w| w[0].at <= w[1].at));
        let delays = |cleared: bool| {
            schedule
                .steps
                .iter()
                .filter(|s| matches!(s.action, Action::DelayEvents(ms) if (ms == 0) == cleared))
                .count()
        };
        assert_eq!(delays(true), delays(false), "every delay is cleared");
    }

    #[test]
    fn failover_mode_adds_postgres_faults_and_pauses_past_the_lease_only() {
        let length = Duration::from_secs(600);
        let kinds = |mode| -> Vec<&'static str> {
            Schedule::generate(11, length, mode)
                .steps
                .iter()
                .map(|s| s.action.kind())
                .collect()
        };
        let failover_only = ["postgres_restart", "postgres_stop", "sigstop_past_lease"];
        let single = kinds(Mode::Single);
        let failover = kinds(Mode::Failover);
        for kind in failover_only {
            assert!(!single.contains(&kind), "{kind} in single mode");
            assert!(failover.contains(&kind), "{kind} missing in failover mode");
        }
    }
}
