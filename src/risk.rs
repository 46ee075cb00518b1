//! Risk limits, decided without I/O: whether a state-changing call may be committed (from the
//! counts the workflow I/O gathered), which accounts reached `risk.max_daily_loss` (from the
//! realized PnL movements of the trading day), and where the trading day starts in
//! `risk.day_timezone`. The I/O beside it: `tasks::workflow::steps` (calls) and `tasks::risk`
//! (the daily-loss watcher).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

use crate::config::RiskSettings;
use crate::store::{PnlMovement, Timestamp};

/// The window of `risk.max_orders_per_minute`.
pub const ORDER_WINDOW: Duration = Duration::from_secs(60);

/// Rule names, as logged, recorded and used as the `rule` label.
pub mod rules {
    /// `risk.max_entries_per_day`.
    pub const MAX_ENTRIES_PER_DAY: &str = "max_entries_per_day";
    /// `risk.max_orders_per_minute`.
    pub const MAX_ORDERS_PER_MINUTE: &str = "max_orders_per_minute";
    /// `risk.max_open_positions_total`.
    pub const MAX_OPEN_POSITIONS_TOTAL: &str = "max_open_positions_total";
    /// `risk.max_daily_loss`.
    pub const MAX_DAILY_LOSS: &str = "max_daily_loss";
    /// Every rule, so their series exist at 0 from the start (an alert on their increase
    /// sees the first one).
    pub const ALL: [&str; 4] = [
        MAX_ENTRIES_PER_DAY,
        MAX_ORDERS_PER_MINUTE,
        MAX_OPEN_POSITIONS_TOTAL,
        MAX_DAILY_LOSS,
    ];
}

/// A trading day: its name (`YYYY-MM-DD` in the zone) and the instant it began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradingDay {
    /// The local date.
    pub name: String,
    /// Local midnight, as an instant.
    pub start: Timestamp,
}

/// The trading day `now` falls in, in `zone`. A midnight that a DST change skips or repeats is
/// taken at its earliest instant.
pub fn trading_day(now: DateTime<Utc>, zone: Tz) -> TradingDay {
    let local = now.with_timezone(&zone).date_naive();
    let midnight = local.and_time(NaiveTime::MIN);
    let start = zone
        .from_local_datetime(&midnight)
        .earliest()
        .map(|start| start.with_timezone(&Utc))
        // No zone skips a whole hour at midnight and the next; fall back to UTC midnight.
        .unwrap_or_else(|| midnight.and_utc());
    TradingDay {
        name: local.format("%Y-%m-%d").to_string(),
        start: Timestamp::from(start),
    }
}

/// What a state-changing call is: the opening call of a workflow that would add risk (an
/// entry's or an adjustment's prepare), or any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// The prepare of an entry: every rule applies, a breach refuses it.
    OpeningEntry,
    /// The prepare of an adjustment: the call rate applies, a breach refuses it.
    OpeningAdjustment,
    /// Any later call of a workflow under way, and every call of an exit: the call rate
    /// applies, a breach makes it wait (half an execution, or an exit, is never refused).
    FollowUp,
}

/// The counts a call is judged on, per account, gathered just before its intent is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallFacts {
    /// What the call is.
    pub kind: CallKind,
    /// State-changing calls of the account's workflows committed in the last [`ORDER_WINDOW`].
    pub calls_in_window: u32,
    /// Entries of the account started (prepare committed) this trading day.
    pub entries_today: u32,
    /// Open positions of the account, and its entries in flight, all strategies.
    pub open_positions: u32,
}

/// A limit reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breach {
    /// The rule's name ([`rules`]).
    pub rule: &'static str,
    /// Why, with the figures and the key, as recorded on the workflow.
    pub reason: String,
}

/// What becomes of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Commit and send it.
    Allow,
    /// Do not send it; the workflow ends (cancelled) with the breach as its reason.
    Refuse(Breach),
    /// Not now: the workflow waits and asks again later.
    Wait(Breach),
}

