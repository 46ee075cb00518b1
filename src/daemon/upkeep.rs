//! What runs beside the children: for the whole process, whatever the role, the
//! store-derived gauges and the systemd watchdog (the ops listener itself is `ops::http`); for
//! each term, the conditions that only exist over time (a hub down, not ready), observed and
//! queued as notifications.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use crate::notifications::Notice;
use crate::notifications::conditions::{Conditions, Observation};
use crate::ops::health::Health;
use crate::ops::metrics::{Metrics, StateGauges};
use crate::ops::notify::Notifier;
use crate::store::{Store, Timestamp};
use crate::supervisor::context::Ctx;
use crate::supervisor::drain::Drain;
use mesolive_api::Hub;

/// How often the store-derived gauges (intents, workflows by state, the oldest of each, the
/// overdue workflows, the outbox) are refreshed.
const GAUGE_REFRESH: Duration = Duration::from_secs(5);
/// Bounds of the conditions' tick (a quarter of the shortest threshold).
const CONDITION_TICK_MIN: Duration = Duration::from_millis(100);
const CONDITION_TICK_MAX: Duration = Duration::from_secs(1);
/// Most condition notices kept while the store refuses writes (the oldest go first).
const UNWRITTEN_MAX: usize = 100;

/// Refreshes the store-derived gauges until the daemon stops (reads only: a standby shows them
/// too). The dropped-notifications counter counts from the first read of the outbox.
pub(super) async fn refresh_gauges(store: Arc<Store>, metrics: Arc<Metrics>, drain: Drain) {
    let mut tick = tokio::time::interval(GAUGE_REFRESH);
    let mut dropped_before = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = drain.stopping() => return,
        }
        if let Ok(counts) = store.state_counts().await {
            let now = Timestamp::now();
            let age = |since: Option<Timestamp>| {
                since.map_or(0, |at| (now.unix_millis() - at.unix_millis()).max(0) / 1000)
            };
            metrics.set_state_gauges(StateGauges {
                workflow_oldest_active_seconds: age(counts.oldest_active_workflow),
                workflows_overdue: counts.overdue_workflows,
                intent_oldest_in_flight_seconds: age(counts.oldest_intent_in_flight),
                intents: counts.intents,
                workflows: counts.workflows,
            });
        }
        if let Ok(outbox) = store.outbox_status().await {
            let before = *dropped_before.get_or_insert(outbox.dropped);
            metrics.set_outbox(outbox.pending, outbox.dropped - before);
        }
    }
}

/// Observes the health record a few times per threshold and queues what
/// [`Conditions::observe`] says (a hub down, not ready, and their end), until the term's intake
/// closes: the stop's own not-ready is not news. A notice the store refuses now (a full disk)
/// is kept and written at a later tick, up to [`UNWRITTEN_MAX`].
pub(super) async fn watch_conditions(ctx: Arc<Ctx>) {
    let settings = &ctx.settings().notify;
    let shortest = settings.hub_down_after.min(settings.not_ready_after);
    let mut tick =
        tokio::time::interval((shortest / 4).clamp(CONDITION_TICK_MIN, CONDITION_TICK_MAX));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut conditions = Conditions::new(
        Instant::now(),
        settings.hub_down_after,
        settings.not_ready_after,
    );
    let mut unwritten: VecDeque<Notice> = VecDeque::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = ctx.drain().intake_closed() => return,
        }
        let health = ctx.health();
        unwritten.extend(conditions.observe(&Observation {
            at: Instant::now(),
            hubs_up: Hub::ALL.map(|hub| health.hub_up(hub)),
            ready: health.ready(),
            caught_up: health.caught_up(),
        }));
        while let Some(notice) = unwritten.front() {
            if let Err(err) = ctx.store().notify(notice).await {
                ctx.metrics().error("notify_store");
                tracing::warn!(error = %err, kind = %notice.kind, "could not queue a notification; trying again");
                break;
            }
            unwritten.pop_front();
        }
        while unwritten.len() > UNWRITTEN_MAX {
            unwritten.pop_front();
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
