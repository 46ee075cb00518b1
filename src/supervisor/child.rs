//! One supervised child: run it, and when it fails or panics, log it with its name, count the
//! restart, apply the restart-intensity limit and back off before running it again. Children
//! never decide their own restart policy.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use super::context::Ctx;
use super::policy::{Intensity, IntensityExceeded, backoff};

/// Why a child stopped, when it did not stop because it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// Retrying cannot help (credentials refused, the database unusable): stop the daemon.
    #[error(transparent)]
    Fatal(#[from] Fatal),
    /// Something failed that a restart may fix (a lost connection, a transient error).
    #[error("{0}")]
    Failed(String),
}

/// A condition that ends the daemon with a non-zero exit status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Fatal {
    /// MesoLive refused the API key (HTTP 401/403).
    #[error("credentials refused: {0}")]
    Unauthorized(String),
    /// A connection cannot even be attempted (URL, TLS roots): fix the configuration.
    #[error("connection setup: {0}")]
    Setup(String),
    /// A child kept failing.
    #[error(transparent)]
    Intensity(#[from] IntensityExceeded),
    /// The state database failed in a way a restart of the child cannot fix.
    #[error("state database: {0}")]
    Store(String),
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
}

/// Where the first fatal condition is kept until the supervisor reads it.
#[derive(Debug, Default)]
pub struct Escalation {
    first: Mutex<Option<Fatal>>,
}

impl Escalation {
    /// Records `fatal` (the first one wins) and starts the stop sequence without grace.
    pub fn raise(&self, ctx: &Ctx, fatal: Fatal) {
        tracing::error!(error = %fatal, "fatal: stopping the daemon");
        if let Ok(mut first) = self.first.lock()
            && first.is_none()
        {
            *first = Some(fatal);
        }
        ctx.shutdown.intake.cancel();
        ctx.shutdown.children.cancel();
    }

    /// The fatal condition, if one was raised.
    pub fn get(&self) -> Option<Fatal> {
        self.first.lock().ok().and_then(|f| f.clone())
    }
}

/// Runs `make(ctx)` until it returns `Ok(())` (it was asked to stop) or a fatal condition,
/// restarting it after failures and panics.
pub async fn supervise<F, Fut>(
    name: &'static str,
    ctx: Arc<Ctx>,
    escalation: Arc<Escalation>,
    make: F,
) where
    F: Fn(Arc<Ctx>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), ChildError>> + Send + 'static,
{
    let settings = ctx.settings.supervisor.clone();
    let mut intensity = Intensity::new(name, &settings);
    let mut delays = backoff(&settings);
    loop {
        let started = Instant::now();
        let span = tracing::info_span!("child", name);
        let outcome = tokio::spawn(make(ctx.clone()).instrument(span)).await;
        let reason = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(ChildError::Fatal(fatal))) => {
                escalation.raise(&ctx, fatal);
                return;
            }
            Ok(Err(ChildError::Failed(reason))) => reason,
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
        if ctx.shutdown.children.is_cancelled() {
            return;
        }
        tracing::warn!(child = name, reason = %reason, "child stopped; restarting");
        ctx.metrics.child_restarted(name);
        if let Err(exceeded) = intensity.record() {
            escalation.raise(&ctx, Fatal::Intensity(exceeded));
            return;
        }
        if started.elapsed() > settings.backoff_max * 2 {
            delays = backoff(&settings);
        }
        let delay = delays.next().unwrap_or(settings.backoff_max);
        if !sleep_unless_stopped(&ctx, delay).await {
            return;
        }
    }
}

/// Sleeps for `delay`; `false` if the supervisor started stopping meanwhile.
pub async fn sleep_unless_stopped(ctx: &Ctx, delay: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = ctx.shutdown.children.cancelled() => false,
    }
}
