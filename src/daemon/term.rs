//! One term: the supervision tree of the module doc, built on a fresh context, started in
//! runbook order, run until its drain closes, and stopped in order. A daemon alone on its
//! database runs one term for its whole life; a failover leader one per lease it holds.
//!
//! The term starts in the trading state the store holds (written from
//! `automation.initial_state` on a database that has none): what an operator or a risk rule
//! decided outlives a restart and a takeover alike.

use std::sync::Arc;

use tokio_util::task::TaskTracker;

use super::roles::Process;
use super::{start, stop};
use crate::ha::SendGate;
use crate::store::{Store, TradingState};
use crate::supervisor::child::{Fatal, supervise};
use crate::supervisor::context::{Ctx, hub_links};
use crate::supervisor::drain::Drain;
use crate::tasks::{dedupe, risk};

/// Runs one term on `drain` until it closes; `ready` is the status announced once started
/// (`running`, or `leader`).
pub(super) async fn run(
    process: &Process,
    store: &Arc<Store>,
    gate: Arc<SendGate>,
    drain: Drain,
    ready: &str,
) {
    let settings = process.settings();
    let Some(trading) = trading_state(store, &settings, &drain).await else {
        return;
    };
    process.ops.metrics.set_trading_state(trading);
    let (senders, links) = hub_links();
    let ctx = Arc::new(
        Ctx::new(
            settings,
            store.clone(),
            gate,
            process.ops.metrics.clone(),
            process.ops.health.clone(),
            links,
            drain,
        )
        .with_trading_state(trading),
    );
    process.term_started(&ctx);
    let children = TaskTracker::new();
    children.spawn(dedupe::run(ctx.clone()));
    children.spawn(supervise("risk", ctx.clone(), risk::run));
    let notifier = &process.notifier;
    notifier.status("starting: connecting the Control Hub");
    let started = start::in_runbook_order(
        &ctx,
        &children,
        &process.connector,
        &Arc::new(senders),
        notifier,
    )
    .await;
    if started {
        ctx.health().set_started();
        notifier.ready(ready);
        tracing::info!(role = ready, "ready");
    }
    ctx.drain().intake_closed().await;
    // The process stopping (a signal, a fatal condition) or, with failover, only this term
    // (the lease is gone): systemd hears of the former only.
    let cause = if process.drain.is_intake_closed() {
        stop::Cause::Process
    } else {
        stop::Cause::SteppingDown
    };
    stop::in_order(&ctx, &children, notifier, cause).await;
    process.term_ended(&ctx);
}

/// The stored trading state, initialised from `automation.initial_state` on a database that
/// has none. `None` when the term cannot start: the lease was lost meanwhile (the term's drain
/// is closed by the lease keeper, waited for here), or the store failed (escalated: fatal).
async fn trading_state(
    store: &Store,
    settings: &crate::config::Settings,
    drain: &Drain,
) -> Option<TradingState> {
    match store
        .trading_state_or_init(settings.automation.initial_state)
        .await
    {
        Ok(trading) => {
            if trading != TradingState::Active {
                tracing::warn!(
                    trading_state = trading.as_str(),
                    "starting with the stored trading state {trading}: `ctl resume` to trade"
                );
            }
            Some(trading)
        }
        Err(err) if err.is_leadership_lost() => {
            drain.intake_closed().await;
            None
        }
        Err(err) => {
            drain.escalate(Fatal::Store(err));
            None
        }
    }
}