/// Whether a call of `account` may be committed now.
pub fn check_call(limits: &RiskSettings, account: &str, facts: &CallFacts) -> Verdict {
    let opening = facts.kind != CallKind::FollowUp;
    if facts.kind == CallKind::OpeningEntry {
        if let Some(limit) = limits.max_entries_per_day
            && facts.entries_today >= limit
        {
            return Verdict::Refuse(Breach {
                rule: rules::MAX_ENTRIES_PER_DAY,
                reason: format!(
                    "risk.max_entries_per_day: {} entries already started on {account} this trading day (limit {limit})",
                    facts.entries_today
                ),
            });
        }
        if let Some(limit) = limits.max_open_positions_total
            && facts.open_positions >= limit
        {
            return Verdict::Refuse(Breach {
                rule: rules::MAX_OPEN_POSITIONS_TOTAL,
                reason: format!(
                    "risk.max_open_positions_total: {} positions open or being opened on {account} (limit {limit})",
                    facts.open_positions
                ),
            });
        }
    }
    if let Some(limit) = limits.max_orders_per_minute
        && facts.calls_in_window >= limit
    {
        let breach = Breach {
            rule: rules::MAX_ORDERS_PER_MINUTE,
            reason: format!(
                "risk.max_orders_per_minute: {} state-changing calls on {account} in the last {} s (limit {limit})",
                facts.calls_in_window,
                ORDER_WINDOW.as_secs()
            ),
        };
        return if opening {
            Verdict::Refuse(breach)
        } else {
            Verdict::Wait(breach)
        };
    }
    Verdict::Allow
}

/// An account whose realized loss of the trading day reached `risk.max_daily_loss`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyLoss {
    /// The account.
    pub account: String,
    /// Its realized PnL of the day (negative).
    pub realized: Decimal,
    /// The limit.
    pub limit: Decimal,
}

impl DailyLoss {
    /// The reason recorded with the switch: the rule, the figures, the day.
    pub fn reason(&self, day: &TradingDay, zone: Tz) -> String {
        format!(
            "risk.max_daily_loss: realized PnL {} on {} for trading day {} ({zone}) reached the limit of -{}",
            self.realized, self.account, day.name, self.limit
        )
    }
}

/// The realized PnL of the period per account: per position, its last mark less its opening
/// mark (zero when it had none).
pub fn realized_by_account(movements: &[PnlMovement]) -> BTreeMap<String, Decimal> {
    let mut totals: BTreeMap<String, Decimal> = BTreeMap::new();
    for movement in movements {
        *totals.entry(movement.account.clone()).or_default() +=
            movement.latest - movement.opening.unwrap_or_default();
    }
    totals
}

