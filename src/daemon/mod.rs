//! The daemon: assembles the supervision tree from the kit (`supervisor/`) and the tasks
//! (`tasks/`), starts it in runbook order, runs it until it is stopped, and stops it.
//!
//! ```text
//! daemon (owns the drain, the children's TaskTracker and the ops listener)
//! ├── link/control  ┐ each connects (retrying while unreachable), verifies, publishes its
//! ├── link/data     │ connection; a lost connection is a restart (backoff + intensity)
//! ├── link/event    ┘
//! ├── event_pump        depends on event: replays, subscribes and catches up per connection
//! ├── monitors          depends on data (streams) and control (bootstrap)
//! ├── workflows         depends on control; signal → prepare → execute
//! ├── reconciler        depends on control; on start, after every reconnect, on a timer
//! ├── dedupe            prunes the dedupe set and the delivered notifications
//! ├── risk              the daily-loss watcher (switches the trading state)
//! ├── notifications     delivers the outbox to every sink, in order, at least once
//! └── upkeep            health/metrics HTTP, the control socket, reload on SIGHUP,
//!                       sd_notify watchdog, state gauges,
//!                       conditions over time (hub down, not ready) written to the outbox
//! ```
//!
//! * `start`: hubs in runbook order (Control → Data → Event), the pump live, the monitors
//!   bootstrapped, a reconciliation — and only then READY.
//! * `stop`: the drain's phases — intake closed, in-flight work within the grace, children
//!   stopped, in-flight intents marked for reconciliation, hubs closed Event → Data → Control.
//! * `upkeep`: the ops listener, the control socket, the watchdog and the gauges, which answer
//!   until the end.
//!
//! The trading state is read from the store (or initialised from `automation.initial_state`)
//! before anything connects: a daemon halted before a restart starts halted.
//!
//! In-process use (the demo, the benchmarks): [`Daemon::build`], then [`Daemon::ops_addr`],
//! [`Daemon::ops`] and [`Daemon::drain`] before [`Daemon::run_until_stopped`].

mod start;
mod stop;
mod upkeep;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ConfigError, FirstRun, Settings, SynchronousMode};
use crate::control::reload;
use crate::control::server::{BindError, ControlSocket};
use crate::exit;
use crate::notifications::delivery;
use crate::notifications::notice;
use crate::notifications::sink::{self, Sink};
use crate::ops::http::{self, OpsState};
use crate::ops::notify::Notifier;
use crate::ops::signals::{Hangups, Termination};
use crate::store::{ActionSource, Store, StoreError, StoreOptions, Synchronous, TradingState};
use crate::supervisor::child::{Fatal, supervise};
use crate::supervisor::context::{Ctx, HubLinkSenders, hub_links};
use crate::supervisor::drain::Drain;
use crate::supervisor::links::Connector;
use crate::tasks::{dedupe, risk};

/// Most time the last steps (the ops tasks, closing the store) may take.
const CLOSE_BUDGET: Duration = Duration::from_secs(5);

/// Most time the notice of a fatal condition may take to be written before the exit.
const LAST_WORDS: Duration = Duration::from_secs(1);

