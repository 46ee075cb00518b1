//! The daemon's roles on its database:
//!
//! * **alone, SQLite**: one term for the life of the process, the send gate always open (the
//!   lock file keeps any other daemon off the file);
//! * **alone, PostgreSQL** (`ha.enabled = false`): the lease is taken all the same, so a second
//!   daemon pointed at the same schema by mistake can never act at once: a lease held by a live
//!   daemon ends the start with exit 75, and losing the lease ends the process with 75;
//! * **failover** (`ha.enabled = true`): standby — a database connection, no hub, the lease
//!   tried every ttl/3 — until it holds the lease; then a term as leader; when the lease is
//!   lost, the term stops at once (intake and sending first, hubs closed E → D → C) and the
//!   process is a standby again. It never exits for losing the lease.
//!
//! Opening the database at start: a PostgreSQL server that cannot be reached is retried with
//! backoff (not an exit): a database restarting while the daemon boots is a normal event, the
//! standby of a failover group has to wait for it anyway, and exiting would only have systemd
//! do the same retrying more slowly. A bad URL, refused credentials or a certificate that does
//! not verify are settings: exit 78.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::timeout;

use super::term::{self, Standing};
use super::{DaemonError, Notifications, fatal_exit_code, store_options};
use crate::config::Settings;
use crate::control::server::Terms;
use crate::ha::keeper::{self, LeaseTimes, Loss};
use crate::ha::{BootInstant, SendGate};
use crate::notifications::notice;
use crate::ops::health::Role;
use crate::ops::http::OpsState;
use crate::ops::notify::Notifier;
use crate::store::{LeaseGrant, LeaseRecord, LeaseRequest, Store};
use crate::supervisor::child::{Fatal, sleep_unless_stopped};
use crate::supervisor::context::Ctx;
use crate::supervisor::drain::Drain;
use crate::supervisor::links::Connector;
use crate::supervisor::policy::backoff;

/// What lives as long as the process, whatever its role.
#[derive(Debug)]
pub(super) struct Process {
    /// The settings the next term starts with: those the process started with, as the last
    /// term's reloads left them.
    settings: RwLock<Arc<Settings>>,
    pub(super) connector: Connector,
    pub(super) ops: OpsState,
    pub(super) notifier: Notifier,
    /// The process's stop (signals, the caller).
    pub(super) drain: Drain,
    /// The term running, if any (the control socket and reloads act on it).
    terms: watch::Sender<Option<Arc<Ctx>>>,
    /// The sinks a term's `notifications` child delivers to.
    pub(super) notifications: Notifications,
    /// Whether a term queued the start's notification (the first term of the process does).
    start_told: AtomicBool,
}

impl Process {
    pub(super) fn new(
        settings: Arc<Settings>,
        connector: Connector,
        ops: OpsState,
        notifier: Notifier,
        drain: Drain,
        notifications: Notifications,
    ) -> Process {
        Process {
            settings: RwLock::new(settings),
            connector,
            ops,
            notifier,
            drain,
            terms: watch::Sender::new(None),
            notifications,
            start_told: AtomicBool::new(false),
        }
    }

    /// Whether the start still has to be told (true until a term told it).
    pub(super) fn start_untold(&self) -> bool {
        !self.start_told.load(Ordering::Acquire)
    }

    /// A term told the start.
    pub(super) fn start_told(&self) {
        self.start_told.store(true, Ordering::Release);
    }

    /// The current settings.
    pub(super) fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Follows the term running.
    pub(super) fn terms(&self) -> Terms {
        self.terms.subscribe()
    }

    /// A term started on `ctx`.
    pub(super) fn term_started(&self, ctx: &Arc<Ctx>) {
        self.terms.send_replace(Some(ctx.clone()));
    }

    /// The term on `ctx` ended: its settings (reloads included) are the next term's.
    pub(super) fn term_ended(&self, ctx: &Ctx) {
        self.terms.send_replace(None);
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = ctx.settings();
    }
}

