//! Process metrics, exposed on `/metrics` in the OpenMetrics text format through
//! `prometheus-client` (the Prometheus project's Rust client).
//!
//! Every metric is registered once, at construction; the handles are atomics, so the event
//! pump bumps its counters per batch without a lock. Labelled families whose labels are not
//! known in advance (restarts per child, errors per kind) create a series on first use. Gauges
//! that the store knows better (intents and workflows by state) are refreshed by the daemon
//! through [`Metrics::set_state_gauges`].
//!
//! Counters are registered without their `_total` suffix, which the OpenMetrics encoder adds:
//! the names Prometheus stores are the ones the README, the dashboard and the alert rules use.
//!
//! The failover metrics (leader, lease epoch, takeovers) live in a registry of their own,
//! exported from the first [`Metrics::set_leader`] on: a daemon without failover never shows
//! `mesolive_leader`, so an alert on `mesolive_leader == 0` never fires for it.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use mesolive_api::Hub;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Atomic;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::store::TradingState;

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One label, named by its family (`hub`, `kind`, `state`, …).
type Label = [(&'static str, String); 1];

/// Counters by one label.
type CounterFamily = Family<Label, Counter>;

/// Gauges by one label.
type GaugeFamily = Family<Label, Gauge>;

/// A counter family and the name of its one label.
#[derive(Debug, Default)]
pub struct Labelled {
    label: &'static str,
    family: CounterFamily,
}

impl Labelled {
    fn new(label: &'static str) -> Self {
        Labelled {
            label,
            family: CounterFamily::default(),
        }
    }

    /// Makes the series of `value` exist at 0 (a family with no series prints nothing).
    fn touch(&self, value: &str) {
        let _series = self.family.get_or_create(&[(self.label, value.to_owned())]);
    }

    /// Counts one occurrence for `value`.
    fn inc(&self, value: &str) {
        self.family
            .get_or_create(&[(self.label, value.to_owned())])
            .inc();
    }

    /// The count for `value` so far (0 if never counted).
    pub fn value(&self, value: &str) -> u64 {
        self.family
            .get(&[(self.label, value.to_owned())])
            .map_or(0, |counter| counter.get())
    }
}

/// Every metric the daemon exports. Shared as `Arc<Metrics>`.
pub struct Metrics {
    registry: Registry,
    /// Events whose effect was applied (exactly once).
    pub events_applied: Counter,
    /// Events skipped as already processed (replay/live overlap, on-connect pushes).
    pub events_duplicate: Counter,
    /// Events that could not be decoded (or came out of sequence) and went to quarantine.
    pub events_quarantined: Counter,
    /// Events received without an EventSeqId (on-connect pushes): deduplicated by key, they
    /// never move the cursor.
    pub events_unsequenced: Counter,
    /// States (signals, errors, agent status) at or below the cursor with a key never seen,
    /// applied as re-assertions (an on-connect push repeating its original EventSeqId).
    pub events_reasserted: Counter,
    /// Store transactions committed by the event pump.
    pub event_batches: Counter,
    /// Dedupe keys forgotten because they outlived `events.dedupe_window`.
    pub events_pruned: Counter,
    /// Gap catch-ups triggered by a live EventSeqId jump.
    pub gap_catchups: Counter,
    /// Holes met in the server's history (events it no longer had after the cursor).
    pub history_gaps: Counter,
    /// Last committed EventSeqId.
    pub cursor: Gauge,
    /// Newest EventSeqId known to exist on the server (never below the cursor when exported).
    pub latest_seq: Gauge,
    /// `latest_seq - cursor`, computed when rendered.
    lag: Gauge,
    /// Position monitor tasks running.
    pub monitors_running: Gauge,
    /// Monitored positions whose latest data is older than `monitor.stale_after`.
    pub positions_stale: Gauge,
    /// Position monitors whose current stream has delivered at least one item: after a
    /// reconnect, recovery is complete when this is back to `monitors_running`.
    pub monitors_streaming: Gauge,
    /// Position stream (re)starts after a failure or reconnect.
    pub stream_restarts: Counter,
    /// Position stream items received.
    pub stream_items: Counter,
    /// Snapshot resyncs done.
    pub snapshot_resyncs: Counter,
    /// 1 while `/readyz` would answer 200 (set when rendered).
    pub ready: Gauge,
    /// Notifications some sink still has to take (refreshed from the store).
    pub notifications_pending: Gauge,
    /// Notifications a sink accepted (one per notification and sink).
    pub notifications_delivered: Counter,
    /// Notifications a sink refused for good (4xx): not retried.
    pub notifications_failed: Counter,
    /// Notifications dropped to keep the outbox within `notify.max_pending` (since this process
    /// started; refreshed from the store).
    pub notifications_dropped: Counter,
    hub_connected: GaugeFamily,
    hub_reconnects: CounterFamily,
    /// Restarts per supervised child.
    pub child_restarts: Labelled,
    /// Errors by kind.
    pub errors: Labelled,
    /// Workflow transitions by outcome.
    pub workflow_transitions: Labelled,
    /// New attempts at a signal instance after a failed workflow, by workflow kind.
    pub workflow_retries: Labelled,
    /// Workflows refused by a risk rule, by rule.
    pub risk_refusals: Labelled,
    /// Trading-state switches made by a risk rule, by rule.
    pub risk_switches: Labelled,
    /// Configuration reloads applied (SIGHUP, `ctl reload`).
    pub config_reloads: Counter,
    /// Configuration reloads refused: an invalid file, or a key that cannot change live.
    pub config_reload_failures: Counter,
    trading_state: GaugeFamily,
    daily_pnl: RowFamily<f64, std::sync::atomic::AtomicU64>,
    intents: RowFamily<i64, std::sync::atomic::AtomicI64>,
    workflows: RowFamily<i64, std::sync::atomic::AtomicI64>,
    /// The failover metrics, exported once `exporting_failover` is set.
    failover: Registry,
    exporting_failover: AtomicBool,
    /// Failover: 1 while leading, 0 while standing by.
    leader: Gauge,
    /// Failover: the epoch of the lease last held.
    pub lease_epoch: Gauge,
    /// Failover: times this process became leader.
    pub takeovers: Counter,
    workflow_oldest_active_seconds: Gauge,
    workflows_overdue: Gauge,
    intent_oldest_in_flight_seconds: Gauge,
}

/// Counts by state read from the store: `(state, count)` rows.
#[derive(Debug, Default, Clone)]
pub struct StateGauges {
    /// Intents by state.
    pub intents: Vec<(String, i64)>,
    /// Workflows by state.
    pub workflows: Vec<(String, i64)>,
    /// Age in seconds of the oldest active workflow (0 if none).
    pub workflow_oldest_active_seconds: i64,
    /// Active workflows past their deadline.
    pub workflows_overdue: i64,
    /// Age in seconds of the oldest intent not settled (0 if none).
    pub intent_oldest_in_flight_seconds: i64,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut metrics = Metrics {
            registry: Registry::default(),
            events_applied: Counter::default(),
            events_duplicate: Counter::default(),
            events_quarantined: Counter::default(),
            events_unsequenced: Counter::default(),
            events_reasserted: Counter::default(),
            event_batches: Counter::default(),
            events_pruned: Counter::default(),
            gap_catchups: Counter::default(),
            history_gaps: Counter::default(),
            cursor: Gauge::default(),
            latest_seq: Gauge::default(),
            lag: Gauge::default(),
            monitors_running: Gauge::default(),
            positions_stale: Gauge::default(),
            monitors_streaming: Gauge::default(),
            stream_restarts: Counter::default(),
            stream_items: Counter::default(),
            snapshot_resyncs: Counter::default(),
            ready: Gauge::default(),
            notifications_pending: Gauge::default(),
            notifications_delivered: Counter::default(),
            notifications_failed: Counter::default(),
            notifications_dropped: Counter::default(),
            hub_connected: GaugeFamily::default(),
            hub_reconnects: CounterFamily::default(),
            child_restarts: Labelled::new("child"),
            errors: Labelled::new("kind"),
            workflow_transitions: Labelled::new("outcome"),
            workflow_retries: Labelled::new("kind"),
            risk_refusals: Labelled::new("rule"),
            risk_switches: Labelled::new("rule"),
            config_reloads: Counter::default(),
            config_reload_failures: Counter::default(),
            trading_state: GaugeFamily::default(),
            daily_pnl: RowFamily::new("account"),
            intents: RowFamily::new("state"),
            workflows: RowFamily::new("state"),
            failover: Registry::default(),
            exporting_failover: AtomicBool::new(false),
            leader: Gauge::default(),
            lease_epoch: Gauge::default(),
            takeovers: Counter::default(),
            workflow_oldest_active_seconds: Gauge::default(),
            workflows_overdue: Gauge::default(),
            intent_oldest_in_flight_seconds: Gauge::default(),
        };
        metrics.register_all();
        metrics.set_trading_state(TradingState::Active);
        for rule in crate::risk::rules::ALL {
            metrics.risk_refusals.touch(rule);
        }
        metrics
            .risk_switches
            .touch(crate::risk::rules::MAX_DAILY_LOSS);
        for hub in Hub::ALL {
            let label = [("hub", hub.as_str().to_owned())];
            metrics.hub_connected.get_or_create(&label).set(0);
            metrics.hub_reconnects.get_or_create(&label).inc_by(0);
        }
        metrics
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("cursor", &self.cursor.get())
            .field("events_applied", &self.events_applied.get())
            .finish_non_exhaustive()
    }
}

impl Metrics {
    fn register_all(&mut self) {
        let r = &mut self.registry;
        let counters = [
            (
                "mesolive_events_applied",
                "Events applied exactly once",
                &self.events_applied,
            ),
            (
                "mesolive_events_duplicate",
                "Events skipped as already processed",
                &self.events_duplicate,
            ),
            (
                "mesolive_events_quarantined",
                "Events quarantined: undecodable, or out of sequence",
                &self.events_quarantined,
            ),
            (
                "mesolive_events_unsequenced",
                "Events received without an EventSeqId (on-connect pushes)",
                &self.events_unsequenced,
            ),
            (
                "mesolive_events_reasserted",
                "States at or below the cursor applied as re-assertions (signals, errors, agent status)",
                &self.events_reasserted,
            ),
            (
                "mesolive_event_batches",
                "Event store transactions committed",
                &self.event_batches,
            ),
            (
                "mesolive_events_pruned",
                "Dedupe keys forgotten after the dedupe window",
                &self.events_pruned,
            ),
            (
                "mesolive_gap_catchups",
                "Catch-ups triggered by an EventSeqId jump",
                &self.gap_catchups,
            ),
            (
                "mesolive_history_gaps",
                "Holes in the server's history met after the cursor (resynced from the Control Hub)",
                &self.history_gaps,
            ),
            (
                "mesolive_stream_restarts",
                "Position stream restarts",
                &self.stream_restarts,
            ),
            (
                "mesolive_stream_items",
                "Position stream items received",
                &self.stream_items,
            ),
            (
                "mesolive_snapshot_resyncs",
                "Position snapshot resyncs",
                &self.snapshot_resyncs,
            ),
            (
                "mesolive_notifications_delivered",
                "Notifications a sink accepted (per notification and sink)",
                &self.notifications_delivered,
            ),
            (
                "mesolive_notifications_failed",
                "Notifications a sink refused for good (4xx), not retried",
                &self.notifications_failed,
            ),
            (
                "mesolive_notifications_dropped",
                "Notifications dropped to keep the outbox within notify.max_pending",
                &self.notifications_dropped,
            ),
        ];
        for (name, help, counter) in counters {
            r.register(name, help, counter.clone());
        }
        let gauges = [
            (
                "mesolive_event_cursor",
                "Last committed EventSeqId",
                &self.cursor,
            ),
            (
                "mesolive_event_latest_seq",
                "Newest EventSeqId known on the server",
                &self.latest_seq,
            ),
            (
                "mesolive_event_lag",
                "Events known on the server but not yet committed",
                &self.lag,
            ),
            (
                "mesolive_monitors_running",
                "Position monitor tasks running",
                &self.monitors_running,
            ),
            (
                "mesolive_monitors_streaming",
                "Position monitors whose current stream has delivered an item",
                &self.monitors_streaming,
            ),
            (
                "mesolive_positions_stale",
                "Monitored positions with stale data",
                &self.positions_stale,
            ),
            (
                "mesolive_workflow_oldest_active_seconds",
                "Age of the oldest active workflow (0 if none)",
                &self.workflow_oldest_active_seconds,
            ),
            (
                "mesolive_workflows_overdue",
                "Active workflows past their deadline",
                &self.workflows_overdue,
            ),
            (
                "mesolive_intent_oldest_in_flight_seconds",
                "Age of the oldest intent not settled: pending, sent, unknown or abandoned (0 if none)",
                &self.intent_oldest_in_flight_seconds,
            ),
            (
                "mesolive_ready",
                "1 while /readyz answers 200 (hubs connected, caught up, not stopping)",
                &self.ready,
            ),
            (
                "mesolive_notifications_pending",
                "Notifications some sink still has to take",
                &self.notifications_pending,
            ),
        ];
        for (name, help, gauge) in gauges {
            r.register(name, help, gauge.clone());
        }
        r.register(
            "mesolive_hub_connected",
            "1 while the hub connection is up",
            self.hub_connected.clone(),
        );
        r.register(
            "mesolive_hub_reconnects",
            "Hub reconnects after a lost connection",
            self.hub_reconnects.clone(),
        );
        let labelled = [
            (
                "mesolive_child_restarts",
                "Restarts per supervised child",
                &self.child_restarts,
            ),
            (
                "mesolive_errors",
                "Errors by kind (bad input is always counted)",
                &self.errors,
            ),
            (
                "mesolive_workflow_transitions",
                "Workflow transitions by outcome",
                &self.workflow_transitions,
            ),
            (
                "mesolive_workflow_retries",
                "New attempts at a signal instance after a failed workflow, by kind",
                &self.workflow_retries,
            ),
        ];
        for (name, help, family) in labelled {
            r.register(name, help, family.family.clone());
        }
        let labelled = [
            (
                "mesolive_risk_refusals",
                "Workflows refused by a risk rule (the call was not sent)",
                &self.risk_refusals,
            ),
            (
                "mesolive_risk_switches",
                "Trading-state switches made by a risk rule",
                &self.risk_switches,
            ),
        ];
        for (name, help, family) in labelled {
            r.register(name, help, family.family.clone());
        }
        r.register(
            "mesolive_config_reloads",
            "Configuration reloads applied",
            self.config_reloads.clone(),
        );
        r.register(
            "mesolive_config_reload_failures",
            "Configuration reloads refused (invalid file, or a key that cannot change live)",
            self.config_reload_failures.clone(),
        );
        r.register(
            "mesolive_trading_state",
            "1 for the current trading state (active, reduce_only, halted), 0 for the others",
            self.trading_state.clone(),
        );
        r.register(
            "mesolive_risk_daily_realized_pnl",
            "Realized PnL of the trading day per account (while risk.max_daily_loss is set)",
            self.daily_pnl.family.clone(),
        );
        r.register(
            "mesolive_intents",
            "Intents by state",
            self.intents.family.clone(),
        );
        r.register(
            "mesolive_workflows",
            "Workflows by state",
            self.workflows.family.clone(),
        );
        let f = &mut self.failover;
        f.register(
            "mesolive_leader",
            "1 while this daemon holds its group's lease, 0 while it stands by",
            self.leader.clone(),
        );
        f.register(
            "mesolive_lease_epoch",
            "Epoch (fencing token) of the lease this daemon last held",
            self.lease_epoch.clone(),
        );
        f.register(
            "mesolive_takeovers",
            "Times this daemon became its group's leader",
            self.takeovers.clone(),
        );
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &Counter, n: u64) {
        counter.inc_by(n);
    }

    /// Sets a gauge.
    pub fn set(gauge: &Gauge, value: i64) {
        gauge.set(value);
    }

    /// Raises a gauge to `value` if it is higher (a high-water mark).
    pub fn raise(gauge: &Gauge, value: i64) {
        gauge.inner().fetch_max(value, Ordering::Relaxed);
    }

    /// Records that a hub connection came up (or went down).
    pub fn hub_connected(&self, hub: Hub, connected: bool) {
        self.hub_connected
            .get_or_create(&[("hub", hub.as_str().to_owned())])
            .set(i64::from(connected));
    }

    /// Failover: this process leads (`true`) or stands by; the failover metrics are exported
    /// from the first call on.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
        self.exporting_failover.store(true, Ordering::Relaxed);
    }

    /// Counts one reconnect of a hub.
    pub fn hub_reconnected(&self, hub: Hub) {
        self.hub_reconnects
            .get_or_create(&[("hub", hub.as_str().to_owned())])
            .inc();
    }

    /// Counts one restart of a supervised child.
    pub fn child_restarted(&self, child: &str) {
        self.child_restarts.inc(child);
    }

    /// Counts one error of a kind (decode, api, store, …) — bad input is always counted.
    pub fn error(&self, kind: &str) {
        self.errors.inc(kind);
    }

    /// Records the trading state now (`mesolive_trading_state{state}`).
    pub fn set_trading_state(&self, current: TradingState) {
        for state in TradingState::ALL {
            self.trading_state
                .get_or_create(&[("state", state.as_str().to_owned())])
                .set(i64::from(state == current));
        }
    }

    /// Counts one call refused by a risk rule.
    pub fn risk_refused(&self, rule: &str) {
        self.risk_refusals.inc(rule);
    }

    /// Counts one trading-state switch made by a risk rule.
    pub fn risk_switched(&self, rule: &str) {
        self.risk_switches.inc(rule);
    }

    /// Replaces the realized PnL of the trading day per account, as the daily-loss watcher
    /// last computed it.
    pub fn set_daily_pnl(&self, per_account: Vec<(String, f64)>) {
        self.daily_pnl.replace(&per_account);
    }

    /// Counts one workflow decision or transition, by outcome.
    pub fn workflow(&self, outcome: &str) {
        self.workflow_transitions.inc(outcome);
    }

    /// Counts one retry (a new attempt at a signal instance), by workflow kind.
    pub fn workflow_retry(&self, kind: &str) {
        self.workflow_retries.inc(kind);
    }

    /// Replaces the store-derived gauges.
    pub fn set_state_gauges(&self, gauges: StateGauges) {
        self.intents.replace(&gauges.intents);
        self.workflows.replace(&gauges.workflows);
        self.workflow_oldest_active_seconds
            .set(gauges.workflow_oldest_active_seconds);
        self.workflows_overdue.set(gauges.workflows_overdue);
        self.intent_oldest_in_flight_seconds
            .set(gauges.intent_oldest_in_flight_seconds);
    }

    /// Follows the outbox: `pending` now, and `dropped_since_start` (the store's total less
    /// what it was when this process started) for the counter, which only moves up.
    pub fn set_outbox(&self, pending: i64, dropped_since_start: i64) {
        self.notifications_pending.set(pending);
        let dropped = u64::try_from(dropped_since_start).unwrap_or(0);
        let counted = self.notifications_dropped.get();
        if dropped > counted {
            self.notifications_dropped.inc_by(dropped - counted);
        }
    }

    /// Renders every metric in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let cursor = self.cursor.get();
        Metrics::raise(&self.latest_seq, cursor);
        self.lag.set(self.latest_seq.get() - cursor);
        let mut out = String::with_capacity(8192);
        // Writing into a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry);
        if self.exporting_failover.load(Ordering::Relaxed) {
            let _ = encode_registry(&mut out, &self.failover);
        }
        let _ = encode_eof(&mut out);
        out
    }
}

