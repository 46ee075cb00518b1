//! The daemon: assembles the supervision tree from the kit (`supervisor/`) and the tasks
//! (`tasks/`), starts it in runbook order, runs it until it is stopped, and stops it.
//!
//! ```text
//! daemon (owns the drain and the ops listener; per term: the children's TaskTracker)
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
//! ├── conditions        conditions over time (hub down, not ready) written to the outbox
//! └── upkeep            (for the whole process) health/metrics HTTP, the control socket,
//!                       reload on SIGHUP, sd_notify watchdog, state gauges
//! ```
//!
//! * `start`: hubs in runbook order (Control → Data → Event), the pump live, the monitors
//!   bootstrapped, a reconciliation — and only then READY.
//! * `stop`: the drain's phases — intake closed, in-flight work within the grace, children
//!   stopped, in-flight intents marked for reconciliation, hubs closed Event → Data → Control.
//! * `upkeep`: the ops listener, the control socket, reload on SIGHUP, the watchdog and the
//!   gauges, which answer until the end (the control socket and reloads act on the term
//!   running, if any: a standby has none).
//! * `roles`: alone on its database (SQLite, or PostgreSQL without failover), the daemon runs
//!   one term; in a failover group it stands by until it holds the lease, leads for a term,
//!   and goes back to standby when it loses the lease — never exiting for that.
//! * `term`: one run of the tree above (a term as leader), started and stopped in order. Its
//!   first transaction opens the notification outbox (the sinks, the start once per process,
//!   `leader` for a failover leader); the trading state is read from the store (or initialised
//!   from `automation.initial_state`) before anything connects: a daemon halted before a
//!   restart (or a leader halted before a takeover) starts halted.
//!
//! In-process use (the demo, the benchmarks): [`Daemon::build`], then [`Daemon::ops_addr`],
//! [`Daemon::ops`] and [`Daemon::drain`] before [`Daemon::run_until_stopped`].

mod roles;
mod start;
mod stop;
mod term;
mod upkeep;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, Settings, SynchronousMode};
use crate::control::reload;
use crate::control::server::{BindError, ControlSocket, Terms};
use crate::exit;
use crate::notifications::sink::{self, Sink};
use crate::ops::http::{self, OpsState};
use crate::ops::notify::Notifier;
use crate::ops::signals::{Hangups, Termination};
use crate::store::{ActionSource, StoreError, StoreOptions, Synchronous};
use crate::supervisor::child::Fatal;
use crate::supervisor::drain::Drain;
use crate::supervisor::links::Connector;

