//! Position monitors: one task per open position, streaming `StreamPositionData` into a
//! `watch` of the latest value (never a queue: streams are latest-value by nature), restarted
//! with backoff when the stream fails, restarted at once with a fresh snapshot when the Data
//! Hub reconnects, and resynced from a snapshot periodically to correct drift.
//!
//! The manager is level-triggered: it reads the open positions from the store (kept current by
//! the event pump's `OnPositionUpdate` effects and by a Control Hub bootstrap on every Control
//! Hub connection) and starts or stops monitors to match. A restart resumes the same set.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::effects;
use crate::ops::metrics::Metrics;
use crate::store::{PositionState, Timestamp};
use crate::supervisor::child::ChildError;
use crate::supervisor::context::{Ctx, link_lost, next_link};
use crate::supervisor::policy::backoff;
use mesolive_api::client::{ControlHub, DataHub, HubError, decode_as};
use mesolive_api::models::PositionDataEntry;
use mesolive_api::wire::methods;

/// How often the manager re-reads the store even without a wake-up.
const RECONCILE_EVERY: Duration = Duration::from_secs(5);
/// Page size for ListPositions.
const PAGE_SIZE: u32 = 200;

/// The latest market data of one position and when it arrived.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Local arrival time (staleness is judged on it).
    pub received_at: Instant,
    /// The data.
    pub entry: PositionDataEntry,
}

struct Monitor {
    stop: CancellationToken,
    handle: JoinHandle<()>,
    latest: watch::Receiver<Option<Sample>>,
}

/// Runs the monitor manager until the daemon stops.
pub async fn run(ctx: Arc<Ctx>) -> Result<(), ChildError> {
    let mut monitors: HashMap<i64, Monitor> = HashMap::new();
    let mut control = ctx.links().control();
    let mut bootstrapped_generation = None;
    let mut startup_wait = ctx.settings().supervisor.backoff_initial;
    let mut tick = tokio::time::interval(RECONCILE_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let result = loop {
        let current = control.borrow_and_update().clone();
        if let Some(linked) = current
            && Some(linked.generation) != bootstrapped_generation
        {
            match bootstrap(&ctx, &linked.client).await {
                Ok(()) => {
                    bootstrapped_generation = Some(linked.generation);
                    ctx.set_bootstrapped(linked.generation);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "position bootstrap failed; retrying");
                    // Retry soon rather than at the next reconcile tick: startup waits on it.
                    tokio::select! {
                        _ = tokio::time::sleep(startup_wait) => {}
                        _ = ctx.drain().stopping() => break Ok(()),
                    }
                    startup_wait = (startup_wait * 2).min(RECONCILE_EVERY);
                    continue;
                }
            }
        }
        if let Err(err) = reconcile(&ctx, &mut monitors).await {
            break Err(err);
        }
        tokio::select! {
            _ = ctx.wake().positions.notified() => {}
            _ = control.changed() => {}
            _ = tick.tick() => {}
            _ = ctx.drain().stopping() => break Ok(()),
        }
    };
    for (_, monitor) in monitors.drain() {
        monitor.stop.cancel();
        let _ = monitor.handle.await;
    }
    Metrics::set(&ctx.metrics().monitors_running, 0);
    result
}

/// Runbook: list strategies, then their positions (paged); record which are open and closed.
/// Only positions the server lists are touched, so an event applied meanwhile is never undone.
async fn bootstrap(ctx: &Ctx, control: &ControlHub) -> Result<(), HubError> {
    let strategies: Vec<i64> = ctx.directory().strategies.keys().copied().collect();
    let mut listed = Vec::new();
    for strategy_id in strategies {
        let positions = control.list_positions(strategy_id, PAGE_SIZE).await?;
        listed.extend(positions.iter().map(effects::listed_position));
    }
    let open = listed
        .iter()
        .filter(|p| p.state == PositionState::Open)
        .count();
    ctx.store()
        .upsert_positions(&listed)
        .await
        .map_err(|err| HubError::Decode {
            method: methods::LIST_POSITIONS.into(),
            reason: format!("storing positions: {err}"),
        })?;
    tracing::info!(
        listed = listed.len(),
        open,
        "positions bootstrapped from the Control Hub"
    );
    ctx.wake().positions.notify_one();
    Ok(())
}

async fn reconcile(ctx: &Arc<Ctx>, monitors: &mut HashMap<i64, Monitor>) -> Result<(), ChildError> {
    let open = ctx
        .store()
        .open_position_keys()
        .await
        .map_err(|err| ChildError::store("reading open positions", err))?;
    let wanted: HashMap<i64, ()> = open.iter().map(|p| (p.position_id, ())).collect();
    monitors.retain(|id, monitor| {
        let keep = wanted.contains_key(id) && !monitor.handle.is_finished();
        if !keep {
            monitor.stop.cancel();
            tracing::info!(position = id, "monitor stopped");
        }
        keep
    });
    for position in open {
        monitors.entry(position.position_id).or_insert_with(|| {
            tracing::info!(position = position.position_id, "monitor started");
            start(ctx.clone(), position.position_id)
        });
    }
    let stale_after = ctx.settings().monitor.stale_after;
    let stale = monitors
        .values()
        .filter(|m| {
            m.latest
                .borrow()
                .as_ref()
                .is_none_or(|s| s.received_at.elapsed() > stale_after)
        })
        .count();
    Metrics::set(&ctx.metrics().monitors_running, monitors.len() as i64);
    Metrics::set(&ctx.metrics().positions_stale, stale as i64);
    Ok(())
}

