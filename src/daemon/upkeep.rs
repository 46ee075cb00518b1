//! What runs beside the children until the end: the store-derived gauges and the systemd
//! watchdog (the ops listener itself is `ops::http`).

use std::sync::Arc;
use std::time::Duration;

use crate::ops::metrics::StateGauges;
use crate::ops::notify::Notifier;
use crate::supervisor::context::Ctx;

/// How often the store-derived gauges (intents, workflows by state) are refreshed.
const GAUGE_REFRESH: Duration = Duration::from_secs(5);

/// Refreshes the store-derived gauges until the children stop.
pub(super) async fn refresh_gauges(ctx: Arc<Ctx>) {
    let mut tick = tokio::time::interval(GAUGE_REFRESH);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = ctx.drain().stopping() => return,
        }
        if let Ok(summary) = ctx.store().state_counts().await {
            ctx.metrics().set_state_gauges(StateGauges {
                intents: summary.intents,
                workflows: summary.workflows,
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