/// The accounts whose realized loss reached `limit` (a loss of exactly the limit counts).
pub fn daily_losses(movements: &[PnlMovement], limit: Decimal) -> Vec<DailyLoss> {
    realized_by_account(movements)
        .into_iter()
        .filter(|(_, realized)| *realized <= -limit)
        .map(|(account, realized)| DailyLoss {
            account,
            realized,
            limit,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TradingState;

    fn limits() -> RiskSettings {
        RiskSettings {
            max_entries_per_day: Some(2),
            max_orders_per_minute: Some(3),
            max_open_positions_total: Some(1),
            max_daily_loss: Some(Decimal::from(500)),
            on_daily_loss: TradingState::ReduceOnly,
            day_timezone: "America/New_York".into(),
        }
    }

    fn facts(kind: CallKind) -> CallFacts {
        CallFacts {
            kind,
            calls_in_window: 0,
            entries_today: 0,
            open_positions: 0,
        }
    }

    fn rule(verdict: &Verdict) -> Option<&'static str> {
        match verdict {
            Verdict::Allow => None,
            Verdict::Refuse(breach) | Verdict::Wait(breach) => Some(breach.rule),
        }
    }

    #[test]
    fn entries_per_day_allow_n_and_refuse_the_next() {
        let at = |entries_today| CallFacts {
            entries_today,
            ..facts(CallKind::OpeningEntry)
        };
        assert_eq!(check_call(&limits(), "A", &at(1)), Verdict::Allow);
        let refused = check_call(&limits(), "A", &at(2));
        assert!(matches!(refused, Verdict::Refuse(_)), "{refused:?}");
        assert_eq!(rule(&refused), Some(rules::MAX_ENTRIES_PER_DAY));
        // Exits and later calls are not entries.
        let follow_up = CallFacts {
            entries_today: 9,
            ..facts(CallKind::FollowUp)
        };
        assert_eq!(check_call(&limits(), "A", &follow_up), Verdict::Allow);
    }

    #[test]
    fn open_positions_total_counts_all_strategies_of_the_account() {
        let full = CallFacts {
            open_positions: 1,
            ..facts(CallKind::OpeningEntry)
        };
        let verdict = check_call(&limits(), "PAPER-1", &full);
        assert_eq!(rule(&verdict), Some(rules::MAX_OPEN_POSITIONS_TOTAL));
        let Verdict::Refuse(breach) = verdict else {
            panic!("not refused: {verdict:?}");
        };
        assert!(
            breach
                .reason
                .contains("1 positions open or being opened on PAPER-1 (limit 1)")
        );
        let adjustment = CallFacts {
            open_positions: 5,
            ..facts(CallKind::OpeningAdjustment)
        };
        assert_eq!(check_call(&limits(), "A", &adjustment), Verdict::Allow);
    }

    #[test]
    fn the_call_rate_refuses_an_opening_call_and_holds_a_follow_up() {
        let at = |kind, calls_in_window| CallFacts {
            calls_in_window,
            ..facts(kind)
        };
        assert_eq!(
            check_call(&limits(), "A", &at(CallKind::OpeningEntry, 2)),
            Verdict::Allow
        );
        for kind in [CallKind::OpeningEntry, CallKind::OpeningAdjustment] {
            assert!(matches!(
                check_call(&limits(), "A", &at(kind, 3)),
                Verdict::Refuse(_)
            ));
        }
        let held = check_call(&limits(), "A", &at(CallKind::FollowUp, 3));
        assert!(matches!(held, Verdict::Wait(_)), "{held:?}");
        assert_eq!(rule(&held), Some(rules::MAX_ORDERS_PER_MINUTE));
    }

    #[test]
    fn no_limit_set_allows_everything() {
        let none = RiskSettings {
            max_entries_per_day: None,
            max_orders_per_minute: None,
            max_open_positions_total: None,
            max_daily_loss: None,
            ..limits()
        };
        let busy = CallFacts {
            kind: CallKind::OpeningEntry,
            calls_in_window: 1_000,
            entries_today: 1_000,
            open_positions: 1_000,
        };
        assert_eq!(check_call(&none, "A", &busy), Verdict::Allow);
    }

    fn movement(position_id: i64, account: &str, opening: Option<i64>, latest: i64) -> PnlMovement {
        PnlMovement {
            position_id,
            account: account.into(),
            opening: opening.map(Decimal::from),
            latest: Decimal::from(latest),
        }
    }

    #[test]
    fn the_daily_loss_is_the_days_movement_per_account_at_or_beyond_the_limit() {
        let movements = [
            // Opened yesterday at -1000: only today's -300 counts.
            movement(1, "A", Some(-1_000), -1_300),
            movement(2, "A", None, -200),
            movement(3, "B", None, -499),
            movement(4, "C", Some(100), 50),
        ];
        let totals = realized_by_account(&movements);
        assert_eq!(totals["A"], Decimal::from(-500));
        assert_eq!(totals["C"], Decimal::from(-50));
        let losses = daily_losses(&movements, Decimal::from(500));
        assert_eq!(
            losses,
            vec![DailyLoss {
                account: "A".into(),
                realized: Decimal::from(-500),
                limit: Decimal::from(500)
            }]
        );
        assert!(daily_losses(&movements, Decimal::from(501)).is_empty());
    }

    #[test]
    fn the_trading_day_starts_at_new_york_midnight_across_dst() {
        let zone = chrono_tz::America::New_York;
        let utc = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .expect("a time")
                .with_timezone(&Utc)
        };
        // Winter (EST, UTC-5): 03:00 UTC is still the previous day in New York.
        let winter = trading_day(utc("2026-01-15T03:00:00Z"), zone);
        assert_eq!(winter.name, "2026-01-14");
        assert_eq!(winter.start, Timestamp::from(utc("2026-01-14T05:00:00Z")));
        // Summer (EDT, UTC-4).
        let summer = trading_day(utc("2026-07-01T12:00:00Z"), zone);
        assert_eq!(summer.name, "2026-07-01");
        assert_eq!(summer.start, Timestamp::from(utc("2026-07-01T04:00:00Z")));
        // The day DST starts (8 March 2026) begins at EST midnight.
        let spring = trading_day(utc("2026-03-08T20:00:00Z"), zone);
        assert_eq!(spring.start, Timestamp::from(utc("2026-03-08T05:00:00Z")));
        let utc_day = trading_day(utc("2026-01-15T03:00:00Z"), chrono_tz::UTC);
        assert_eq!(utc_day.name, "2026-01-15");
    }

    /// The store keeps realized PnL marks per whole second, exact for a period that starts on
    /// one: every zone's day starts on a whole second, odd offsets included.
    #[test]
    fn every_trading_day_starts_on_a_whole_second() {
        let now = DateTime::parse_from_rfc3339("2026-12-05T17:53:39.123Z")
            .expect("a time")
            .with_timezone(&Utc);
        for zone in chrono_tz::TZ_VARIANTS {
            let start = trading_day(now, zone).start.unix_millis();
            assert_eq!(start % 1000, 0, "{zone}: {start}");
        }
    }
}
