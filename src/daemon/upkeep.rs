//! What runs beside the children until the end, whatever the role: the store-derived gauges
//! and the systemd watchdog (the ops listener itself is `ops::http`).

use std::sync::Arc;
use std::time::Duration;

use crate::ops::health::Health;
use crate::ops::metrics::{Metrics, StateGauges};
use crate::ops::notify::Notifier;
use crate::store::Store;
use crate::supervisor::drain::Drain;

/// How often the store-derived gauges (intents, workflows by state) are refreshed.
const GAUGE_REFRESH: Duration = Duration::from_secs(5);

/// Refreshes the store-derived gauges until the daemon stops.
pub(super) async fn refresh_gauges(store: Arc<Store>, metrics: Arc<Metrics>, drain: Drain) {
    let mut tick = tokio::time::interval(GAUGE_REFRESH);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = drain.stopping() => return,
        }
        if let Ok(summary) = store.state_counts().await {
            metrics.set_state_gauges(StateGauges {
                intents: summary.intents,
                workflows: summary.workflows,
            });
        }
    }
}

/// Sends `WATCHDOG=1` at half of `WATCHDOG_USEC` while the loop that drives the role turns (the
/// event pump while leading, the lease loop while standing by).
pub(super) async fn watchdog(health: Arc<Health>, notifier: Notifier, drain: Drain) {
    let Some(period) = Notifier::watchdog_period() else {
        return;
    };
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = drain.stopping() => return,
        }
        if health.pump_alive(period * 2) {
            notifier.watchdog();
        } else {
            tracing::warn!("event pump silent: withholding the watchdog ping");
        }
    }
}
