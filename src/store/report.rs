//! The `state` subcommand's output: a [`StoreSummary`] as aligned plain text or as JSON.

use std::fmt::Write as _;

use super::{Location, OperatorAction, Store, StoreError, StoreSummary};
use crate::table::columns;

/// How `state` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// Aligned tables for a terminal.
    Table,
    /// Pretty-printed JSON for scripts.
    Json,
}

/// Open the database at `location` read-only (safe while the daemon runs) and render its state.
pub async fn state_report(location: &Location, format: ReportFormat) -> Result<String, StoreError> {
    let store = Store::connect_read_only(location).await?;
    let summary = store.summary().await?;
    store.close().await?;
    Ok(match format {
        ReportFormat::Table => render_table(&summary),
        ReportFormat::Json => render_json(&summary),
    })
}

/// The summary as JSON (an object with the same field names as [`StoreSummary`]).
pub fn render_json(summary: &StoreSummary) -> String {
    // Serializing plain structs, strings, numbers and JSON values cannot fail; fall back to
    // JSON null rather than panicking should that ever change.
    serde_json::to_string_pretty(summary).unwrap_or_else(|_| "null".to_owned())
}

/// The summary as sections of aligned columns.
pub fn render_table(summary: &StoreSummary) -> String {
    let mut out = String::new();
    let cursor = match (summary.cursor, summary.cursor_updated_at) {
        (Some(seq), Some(at)) => format!("{seq} (moved {at})"),
        (Some(seq), None) => seq.to_string(),
        (None, _) => "none (no event processed yet)".to_owned(),
    };
    out.push_str(&columns(
        &[],
        vec![
            vec!["database".into(), summary.database.clone()],
            vec!["event cursor".into(), cursor],
            vec![
                "trading state".into(),
                summary
                    .trading_state
                    .map_or_else(|| "none (never started)".to_owned(), |s| s.to_string()),
            ],
        ],
    ));

    if !summary.leases.is_empty() {
        section(&mut out, "Leadership lease", summary.leases.len());
        out.push_str(&columns(
            &["GROUP", "HOLDER", "EPOCH", "EXPIRES", "STATE"],
            summary
                .leases
                .iter()
                .map(|l| {
                    vec![
                        l.group.clone(),
                        optional(&l.holder),
                        l.epoch.to_string(),
                        l.expires_at.to_string(),
                        if l.is_held() { "held" } else { "free" }.to_owned(),
                    ]
                })
                .collect(),
        ));
    }

    section(
        &mut out,
        "Operator actions (newest)",
        summary.operator_actions.len(),
    );
    out.push_str(&operator_actions_table(&summary.operator_actions));

    section(&mut out, "Counts", summary.counts.len());
    out.push_str(&columns(
        &["TABLE", "STATE", "COUNT"],
        summary
            .counts
            .iter()
            .map(|c| vec![c.table.clone(), optional(&c.state), c.count.to_string()])
            .collect(),
    ));

    section(
        &mut out,
        "Intents in flight",
        summary.intents_in_flight.len(),
    );
    out.push_str(&columns(
        &[
            "KEY",
            "OPERATION",
            "STATE",
            "ATTEMPTS",
            "WORKFLOW",
            "UPDATED",
        ],
        summary
            .intents_in_flight
            .iter()
            .map(|i| {
                vec![
                    i.key.clone(),
                    i.operation.clone(),
                    i.state.as_str().to_owned(),
                    i.attempts.to_string(),
                    optional(&i.workflow_id),
                    i.updated_at.to_string(),
                ]
            })
            .collect(),
    ));

    section(
        &mut out,
        "Prepare jobs in flight",
        summary.prepare_jobs_in_flight.len(),
    );
    out.push_str(&columns(
        &[
            "JOB", "KIND", "STATUS", "STRATEGY", "POSITION", "ACCOUNT", "INTENT", "UPDATED",
        ],
        summary
            .prepare_jobs_in_flight
            .iter()
            .map(|j| {
                vec![
                    j.job_id.clone(),
                    j.kind.as_str().to_owned(),
                    j.status.as_str().to_owned(),
                    j.strategy_id.to_string(),
                    optional(&j.position_id),
                    optional(&j.account),
                    optional(&j.intent_key),
                    j.updated_at.to_string(),
                ]
            })
            .collect(),
    ));

    section(
        &mut out,
        "Workflows (active, then newest finished)",
        summary.workflows.len(),
    );
    out.push_str(&columns(
        &[
            "ID",
            "KIND",
            "STATE",
            "ATTEMPT",
            "STRATEGY",
            "ACCOUNT",
            "POSITION",
            "JOB",
            "DEADLINE",
            "NEXT ATTEMPT",
            "UPDATED",
            "REASON",
        ],
        summary
            .workflows
            .iter()
            .map(|w| {
                vec![
                    w.id.to_string(),
                    w.kind.as_str().to_owned(),
                    w.state.as_str().to_owned(),
                    w.attempt.to_string(),
                    w.strategy_id.to_string(),
                    optional(&w.account),
                    optional(&w.position_id),
                    optional(&w.job_id),
                    optional(&w.deadline),
                    optional(&w.retry_at),
                    w.updated_at.to_string(),
                    optional(&w.reason),
                ]
            })
            .collect(),
    ));

    section(
        &mut out,
        "Past their deadline",
        summary.overdue_workflows.len(),
    );
    out.push_str(&columns(
        &["WORKFLOW", "KIND", "STATE", "ATTEMPT", "DEADLINE", "REASON"],
        summary
            .overdue_workflows
            .iter()
            .map(|w| {
                vec![
                    w.id.to_string(),
                    w.kind.as_str().to_owned(),
                    w.state.as_str().to_owned(),
                    w.attempt.to_string(),
                    optional(&w.deadline),
                    optional(&w.reason),
                ]
            })
            .collect(),
    ));

    section(
        &mut out,
        "Monitored positions",
        summary.monitored_positions.len(),
    );
    out.push_str(&columns(
        &[
            "POSITION",
            "STRATEGY",
            "ACCOUNT",
            "NAME",
            "STATUS",
            "REALIZED PNL",
            "SNAPSHOT AT",
        ],
        summary
            .monitored_positions
            .iter()
            .map(|p| {
                vec![
                    p.position_id.to_string(),
                    p.strategy_id.to_string(),
                    p.account.clone(),
                    p.name.clone(),
                    optional(&p.last_status),
                    optional(&p.realized_pnl),
                    optional(&p.snapshot_at),
                ]
            })
            .collect(),
    ));

    section(&mut out, "History gaps", summary.history_gaps.len());
    out.push_str(&columns(
        &["FROM", "TO", "EVENTS", "FORM", "DETECTED", "RESOLUTION"],
        summary
            .history_gaps
            .iter()
            .map(|g| {
                vec![
                    g.from.to_string(),
                    g.to.to_string(),
                    g.events.to_string(),
                    g.form.as_str().to_owned(),
                    g.detected_at.to_string(),
                    g.resolution.as_str().to_owned(),
                ]
            })
            .collect(),
    ));

    let outbox = &summary.notifications;
    section(&mut out, "Notification sinks", outbox.sinks.len());
    out.push_str(&columns(
        &[],
        vec![
            vec!["pending".into(), outbox.status.pending.to_string()],
            vec!["dropped (ever)".into(), outbox.status.dropped.to_string()],
        ],
    ));
    out.push_str(&columns(
        &["SINK", "DELIVERED UP TO", "PENDING", "LAST DELIVERED"],
        outbox
            .sinks
            .iter()
            .map(|s| {
                vec![
                    s.label.clone(),
                    s.delivered_seq.to_string(),
                    s.pending.to_string(),
                    optional(&s.delivered_at),
                ]
            })
            .collect(),
    ));

    section(
        &mut out,
        "Notifications refused (newest)",
        outbox.failures.len(),
    );
    out.push_str(&columns(
        &["AT", "SINK", "SEQ", "KIND", "STATUS", "ANSWER"],
        outbox
            .failures
            .iter()
            .map(|f| {
                vec![
                    f.failed_at.to_string(),
                    f.label.clone(),
                    f.seq.to_string(),
                    f.kind.clone(),
                    optional(&f.status),
                    f.reason.clone(),
                ]
            })
            .collect(),
    ));

    section(
        &mut out,
        "Quarantined events (newest)",
        summary.quarantined_events.len(),
    );
    out.push_str(&columns(
        &["ID", "SEQ", "TARGET", "AT", "ERROR"],
        summary
            .quarantined_events
            .iter()
            .map(|q| {
                vec![
                    q.id.to_string(),
                    optional(&q.seq_id),
                    q.target.clone(),
                    q.quarantined_at.to_string(),
                    q.error.clone(),
                ]
            })
            .collect(),
    ));
    out
}

/// Operator actions as aligned columns (`state` and `ctl status`).
pub fn operator_actions_table(actions: &[OperatorAction]) -> String {
    columns(
        &["AT", "ACTION", "FROM", "TO", "WORKFLOW", "SOURCE", "REASON"],
        actions
            .iter()
            .map(|a| {
                vec![
                    a.at.to_string(),
                    a.action.as_str().to_owned(),
                    optional(&a.from_state),
                    optional(&a.to_state),
                    optional(&a.workflow_id),
                    a.source.as_str().to_owned(),
                    a.reason.clone(),
                ]
            })
            .collect(),
    )
}

/// A blank line and a section title with its row count.
fn section(out: &mut String, title: &str, rows: usize) {
    // Writing to a String cannot fail.
    let _ = write!(out, "\n{title} ({rows})\n");
}

/// `-` for an absent value.
fn optional(value: &Option<impl ToString>) -> String {
    value
        .as_ref()
        .map_or_else(|| "-".to_owned(), ToString::to_string)
}
