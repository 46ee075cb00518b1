//! The send gate: whether this process may send a state-changing call now. Every intent passes
//! it right before it goes on the wire (`tasks::intent`).
//!
//! Without a lease (SQLite: the lock file keeps a second daemon off) it is always open. With
//! one it is open only until `last renewal started + ttl − safety_margin`, by a clock that runs
//! on while the process is stopped or the machine suspended (`CLOCK_BOOTTIME`): the lease can
//! expire on the server no earlier than `ttl` after the renewal was sent, so a leader that could
//! not renew — frozen by SIGSTOP, cut off from the database, starved — falls silent at least
//! `safety_margin` before anyone else can hold the lease, and stays silent after it resumes.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::store::StoreError;

/// An instant of the boot clock (`CLOCK_BOOTTIME`), which never stops: not while the process
/// is stopped, not while the machine sleeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BootInstant(Duration);

impl BootInstant {
    /// Now.
    pub fn now() -> BootInstant {
        let mut time = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the timespec it is given; CLOCK_BOOTTIME exists on every
        // Linux this daemon supports. A failure leaves zero, which only closes the gate.
        unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut time) };
        BootInstant(Duration::new(
            u64::try_from(time.tv_sec).unwrap_or(0),
            u32::try_from(time.tv_nsec).unwrap_or(0),
        ))
    }

    /// The instant `duration` later.
    pub fn after(self, duration: Duration) -> BootInstant {
        BootInstant(self.0.saturating_add(duration))
    }

    /// How long after `earlier` this is (zero if it is not later).
    pub fn since(self, earlier: BootInstant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

/// Until when a leader may send, given when its last successful renewal was sent: `ttl −
/// margin` later. (The server computed the expiry from its own clock when the renewal arrived,
/// which is no earlier than when it was sent.)
pub fn sending_deadline(renewal_sent: BootInstant, ttl: Duration, margin: Duration) -> BootInstant {
    renewal_sent.after(ttl.saturating_sub(margin))
}

/// Whether sending is allowed at `now` with `deadline`.
pub fn may_send_at(deadline: Option<BootInstant>, now: BootInstant) -> bool {
    deadline.is_some_and(|deadline| now < deadline)
}

#[derive(Debug)]
enum Rule {
    /// No lease: always open.
    Open,
    /// Open until the deadline (none: closed).
    Leased {
        group: String,
        epoch: i64,
        deadline: Option<BootInstant>,
    },
}

/// The gate one process's intents pass. Shared (`Arc`) by the lease keeper, which moves it,
/// and the intents, which read it.
#[derive(Debug)]
pub struct SendGate {
    rule: Mutex<Rule>,
}

impl SendGate {
    /// A gate that is always open: the store is not shared.
    pub fn open() -> SendGate {
        SendGate {
            rule: Mutex::new(Rule::Open),
        }
    }

    /// A gate closed until a lease of `group` is granted and renewed.
    pub fn leased(group: &str) -> SendGate {
        SendGate {
            rule: Mutex::new(Rule::Leased {
                group: group.to_owned(),
                epoch: 0,
                deadline: None,
            }),
        }
    }

    fn rule(&self) -> std::sync::MutexGuard<'_, Rule> {
        self.rule.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lease at `epoch` was granted or renewed by a statement sent at `sent`: open until
    /// [`sending_deadline`].
    pub fn renewed(&self, epoch: i64, sent: BootInstant, ttl: Duration, margin: Duration) {
        if let Rule::Leased {
            epoch: held,
            deadline,
            ..
        } = &mut *self.rule()
        {
            *held = epoch;
            *deadline = Some(sending_deadline(sent, ttl, margin));
        }
    }

    /// Leadership is gone: closed until the next grant.
    pub fn close(&self) {
        if let Rule::Leased { deadline, .. } = &mut *self.rule() {
            *deadline = None;
        }
    }

    /// May a state-changing call be sent now? `Err(LeadershipLost)` when not.
    pub fn check(&self) -> Result<(), StoreError> {
        match &*self.rule() {
            Rule::Open => Ok(()),
            Rule::Leased {
                group,
                epoch,
                deadline,
            } => {
                if may_send_at(*deadline, BootInstant::now()) {
                    Ok(())
                } else {
                    Err(StoreError::LeadershipLost {
                        group: group.clone(),
                        epoch: *epoch,
                    })
                }
            }
        }
    }

    /// Whether the gate is open now.
    pub fn is_open(&self) -> bool {
        self.check().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);
    const MARGIN: Duration = Duration::from_secs(2);

    #[test]
    fn a_leader_falls_silent_a_margin_before_its_lease_can_expire() {
        let sent = BootInstant(Duration::from_secs(100));
        let deadline = sending_deadline(sent, TTL, MARGIN);
        assert!(may_send_at(Some(deadline), sent));
        assert!(may_send_at(
            Some(deadline),
            sent.after(Duration::from_millis(7_999))
        ));
        assert!(!may_send_at(
            Some(deadline),
            sent.after(Duration::from_secs(8))
        ));
        // The earliest instant the server may let another daemon take the lease.
        assert!(!may_send_at(Some(deadline), sent.after(TTL)));
        assert!(!may_send_at(None, sent), "never granted: closed");
    }

    #[test]
    fn the_gate_opens_on_a_renewal_and_closes_on_loss_or_time() {
        let gate = SendGate::leased("default");
        assert!(!gate.is_open());
        gate.renewed(3, BootInstant::now(), TTL, MARGIN);
        assert!(gate.is_open());
        gate.close();
        assert!(matches!(
            gate.check(),
            Err(StoreError::LeadershipLost { epoch: 3, .. })
        ));
        let long_ago = BootInstant::now().since(BootInstant(Duration::ZERO));
        gate.renewed(4, BootInstant(long_ago.saturating_sub(TTL)), TTL, MARGIN);
        assert!(
            !gate.is_open(),
            "a renewal older than ttl - margin does not open it"
        );
        assert!(SendGate::open().is_open());
    }

    #[test]
    fn the_boot_clock_moves_forward() {
        let a = BootInstant::now();
        std::thread::sleep(Duration::from_millis(5));
        assert!(BootInstant::now().since(a) >= Duration::from_millis(5));
    }
}