/// Opens the configured store, retrying while a PostgreSQL server is unreachable; `None` if
/// the daemon was asked to stop meanwhile.
pub(super) async fn open_store(process: &Process) -> Result<Option<Store>, DaemonError> {
    let settings = process.settings();
    let location = settings.store_location();
    let options = store_options(&settings);
    let mut delays = backoff(&settings.supervisor);
    loop {
        let err = match Store::connect(&location, &options).await {
            Ok(store) => return Ok(Some(store)),
            Err(err) if err.is_transient() => err,
            Err(err) => return Err(err.into()),
        };
        process.ops.metrics.error("store_unreachable");
        let delay = delays.next().unwrap_or(settings.supervisor.backoff_max);
        tracing::warn!(error = %err, retry_in = ?delay, "state database unreachable at start");
        process
            .notifier
            .status("starting: waiting for the state database");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = process.drain.intake_closed() => return Ok(None),
        }
    }
}

/// Runs in the role the store and the settings give, until the process stops.
pub(super) async fn run(process: &Process, store: &Arc<Store>) -> Result<(), DaemonError> {
    if !store.is_shared() {
        term::run(
            process,
            store,
            Arc::new(SendGate::open()),
            process.drain.clone(),
            Standing::Alone,
        )
        .await;
        return match process.drain.take_fatal() {
            Some(fatal) => {
                last_words(store, &fatal).await;
                Err(fatal.into())
            }
            None => Ok(()),
        };
    }
    if process.settings().ha.enabled {
        failover(process, store).await
    } else {
        alone_on_postgres(process, store).await
    }
}

/// Most time the notice of a fatal condition may take to be written before the exit.
const LAST_WORDS: Duration = Duration::from_secs(1);

/// Queues the notice of the fatal condition that stops the daemon, best effort (delivered after
/// the next start if not before) — while the store still takes writes: before a lease is
/// released.
async fn last_words(store: &Store, fatal: &Fatal) {
    let told = notice::fatal(fatal, fatal_exit_code(fatal));
    match timeout(LAST_WORDS, store.notify(&told)).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "could not queue the notification of the fatal condition")
        }
        Err(_) => {
            tracing::warn!("queuing the notification of the fatal condition took too long")
        }
    }
}

fn request(settings: &Settings) -> LeaseRequest {
    LeaseRequest {
        group: settings.ha.group.clone(),
        holder: settings.ha.holder(),
        ttl: settings.ha.lease_ttl,
    }
}

/// How a term as leader ended.
enum TermEnd {
    /// The process stops; the lease was released.
    Stopped,
    /// The lease was lost.
    Lost(Loss),
}

/// PostgreSQL without failover: take the lease (waiting out the lease of a predecessor that
/// died, at most one ttl), lead, and end the process if it is lost.
async fn alone_on_postgres(process: &Process, store: &Arc<Store>) -> Result<(), DaemonError> {
    let settings = process.settings();
    let request = request(&settings);
    let times = LeaseTimes::of(&settings.ha);
    let gate = Arc::new(SendGate::leased(&request.group));
    store.fence_off(&request.group);
    let deadline = BootInstant::now().after(settings.ha.lease_ttl + times.period());
    let grant = loop {
        let sent = BootInstant::now();
        match store.acquire_lease(&request).await {
            Ok(Some(grant)) => {
                gate.renewed(grant.epoch, sent, times.ttl, times.margin);
                break grant;
            }
            Ok(None) if BootInstant::now() >= deadline => {
                let held = store.leases().await.unwrap_or_default();
                let holder = held
                    .iter()
                    .find(|lease| lease.group == request.group)
                    .and_then(|lease| lease.holder.clone())
                    .unwrap_or_default();
                return Err(Fatal::LeaseHeld {
                    group: request.group,
                    holder,
                }
                .into());
            }
            Ok(None) => {
                tracing::info!(group = %request.group, "the lease is held; waiting for it to expire (a predecessor that stopped)")
            }
            Err(err) => tracing::warn!(error = %err, "taking the lease failed; retrying"),
        }
        if !sleep_unless_stopped(&process.drain, times.period()).await
            || process.drain.is_intake_closed()
        {
            return Ok(());
        }
    };
    match lead(process, store, &grant, gate, Standing::Alone).await? {
        TermEnd::Stopped => Ok(()),
        TermEnd::Lost(loss) => Err(Fatal::LeaseLost(loss).into()),
    }
}

