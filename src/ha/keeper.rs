//! The leader's lease loop: renew every third of the ttl and keep the send gate open while the
//! renewals succeed; report the loss at once when the lease is gone. Renewal is an `UPDATE …
//! WHERE epoch = mine`: no row means another daemon took it.

use std::future::Future;
use std::time::Duration;

use tokio::time::timeout;

use super::gate::{BootInstant, SendGate};
use crate::config::HaSettings;
use crate::store::{LeaseGrant, Store};

/// The timing of a lease, from `[ha]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimes {
    /// How long the lease lasts after each renewal.
    pub ttl: Duration,
    /// How long before the earliest possible expiry the leader falls silent.
    pub margin: Duration,
}

impl LeaseTimes {
    /// From the settings.
    pub fn of(ha: &HaSettings) -> LeaseTimes {
        LeaseTimes {
            ttl: ha.lease_ttl,
            margin: ha.safety_margin,
        }
    }

    /// Between two renewals, and between two tries of a standby.
    pub fn period(self) -> Duration {
        self.ttl / 3
    }

    /// Between two tries of a renewal that failed (the database did not answer).
    pub fn retry(self) -> Duration {
        (self.ttl / 10).max(Duration::from_millis(100))
    }
}

/// Why a leader stopped leading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Loss {
    /// The renewal found the lease at another epoch: another daemon holds it.
    #[error("the lease moved to another holder (epoch {0} is no longer ours)")]
    EpochMoved(i64),
    /// No renewal succeeded for `ttl − margin` (the database unreachable, or this process
    /// stopped or starved): the lease may expire soon, so the leader stands down first.
    #[error("no lease renewal for {0:?} (the database unreachable, or this process was paused)")]
    Stale(Duration),
    /// The database failed while the term was opening (it went away between the lease and the
    /// term's first writes): the leader stands down rather than exiting; a standby (this one,
    /// once the database answers) takes over with the normal start.
    #[error("the state database failed while the term was opening: {0}")]
    Opening(String),
}

/// What the loop decides after a renewal attempt, from its result and the time since the last
/// success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Renewed: wait a period.
    Renewed,
    /// Failed, still inside the margin: try again soon.
    Retry,
}

/// Renews `grant` until the lease is lost (the loss is returned) or `stop` resolves (`None`).
/// Every success moves the gate's deadline; a loss closes the gate and fences the store off
/// before it is returned, so nothing more is sent or written.
pub async fn keep(
    store: &Store,
    grant: &LeaseGrant,
    times: LeaseTimes,
    gate: &SendGate,
    stop: impl Future<Output = ()>,
) -> Option<Loss> {
    tokio::pin!(stop);
    let mut last_success = BootInstant::now();
    let mut wait = times.period();
    let loss = loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            // A write found the epoch moved: confirm with a renewal now.
            _ = store.fenced_write_refused() => {}
            _ = &mut stop => return None,
        }
        if !gate.is_open() {
            // Past the deadline before even trying (this process was stopped, or starved).
            break Loss::Stale(BootInstant::now().since(last_success));
        }
        let sent = BootInstant::now();
        let next = match timeout(times.period(), store.renew_lease(grant, times.ttl)).await {
            Ok(Ok(Some(_))) => {
                gate.renewed(grant.epoch, sent, times.ttl, times.margin);
                last_success = sent;
                Next::Renewed
            }
            Ok(Ok(None)) => break Loss::EpochMoved(grant.epoch),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, epoch = grant.epoch, "lease renewal failed; retrying");
                Next::Retry
            }
            Err(_) => {
                tracing::warn!(epoch = grant.epoch, after = ?times.period(), "lease renewal unanswered; retrying");
                Next::Retry
            }
        };
        wait = match next {
            Next::Renewed => times.period(),
            Next::Retry if !gate.is_open() => {
                break Loss::Stale(BootInstant::now().since(last_success));
            }
            Next::Retry => times.retry(),
        };
    };
    gate.close();
    store.fence_off(&grant.group);
    Some(loss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewals_come_every_third_and_retries_sooner() {
        let times = LeaseTimes {
            ttl: Duration::from_secs(10),
            margin: Duration::from_secs(2),
        };
        assert_eq!(
            times.period(),
            Duration::from_millis(3_333) + Duration::from_nanos(333_333)
        );
        assert_eq!(times.retry(), Duration::from_secs(1));
        let short = LeaseTimes {
            ttl: Duration::from_millis(500),
            margin: Duration::from_millis(100),
        };
        assert_eq!(short.retry(), Duration::from_millis(100));
    }
}