/// Gauges by one label, replaced as a whole from a computed set of rows (states read from the
/// store, accounts of the risk watcher).
#[derive(Debug)]
struct RowFamily<N, A> {
    label: &'static str,
    family: Family<Label, Gauge<N, A>>,
    /// The labels of the last replacement, to drop those the next one no longer has.
    exported: Mutex<Vec<String>>,
}

impl<N, A: Atomic<N> + Default> RowFamily<N, A> {
    fn new(label: &'static str) -> Self {
        RowFamily {
            label,
            family: Family::default(),
            exported: Mutex::new(Vec::new()),
        }
    }

    /// Sets every row, then removes the labels of the previous replacement that are gone
    /// (never a moment with the family empty).
    fn replace(&self, rows: &[(String, N)])
    where
        N: Copy,
    {
        let mut exported = self.exported.lock().unwrap_or_else(PoisonError::into_inner);
        for (value, count) in rows {
            self.family
                .get_or_create(&[(self.label, value.clone())])
                .set(*count);
        }
        for gone in exported
            .iter()
            .filter(|e| !rows.iter().any(|(value, _)| value == *e))
        {
            self.family.remove(&[(self.label, gone.clone())]);
        }
        *exported = rows.iter().map(|(value, _)| value.clone()).collect();
    }
}