/// Failover: standby until the lease is ours, leader while it is, standby again after.
async fn failover(process: &Process, store: &Arc<Store>) -> Result<(), DaemonError> {
    let settings = process.settings();
    let request = request(&settings);
    let health = &process.ops.health;
    let metrics = &process.ops.metrics;
    store.fence_off(&request.group);
    let mut announced = false;
    let mut lost: Option<String> = None;
    loop {
        health.set_role(Role::Standby);
        metrics.set_leader(false);
        let gate = Arc::new(SendGate::leased(&request.group));
        let Some(grant) = standby(
            process,
            store,
            &request,
            &gate,
            &mut announced,
            lost.as_deref(),
        )
        .await
        else {
            return Ok(());
        };
        tracing::info!(group = %grant.group, epoch = grant.epoch, holder = %grant.holder, "lease acquired: taking over");
        health.set_role(Role::Leader);
        metrics.set_leader(true);
        crate::ops::metrics::Metrics::set(&metrics.lease_epoch, grant.epoch);
        crate::ops::metrics::Metrics::add(&metrics.takeovers, 1);
        process.notifier.status("leader: starting");
        match lead(process, store, &grant, gate, Standing::Leader(&grant)).await? {
            TermEnd::Stopped => return Ok(()),
            TermEnd::Lost(loss) => {
                metrics.error("leadership_lost");
                tracing::warn!(reason = %loss, epoch = grant.epoch, "leadership lost: stopped acting; back to standby");
                process.notifier.status("standby");
                lost = Some(format!("epoch {}: {loss}", grant.epoch));
            }
        }
    }
}

/// Tries the lease every ttl/3 until it is granted (then the gate is open) or the process
/// stops (`None`). Announces READY (and `STATUS=standby`) once it is a healthy standby: the
/// database answered and someone else holds the lease. Once per stretch as a standby, the
/// `standby` notification (at start, or after the leadership `lost`) is queued in a lease
/// transaction (the one write a standby makes) — tried at every period until a sink registered
/// in the database takes it (on a fresh database, the leader's first term registers them).
async fn standby(
    process: &Process,
    store: &Store,
    request: &LeaseRequest,
    gate: &SendGate,
    announced: &mut bool,
    lost: Option<&str>,
) -> Option<LeaseGrant> {
    let times = LeaseTimes::of(&process.settings().ha);
    let mut told = false;
    loop {
        if process.drain.is_intake_closed() {
            return None;
        }
        let sent = BootInstant::now();
        match store.acquire_lease(request).await {
            Ok(Some(grant)) => {
                gate.renewed(grant.epoch, sent, times.ttl, times.margin);
                return Some(grant);
            }
            Ok(None) => {
                process.ops.health.pump_beat();
                if !told && !process.notifications.sinks.is_empty() {
                    match store.tell_standby(request, lost).await {
                        Ok(queued) => told = queued,
                        Err(err) => {
                            process.ops.metrics.error("notify_store");
                            tracing::warn!(error = %err, "could not queue the standby notification; trying again");
                        }
                    }
                }
                if !*announced {
                    *announced = true;
                    process.notifier.ready("standby");
                    tracing::info!(group = %request.group, "standing by: another daemon holds the lease");
                }
            }
            Err(err) => {
                process.ops.metrics.error("lease_acquire");
                tracing::warn!(error = %err, "trying the lease failed; retrying");
            }
        }
        let wait = match store.leases().await {
            Ok(leases) => next_try(
                leases.iter().find(|lease| lease.group == request.group),
                times,
            ),
            Err(_) => times.period(),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = process.drain.intake_closed() => return None,
        }
    }
}

/// When a standby tries again: every ttl/3, or just after the lease it saw expires if that is
/// sooner (measured on the server's clock: how long it had left when read), so a takeover
/// does not wait for the next period.
fn next_try(lease: Option<&LeaseRecord>, times: LeaseTimes) -> Duration {
    let Some(lease) = lease.filter(|lease| lease.is_held()) else {
        return times.period().min(EXPIRY_SLACK);
    };
    let left = lease.expires_at.unix_millis() - lease.read_at.unix_millis();
    let left = Duration::from_millis(u64::try_from(left).unwrap_or(0));
    (left + EXPIRY_SLACK).min(times.period())
}

/// How long after a lease's expiry a standby tries it (the statement's own latency covers the
/// rest).
const EXPIRY_SLACK: Duration = Duration::from_millis(50);

