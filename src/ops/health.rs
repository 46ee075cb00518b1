//! What `/healthz`, `/readyz` and the systemd watchdog report: one shared record of whether the
//! hubs are up, the event pump is live (caught up), and the pump loop is still turning.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use mesolive_api::Hub;

/// Shared health state; every field is written by the task that owns the fact.
#[derive(Debug)]
pub struct Health {
    started: Instant,
    hubs: [AtomicBool; 3],
    caught_up: watch::Sender<bool>,
    startup_done: AtomicBool,
    stopping: AtomicBool,
    pump_beat_ms: AtomicU64,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            started: Instant::now(),
            hubs: Default::default(),
            caught_up: watch::Sender::new(false),
            startup_done: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            pump_beat_ms: AtomicU64::new(0),
        }
    }
}

impl Health {
    /// A hub connection came up or went down.
    pub fn set_hub(&self, hub: Hub, up: bool) {
        self.hubs[hub as usize].store(up, Ordering::Relaxed);
    }

    /// Whether a hub connection is up.
    pub fn hub_up(&self, hub: Hub) -> bool {
        self.hubs[hub as usize].load(Ordering::Relaxed)
    }

    /// The event pump finished catch-up and is applying live events (or lost that state).
    pub fn set_caught_up(&self, live: bool) {
        self.caught_up.send_if_modified(|current| {
            let changed = *current != live;
            *current = live;
            changed
        });
    }

    /// Whether the event pump is caught up and live now.
    pub fn caught_up(&self) -> bool {
        *self.caught_up.borrow()
    }

    /// Follows the caught-up flag (startup waits on it before READY).
    pub fn subscribe_caught_up(&self) -> watch::Receiver<bool> {
        self.caught_up.subscribe()
    }

    /// Startup finished (hubs verified, replay done, monitors bootstrapped, reconciled).
    pub fn set_started(&self) {
        self.startup_done.store(true, Ordering::Relaxed);
    }

    /// Whether startup finished (the workflow runner runs from then on).
    pub fn started(&self) -> bool {
        self.startup_done.load(Ordering::Relaxed)
    }

    /// Shutdown has begun: not ready any more.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// The event pump's loop turned (called at least once a second while it runs).
    pub fn pump_beat(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.pump_beat_ms.store(ms, Ordering::Relaxed);
    }

    /// Ready: started, every hub connected, caught up, not stopping (`/readyz`).
    pub fn ready(&self) -> bool {
        self.startup_done.load(Ordering::Relaxed)
            && Hub::ALL.iter().all(|hub| self.hub_up(*hub))
            && self.caught_up()
            && !self.stopping.load(Ordering::Relaxed)
    }

    /// Healthy enough for the watchdog: the pump loop turned within `max_silence`. A pump that
    /// waits for a hub to come back still turns, so an outage alone does not get the daemon killed;
    /// a hung process does.
    pub fn pump_alive(&self, max_silence: Duration) -> bool {
        let beat = Duration::from_millis(self.pump_beat_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(beat) <= max_silence
    }
}