fn start(ctx: Arc<Ctx>, position_id: i64) -> Monitor {
    let stop = CancellationToken::new();
    let (sender, latest) = watch::channel(None);
    let span = tracing::info_span!("position", id = position_id);
    let handle = tokio::spawn(monitor(ctx, position_id, sender, stop.clone()).instrument(span));
    Monitor {
        stop,
        handle,
        latest,
    }
}

/// One position: snapshot, stream, periodic resync; restarts on failure and on reconnect.
async fn monitor(
    ctx: Arc<Ctx>,
    position_id: i64,
    latest: watch::Sender<Option<Sample>>,
    stop: CancellationToken,
) {
    let mut data = ctx.links().data();
    let mut delays = backoff(&ctx.settings().supervisor);
    let mut first_start = true;
    loop {
        let Some(linked) = next_link(&mut data, None, stopped(&ctx, &stop)).await else {
            return;
        };
        if !first_start {
            Metrics::add(&ctx.metrics().stream_restarts, 1);
        }
        first_start = false;
        let ended = tokio::select! {
            ended = stream_until_failure(&ctx, &linked.client, position_id, &latest) => ended,
            _ = link_lost(&mut data, linked.generation) => StreamEnd::Reconnected,
            _ = stopped(&ctx, &stop) => return,
        };
        match ended {
            StreamEnd::Reconnected => {
                delays = backoff(&ctx.settings().supervisor);
                continue;
            }
            StreamEnd::Failed(reason) => {
                let delay = delays
                    .next()
                    .unwrap_or(ctx.settings().supervisor.backoff_max);
                tracing::debug!(position = position_id, %reason, retry_in = ?delay, "position stream ended");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stopped(&ctx, &stop) => return,
                }
            }
        }
    }
}

/// Resolves when this monitor is stopped by its manager, or the children stop.
async fn stopped(ctx: &Ctx, stop: &CancellationToken) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = ctx.drain().stopping() => {}
    }
}

enum StreamEnd {
    Reconnected,
    Failed(String),
}

async fn stream_until_failure(
    ctx: &Ctx,
    data: &DataHub,
    position_id: i64,
    latest: &watch::Sender<Option<Sample>>,
) -> StreamEnd {
    if let Err(err) = resync(ctx, data, position_id, latest).await {
        return StreamEnd::Failed(format!("snapshot: {err}"));
    }
    let mut stream = match data.stream_position(position_id) {
        Ok(stream) => stream,
        Err(err) => return StreamEnd::Failed(format!("stream: {err}")),
    };
    let period = ctx.settings().monitor.snapshot_resync_interval;
    let mut resync_tick = tokio::time::interval_at(Instant::now() + period, period);
    resync_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut streaming: Option<Streaming<'_>> = None;
    loop {
        tokio::select! {
            item = stream.next() => match item {
                Some(Ok(value)) => match decode_as::<PositionDataEntry>(methods::STREAM_POSITION_DATA, mesolive_api::wire::stream_item(value)) {
                    Ok(entry) => {
                        Metrics::add(&ctx.metrics().stream_items, 1);
                        streaming.get_or_insert_with(|| Streaming::new(ctx.metrics()));
                        latest.send_replace(Some(Sample { received_at: Instant::now(), entry }));
                    }
                    Err(err) => {
                        ctx.metrics().error("stream_decode");
                        tracing::warn!(error = %err, "position stream item ignored");
                    }
                },
                Some(Err(err)) => return StreamEnd::Failed(err.to_string()),
                None => return StreamEnd::Failed("stream completed".into()),
            },
            _ = resync_tick.tick() => {
                if let Err(err) = resync(ctx, data, position_id, latest).await {
                    return StreamEnd::Failed(format!("resync: {err}"));
                }
            }
        }
    }
}

/// Counts one monitor in `monitors_streaming` from its stream's first item until the stream
/// ends or the monitor is stopped (the guard drops with the stream's future).
struct Streaming<'a>(&'a Metrics);

impl<'a> Streaming<'a> {
    fn new(metrics: &'a Metrics) -> Self {
        metrics.monitors_streaming.inc();
        Streaming(metrics)
    }
}

impl Drop for Streaming<'_> {
    fn drop(&mut self) {
        self.0.monitors_streaming.dec();
    }
}

/// Takes a snapshot, publishes it as the latest value and persists it.
async fn resync(
    ctx: &Ctx,
    data: &DataHub,
    position_id: i64,
    latest: &watch::Sender<Option<Sample>>,
) -> Result<(), HubError> {
    let entry = data.position_snapshot(position_id).await?;
    Metrics::add(&ctx.metrics().snapshot_resyncs, 1);
    let json = serde_json::to_value(&entry).unwrap_or_default();
    if let Err(err) = ctx
        .store()
        .set_position_snapshot(position_id, &json, Timestamp::now())
        .await
    {
        ctx.metrics().error("store_snapshot");
        tracing::warn!(error = %err, "snapshot not persisted");
    }
    latest.send_replace(Some(Sample {
        received_at: Instant::now(),
        entry,
    }));
    Ok(())
}