/// One term as leader of `grant`: the keeper renews the lease beside it and stops the term at
/// once when the lease is lost; a process stop releases the lease, so a standby takes over
/// without waiting for it to expire.
async fn lead(
    process: &Process,
    store: &Arc<Store>,
    grant: &LeaseGrant,
    gate: Arc<SendGate>,
    standing: Standing<'_>,
) -> Result<TermEnd, DaemonError> {
    let times = LeaseTimes::of(&process.settings().ha);
    process.ops.health.follow_gate(gate.clone());
    let term_drain = Drain::new();
    let following = tokio::spawn(follow(process.drain.clone(), term_drain.clone()));
    let (term_over, keeper_stop) = tokio::sync::oneshot::channel::<()>();
    let keeper = {
        let (store, grant, gate, term_drain) = (
            store.clone(),
            grant.clone(),
            gate.clone(),
            term_drain.clone(),
        );
        tokio::spawn(async move {
            let loss = keeper::keep(&store, &grant, times, &gate, async {
                let _ = keeper_stop.await;
            })
            .await;
            if loss.is_some() {
                // Intake and sending stop now (the gate is already closed); the children are
                // told to stop without a grace.
                term_drain.close_intake();
                term_drain.stop_children();
            }
            loss
        })
    };
    term::run(process, store, gate, term_drain.clone(), standing).await;
    following.abort();
    let _ = term_over.send(());
    let loss = keeper.await.ok().flatten();
    if let Some(fatal) = term_drain.take_fatal() {
        if let (Standing::Leader(_), Fatal::Store(err)) = (standing, &fatal)
            && !err.is_damage()
        {
            // A failover leader whose database went away as the term opened stands down, as
            // for a lost lease: exiting would take a standby out of the group.
            release(store, grant).await;
            return Ok(TermEnd::Lost(
                loss.unwrap_or_else(|| Loss::Opening(err.to_string())),
            ));
        }
        last_words(store, &fatal).await;
        release(store, grant).await;
        return Err(fatal.into());
    }
    match loss {
        Some(loss) => Ok(TermEnd::Lost(loss)),
        None => {
            release(store, grant).await;
            Ok(TermEnd::Stopped)
        }
    }
}

/// Gives the lease up on a clean stop (a standby takes over at once); a failure only means the
/// standby waits for the expiry.
async fn release(store: &Store, grant: &LeaseGrant) {
    match store.release_lease(grant).await {
        Ok(()) => tracing::info!(epoch = grant.epoch, "lease released"),
        Err(err) => tracing::warn!(error = %err, "lease not released; it expires by itself"),
    }
}

/// The process's stop reaches the term: intake closed, then forced.
async fn follow(process: Drain, term: Drain) {
    process.intake_closed().await;
    term.close_intake();
    process.forced().await;
    term.force();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Timestamp;

    fn lease(holder: Option<&str>, expires_in_ms: i64) -> LeaseRecord {
        let read_at = Timestamp::from(
            chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap_or_default(),
        );
        let expires_at = Timestamp::from(
            chrono::DateTime::from_timestamp_millis(1_700_000_000_000 + expires_in_ms)
                .unwrap_or_default(),
        );
        LeaseRecord {
            group: "default".into(),
            holder: holder.map(str::to_owned),
            epoch: 1,
            acquired_at: read_at,
            renewed_at: read_at,
            expires_at,
            read_at,
        }
    }

    #[test]
    fn a_standby_tries_again_just_after_the_lease_expires_or_each_period() {
        let times = LeaseTimes {
            ttl: Duration::from_secs(9),
            margin: Duration::from_secs(2),
        };
        assert_eq!(
            next_try(Some(&lease(Some("a"), 1_000)), times),
            Duration::from_millis(1_050)
        );
        assert_eq!(
            next_try(Some(&lease(Some("a"), 8_000)), times),
            Duration::from_secs(3)
        );
        // Free or expired (a race, or a release): try again at once.
        assert_eq!(next_try(Some(&lease(None, 8_000)), times), EXPIRY_SLACK);
        assert_eq!(next_try(Some(&lease(Some("a"), -5)), times), EXPIRY_SLACK);
        assert_eq!(next_try(None, times), EXPIRY_SLACK);
    }
}
