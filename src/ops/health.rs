//! What `/healthz`, `/readyz` and the systemd watchdog report: one shared record of whether the
//! hubs are up, the event pump is live (caught up), and the pump loop is still turning.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::ha::SendGate;
use mesolive_api::Hub;

/// What this daemon is in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// No failover: the only daemon on its database.
    Single,
    /// Failover: waiting for the lease; not acting.
    Standby,
    /// Failover: holding the lease and acting.
    Leader,
}

impl Role {
    /// The name `ctl status` shows: `primary` (alone on its database), `standby` or `leader`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Single => "primary",
            Role::Standby => "standby",
            Role::Leader => "leader",
        }
    }

    fn from_u8(value: u8) -> Role {
        match value {
            1 => Role::Standby,
            2 => Role::Leader,
            _ => Role::Single,
        }
    }
}

/// Shared health state; every field is written by the task that owns the fact.
#[derive(Debug)]
pub struct Health {
    role: AtomicU8,
    started: Instant,
    hubs: [AtomicBool; 3],
    caught_up: watch::Sender<bool>,
    startup_done: AtomicBool,
    stopping: AtomicBool,
    pump_beat_ms: AtomicU64,
    /// The send gate of the failover term in progress: a leader that may not send (its lease
    /// about to expire or gone, its keeper not yet back) is not ready. `None`: no lease.
    gate: Mutex<Option<Arc<SendGate>>>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            role: AtomicU8::new(Role::Single as u8),
            started: Instant::now(),
            hubs: Default::default(),
            caught_up: watch::Sender::new(false),
            startup_done: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            pump_beat_ms: AtomicU64::new(0),
            gate: Mutex::new(None),
        }
    }
}

impl Health {
    /// This daemon's role now.
    pub fn role(&self) -> Role {
        Role::from_u8(self.role.load(Ordering::Relaxed))
    }

    /// Takes up `role`. Becoming a standby (again) forgets what the last term reported: no hub
    /// connected, not caught up, not started, not stopping.
    pub fn set_role(&self, role: Role) {
        if role == Role::Standby {
            for hub in &self.hubs {
                hub.store(false, Ordering::Relaxed);
            }
            self.caught_up.send_replace(false);
            self.startup_done.store(false, Ordering::Relaxed);
            self.stopping.store(false, Ordering::Relaxed);
        }
        self.role.store(role as u8, Ordering::Relaxed);
    }

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

    /// The loop that drives this role turned: the event pump's (at least once a second while it
    /// runs), or a standby's lease loop.
    pub fn pump_beat(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.pump_beat_ms.store(ms, Ordering::Relaxed);
    }

    /// A failover term began: readiness follows its send gate from now on.
    pub fn follow_gate(&self, gate: Arc<SendGate>) {
        *self.gate.lock().unwrap_or_else(PoisonError::into_inner) = Some(gate);
    }

    /// Ready: not a standby, started, every hub connected, caught up, not stopping, and (a
    /// failover leader) its send gate open (`/readyz`).
    pub fn ready(&self) -> bool {
        self.role() != Role::Standby
            && self.startup_done.load(Ordering::Relaxed)
            && Hub::ALL.iter().all(|hub| self.hub_up(*hub))
            && self.caught_up()
            && !self.stopping.load(Ordering::Relaxed)
            && self.may_send()
    }

    fn may_send(&self) -> bool {
        self.gate
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_none_or(|gate| gate.is_open())
    }

    /// Healthy enough for the watchdog: the pump loop turned within `max_silence`. A pump that
    /// waits for a hub to come back still turns, so an outage alone does not get the daemon killed;
    /// a hung process does.
    pub fn pump_alive(&self, max_silence: Duration) -> bool {
        let beat = Duration::from_millis(self.pump_beat_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(beat) <= max_silence
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ha::BootInstant;

    const TTL: Duration = Duration::from_secs(10);
    const MARGIN: Duration = Duration::from_secs(2);

    #[test]
    fn a_leader_whose_send_gate_is_closed_is_not_ready() {
        let health = Health::default();
        health.set_role(Role::Leader);
        for hub in Hub::ALL {
            health.set_hub(hub, true);
        }
        health.set_caught_up(true);
        health.set_started();
        assert!(health.ready(), "no lease followed yet: ready");
        let gate = Arc::new(SendGate::leased("default"));
        gate.renewed(1, BootInstant::now(), TTL, MARGIN);
        health.follow_gate(gate.clone());
        assert!(health.ready());
        // A leader resumed after a pause past its lease: its keeper has not run yet, but its
        // gate is already closed by the clock; here, closed by the keeper.
        gate.close();
        assert!(!health.ready());
        gate.renewed(2, BootInstant::now(), TTL, MARGIN);
        assert!(health.ready());
    }
}
