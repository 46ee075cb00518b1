//! One supervised child: run it, and when it fails or panics, log it with its name, count the
//! restart, apply the restart-intensity limit and back off before running it again. Children
//! never decide their own restart policy. The errors a child can end with are typed here, once:
//! [`ChildError`] (restart), [`Fatal`] (stop the daemon), [`Unauthorized`] (exit 77).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use super::context::Ctx;
use super::drain::Drain;
use super::policy::{Intensity, IntensityExceeded, backoff};
use crate::store::StoreError;
use mesolive_api::Hub;
use signalr::SignalrError;

/// Why a child stopped, when it did not stop because it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// Retrying cannot help (credentials refused, the database unusable): stop the daemon.
    #[error(transparent)]
    Fatal(#[from] Fatal),
    /// A hub connection ended: the link is restarted (reconnects) with backoff.
    #[error("{} hub connection lost: {source}", hub.as_str())]
    HubLost {
        /// The hub.
        hub: Hub,
        /// What ended the connection.
        #[source]
        source: SignalrError,
    },
    /// The state database failed in a way a restart of the child may fix (busy, full disk).
    #[error("{what}: {source}")]
    Store {
        /// What the child was doing.
        what: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The child's own state went wrong (a step panicked, a queue was already taken).
    #[error("{0}")]
    Broken(String),
}

impl ChildError {
    /// A store failure while doing `what`.
    pub fn store(what: impl Into<String>, source: StoreError) -> ChildError {
        ChildError::Store {
            what: what.into(),
            source,
        }
    }
}

impl From<Unauthorized> for ChildError {
    fn from(refused: Unauthorized) -> Self {
        ChildError::Fatal(Fatal::Unauthorized(refused))
    }
}

/// MesoLive refused the API key (HTTP 401/403). Declared once: every task error that can meet
/// it carries this type, and it always ends the daemon as [`Fatal::Unauthorized`] (exit 77) —
/// retrying a refused key in a loop would only hammer the server.
#[derive(Debug, Clone, thiserror::Error)]
#[error("credentials refused: {0}")]
pub struct Unauthorized(#[source] pub SignalrError);

/// A condition that ends the daemon with a non-zero exit status.
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    /// MesoLive refused the API key.
    #[error(transparent)]
    Unauthorized(#[from] Unauthorized),
    /// A connection cannot even be attempted (URL, TLS roots): fix the configuration.
    #[error("connection setup: {0}")]
    Setup(#[source] SignalrError),
    /// A child kept failing.
    #[error(transparent)]
    Intensity(#[from] IntensityExceeded),
    /// The state database failed in a way a restart of the child cannot fix.
    #[error("state database: {0}")]
    Store(#[source] StoreError),
    /// The server writes a wire form the daemon cannot read without guessing (the text names
    /// the dimension and the form, `docs/inferred.md`); stopping before anything is acted on.
    #[error("{0}")]
    Unsupported(String),
    /// The server's latest EventSeqId is below the persisted cursor: its history restarted, or
    /// this database belongs to another account or server. Continuing would skip every event
    /// up to the old cursor without applying it.
    #[error(
        "the persisted event cursor {cursor} is ahead of the server's latest EventSeqId \
         {latest}: the server's event history restarted, or this database belongs to another \
         account or server; stopping rather than skipping events (check hubs.base_url and the \
         API key; if the history really restarted, move the database aside and start again)"
    )]
    CursorAhead {
        /// The persisted cursor.
        cursor: i64,
        /// What `GetLatestEventSeqId` answered.
        latest: i64,
    },
    /// Without failover on PostgreSQL: another daemon holds this group's lease (and renews it):
    /// two daemons must not act on one database.
    #[error(
        "the lease of group {group} is held by {holder}, which is running on the same database; \
         stop it, or set ha.enabled = true on both to run them as active and standby"
    )]
    LeaseHeld {
        /// The `ha.group`.
        group: String,
        /// Who holds it.
        holder: String,
    },
    /// Without failover on PostgreSQL: this daemon lost its lease (it could not renew it in
    /// time); it stopped acting and exits (75) to be restarted.
    #[error("leadership lost: {0}")]
    LeaseLost(#[source] crate::ha::Loss),
    /// The server no longer has the events after the cursor, and the configuration says to stop
    /// rather than resync (`events.on_history_gap = "stop"`).
    #[error(
        "history gap: the server no longer has EventSeqIds {from}..={to} ({events} events after \
         the cursor); stopping because events.on_history_gap = \"stop\" (set it to \"resync\" \
         to resync from the Control Hub and go on)"
    )]
    HistoryGap {
        /// The first EventSeqId missing.
        from: i64,
        /// The last EventSeqId missing.
        to: i64,
        /// How many.
        events: i64,
    },
}

