//! Conditions that only exist over time — a hub down longer than `notify.hub_down_after`, the
//! daemon not ready longer than `notify.not_ready_after` — and their end, decided from periodic
//! observations. Pure: the daemon's upkeep observes the health record once a tick and writes
//! whatever [`Conditions::observe`] returns.

use std::time::Duration;

use tokio::time::Instant;

use super::notice::{self, Notice};
use mesolive_api::Hub;

/// One look at the health record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// When it was taken.
    pub at: Instant,
    /// Whether each hub is connected, in [`Hub::ALL`] order.
    pub hubs_up: [bool; 3],
    /// Whether `/readyz` would answer 200.
    pub ready: bool,
    /// Whether the event pump is caught up.
    pub caught_up: bool,
}

/// A stretch of a condition: since when, and whether it was notified.
#[derive(Debug, Clone, Copy, Default)]
struct Stretch {
    since: Option<Instant>,
    notified: bool,
}

impl Stretch {
    /// Whether the condition has just lasted past `after` (then it counts as notified): the
    /// duration so far.
    fn crossed(&mut self, at: Instant, after: Duration) -> Option<Duration> {
        let since = *self.since.get_or_insert(at);
        let lasted = at.saturating_duration_since(since);
        (!self.notified && lasted >= after).then(|| {
            self.notified = true;
            lasted
        })
    }

    /// The condition ended: how long it lasted, if it was notified.
    fn ended(&mut self, at: Instant) -> Option<Duration> {
        let ended = self
            .since
            .filter(|_| self.notified)
            .map(|since| at.saturating_duration_since(since));
        *self = Stretch::default();
        ended
    }
}

/// What has been seen so far of the hubs and the readiness of one process.
#[derive(Debug)]
pub struct Conditions {
    started: Instant,
    hub_down_after: Duration,
    not_ready_after: Duration,
    hubs_down: [Stretch; 3],
    not_ready: Stretch,
    ever_ready: bool,
}

impl Conditions {
    /// A process that started at `started`: every hub down and not ready since then.
    pub fn new(started: Instant, hub_down_after: Duration, not_ready_after: Duration) -> Self {
        let down = Stretch {
            since: Some(started),
            notified: false,
        };
        Conditions {
            started,
            hub_down_after,
            not_ready_after,
            hubs_down: [down; 3],
            not_ready: down,
            ever_ready: false,
        }
    }

    /// The notices an observation calls for: a hub down past its threshold (once per stretch)
    /// and its return; not ready past its threshold (once per stretch); ready the first time,
    /// and again after a notified stretch of not being ready.
    pub fn observe(&mut self, seen: &Observation) -> Vec<Notice> {
        let mut notices = Vec::new();
        for (n, hub) in Hub::ALL.iter().enumerate() {
            let stretch = &mut self.hubs_down[n];
            if seen.hubs_up[n] {
                if let Some(lasted) = stretch.ended(seen.at) {
                    notices.push(notice::hub_up(hub.as_str(), lasted));
                }
            } else if let Some(lasted) = stretch.crossed(seen.at, self.hub_down_after) {
                notices.push(notice::hub_down(hub.as_str(), lasted));
            }
        }
        if seen.ready {
            let notified = self.not_ready.ended(seen.at);
            if !self.ever_ready {
                self.ever_ready = true;
                notices.push(notice::ready(
                    true,
                    seen.at.saturating_duration_since(self.started),
                ));
            } else if let Some(lasted) = notified {
                notices.push(notice::ready(false, lasted));
            }
        } else if let Some(lasted) = self.not_ready.crossed(seen.at, self.not_ready_after) {
            let down: Vec<&str> = Hub::ALL
                .iter()
                .zip(seen.hubs_up)
                .filter(|(_, up)| !up)
                .map(|(hub, _)| hub.as_str())
                .collect();
            notices.push(notice::not_ready(lasted, &down, seen.caught_up));
        }
        notices
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HUB_DOWN: Duration = Duration::from_secs(60);
    const NOT_READY: Duration = Duration::from_secs(120);

    struct Script {
        start: Instant,
        conditions: Conditions,
    }

    impl Script {
        fn new() -> Script {
            let start = Instant::now();
            Script {
                start,
                conditions: Conditions::new(start, HUB_DOWN, NOT_READY),
            }
        }

        /// The kinds noticed at `secs` after the start, with these hubs up and readiness.
        fn at(&mut self, secs: u64, hubs_up: [bool; 3], ready: bool) -> Vec<String> {
            let seen = Observation {
                at: self.start + Duration::from_secs(secs),
                hubs_up,
                ready,
                caught_up: ready,
            };
            self.conditions
                .observe(&seen)
                .into_iter()
                .map(|n| format!("{}: {}", n.kind, n.text))
                .collect()
        }
    }

    const UP: [bool; 3] = [true, true, true];

    #[test]
    fn a_quick_start_says_ready_once_and_nothing_else() {
        let mut script = Script::new();
        assert!(script.at(1, [true, false, false], false).is_empty());
        assert_eq!(
            script.at(2, UP, true),
            ["ready: ready after 2.0s: hubs connected, events caught up"]
        );
        assert!(script.at(3, UP, true).is_empty());
        assert!(script.at(500, UP, true).is_empty());
    }

    #[test]
    fn a_hub_down_past_the_threshold_is_notified_once_then_its_return() {
        let mut script = Script::new();
        script.at(1, UP, true);
        let data_down = [true, false, true];
        assert!(script.at(10, data_down, false).is_empty());
        assert!(script.at(69, data_down, false).is_empty(), "59 s down");
        assert_eq!(
            script.at(70, data_down, false),
            ["hub_down: data hub down for 1m"]
        );
        assert!(
            script.at(80, data_down, false).is_empty(),
            "once per stretch"
        );
        assert_eq!(
            script.at(95, UP, true),
            ["hub_up: data hub connected again after 1m 25s"]
        );
        assert!(script.at(96, data_down, false).is_empty(), "a new stretch");
        assert!(script.at(100, UP, true).is_empty(), "short: not notified");
    }

    #[test]
    fn a_hub_that_never_connects_is_down_since_the_start() {
        let mut script = Script::new();
        let control_down = [false, false, false];
        assert!(script.at(59, control_down, false).is_empty());
        let notices = script.at(60, control_down, false);
        assert_eq!(
            notices,
            [
                "hub_down: control hub down for 1m",
                "hub_down: data hub down for 1m",
                "hub_down: event hub down for 1m",
            ]
        );
        let notices = script.at(121, control_down, false);
        assert_eq!(
            notices,
            [
                "not_ready: not ready for 2m 1s (hub down: control, data, event; events not caught up)"
            ]
        );
        let notices = script.at(130, UP, true);
        assert_eq!(notices.len(), 4, "{notices:?}");
        assert_eq!(
            notices[3], "ready: ready after 2m 10s: hubs connected, events caught up",
            "the first ready is the startup's, whatever came before"
        );
    }

    #[test]
    fn not_ready_after_ready_is_notified_past_its_threshold_and_so_is_its_end() {
        let mut script = Script::new();
        script.at(1, UP, true);
        assert!(script.at(10, UP, false).is_empty());
        assert!(script.at(129, UP, false).is_empty());
        let notices = script.at(130, UP, false);
        assert_eq!(
            notices,
            ["not_ready: not ready for 2m (events not caught up)"]
        );
        assert_eq!(
            script.at(200, UP, true),
            ["ready: ready again after 3m 10s not ready"]
        );
        assert!(script.at(201, UP, false).is_empty());
        assert!(script.at(202, UP, true).is_empty(), "short: not notified");
    }
}
