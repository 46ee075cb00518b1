//! The daemon inside the benchmark's process (`daemon::Daemon`), for the
//! scenarios whose figure is a moment the daemon reaches: its `OpsState` is read directly, so
//! polling costs an atomic load, not an HTTP request.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::BenchError;
use super::harness::{BenchSim, Scratch, on_own_runtime, until};
use crate::config::{ApiKey, Settings};
use crate::daemon::{Daemon, DaemonError};
use crate::ops::http::OpsState;
use crate::ops::notify::Notifier;
use crate::supervisor::drain::Drain;

/// How long a stopping daemon may take before the benchmark gives up on it.
const STOP_LIMIT: Duration = Duration::from_secs(30);
/// How often a condition on the daemon's state is checked.
const POLL: Duration = Duration::from_millis(1);

/// `base` pointed at `sim`, with its database in `scratch`, the ops listener on a free port
/// and short reconnect backoff; scenario-specific settings are changed by the caller.
pub(super) fn settings(base: &Settings, sim: &BenchSim, scratch: &Scratch) -> Settings {
    let mut settings = base.clone();
    settings.hubs.base_url = sim.running.hub_base_url();
    settings.hubs.probe_provider = "Sim".into();
    settings.api_key = Some(ApiKey::new(sim.running.token()));
    settings.database.path = scratch.database();
    if !settings.database.url.is_empty() {
        settings.database.schema = scratch.schema();
    }
    settings.ops.listen = (std::net::Ipv4Addr::LOCALHOST, 0).into();
    settings.supervisor.backoff_initial = Duration::from_millis(100);
    settings.supervisor.backoff_max = Duration::from_millis(500);
    settings
}

/// A daemon running in this process, on a runtime of its own ([`on_own_runtime`]), as it
/// would in its own process: its tasks do not share the simulator's scheduler.
pub(super) struct InProcess {
    /// Its health and metrics.
    pub ops: OpsState,
    drain: Drain,
    thread: std::thread::JoinHandle<()>,
    result: oneshot::Receiver<Result<(), DaemonError>>,
}

impl InProcess {
    /// Starts the daemon; it connects, replays and becomes ready on its own.
    pub(super) async fn start(settings: Settings) -> Result<InProcess, BenchError> {
        let (handles, built) = oneshot::channel();
        let (thread, result) = on_own_runtime("daemon", move || async move {
            let daemon = Daemon::build(settings, Notifier::disabled()).await?;
            let _ = handles.send((daemon.ops(), daemon.drain()));
            daemon.run_until_stopped().await
        })?;
        match built.await {
            Ok((ops, drain)) => Ok(InProcess {
                ops,
                drain,
                thread,
                result,
            }),
            // It stopped before it was built: its result says why.
            Err(_) => Err(match result.await {
                Ok(Err(err)) => BenchError::from(err),
                _ => BenchError::Child("the in-process daemon did not start".into()),
            }),
        }
    }

    /// Fails early if the daemon already stopped (a refused setting, a store error): a dead
    /// daemon would otherwise only show as a timeout.
    pub(super) fn check_alive(&self) -> Result<(), BenchError> {
        if self.thread.is_finished() {
            return Err(BenchError::Child(
                "the in-process daemon stopped unexpectedly".into(),
            ));
        }
        Ok(())
    }

    /// Waits until `condition` holds on the daemon's health and metrics (checked every
    /// millisecond: an atomic load each); the moment it was seen to hold.
    pub(super) async fn wait(
        &self,
        what: &str,
        limit: Duration,
        condition: impl Fn(&OpsState) -> bool,
    ) -> Result<Instant, BenchError> {
        until(what, limit, POLL, || async {
            self.check_alive()?;
            Ok(condition(&self.ops).then(Instant::now))
        })
        .await
    }

    /// Stops the daemon as SIGTERM would and returns its result.
    pub(super) async fn stop(self) -> Result<(), BenchError> {
        self.drain.close_intake();
        match tokio::time::timeout(STOP_LIMIT, self.result).await {
            Ok(Ok(result)) => result.map_err(BenchError::from),
            Ok(Err(_)) => Err(BenchError::Child("the daemon's thread panicked".into())),
            Err(_) => {
                self.drain.force();
                Err(BenchError::Timeout {
                    what: "the in-process daemon to stop".into(),
                    after: STOP_LIMIT,
                })
            }
        }
    }
}
