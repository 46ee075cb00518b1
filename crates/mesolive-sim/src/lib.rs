//! The MesoLive simulator (see the README below). Layout, one job per module:
//!
//! ```text
//! lib.rs       Simulator::start → RunningSim (ports, URLs, token, shutdown)
//! cli.rs       `sim` flags and run_cli
//! sim.rs       the shared Sim: world lock, faults, counters, timers, shutdown, the live
//!              dispatcher (EventSeqId order through the live faults)
//! world.rs     all domain state, ids, time, event emission
//!   seed.rs positions.rs execution.rs jobs.rs prepare.rs signals.rs   impl World: the domain
//! domain.rs    records (jobs and signal keys included) and their wire views
//! market.rs    seeded price walks
//! event_log.rs the per-user log; idempotency.rs  records per key; ledger.rs  effects per key
//! live.rs      live delivery: strategy groups, per-connection backlogs and forwarders
//! control.rs data.rs event.rs   the hub methods; call.rs  lenient args, envelopes, paging
//! server.rs    the hubs (mesolive_api::Hub) on signalr's HubHost, connection switches
//! admin.rs     the admin HTTP API; faults.rs  fault set; stats.rs  counters, request log
//! wire_profile/  the wire forms a profile plays: arguments in, envelopes, pages, items out
//! admin_client.rs  a client of that API, for the demo and the benchmarks
//! ```
#![doc = include_str!("../README.md")]

mod admin;
mod admin_client;
mod call;
mod cli;
mod control;
mod data;
mod domain;
mod event;
mod event_log;
mod execution;
mod faults;
mod idempotency;
mod jobs;
mod ledger;
mod live;
mod market;
mod positions;
mod prepare;
mod seed;
mod server;
mod signals;
mod sim;
mod stats;
mod wire_profile;
mod world;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

pub use admin_client::{AdminClient, AdminError};
pub use cli::{SimArgs, run_cli};
pub use faults::{
    ConnectPush, FaultKind, FaultPatch, Faults, LoseCompletion, LossMode, OneOrMany, RetentionMode,
};
pub use ledger::{Effect, EffectKind, KeyEffects, LedgerReport};
pub use mesolive_api::Hub;
pub use seed::{LIVE_ACCOUNT, PAPER_ACCOUNT};
pub use signals::SignalKind;
pub use sim::Timing;
pub use stats::{RequestRecord, StatsReport};
pub use wire_profile::{Forms, WireProfile, WireReport};

use self::server::Hosts;
use self::sim::Sim;

/// The token clients present unless another one is configured.
pub const DEFAULT_TOKEN: &str = "sim-token";

/// How long `shutdown` waits for tasks before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Hub port on 127.0.0.1 (0: a free port).
    pub port: u16,
    /// Admin port on 127.0.0.1 (0: a free port).
    pub admin_port: u16,
    /// Seed of every random choice.
    pub seed: u64,
    /// Bearer token clients must present.
    pub token: String,
    /// Open positions at start.
    pub positions: usize,
    /// Delays and cadences.
    pub timing: Timing,
    /// Faults active from the start.
    pub faults: FaultPatch,
    /// The wire forms played (`default`: what the daemon's reading expects).
    pub wire: WireProfile,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            port: 0,
            admin_port: 0,
            seed: 1,
            token: DEFAULT_TOKEN.to_owned(),
            positions: 2,
            timing: Timing::default(),
            faults: FaultPatch::default(),
            wire: WireProfile::default(),
        }
    }
}

/// Why the simulator could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr} for the {what}: {source}")]
    Bind {
        /// `hubs` or `admin API`.
        what: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The runtime or the signal handlers could not be set up.
    #[error("simulator runtime: {0}")]
    Runtime(std::io::Error),
}

/// Starts simulators.
#[derive(Debug)]
pub struct Simulator;

/// A running simulator. Dropping it stops its tasks; [`RunningSim::shutdown`] also says
/// goodbye to connected clients and waits for the tasks to end.
pub struct RunningSim {
    sim: Arc<Sim>,
    hosts: Arc<Hosts>,
    hub_addr: SocketAddr,
    admin_addr: SocketAddr,
    token: String,
}

impl std::fmt::Debug for RunningSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSim")
            .field("hub_addr", &self.hub_addr)
            .field("admin_addr", &self.admin_addr)
            .finish_non_exhaustive()
    }
}

async fn bind(what: &'static str, port: u16) -> Result<TcpListener, SimError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { what, addr, source })
}

fn local_addr(
    listener: &TcpListener,
    what: &'static str,
    port: u16,
) -> Result<SocketAddr, SimError> {
    listener.local_addr().map_err(|source| SimError::Bind {
        what,
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        source,
    })
}

impl Simulator {
    /// Seeds the world, binds both listeners on 127.0.0.1 and starts serving.
    pub async fn start(options: SimOptions) -> Result<RunningSim, SimError> {
        let hub_listener = bind("hubs", options.port).await?;
        let admin_listener = bind("admin API", options.admin_port).await?;
        let hub_addr = local_addr(&hub_listener, "hubs", options.port)?;
        let admin_addr = local_addr(&admin_listener, "admin API", options.admin_port)?;
        let (sim, live_events) = Sim::new(
            options.seed,
            options.positions,
            options.timing,
            options.faults,
            options.wire,
        );
        let hosts = Arc::new(Hosts::new(&sim, &options.token));
        if sim.faults().reject_auth {
            hosts.reject_auth(true);
        }
        if sim.faults().ignore_close {
            hosts.ignore_close(true);
        }
        sim.spawn(Arc::clone(&sim).dispatch(live_events));
        if let Some(every) = options.timing.signal_interval {
            sim.spawn(generate_signals(Arc::clone(&sim), every));
        }
        serve(&sim, hub_listener, hosts.router());
        serve(
            &sim,
            admin_listener,
            admin::router(Arc::clone(&sim), Arc::clone(&hosts)),
        );
        Ok(RunningSim {
            sim,
            hosts,
            hub_addr,
            admin_addr,
            token: options.token,
        })
    }
}

/// Serves `router` on `listener` with `TCP_NODELAY` on every accepted socket, as Kestrel sets
/// it: without it a small frame (a live callback, a call's Completion) written while an earlier
/// one is unacknowledged waits for the peer's delayed ACK (Nagle), tens of milliseconds the
/// real server never adds.
fn serve(sim: &Sim, listener: TcpListener, router: Router) {
    let shutdown = sim.shutdown.clone();
    let listener = listener.tap_io(|socket| {
        if let Err(error) = socket.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on an accepted socket");
        }
    });
    sim.tasks.spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "simulator listener failed");
        }
    });
}

async fn generate_signals(sim: Arc<Sim>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        sim.world().generate_signals();
    }
}

impl RunningSim {
    /// `http://127.0.0.1:<port>`: the origin of the three hubs.
    pub fn hub_base_url(&self) -> String {
        format!("http://{}", self.hub_addr)
    }

    /// The full URL of one hub.
    pub fn hub_url(&self, hub: Hub) -> String {
        format!("{}{}", self.hub_base_url(), hub.path())
    }

    /// `http://127.0.0.1:<admin port>`: the admin API.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    /// The bearer token the hubs accept.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Closes every client connection politely, stops every task and listener, and waits
    /// (a few seconds at most) for them to end.
    pub async fn shutdown(self) {
        self.hosts.close_all();
        self.sim.shutdown.cancel();
        self.sim.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.sim.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("simulator tasks still running after {SHUTDOWN_GRACE:?}; leaving them");
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.sim.shutdown.cancel();
    }
}
