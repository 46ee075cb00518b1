//! Delivery: one loop per sink takes the outbox rows after the sink's cursor, in order, and
//! posts each until the sink accepts it (2xx: the cursor moves past it) or refuses it for good
//! (4xx: logged, counted, recorded as failed, and the cursor moves past it). Anything else — a
//! 5xx, 408, 429, a timeout, an unreachable sink — is tried again after a backoff (at least
//! what `Retry-After` asks), so delivery is at least once and in order, and a sink that is down
//! for hours gets everything once it is back. A delivery cut short by a stop or a crash is sent
//! again after the next start, under the same id.
//!
//! The loops need no hub: a hub that is down is notified while it is down.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::try_join_all;

use super::sink::{Outgoing, Sink, Verdict};
use crate::store::StoreError;
use crate::supervisor::child::ChildError;
use crate::supervisor::context::Ctx;
use crate::supervisor::policy::backoff_between;

/// Longest wait between two looks at the outbox when no commit here said it changed (a
/// notification queued by another transaction path is sent within this).
const POLL: Duration = Duration::from_secs(1);

/// Delivers to every sink until the children stop. A store failure restarts the child (the
/// supervisor's backoff and intensity apply); a sink's trouble never does.
pub async fn run(
    ctx: Arc<Ctx>,
    sinks: Arc<[Sink]>,
    client: reqwest::Client,
) -> Result<(), ChildError> {
    try_join_all(sinks.iter().map(|sink| deliver_to(&ctx, &client, sink)))
        .await
        .map(drop)
        .map_err(|err| ChildError::store("delivering notifications", err))
}

/// The loop of one sink.
async fn deliver_to(ctx: &Ctx, client: &reqwest::Client, sink: &Sink) -> Result<(), StoreError> {
    let store = ctx.store();
    let drain = ctx.drain();
    let settings = &ctx.settings().notify;
    let fresh_backoff =
        || backoff_between(settings.backoff_initial, settings.backoff_max, 2.0, true);
    let mut delays = fresh_backoff();
    let mut changes = store.outbox_changes();
    loop {
        changes.borrow_and_update();
        let Some(notification) = store.next_notification(sink.key()).await? else {
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = drain.stopping() => return Ok(()),
            }
            continue;
        };
        let id = notification.id(store.instance_id());
        let outgoing = Outgoing::queued(&notification, &id);
        let verdict = tokio::select! {
            verdict = sink.deliver(client, &outgoing) => verdict,
            _ = drain.stopping() => return Ok(()),
        };
        let kind = notification.kind.as_str();
        match verdict {
            Verdict::Delivered { status } => {
                store
                    .notification_delivered(sink.key(), &notification)
                    .await?;
                ctx.metrics().notifications_delivered.inc();
                tracing::info!(
                    sink = sink.label(),
                    id,
                    kind,
                    status,
                    "notification delivered"
                );
                delays = fresh_backoff();
            }
            Verdict::Refused { status, reason } => {
                store
                    .notification_failed(sink.key(), &notification, Some(status), &reason)
                    .await?;
                ctx.metrics().notifications_failed.inc();
                ctx.metrics().error("notify_refused");
                tracing::error!(sink = sink.label(), id, kind, %reason, "notification refused by the sink; not retried");
                delays = fresh_backoff();
            }
            Verdict::Retry {
                reason,
                error_kind,
                after,
            } => {
                ctx.metrics().error(error_kind);
                let backoff = delays.next().unwrap_or(settings.backoff_max);
                let delay = after.map_or(backoff, |asked| asked.max(backoff));
                tracing::warn!(sink = sink.label(), id, kind, %reason, retry_in = ?delay, "notification not delivered; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = drain.stopping() => return Ok(()),
                }
            }
        }
    }
}
