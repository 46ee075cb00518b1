//! The daemon's stop, in the linkerd2-proxy sense of a drain: one handle threaded through
//! every task, moving forward through three phases and never back.
//!
//! ```text
//! running ──close_intake()──▶ draining ──stop_children()──▶ stopping
//!    └────────────┴──── force() (second signal, escalation) ─────┴──▶ forced
//! ```
//!
//! * **draining** (the first SIGTERM/SIGINT): intake stops — no new signal starts a workflow,
//!   no intent is created, no hub is (re)connected; work already in flight (held by an
//!   [`InFlight`] guard) may finish.
//! * **stopping**: in-flight work finished or `supervisor.shutdown_grace` ran out: the
//!   children (pump, monitors, reconciler) stop.
//! * **forced** (a second signal, or a fatal condition): stop at once. Every write is still one
//!   transaction, so the store stays consistent; in-flight intents are marked abandoned and
//!   settled on the next start.
//!
//! A fatal condition is recorded here too ([`Drain::escalate`], the first one wins), so the
//! daemon's exit status comes from the same place that stopped it.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use super::child::Fatal;

/// Where the stop is. Ordered: a later phase includes every earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Taking in and doing work.
    Running,
    /// Intake closed: in-flight work finishes.
    Draining,
    /// Children stop.
    Stopping,
    /// Stop at once.
    Forced,
}

#[derive(Debug, Clone, Copy)]
struct State {
    phase: Phase,
    in_flight: usize,
}

#[derive(Debug)]
struct Shared {
    state: watch::Sender<State>,
    fatal: Mutex<Option<Fatal>>,
}

/// The stop handle every task holds (cheap to clone). Tasks wait on [`Drain::intake_closed`],
/// [`Drain::stopping`] or [`Drain::forced`] and hold an [`InFlight`] guard for work that the
/// stop should wait for; the daemon moves it through the phases.
#[derive(Debug, Clone)]
pub struct Drain {
    shared: Arc<Shared>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            shared: Arc::new(Shared {
                state: watch::Sender::new(State {
                    phase: Phase::Running,
                    in_flight: 0,
                }),
                fatal: Mutex::new(None),
            }),
        }
    }
}

impl Drain {
    /// A drain in the running phase.
    pub fn new() -> Drain {
        Drain::default()
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.shared.state.borrow().phase
    }

    /// Whether intake has closed (the stop has begun, in any phase).
    pub fn is_intake_closed(&self) -> bool {
        self.phase() >= Phase::Draining
    }

    /// Whether the children are to stop now.
    pub fn is_stopping(&self) -> bool {
        self.phase() >= Phase::Stopping
    }

    /// Whether the stop is forced.
    pub fn is_forced(&self) -> bool {
        self.phase() == Phase::Forced
    }

    /// Resolves once intake has closed: take in nothing new, do not (re)connect.
    pub async fn intake_closed(&self) {
        self.reached(Phase::Draining).await;
    }

    /// Resolves once the children are to stop (in-flight work is done or its grace ran out).
    pub async fn stopping(&self) {
        self.reached(Phase::Stopping).await;
    }

    /// Resolves once the stop is forced: give up whatever is pending.
    pub async fn forced(&self) {
        self.reached(Phase::Forced).await;
    }

    async fn reached(&self, phase: Phase) {
        let mut state = self.shared.state.subscribe();
        // The sender lives in `self`, so the channel cannot close while this waits.
        let _ = state.wait_for(|state| state.phase >= phase).await;
    }

    /// Registers a piece of work the stop waits for (within its grace); `None` once intake has
    /// closed, so nothing new starts after the stop began.
    pub fn in_flight(&self) -> Option<InFlight> {
        let mut admitted = false;
        self.shared.state.send_if_modified(|state| {
            admitted = state.phase == Phase::Running;
            if admitted {
                state.in_flight += 1;
            }
            admitted
        });
        admitted.then(|| InFlight {
            drain: self.clone(),
        })
    }

    /// Resolves once no [`InFlight`] guard is held.
    pub async fn idle(&self) {
        let mut state = self.shared.state.subscribe();
        let _ = state.wait_for(|state| state.in_flight == 0).await;
    }

    /// Phase 1, the first SIGTERM/SIGINT: intake closes; `true` if this call closed it.
    pub fn close_intake(&self) -> bool {
        self.advance(Phase::Draining)
    }

    /// Phase 2 is over (in-flight work done, or the grace ran out): the children stop.
    pub fn stop_children(&self) -> bool {
        self.advance(Phase::Stopping)
    }

    /// Phase 3, a second signal: stop at once; `true` if this call forced it.
    pub fn force(&self) -> bool {
        self.advance(Phase::Forced)
    }

    /// A fatal condition: recorded (the first one wins, it decides the exit status) and the
    /// stop forced.
    pub fn escalate(&self, fatal: Fatal) {
        tracing::error!(error = %fatal, "fatal: stopping the daemon");
        let mut first = self
            .shared
            .fatal
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if first.is_none() {
            *first = Some(fatal);
        }
        drop(first);
        self.force();
    }

    /// The fatal condition that stopped the daemon, if one did (taken: asked once, at the end).
    pub fn take_fatal(&self) -> Option<Fatal> {
        self.shared
            .fatal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn advance(&self, to: Phase) -> bool {
        self.shared.state.send_if_modified(|state| {
            let moved = state.phase < to;
            if moved {
                state.phase = to;
            }
            moved
        })
    }
}

/// Work the stop waits for while it is held (a workflow step); released on drop.
#[derive(Debug)]
pub struct InFlight {
    drain: Drain,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.drain.shared.state.send_modify(|state| {
            state.in_flight = state.in_flight.saturating_sub(1);
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn resolves(future: impl std::future::Future<Output = ()>) -> bool {
        tokio::time::timeout(Duration::from_millis(50), future)
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn phases_only_move_forward_and_each_includes_the_earlier_ones() {
        let drain = Drain::new();
        assert!(!resolves(drain.intake_closed()).await);
        assert!(drain.close_intake());
        assert!(!drain.close_intake(), "closing twice is a no-op");
        assert!(resolves(drain.intake_closed()).await);
        assert!(!resolves(drain.stopping()).await);
        assert!(drain.force());
        assert!(resolves(drain.stopping()).await, "forced includes stopping");
        assert!(!drain.stop_children(), "never back from forced");
        assert_eq!(drain.phase(), Phase::Forced);
    }

    #[tokio::test]
    async fn in_flight_work_is_admitted_only_while_running_and_waited_for() {
        let drain = Drain::new();
        let guard = drain.in_flight().expect("admitted while running");
        drain.close_intake();
        assert!(
            drain.in_flight().is_none(),
            "nothing new once intake closed"
        );
        assert!(!resolves(drain.idle()).await);
        drop(guard);
        assert!(resolves(drain.idle()).await);
    }

    #[tokio::test]
    async fn the_first_fatal_condition_wins_and_forces_the_stop() {
        let drain = Drain::new();
        drain.escalate(Fatal::CursorAhead {
            cursor: 2,
            latest: 1,
        });
        drain.escalate(Fatal::CursorAhead {
            cursor: 9,
            latest: 1,
        });
        assert!(drain.is_forced());
        assert!(matches!(
            drain.take_fatal(),
            Some(Fatal::CursorAhead { cursor: 2, .. })
        ));
    }
}