/// How long a child may take to return once the children were told to stop before it is
/// aborted: a child blocked on a server that stopped answering must not hold up the stop.
/// Every store write is one transaction, so an abort leaves the store consistent.
const STOP_BUDGET: Duration = Duration::from_millis(500);

/// Runs `make(ctx)` until it returns `Ok(())` (it was asked to stop) or a fatal condition,
/// restarting it after failures and panics. A fatal condition is escalated through the drain.
/// A child still running [`STOP_BUDGET`] after the children were told to stop — or at once
/// when the stop is forced — is aborted.
pub async fn supervise<F, Fut>(name: &'static str, ctx: Arc<Ctx>, make: F)
where
    F: Fn(Arc<Ctx>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), ChildError>> + Send + 'static,
{
    let settings = ctx.settings().supervisor.clone();
    let drain = ctx.drain().clone();
    let mut intensity = Intensity::new(name, &settings);
    let mut delays = backoff(&settings);
    loop {
        let started = Instant::now();
        let span = tracing::info_span!("child", name);
        let mut child = tokio::spawn(make(ctx.clone()).instrument(span));
        let outcome = tokio::select! {
            outcome = &mut child => outcome,
            _ = overdue(&drain) => {
                child.abort();
                tracing::warn!(child = name, "child did not stop in time; aborted");
                return;
            }
        };
        let reason = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(ChildError::Fatal(fatal))) => {
                drain.escalate(fatal);
                return;
            }
            // The lease is gone: the term is ending (the lease keeper stops it); restarting
            // would only be refused again.
            Ok(Err(ChildError::Store { source, .. })) if source.is_leadership_lost() => {
                tracing::info!(child = name, "leadership lost; not restarting");
                return;
            }
            Ok(Err(failed)) => failed.to_string(),
            Err(join) if join.is_panic() => {
                let panic = join.into_panic();
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-text panic".into());
                format!("panicked: {text}")
            }
            Err(_) => return,
        };
        if drain.is_stopping() {
            return;
        }
        tracing::warn!(child = name, reason = %reason, "child stopped; restarting");
        ctx.metrics().child_restarted(name);
        if let Err(exceeded) = intensity.record() {
            drain.escalate(Fatal::Intensity(exceeded));
            return;
        }
        if started.elapsed() > settings.backoff_max * 2 {
            delays = backoff(&settings);
        }
        let delay = delays.next().unwrap_or(settings.backoff_max);
        if !sleep_unless_stopped(&drain, delay).await {
            return;
        }
    }
}

/// Resolves once a running child is overdue: [`STOP_BUDGET`] after the children were told to
/// stop, or as soon as the stop is forced.
async fn overdue(drain: &Drain) {
    tokio::select! {
        _ = async {
            drain.stopping().await;
            tokio::time::sleep(STOP_BUDGET).await;
        } => {}
        _ = drain.forced() => {}
    }
}

/// Sleeps for `delay`; `false` if the children started stopping meanwhile.
pub async fn sleep_unless_stopped(drain: &Drain, delay: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = drain.stopping() => false,
    }
}
