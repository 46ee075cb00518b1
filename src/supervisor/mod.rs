//! The supervision tree: startup in runbook order, restart policy, reconnect recovery, shutdown.
//!
//! ```text
//! supervisor (root: owns the shutdown tokens, the TaskTracker and the escalation slot)
//! ├── link/control  ┐ each connects (retrying while unreachable), verifies, publishes its
//! ├── link/data     │ connection; a lost connection is a restart (backoff + intensity)
//! ├── link/event    ┘
//! ├── event_pump        depends on event: replays, subscribes and catches up per connection
//! ├── monitors          depends on data (streams) and control (bootstrap)
//! ├── workflows         depends on control; signal → prepare → execute
//! ├── reconciler        depends on control; on start, after every reconnect, on a timer
//! └── ops               health/metrics HTTP, sd_notify watchdog, state gauges
//! ```
//!
//! Startup waits for each hub in order (Control → Data → Event), then for the pump to be live,
//! bootstraps the monitors, reconciles, and only then reports READY. Shutdown stops the intake,
//! gives in-flight workflows the grace period, stops the children, and closes the hubs
//! Event → Data → Control.

pub mod child;
pub mod context;
pub mod links;
pub mod policy;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::timeout;
use tokio_util::task::TaskTracker;

use self::child::{Escalation, Fatal, supervise};
use self::context::{Ctx, Shutdown, Wakeups, hub_links, next_link};
use self::links::{Connector, Generations, run_link};
use crate::config::{ConfigError, Settings, SynchronousMode};
use crate::exit;
use crate::ops::http::{self, OpsState};
use crate::ops::metrics::StateGauges;
use crate::ops::notify::Notifier;
use crate::ops::signals;
use crate::store::{Store, StoreError, StoreOptions, Synchronous};
use crate::tasks::{dedupe, event_pump, position_monitor, reconciler, workflow};
use mesolive_api::Hub;

/// How often the store-derived gauges (intents, workflows by state) are refreshed.
const GAUGE_REFRESH: Duration = Duration::from_secs(5);
/// Most time the final stop steps (closing hubs, the store) may take.
const CLOSE_BUDGET: Duration = Duration::from_secs(5);

/// Why the daemon stopped with a non-zero status.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// A setting is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The state database cannot be used.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ops listener cannot bind.
    #[error("ops.listen {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// TLS trust settings cannot be loaded.
    #[error("hubs.extra_ca_file: {0}")]
    Tls(String),
    /// A fatal condition during the run.
    #[error(transparent)]
    Fatal(#[from] Fatal),
}

impl SupervisorError {
    /// The process exit status (see the README's table).
    pub fn exit_code(&self) -> u8 {
        match self {
            SupervisorError::Config(_) | SupervisorError::Tls(_) => exit::CONFIG,
            SupervisorError::Store(StoreError::Locked { .. } | StoreError::Busy { .. }) => {
                exit::TEMP_FAIL
            }
            SupervisorError::Store(_) => exit::IO_ERROR,
            SupervisorError::Listen { .. } => exit::FAILURE,
            SupervisorError::Fatal(Fatal::Unauthorized(_)) => exit::NO_PERMISSION,
            SupervisorError::Fatal(Fatal::Setup(_)) => exit::CONFIG,
            SupervisorError::Fatal(Fatal::Store(_)) => exit::IO_ERROR,
            SupervisorError::Fatal(Fatal::CursorAhead { .. } | Fatal::Unsupported(_)) => {
                exit::PROTOCOL
            }
            SupervisorError::Fatal(Fatal::Intensity(_)) => exit::FAILURE,
        }
    }
}

/// The store options that `[database]` asks for.
pub fn store_options(settings: &Settings) -> StoreOptions {
    StoreOptions {
        synchronous: match settings.database.synchronous {
            SynchronousMode::Full => Synchronous::Full,
            SynchronousMode::Normal => Synchronous::Normal,
        },
        busy_timeout: settings.database.busy_timeout,
        read_pool_size: settings.database.read_pool_size,
    }
}

/// `mesolive-supervisor run`: runs the daemon until SIGTERM/SIGINT or a fatal condition.
pub async fn run(settings: Settings, notifier: Notifier) -> Result<(), SupervisorError> {
    let shutdown = Shutdown::default();
    let signal_watch = tokio::spawn(signals::watch_termination(
        shutdown.intake.clone(),
        shutdown.force.clone(),
    ));
    let result = run_until_stopped(settings, notifier, shutdown.clone(), OpsState::default()).await;
    shutdown.force.cancel();
    let _ = signal_watch.await;
    result
}

