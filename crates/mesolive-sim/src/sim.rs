//! The shared core every hub, the admin API and the timers work on: the world behind its lock,
//! the active faults, the counters, live delivery, and the task tracker that threads shutdown
//! through every timer and stream.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::event_log::LoggedEvent;
use super::faults::{FaultKind, FaultPatch, Faults, LiveFate};
use super::live::LiveRegistry;
use super::stats::Stats;
use super::wire_profile::WireProfile;
use super::world::World;
use mesolive_api::wire::callbacks;

/// How fast simulated things happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Prepare jobs finish this long after they start.
    pub prepare_delay: Duration,
    /// Working orders fill this long after `SendOrder`.
    pub fill_delay: Duration,
    /// Data streams send at most one update per interval (latest value).
    pub stream_interval: Duration,
    /// Signal generator cadence (`None`: off).
    pub signal_interval: Option<Duration>,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            prepare_delay: Duration::from_millis(150),
            fill_delay: Duration::from_millis(150),
            stream_interval: Duration::from_millis(500),
            signal_interval: None,
        }
    }
}

/// Logged events the dispatcher takes per wake-up.
const DISPATCH_BATCH: usize = 1024;

/// The simulator's shared state.
pub(crate) struct Sim {
    world: Mutex<World>,
    faults: Mutex<Faults>,
    pub stats: Stats,
    pub timing: Timing,
    /// The wire forms played (fixed for the simulator's life).
    pub wire: WireProfile,
    pub live: LiveRegistry,
    pub tasks: TaskTracker,
    pub shutdown: CancellationToken,
    /// Bumped whenever a position closes (position streams end on it).
    pub closed: watch::Receiver<u64>,
}

impl Sim {
    /// A seeded world with `positions` open positions, and the receiving end of its live
    /// events (for [`Sim::dispatch`]).
    pub(crate) fn new(
        seed: u64,
        positions: usize,
        timing: Timing,
        faults: FaultPatch,
        wire: WireProfile,
    ) -> (Arc<Sim>, mpsc::UnboundedReceiver<Arc<LoggedEvent>>) {
        let (live_tx, mut live_rx) = mpsc::unbounded_channel();
        let (closed_tx, closed) = watch::channel(0);
        let mut world = World::new(seed, live_tx, closed_tx);
        world.seed(positions);
        // The seed's events are history only: no client was there to receive them live, and
        // they must not use up the live faults the simulator starts with.
        while live_rx.try_recv().is_ok() {}
        let mut active = Faults::default();
        active.apply(faults);
        let sim = Sim {
            world: Mutex::new(world),
            faults: Mutex::new(active),
            stats: Stats::default(),
            timing,
            wire,
            live: LiveRegistry::default(),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            closed,
        };
        (Arc::new(sim), live_rx)
    }

    /// The dispatcher: every logged event, in order, through the live faults (lose job events,
    /// suppress, duplicate, delay) to the connections that want it. Ends when the log's sender
    /// is dropped or the simulator shuts down.
    pub(crate) async fn dispatch(
        self: Arc<Self>,
        mut events: mpsc::UnboundedReceiver<Arc<LoggedEvent>>,
    ) {
        let mut batch = Vec::with_capacity(DISPATCH_BATCH);
        while events.recv_many(&mut batch, DISPATCH_BATCH).await > 0 {
            for event in batch.drain(..) {
                let is_job_event = callbacks::preparation_target(&event.target).is_some();
                let (duplicate, delay) = match self.faults().take_live(is_job_event) {
                    LiveFate::Skip(kind) => {
                        self.stats.fault(kind);
                        continue;
                    }
                    LiveFate::Deliver { duplicate, delay } => (duplicate, delay),
                };
                if !delay.is_zero() {
                    self.stats.fault(FaultKind::DelayEvent);
                    tokio::time::sleep_until((event.logged_at + delay).into()).await;
                }
                if duplicate {
                    self.stats.fault(FaultKind::DuplicateEvent);
                }
                let queued = self.live.deliver(&event, 1 + usize::from(duplicate)).await;
                self.stats.delivered(queued);
            }
        }
    }

    /// The world, locked. Critical sections never await and never panic on outside data.
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The active faults, locked.
    pub(crate) fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `task` on the tracker until it ends or the simulator shuts down.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = task => {}
            }
        });
    }

    /// Runs `action` on the world after `delay` (a job finishing, an order filling, a record
    /// settling), unless the simulator shuts down first.
    pub(crate) fn after(
        self: &Arc<Self>,
        delay: Duration,
        action: impl FnOnce(&mut World) + Send + 'static,
    ) {
        let sim = Arc::clone(self);
        self.spawn(async move {
            tokio::time::sleep(delay).await;
            action(&mut sim.world());
        });
    }

    /// Settles an idempotency record now, or after the hold-processing fault's delay.
    pub(crate) fn settle(self: &Arc<Self>, key: String) {
        let hold = self.faults().processing_hold();
        match hold {
            None => {
                let mut world = self.world();
                world.idempotency.settle(&key, &super::world::timestamp());
            }
            Some(delay) => {
                self.stats.fault(FaultKind::HoldProcessing);
                self.after(delay, move |world| {
                    world.idempotency.settle(&key, &super::world::timestamp())
                });
            }
        }
    }
}