/// Why the daemon stopped with a non-zero status.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
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
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The control socket cannot be served.
    #[error(transparent)]
    ControlSocket(#[from] BindError),
    /// TLS trust settings cannot be loaded.
    #[error("hubs.extra_ca_file: {0}")]
    Tls(#[source] signalr::tls::TlsError),
    /// A fatal condition during the run.
    #[error(transparent)]
    Fatal(#[from] Fatal),
}

impl DaemonError {
    /// The process exit status (see the README's table).
    pub fn exit_code(&self) -> u8 {
        match self {
            DaemonError::Config(_) | DaemonError::Tls(_) => exit::CONFIG,
            DaemonError::Store(StoreError::Locked { .. } | StoreError::Busy { .. }) => {
                exit::TEMP_FAIL
            }
            DaemonError::Store(_) => exit::IO_ERROR,
            DaemonError::Listen { .. } | DaemonError::ControlSocket(_) => exit::FAILURE,
            DaemonError::Fatal(fatal) => fatal_exit_code(fatal),
        }
    }
}

/// The exit status a fatal condition ends the daemon with.
fn fatal_exit_code(fatal: &Fatal) -> u8 {
    match fatal {
        Fatal::Unauthorized(_) => exit::NO_PERMISSION,
        Fatal::Setup(_) => exit::CONFIG,
        Fatal::Store(_) => exit::IO_ERROR,
        Fatal::CursorAhead { .. } | Fatal::Unsupported(_) => exit::PROTOCOL,
        Fatal::HistoryGap { .. } => exit::NO_INPUT,
        Fatal::Intensity(_) => exit::FAILURE,
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
pub async fn run(settings: Settings, notifier: Notifier) -> Result<(), DaemonError> {
    let termination = Termination::install();
    let hangups = Hangups::install();
    let daemon = Daemon::build(settings, notifier)
        .await?
        .with_hangups(hangups);
    // Standard output carries this one line and nothing else, whatever `log.filter` says:
    // whoever asked for port 0 learns the port from it.
    println!("{OPS_BOUND}{}", daemon.ops_addr());
    let signals = tokio::spawn(stop_on_signals(termination, daemon.drain()));
    let result = daemon.run_until_stopped().await;
    signals.abort();
    result
}

/// Maps termination signals onto `drain`: the first closes intake (a graceful stop), the
/// next one — or the first, if the stop had already begun — forces it.
pub async fn stop_on_signals(mut termination: Termination, drain: Drain) {
    loop {
        let name = termination.next().await;
        if drain.close_intake() {
            tracing::info!(
                signal = name,
                "stopping gracefully (send it again to stop at once)"
            );
        } else {
            tracing::warn!(signal = name, "second signal: stopping at once");
            drain.force();
            return;
        }
    }
}

/// Reloads the configuration at every SIGHUP until the children stop (a refusal is logged and
/// counted by the reload itself).
async fn reload_on_hangups(ctx: Arc<Ctx>, mut hangups: Hangups) {
    loop {
        tokio::select! {
            _ = hangups.next() => {}
            _ = ctx.drain().stopping() => return,
        }
        tracing::info!(signal = "SIGHUP", "reloading the configuration");
        let _ = reload::reload(&ctx, ActionSource::Sighup).await;
    }
}

/// Awaits `work` for at most [`CLOSE_BUDGET`], and not at all once the stop is forced;
/// whether it finished.
async fn finished_unless_forced<T>(drain: &Drain, work: impl Future<Output = T>) -> bool {
    tokio::select! {
        finished = timeout(CLOSE_BUDGET, work) => finished.is_ok(),
        _ = drain.forced() => false,
    }
}

/// What precedes the bound ops address on the daemon's standard output (and in its log).
/// Whoever starts the daemon with `ops.listen` on port 0 (the tests, the benchmark's child
/// process) reads the port from that line with [`ops_addr_in_log`]; writer and reader of the
/// line are kept together here.
const OPS_BOUND: &str = "ops listening on ";

/// The ops address the daemon's output or log (text or JSON) says it bound, from the last such
/// line.
pub fn ops_addr_in_log(log: &str) -> Option<SocketAddr> {
    log.lines().rev().find_map(|line| {
        let rest = line.split(OPS_BOUND).nth(1)?;
        let addr = rest.split(|c: char| c == '"' || c.is_whitespace()).next()?;
        addr.parse().ok()
    })
}

/// A daemon whose store is open and whose ops listener is bound, not yet connected.
#[derive(Debug)]
pub struct Daemon {
    ctx: Arc<Ctx>,
    senders: HubLinkSenders,
    connector: Connector,
    listener: TcpListener,
    ops_addr: SocketAddr,
    ops: OpsState,
    notifier: Notifier,
    control: ControlSocket,
    hangups: Option<Hangups>,
    sinks: Arc<[Sink]>,
    notify_client: reqwest::Client,
    /// Notifications the outbox had dropped before this start (the counter counts from here).
    dropped_before: i64,
}

impl Daemon {
    /// Checks the trust settings, opens the store and binds the ops listener — everything that
    /// fails on a setting or the database, before any hub is touched.
    pub async fn build(settings: Settings, notifier: Notifier) -> Result<Daemon, DaemonError> {
        let listen = settings.ops.listen;
        let tls =
            signalr::tls::client_config(&settings.hubs.extra_ca_file).map_err(DaemonError::Tls)?;
        let sinks: Arc<[Sink]> = Sink::all(&settings.notify)?.into();
        let notify_client = sink::client(&tls, settings.notify.timeout).map_err(|err| {
            DaemonError::Tls(signalr::tls::TlsError::Rustls(
                err.without_url().to_string(),
            ))
        })?;
        let store =
            Arc::new(Store::open(&settings.database.path, &store_options(&settings)).await?);
        let trading = store
            .trading_state_or_init(settings.automation.initial_state)
            .await?;
        if trading != TradingState::Active {
            tracing::warn!(
                trading_state = trading.as_str(),
                "starting with the stored trading state {trading}: `ctl resume` to trade"
            );
        }
        let control = ControlSocket::bind(&settings.control_socket()).await?;
        let start = notice::started(
            env!("CARGO_PKG_VERSION"),
            &settings.automation.mode.to_string(),
            store.cursor().await?,
            match settings.events.first_run {
                FirstRun::Latest => "the server's latest event",
                FirstRun::All => "the start of the server's history",
            },
        );
        let registrations: Vec<_> = sinks.iter().map(Sink::registration).collect();
        let outbox = store
            .open_outbox(&registrations, settings.notify.max_pending, &start)
            .await?;
        let listener = http::bind(listen)
            .await
            .map_err(|source| DaemonError::Listen {
                addr: listen,
                source,
            })?;
        let ops_addr = listener
            .local_addr()
            .map_err(|source| DaemonError::Listen {
                addr: listen,
                source,
            })?;
        tracing::info!(ops_listen = %ops_addr, "{OPS_BOUND}{ops_addr}");
        let ops = OpsState::default();
        ops.metrics.set_trading_state(trading);
        let (senders, links) = hub_links();
        let connector = Connector::new(&settings, Some(tls)).with_metrics(ops.metrics.clone());
        let ctx = Arc::new(
            Ctx::new(
                Arc::new(settings),
                store,
                ops.metrics.clone(),
                ops.health.clone(),
                links,
                Drain::new(),
            )
            .with_trading_state(trading),
        );
        tracing::info!(control_socket = %control.path().display(), "control socket listening");
        Ok(Daemon {
            ctx,
            senders,
            connector,
            listener,
            ops_addr,
            ops,
            notifier,
            control,
            hangups: None,
            sinks,
            notify_client,
            dropped_before: outbox.dropped,
        })
    }

    /// Reloads the configuration on every SIGHUP from `hangups` (`run` installs them; an
    /// in-process daemon reloads through its control socket only).
    pub fn with_hangups(mut self, hangups: Hangups) -> Daemon {
        self.hangups = Some(hangups);
        self
    }

    /// The address the ops listener actually bound (`ops.listen` may ask for port 0).
    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_addr
    }

    /// Health and metrics, as `/readyz` and `/metrics` serve them.
    pub fn ops(&self) -> OpsState {
        self.ops.clone()
    }

    /// The stop handle: `close_intake()` stops it as SIGTERM would, `force()` as a second one.
    pub fn drain(&self) -> Drain {
        self.ctx.drain().clone()
    }

    /// Starts in runbook order and runs until the drain is closed (a signal, the caller, a
    /// fatal condition), then stops; the fatal condition that stopped it, if any, is the error.
    pub async fn run_until_stopped(self) -> Result<(), DaemonError> {
        let Daemon {
            ctx,
            senders,
            connector,
            listener,
            ops,
            notifier,
            control,
            hangups,
            sinks,
            notify_client,
            dropped_before,
            ..
        } = self;
        let serving = CancellationToken::new();
        let mut upkeep = vec![
            tokio::spawn(http::serve(
                listener,
                ops,
                serving.clone().cancelled_owned(),
            )),
            tokio::spawn(control.serve(ctx.clone(), serving.clone())),
            tokio::spawn(upkeep::refresh_gauges(ctx.clone(), dropped_before)),
            tokio::spawn(upkeep::watchdog(ctx.clone(), notifier.clone())),
            tokio::spawn(upkeep::watch_conditions(ctx.clone())),
        ];
        if let Some(hangups) = hangups {
            upkeep.push(tokio::spawn(reload_on_hangups(ctx.clone(), hangups)));
        }
        let children = TaskTracker::new();
        children.spawn(dedupe::run(ctx.clone()));
        if !sinks.is_empty() {
            // First of all: the hubs may not come up, and that too is to be told.
            children.spawn(supervise("notifications", ctx.clone(), move |ctx| {
                delivery::run(ctx, sinks.clone(), notify_client.clone())
            }));
        }
        children.spawn(supervise("risk", ctx.clone(), risk::run));
        notifier.status("starting: connecting the Control Hub");
        let started =
            start::in_runbook_order(&ctx, &children, &connector, &Arc::new(senders), &notifier)
                .await;
        if started {
            ctx.health().set_started();
            notifier.ready("running");
            tracing::info!("ready");
        }
        ctx.drain().intake_closed().await;
        stop::in_order(&ctx, &children, &notifier).await;
        serving.cancel();
        let drain = ctx.drain().clone();
        for task in upkeep {
            let abort = task.abort_handle();
            if !finished_unless_forced(&drain, task).await {
                abort.abort();
            }
        }
        let fatal = drain.take_fatal();
        if let Some(fatal) = &fatal {
            // Best effort: delivered after the next start if not before.
            let last_words = notice::fatal(fatal, fatal_exit_code(fatal));
            match timeout(LAST_WORDS, ctx.store().notify(&last_words)).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "could not queue the notification of the fatal condition")
                }
                Err(_) => {
                    tracing::warn!("queuing the notification of the fatal condition took too long")
                }
            }
        }
        if let Ok(ctx) = Arc::try_unwrap(ctx)
            && let Ok(store) = Arc::try_unwrap(ctx.into_store())
        {
            finished_unless_forced(&drain, store.close()).await;
        }
        match fatal {
            Some(fatal) => Err(fatal.into()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_ops_address_is_read_back_from_text_and_json_logs() {
        let text = "2026-12-05T01:00:00Z  INFO ops listening on 127.0.0.1:41234\n";
        assert_eq!(ops_addr_in_log(text), Some(([127, 0, 0, 1], 41234).into()));
        let json = concat!(
            r#"{"level":"INFO","fields":{"message":"ops listening on 127.0.0.1:1","ops_listen":"127.0.0.1:1"}}"#,
            "\n",
            r#"{"level":"INFO","fields":{"message":"ops listening on [::1]:9187","ops_listen":"[::1]:9187"}}"#,
        );
        assert_eq!(
            ops_addr_in_log(json),
            Some("[::1]:9187".parse().expect("an address")),
            "the last start wins"
        );
        assert_eq!(ops_addr_in_log("no such line\n"), None);
    }
}