/// Runs the daemon with externally owned shutdown tokens and health/metrics (the demo watches
/// them, and stops the daemon by cancelling `shutdown.intake`).
pub async fn run_until_stopped(
    settings: Settings,
    notifier: Notifier,
    shutdown: Shutdown,
    ops: OpsState,
) -> Result<(), SupervisorError> {
    let listen = settings.ops.listen_addr()?;
    let tls = signalr::tls::client_config(&settings.hubs.extra_ca_file)
        .map_err(|err| SupervisorError::Tls(err.to_string()))?;
    let store = Arc::new(Store::open(&settings.database.path, &store_options(&settings)).await?);
    let listener = http::bind(listen)
        .await
        .map_err(|source| SupervisorError::Listen {
            addr: listen,
            source,
        })?;
    let (senders, links) = hub_links();
    let ctx = Arc::new(Ctx {
        settings: Arc::new(settings),
        store,
        metrics: ops.metrics.clone(),
        health: ops.health.clone(),
        links,
        wake: Wakeups::default(),
        shutdown,
        directory: Default::default(),
        drives: tokio::sync::watch::Sender::new(0),
        bootstrapped: tokio::sync::watch::Sender::new(0),
    });
    let escalation = Arc::new(Escalation::default());
    // Two trackers: the supervised children stop first (and are waited for within the grace);
    // the ops tasks (health, metrics, watchdog) answer until the very end.
    let children = TaskTracker::new();
    let ops_tasks = TaskTracker::new();
    let ops_stop = tokio_util::sync::CancellationToken::new();
    ops_tasks.spawn(http::serve(listener, ops, ops_stop.clone()));
    ops_tasks.spawn(refresh_gauges(ctx.clone()));
    ops_tasks.spawn(watchdog(ctx.clone(), notifier.clone()));
    children.spawn(dedupe::run(ctx.clone()));

    let connector = Connector::new(&ctx.settings, Some(tls)).with_metrics(ctx.metrics.clone());
    let senders = Arc::new(senders);
    let generations = Arc::new(Generations::default());
    notifier.status("starting: connecting the Control Hub");
    let started = start_in_runbook_order(
        &ctx,
        &children,
        &escalation,
        &connector,
        &senders,
        &generations,
        &notifier,
    )
    .await;
    if started {
        ctx.health.set_started();
        notifier.ready("running");
        tracing::info!("ready");
    }

    tokio::select! {
        _ = ctx.shutdown.intake.cancelled() => {}
        _ = ctx.shutdown.force.cancelled() => {}
    }
    stop(&ctx, &children, &notifier).await;
    ops_stop.cancel();
    ops_tasks.close();
    let _ = timeout(CLOSE_BUDGET, ops_tasks.wait()).await;
    if let Ok(ctx) = Arc::try_unwrap(ctx)
        && let Ok(store) = Arc::try_unwrap(ctx.store)
    {
        let _ = timeout(CLOSE_BUDGET, store.close()).await;
    }
    match escalation.get() {
        Some(fatal) => Err(fatal.into()),
        None => Ok(()),
    }
}

/// Startup in runbook order; returns whether the daemon got to READY (false if it was asked to
/// stop or a fatal condition came first).
async fn start_in_runbook_order(
    ctx: &Arc<Ctx>,
    tracker: &TaskTracker,
    escalation: &Arc<Escalation>,
    connector: &Connector,
    senders: &Arc<context::HubLinkSenders>,
    generations: &Arc<Generations>,
    notifier: &Notifier,
) -> bool {
    let stop = ctx.shutdown.children.clone();
    let intake = ctx.shutdown.intake.clone();
    // The pump starts first and waits (beating) for the Event Hub, which comes up last.
    tracker.spawn(supervise(
        "event_pump",
        ctx.clone(),
        escalation.clone(),
        event_pump::run,
    ));
    for hub in Hub::ALL {
        let (connector, senders, generations) =
            (connector.clone(), senders.clone(), generations.clone());
        tracker.spawn(supervise(
            hub_child_name(hub),
            ctx.clone(),
            escalation.clone(),
            move |ctx| {
                run_link(
                    ctx,
                    hub,
                    connector.clone(),
                    senders.clone(),
                    generations.clone(),
                )
            },
        ));
        notifier.status(&format!("starting: waiting for the {} hub", hub.as_str()));
        let up = match hub {
            Hub::Control => wait_up(&mut ctx.links.control.clone(), &stop, &intake).await,
            Hub::Data => wait_up(&mut ctx.links.data.clone(), &stop, &intake).await,
            Hub::Event => wait_up(&mut ctx.links.event.clone(), &stop, &intake).await,
        };
        if !up {
            return false;
        }
    }
    notifier.status("starting: replaying events");
    let mut live = ctx.health.subscribe_caught_up();
    let caught_up = tokio::select! {
        result = live.wait_for(|live| *live) => result.is_ok(),
        _ = stop.cancelled() => false,
        _ = intake.cancelled() => false,
    };
    if !caught_up {
        return false;
    }
    notifier.status("starting: bootstrapping position monitors");
    let mut bootstrapped = ctx.bootstrapped.subscribe();
    tracker.spawn(supervise(
        "monitors",
        ctx.clone(),
        escalation.clone(),
        position_monitor::run,
    ));
    let monitors_up = tokio::select! {
        result = bootstrapped.wait_for(|generation| *generation > 0) => result.is_ok(),
        _ = stop.cancelled() => false,
        _ = intake.cancelled() => false,
    };
    if !monitors_up {
        return false;
    }
    notifier.status("starting: reconciling in-flight intents and jobs");
    if let Err(err) = reconciler::reconcile_once(ctx).await {
        tracing::warn!(error = %err, "startup reconciliation incomplete; the reconciler retries");
    }
    tracker.spawn(supervise(
        "reconciler",
        ctx.clone(),
        escalation.clone(),
        reconciler::run,
    ));
    tracker.spawn(supervise(
        "workflows",
        ctx.clone(),
        escalation.clone(),
        workflow::run,
    ));
    !(stop.is_cancelled() || intake.is_cancelled())
}