/// Most time the last steps (the ops tasks, closing the store) may take.
const CLOSE_BUDGET: Duration = Duration::from_secs(5);

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
            DaemonError::Store(StoreError::InvalidUrl { .. } | StoreError::Refused { .. }) => {
                exit::CONFIG
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
        Fatal::LeaseHeld { .. } | Fatal::LeaseLost(_) => exit::TEMP_FAIL,
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

/// Reloads the configuration of the running term at every SIGHUP until the process stops (a
/// refusal is logged and counted by the reload itself). A standby has no term: it keeps the
/// settings it started with.
async fn reload_on_hangups(terms: Terms, mut hangups: Hangups, drain: Drain) {
    loop {
        tokio::select! {
            _ = hangups.next() => {}
            _ = drain.stopping() => return,
        }
        let term = terms.borrow().clone();
        match term {
            Some(ctx) => {
                tracing::info!(signal = "SIGHUP", "reloading the configuration");
                let _ = reload::reload(&ctx, ActionSource::Sighup).await;
            }
            None => tracing::warn!(
                signal = "SIGHUP",
                "not reloaded: no term is running (standing by, or starting); restart to change the settings"
            ),
        }
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

/// A daemon whose ops listener is bound and whose settings are checked, not yet connected.
#[derive(Debug)]
pub struct Daemon {
    settings: Arc<Settings>,
    connector: Connector,
    listener: TcpListener,
    ops_addr: SocketAddr,
    ops: OpsState,
    notifier: Notifier,
    drain: Drain,
    /// `ops.control_socket`, bound once the store is open (a second daemon on the same
    /// database is then refused by the database's lock, exit 75, not by the socket).
    control_socket: std::path::PathBuf,
    hangups: Option<Hangups>,
    notifications: Notifications,
}

/// The configured notification sinks and the HTTP client that delivers to them (a term's
/// `notifications` child).
#[derive(Debug, Clone)]
struct Notifications {
    sinks: Arc<[Sink]>,
    client: reqwest::Client,
}

impl Daemon {
    /// Checks the trust settings and the notification sinks and binds the ops listener —
    /// everything that fails on a setting, before the database or any hub is touched. The
    /// control socket is bound once the store is open.
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
        let control_socket = settings.control_socket();
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
        let connector = Connector::new(&settings, Some(tls)).with_metrics(ops.metrics.clone());
        Ok(Daemon {
            settings: Arc::new(settings),
            connector,
            listener,
            ops_addr,
            ops,
            notifier,
            drain: Drain::new(),
            control_socket,
            hangups: None,
            notifications: Notifications {
                sinks,
                client: notify_client,
            },
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
        self.drain.clone()
    }

    /// Opens the store, then runs in the role the settings give — alone on its database, or
    /// one of a failover group (standby until it holds the lease, leader while it does) —
    /// until the drain is closed (a signal, the caller, a fatal condition). The fatal
    /// condition that stopped it, if any, is the error.
    pub async fn run_until_stopped(self) -> Result<(), DaemonError> {
        let Daemon {
            settings,
            connector,
            listener,
            ops,
            notifier,
            drain,
            control_socket,
            hangups,
            notifications,
            ..
        } = self;
        let serving = CancellationToken::new();
        let process = roles::Process::new(
            settings,
            connector,
            ops,
            notifier,
            drain.clone(),
            notifications,
        );
        let mut upkeep = vec![tokio::spawn(http::serve(
            listener,
            process.ops.clone(),
            serving.clone().cancelled_owned(),
        ))];
        if let Some(hangups) = hangups {
            upkeep.push(tokio::spawn(reload_on_hangups(
                process.terms(),
                hangups,
                drain.clone(),
            )));
        }
        let opened = match roles::open_store(&process).await {
            Ok(Some(store)) => match ControlSocket::bind(&control_socket).await {
                Ok(control) => Ok(Some((store, control))),
                Err(err) => {
                    let _ = store.close().await;
                    Err(err.into())
                }
            },
            other => other.map(|_| None),
        };
        let result = match opened {
            Ok(Some((store, control))) => {
                tracing::info!(control_socket = %control.path().display(), "control socket listening");
                upkeep.push(tokio::spawn(
                    control.serve(process.terms(), serving.clone()),
                ));
                let store = Arc::new(store);
                let beside = [
                    tokio::spawn(upkeep::refresh_gauges(
                        store.clone(),
                        process.ops.metrics.clone(),
                        drain.clone(),
                    )),
                    tokio::spawn(upkeep::watchdog(
                        process.ops.health.clone(),
                        process.notifier.clone(),
                        drain.clone(),
                    )),
                ];
                let result = roles::run(&process, &store).await;
                // The role is over: what ran beside it stops too (a failover leader's term
                // stopped on a drain of its own, so the process's is only closed for intake).
                drain.stop_children();
                for task in beside {
                    let abort = task.abort_handle();
                    if !finished_unless_forced(&drain, task).await {
                        abort.abort();
                    }
                }
                if let Ok(store) = Arc::try_unwrap(store) {
                    finished_unless_forced(&drain, store.close()).await;
                }
                result
            }
            Ok(None) => Ok(()),
            Err(err) => Err(err),
        };
        serving.cancel();
        for task in upkeep {
            let abort = task.abort_handle();
            if !finished_unless_forced(&drain, task).await {
                abort.abort();
            }
        }
        result
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
