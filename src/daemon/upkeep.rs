//! What runs beside the children until the end: the store-derived gauges and the systemd
//! watchdog (the ops listener itself is `ops::http`).

use std::sync::Arc;
use std::time::Duration;

use crate::ops::metrics::StateGauges;
use crate::ops::notify::Notifier;
use crate::store::Timestamp;
use crate::supervisor::context::Ctx;

/// How often the store-derived gauges (intents, workflows by state, the oldest of each, the
/// overdue workflows) are refreshed.
const GAUGE_REFRESH: Duration = Duration::from_secs(5);

/// Refreshes the store-derived gauges until the children stop.
pub(super) async fn refresh_gauges(ctx: Arc<Ctx>) {
    let mut tick = tokio::time::interval(GAUGE_REFRESH);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = ctx.drain().stopping() => return,
        }
        if let Ok(counts) = ctx.store().state_counts().await {
            let now = Timestamp::now();
            let age = |since: Option<Timestamp>| {
                since.map_or(0, |at| (now.unix_millis() - at.unix_millis()).max(0) / 1000)
            };
            ctx.metrics().set_state_gauges(StateGauges {
                workflow_oldest_active_seconds: age(counts.oldest_active_workflow),
                workflows_overdue: counts.overdue_workflows,
                intent_oldest_in_flight_seconds: age(counts.oldest_intent_in_flight),
                intents: counts.intents,
                workflows: counts.workflows,
            });
        }
    }
}

/// Sends `WATCHDOG=1` at half of `WATCHDOG_USEC` while the event pump loop turns.
pub(super) async fn watchdog(ctx: Arc<Ctx>, notifier: Notifier) {
    let Some(period) = Notifier::watchdog_period() else {
        return;
    };
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = ctx.drain().stopping() => return,
        }
        if ctx.health().pump_alive(period * 2) {
            notifier.watchdog();
        } else {
            tracing::warn!("event pump silent: withholding the watchdog ping");
        }
    }
}
