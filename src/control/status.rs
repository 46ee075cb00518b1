//! What `ctl status` shows: the trading state, the role, readiness, the hubs, where the event
//! stream stands, the active workflows, the risk limits and the last operator actions, as one
//! JSON object (`--json`) or as text.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::config::{AutomationMode, RiskSettings};
use crate::store::report::operator_actions_table;
use crate::store::{OperatorAction, StoreError, TradingState};
use crate::supervisor::context::Ctx;
use crate::table::columns;
use mesolive_api::Hub;

/// Operator actions listed, newest first.
const ACTIONS_SHOWN: u32 = 10;

/// The daemon's state as `ctl status --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// active | reduce_only | halted.
    pub trading_state: TradingState,
    /// The daemon's role on its database: `primary` (alone on it), or `leader` in a failover
    /// group (a standby runs no term, so it answers no status).
    pub role: &'static str,
    /// `/readyz`: started, hubs connected, caught up, not stopping.
    pub ready: bool,
    /// `automation.mode`.
    pub mode: AutomationMode,
    /// Whether each hub is connected.
    pub hubs: BTreeMap<&'static str, bool>,
    /// The last committed EventSeqId.
    pub cursor: Option<i64>,
    /// The newest EventSeqId known on the server.
    pub latest_seq: i64,
    /// Events known on the server but not committed yet.
    pub lag: i64,
    /// Workflows with steps left.
    pub workflows_active: usize,
    /// The risk limits in force.
    pub risk: RiskSettings,
    /// The newest operator actions, newest first.
    pub operator_actions: Vec<OperatorAction>,
    /// The daemon's process id.
    pub pid: u32,
}

/// Reads the status of the running daemon.
pub async fn read(ctx: &Ctx) -> Result<Status, StoreError> {
    let store = ctx.store();
    let cursor = store.cursor().await?;
    let latest = ctx.metrics().latest_seq.get();
    let latest_seq = latest.max(cursor.unwrap_or(0));
    let settings = ctx.settings();
    Ok(Status {
        trading_state: ctx.trading_state(),
        role: ctx.health().role().as_str(),
        ready: ctx.health().ready(),
        mode: settings.automation.mode,
        hubs: Hub::ALL
            .iter()
            .map(|hub| (hub.as_str(), ctx.health().hub_up(*hub)))
            .collect(),
        cursor,
        latest_seq,
        lag: latest_seq - cursor.unwrap_or(0),
        workflows_active: store.active_workflows().await?.len(),
        risk: settings.risk.clone(),
        operator_actions: store.operator_actions(ACTIONS_SHOWN).await?,
        pid: std::process::id(),
    })
}

/// The status as text for a terminal.
pub fn render(status: &Status) -> String {
    let yes_no = |up: bool| if up { "up" } else { "down" };
    let hubs = status
        .hubs
        .iter()
        .map(|(hub, up)| format!("{hub} {}", yes_no(*up)))
        .collect::<Vec<_>>()
        .join(", ");
    let limit = |value: Option<u32>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let risk = &status.risk;
    let limits = format!(
        "entries/day {}, orders/min {}, open positions {}, daily loss {} (then {}), day in {}",
        limit(risk.max_entries_per_day),
        limit(risk.max_orders_per_minute),
        limit(risk.max_open_positions_total),
        risk.max_daily_loss
            .map_or_else(|| "-".to_owned(), |v| v.to_string()),
        risk.on_daily_loss,
        risk.day_timezone
    );
    let mut out = columns(
        &[],
        vec![
            vec!["trading state".into(), status.trading_state.to_string()],
            vec!["role".into(), status.role.into()],
            vec!["ready".into(), status.ready.to_string()],
            vec!["mode".into(), status.mode.to_string()],
            vec!["hubs".into(), hubs],
            vec![
                "cursor".into(),
                format!(
                    "{} (latest {}, lag {})",
                    status
                        .cursor
                        .map_or_else(|| "none".to_owned(), |c| c.to_string()),
                    status.latest_seq,
                    status.lag
                ),
            ],
            vec![
                "workflows active".into(),
                status.workflows_active.to_string(),
            ],
            vec!["risk limits".into(), limits],
            vec!["pid".into(), status.pid.to_string()],
        ],
    );
    let _ = write!(
        out,
        "\nOperator actions (newest, {})\n",
        status.operator_actions.len()
    );
    out.push_str(&operator_actions_table(&status.operator_actions));
    out
}
