//! Operator control: how the trading state changes (from `ctl`, or a risk rule), the control
//! socket the daemon serves and `ctl` talks to, the live reload, and `ctl status`.
//!
//! ```text
//! protocol  one JSON request line, one JSON reply line
//! server    the daemon's Unix socket: owner (and root) only, checked with SO_PEERCRED
//! client    `mesolive-supervisor ctl …`; with no daemon, halt/reduce-only/resume write the
//!           database directly
//! reload    SIGHUP and `ctl reload`: automation.*, risk.*, log.filter live; the rest refused
//! status    what `ctl status` shows
//! ```

pub mod client;
pub mod protocol;
pub mod reload;
pub mod server;
pub mod status;

use crate::store::{ActionSource, StateChange, StoreError, TradingState};
use crate::supervisor::context::Ctx;

/// Commits a trading state change, then makes it take effect: see [`announce`].
pub async fn change_trading_state(
    ctx: &Ctx,
    to: TradingState,
    reason: &str,
    source: ActionSource,
) -> Result<StateChange, StoreError> {
    let change = ctx.store().set_trading_state(to, reason, source).await?;
    announce(ctx, change, reason, source);
    Ok(change)
}

/// Makes a committed change take effect: the send gate and the workflows follow it, the gauge
/// shows it, and it is logged at `warn` (an operator wants to see every one).
pub fn announce(ctx: &Ctx, change: StateChange, reason: &str, source: ActionSource) {
    if !change.changed() {
        return;
    }
    ctx.publish_trading_state(change.to);
    ctx.metrics().set_trading_state(change.to);
    tracing::warn!(
        from = change.from.as_str(),
        to = change.to.as_str(),
        source = source.as_str(),
        %reason,
        "trading state changed"
    );
}
