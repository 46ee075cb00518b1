//! Dedupe-set pruning: processed EventIds older than `events.dedupe_window` are forgotten, so
//! the set is bounded by the window, not by uptime. Notifications every sink has taken are
//! pruned the same way, after the same window.
//!
//! Forgetting is safe: a replayed event with an EventSeqId at or below the cursor is skipped by
//! the cursor before its key is looked up; a live order, position, leg or job event at or below
//! the cursor with a forgotten key is quarantined, never acted on; and a state (signal, error,
//! agent status) with a forgotten key — an on-connect push — is re-asserted, which changes
//! nothing unless it is newer than the stored state.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use crate::ops::metrics::Metrics;
use crate::store::StoreError;
use crate::supervisor::context::Ctx;

/// Longest pause between two prunes.
const MAX_PERIOD: Duration = Duration::from_secs(300);
/// Shortest pause between two prunes (a tiny window must not make the task spin).
const MIN_PERIOD: Duration = Duration::from_secs(1);
/// Keys deleted per transaction; the pump's writes interleave between chunks.
const CHUNK: u32 = 10_000;

/// How often the set is pruned: a quarter of the window, so a key outlives it by at most a
/// quarter, between 1 s and 5 minutes.
pub fn period(window: Duration) -> Duration {
    (window / 4).clamp(MIN_PERIOD, MAX_PERIOD)
}

/// Prunes once per [`period`] until the daemon stops taking in work: the dedupe set, then the
/// notifications every sink has taken (same window). A failed prune is logged, counted
/// (`mesolive_errors_total{kind="dedupe_prune"|"notification_prune"}`) and retried at the next
/// period.
pub async fn run(ctx: Arc<Ctx>) {
    let window = ctx.settings().events.dedupe_window;
    let mut tick = tokio::time::interval(period(window));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = ctx.drain().intake_closed() => return,
        }
        let store = ctx.store();
        let pruned = in_chunks(&ctx, "dedupe_prune", || {
            store.prune_processed_events(window, CHUNK)
        })
        .await;
        Metrics::add(&ctx.metrics().events_pruned, pruned);
        in_chunks(&ctx, "notification_prune", || {
            store.prune_notifications(window, CHUNK)
        })
        .await;
    }
}

/// Runs `prune` (at most [`CHUNK`] rows a transaction) until a chunk comes back short, intake
/// closes or it fails (counted under `errors_total{kind=what}`); returns how many rows went.
async fn in_chunks<F, Fut>(ctx: &Ctx, what: &'static str, mut prune: F) -> u64
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, StoreError>>,
{
    let mut total = 0;
    loop {
        match prune().await {
            Ok(pruned) => {
                total += pruned;
                if pruned < u64::from(CHUNK) || ctx.drain().is_intake_closed() {
                    if total > 0 {
                        tracing::debug!(
                            pruned = total,
                            what,
                            "rows older than the window forgotten"
                        );
                    }
                    return total;
                }
            }
            Err(err) => {
                ctx.metrics().error(what);
                tracing::warn!(error = %err, what, "prune failed; retrying at the next period");
                return total;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_is_a_quarter_of_the_window_within_bounds() {
        assert_eq!(period(Duration::from_secs(8)), Duration::from_secs(2));
        assert_eq!(period(Duration::from_millis(100)), MIN_PERIOD);
        assert_eq!(period(Duration::from_secs(7 * 86_400)), MAX_PERIOD);
    }
}