fn hub_child_name(hub: Hub) -> &'static str {
    match hub {
        Hub::Control => "link/control",
        Hub::Data => "link/data",
        Hub::Event => "link/event",
    }
}

async fn wait_up<T: Clone>(
    link: &mut tokio::sync::watch::Receiver<Option<context::Linked<T>>>,
    stop: &tokio_util::sync::CancellationToken,
    intake: &tokio_util::sync::CancellationToken,
) -> bool {
    tokio::select! {
        linked = next_link(link, None, stop) => linked.is_some(),
        _ = intake.cancelled() => false,
    }
}

/// The stop sequence: intake closed → in-flight workflows get the grace → children stop →
/// in-flight intents are marked for reconciliation → hubs close Event → Data → Control.
async fn stop(ctx: &Arc<Ctx>, children: &TaskTracker, notifier: &Notifier) {
    let links = &ctx.links;
    notifier.stopping();
    ctx.health.set_stopping();
    ctx.shutdown.intake.cancel();
    let grace = ctx.settings.supervisor.shutdown_grace;
    tracing::info!(grace = ?grace, "stopping: no new signals or intents; waiting for in-flight workflows");
    tokio::select! {
        _ = workflow::drained(ctx) => {}
        _ = tokio::time::sleep(grace) => tracing::warn!("shutdown grace elapsed with workflows in flight"),
        _ = ctx.shutdown.force.cancelled() => {}
    }
    ctx.shutdown.children.cancel();
    children.close();
    tokio::select! {
        _ = timeout(grace, children.wait()) => {}
        _ = ctx.shutdown.force.cancelled() => {}
    }
    match ctx.store.abandon_in_flight_intents().await {
        Ok(n) if n > 0 => tracing::info!(
            intents = n,
            "in-flight intents left for reconciliation on next start"
        ),
        Ok(_) => {}
        Err(err) => tracing::error!(error = %err, "could not mark in-flight intents"),
    }
    let event = links.event.borrow().clone();
    if let Some(event) = event {
        let _ = timeout(CLOSE_BUDGET, event.client.0.connection().close()).await;
    }
    let data = links.data.borrow().clone();
    if let Some(data) = data {
        let _ = timeout(CLOSE_BUDGET, data.client.0.connection().close()).await;
    }
    let control = links.control.borrow().clone();
    if let Some(control) = control {
        let _ = timeout(CLOSE_BUDGET, control.client.0.connection().close()).await;
    }
    let cursor = ctx.store.cursor().await.ok().flatten();
    tracing::info!(cursor = ?cursor, "stopped");
}

/// Refreshes the store-derived gauges until the daemon stops.
async fn refresh_gauges(ctx: Arc<Ctx>) {
    let mut tick = tokio::time::interval(GAUGE_REFRESH);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = ctx.shutdown.children.cancelled() => return,
        }
        if let Ok(summary) = ctx.store.state_counts().await {
            ctx.metrics.set_state_gauges(StateGauges {
                intents: summary.intents,
                workflows: summary.workflows,
            });
        }
    }
}

/// Sends `WATCHDOG=1` at half of `WATCHDOG_USEC` while the event pump loop turns.
async fn watchdog(ctx: Arc<Ctx>, notifier: Notifier) {
    let Some(period) = Notifier::watchdog_period() else {
        return;
    };
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = ctx.shutdown.children.cancelled() => return,
        }
        if ctx.health.pump_alive(period * 2) {
            notifier.watchdog();
        } else {
            tracing::warn!("event pump silent: withholding the watchdog ping");
        }
    }
}
