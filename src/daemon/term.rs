//! One term: the supervision tree of the module doc, built on a fresh context, started in
//! runbook order, run until its drain closes, and stopped in order. A daemon alone on its
//! database runs one term for its whole life; a failover leader one per lease it holds.
//!
//! The term's first transaction opens the notification outbox (the configured sinks, the
//! bound) and queues what the term has to tell: the start (the process's first term) and, for
//! a failover leader, `leader` — fenced like every write, so only a term that really leads
//! tells it. Then the term reads the trading state the store holds (written from
//! `automation.initial_state` on a database that has none): what an operator or a risk rule
//! decided outlives a restart and a takeover alike.

use std::sync::Arc;

use tokio_util::task::TaskTracker;

use super::roles::Process;
use super::{start, stop, upkeep};
use crate::config::{FirstRun, Settings};
use crate::ha::SendGate;
use crate::notifications::notice::{self, Notice};
use crate::notifications::{delivery, sink::Sink};
use crate::store::{LeaseGrant, Store, StoreError, TradingState};
use crate::supervisor::child::{Fatal, supervise};
use crate::supervisor::context::{Ctx, hub_links};
use crate::supervisor::drain::Drain;
use crate::tasks::{dedupe, risk};

/// Why this daemon runs a term.
#[derive(Debug, Clone, Copy)]
pub(super) enum Standing<'a> {
    /// Alone on its database (SQLite, or PostgreSQL without failover).
    Alone,
    /// The leader of its failover group, under this grant.
    Leader(&'a LeaseGrant),
}

impl Standing<'_> {
    /// The status announced once the term is started.
    fn ready(self) -> &'static str {
        match self {
            Standing::Alone => "running",
            Standing::Leader(_) => "leader",
        }
    }
}

/// Runs one term on `drain` until it closes.
pub(super) async fn run(
    process: &Process,
    store: &Arc<Store>,
    gate: Arc<SendGate>,
    drain: Drain,
    standing: Standing<'_>,
) {
    let settings = process.settings();
    if !opened(
        open_outbox(process, store, &settings, standing).await,
        &drain,
    )
    .await
    {
        return;
    }
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
    let notifications = &process.notifications;
    if !notifications.sinks.is_empty() {
        // First of all: the hubs may not come up, and that too is to be told.
        let (sinks, client) = (notifications.sinks.clone(), notifications.client.clone());
        children.spawn(supervise("notifications", ctx.clone(), move |ctx| {
            delivery::run(ctx, sinks.clone(), client.clone())
        }));
    }
    children.spawn(upkeep::watch_conditions(ctx.clone()));
    children.spawn(supervise("risk", ctx.clone(), risk::run));
    let ready = standing.ready();
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

/// The term's first transaction: registers the sinks, sets the outbox's bound and queues the
/// start (once per process) and the leadership (a failover leader).
async fn open_outbox(
    process: &Process,
    store: &Store,
    settings: &Settings,
    standing: Standing<'_>,
) -> Result<(), StoreError> {
    let mut told: Vec<Notice> = Vec::new();
    let start = process.start_untold();
    if start {
        told.push(notice::started(
            env!("CARGO_PKG_VERSION"),
            &settings.automation.mode.to_string(),
            store.cursor().await?,
            match settings.events.first_run {
                FirstRun::Latest => "the server's latest event",
                FirstRun::All => "the start of the server's history",
            },
        ));
    }
    if let Standing::Leader(grant) = standing {
        told.push(notice::leader(&grant.group, &grant.holder, grant.epoch));
    }
    let registrations: Vec<_> = process
        .notifications
        .sinks
        .iter()
        .map(Sink::registration)
        .collect();
    store
        .open_outbox(&registrations, settings.notify.max_pending, &told)
        .await?;
    if start {
        process.start_told();
    }
    Ok(())
}

/// Whether a step of the term's opening worked; `false` when the term cannot start: the lease
/// was lost meanwhile (the term's drain is closed by the lease keeper, waited for here), or the
/// store failed (escalated: fatal).
async fn opened(step: Result<(), StoreError>, drain: &Drain) -> bool {
    match step {
        Ok(()) => true,
        Err(err) if err.is_leadership_lost() => {
            drain.intake_closed().await;
            false
        }
        Err(err) => {
            drain.escalate(Fatal::Store(err));
            false
        }
    }
}

/// The stored trading state, initialised from `automation.initial_state` on a database that
/// has none; `None` when the term cannot start (see [`opened`]).
async fn trading_state(store: &Store, settings: &Settings, drain: &Drain) -> Option<TradingState> {
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
        Err(err) => {
            opened(Err(err), drain).await;
            None
        }
    }
}
