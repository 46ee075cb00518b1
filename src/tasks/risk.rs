//! The daily-loss watcher: every [`TICK`], the realized PnL of the trading day per account
//! (from the position updates the store keeps; exported as
//! `mesolive_risk_daily_realized_pnl{account}`) is checked against `risk.max_daily_loss`; an
//! account that reached it switches the trading state to `risk.on_daily_loss`, once per account
//! and trading day (recorded in the store, so neither the next check nor a restart undoes an
//! operator's resume). Only reads and one transaction per switch: it runs while halted too.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use crate::control::announce;
use crate::risk::{self, rules};
use crate::store::{ActionSource, StoreError};
use crate::supervisor::child::ChildError;
use crate::supervisor::context::Ctx;

/// How often the daily loss is checked.
const TICK: Duration = Duration::from_secs(1);

/// Runs until the daemon stops.
pub async fn run(ctx: Arc<Ctx>) -> Result<(), ChildError> {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = ctx.drain().stopping() => return Ok(()),
        }
        check_daily_loss(&ctx)
            .await
            .map_err(|err| ChildError::store("risk: daily loss", err))?;
    }
}

/// One check of `risk.max_daily_loss`.
async fn check_daily_loss(ctx: &Ctx) -> Result<(), StoreError> {
    let settings = ctx.settings();
    let limits = &settings.risk;
    let Some(limit) = limits.max_daily_loss else {
        return Ok(());
    };
    let zone = limits.timezone();
    let day = risk::trading_day(chrono::Utc::now(), zone);
    let movements = ctx.store().realized_pnl_movements(day.start).await?;
    ctx.metrics().set_daily_pnl(
        risk::realized_by_account(&movements)
            .into_iter()
            .map(|(account, pnl)| (account, pnl.try_into().unwrap_or(0.0)))
            .collect(),
    );
    for loss in risk::daily_losses(&movements, limit) {
        let reason = loss.reason(&day, zone);
        let switched = ctx
            .store()
            .risk_switch(
                rules::MAX_DAILY_LOSS,
                &loss.account,
                &day.name,
                limits.on_daily_loss,
                &reason,
            )
            .await?;
        if let Some(change) = switched {
            ctx.metrics().risk_switched(rules::MAX_DAILY_LOSS);
            tracing::warn!(
                rule = rules::MAX_DAILY_LOSS,
                account = %loss.account,
                realized = %loss.realized,
                limit = %limit,
                trading_day = %day.name,
                "risk limit reached"
            );
            announce(ctx, change, &reason, ActionSource::Risk);
        }
    }
    Ok(())
}