/// Reads one series (`name` or `name{labels}`) from Prometheus or OpenMetrics text: what a
/// probe of another process's `/metrics` needs (the benchmark's child daemon, the process
/// tests).
pub fn series_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_the_documented_ones() {
        let metrics = Metrics::default();
        Metrics::add(&metrics.events_applied, 3);
        Metrics::set(&metrics.cursor, 10);
        Metrics::raise(&metrics.latest_seq, 7);
        metrics.error("event_decode");
        metrics.error("event_decode");
        metrics.hub_connected(Hub::Event, true);
        metrics.set_state_gauges(StateGauges {
            intents: vec![("completed".into(), 4)],
            workflows: vec![("done".into(), 2), ("failed".into(), 1)],
            workflows_overdue: 1,
            ..StateGauges::default()
        });
        let text = metrics.render();
        let value = |series: &str| series_value(&text, series);
        assert_eq!(value("mesolive_events_applied_total"), Some(3.0), "{text}");
        assert_eq!(value("mesolive_workflows_overdue"), Some(1.0), "{text}");
        assert_eq!(value("mesolive_event_cursor"), Some(10.0));
        assert_eq!(
            value("mesolive_event_latest_seq"),
            Some(10.0),
            "never below the cursor"
        );
        assert_eq!(value("mesolive_event_lag"), Some(0.0));
        assert_eq!(
            value("mesolive_errors_total{kind=\"event_decode\"}"),
            Some(2.0)
        );
        assert_eq!(value("mesolive_hub_connected{hub=\"event\"}"), Some(1.0));
        assert_eq!(value("mesolive_hub_connected{hub=\"data\"}"), Some(0.0));
        assert_eq!(
            value("mesolive_hub_reconnects_total{hub=\"control\"}"),
            Some(0.0)
        );
        assert_eq!(value("mesolive_intents{state=\"completed\"}"), Some(4.0));
        assert_eq!(value("mesolive_workflows{state=\"failed\"}"), Some(1.0));
        assert!(
            text.ends_with("# EOF\n"),
            "OpenMetrics text ends with # EOF"
        );
        assert!(text.contains("# TYPE mesolive_events_applied counter"));
        assert_eq!(metrics.errors.value("event_decode"), 2);
        assert_eq!(value("mesolive_trading_state{state=\"active\"}"), Some(1.0));
        assert_eq!(value("mesolive_trading_state{state=\"halted\"}"), Some(0.0));
        assert_eq!(value("mesolive_config_reloads_total"), Some(0.0));
        assert_eq!(metrics.errors.value("never"), 0);
        assert_eq!(value("mesolive_leader"), None, "no failover: not exported");
    }

    #[test]
    fn the_failover_metrics_appear_once_a_role_is_taken() {
        let metrics = Metrics::default();
        metrics.set_leader(false);
        assert_eq!(
            series_value(&metrics.render(), "mesolive_leader"),
            Some(0.0)
        );
        metrics.set_leader(true);
        Metrics::set(&metrics.lease_epoch, 4);
        Metrics::add(&metrics.takeovers, 1);
        let text = metrics.render();
        assert_eq!(series_value(&text, "mesolive_leader"), Some(1.0));
        assert_eq!(series_value(&text, "mesolive_lease_epoch"), Some(4.0));
        assert_eq!(series_value(&text, "mesolive_takeovers_total"), Some(1.0));
        assert!(text.ends_with("# EOF\n"), "one EOF, at the end");
        assert_eq!(text.matches("# EOF").count(), 1);
    }

    #[test]
    fn the_outbox_gauge_follows_the_store_and_the_dropped_counter_only_rises() {
        let metrics = Metrics::default();
        metrics.set_outbox(4, 3);
        metrics.set_outbox(2, 5);
        metrics.set_outbox(1, 0);
        let text = metrics.render();
        assert_eq!(
            series_value(&text, "mesolive_notifications_pending"),
            Some(1.0)
        );
        assert_eq!(
            series_value(&text, "mesolive_notifications_dropped_total"),
            Some(5.0)
        );
        assert_eq!(
            series_value(&text, "mesolive_notifications_delivered_total"),
            Some(0.0)
        );
        assert_eq!(series_value(&text, "mesolive_ready"), Some(0.0));
    }

    #[test]
    fn a_state_gone_from_the_store_leaves_the_family() {
        let metrics = Metrics::default();
        metrics.set_state_gauges(StateGauges {
            intents: vec![("sent".into(), 1)],
            workflows: vec![("executing".into(), 1)],
            ..StateGauges::default()
        });
        metrics.set_state_gauges(StateGauges {
            intents: vec![("completed".into(), 1)],
            ..StateGauges::default()
        });
        let text = metrics.render();
        assert_eq!(
            series_value(&text, "mesolive_intents{state=\"sent\"}"),
            None
        );
        assert_eq!(
            series_value(&text, "mesolive_intents{state=\"completed\"}"),
            Some(1.0)
        );
        assert_eq!(
            series_value(&text, "mesolive_workflows{state=\"executing\"}"),
            None
        );
    }
}
