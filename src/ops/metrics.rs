//! Process metrics, rendered in the Prometheus text exposition format on `/metrics`.
//!
//! Hot counters are plain atomics (the event pump bumps them per batch); labelled families that
//! change rarely (restarts per child, errors per kind) live behind a mutex. Gauges that the
//! store knows better (intents and workflows by state) are refreshed by the supervisor through
//! [`Metrics::set_state_gauges`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use mesolive_api::Hub;

/// Every metric the daemon exports. Shared as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    /// Events whose effect was applied (exactly once).
    pub events_applied: AtomicU64,
    /// Events skipped as already processed (replay/live overlap, on-connect pushes).
    pub events_duplicate: AtomicU64,
    /// Events that could not be decoded (or came out of sequence) and went to quarantine.
    pub events_quarantined: AtomicU64,
    /// Events received without an EventSeqId (on-connect pushes): deduplicated by key, they
    /// never move the cursor.
    pub events_unsequenced: AtomicU64,
    /// States (signals, errors, agent status) at or below the cursor with a key never seen,
    /// applied as re-assertions (an on-connect push repeating its original EventSeqId).
    pub events_reasserted: AtomicU64,
    /// Store transactions committed by the event pump.
    pub event_batches: AtomicU64,
    /// Dedupe keys forgotten because they outlived `events.dedupe_window`.
    pub events_pruned: AtomicU64,
    /// Gap catch-ups triggered by a live EventSeqId jump.
    pub gap_catchups: AtomicU64,
    /// Holes met in the server's history (events it no longer had after the cursor).
    pub history_gaps: AtomicU64,
    /// Last committed EventSeqId.
    pub cursor: AtomicI64,
    /// Newest EventSeqId known to exist on the server.
    pub latest_seq: AtomicI64,
    /// Position monitor tasks running.
    pub monitors_running: AtomicI64,
    /// Monitored positions whose latest data is older than `monitor.stale_after`.
    pub positions_stale: AtomicI64,
    /// Position monitors whose current stream has delivered at least one item: after a
    /// reconnect, recovery is complete when this is back to `monitors_running`.
    pub monitors_streaming: AtomicI64,
    /// Position stream (re)starts after a failure or reconnect.
    pub stream_restarts: AtomicU64,
    /// Position stream items received.
    pub stream_items: AtomicU64,
    /// Snapshot resyncs done.
    pub snapshot_resyncs: AtomicU64,
    /// Failover only (else not exported): 1 while leading, 0 while standing by.
    leader: AtomicI64,
    /// Failover: the epoch of the lease last held.
    pub lease_epoch: AtomicI64,
    /// Failover: times this process became leader.
    pub takeovers: AtomicU64,
    hub_reconnects: [AtomicU64; 3],
    hub_connected: [AtomicI64; 3],
    labelled: Mutex<BTreeMap<(&'static str, String), u64>>,
    state_gauges: Mutex<StateGauges>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            events_applied: AtomicU64::default(),
            events_duplicate: AtomicU64::default(),
            events_quarantined: AtomicU64::default(),
            events_unsequenced: AtomicU64::default(),
            events_reasserted: AtomicU64::default(),
            event_batches: AtomicU64::default(),
            events_pruned: AtomicU64::default(),
            gap_catchups: AtomicU64::default(),
            history_gaps: AtomicU64::default(),
            cursor: AtomicI64::default(),
            latest_seq: AtomicI64::default(),
            monitors_running: AtomicI64::default(),
            positions_stale: AtomicI64::default(),
            monitors_streaming: AtomicI64::default(),
            stream_restarts: AtomicU64::default(),
            stream_items: AtomicU64::default(),
            snapshot_resyncs: AtomicU64::default(),
            leader: AtomicI64::new(NOT_EXPORTED),
            lease_epoch: AtomicI64::default(),
            takeovers: AtomicU64::default(),
            hub_reconnects: Default::default(),
            hub_connected: Default::default(),
            labelled: Mutex::default(),
            state_gauges: Mutex::default(),
        }
    }
}

/// `leader` of a daemon without failover: the leadership gauges are not exported at all (an
/// alert on `mesolive_leader == 0` must never fire for it).
const NOT_EXPORTED: i64 = -1;

/// Counts by state read from the store: `(state, count)` rows.
#[derive(Debug, Default, Clone)]
pub struct StateGauges {
    /// Intents by state.
    pub intents: Vec<(String, i64)>,
    /// Workflows by state.
    pub workflows: Vec<(String, i64)>,
}

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets a gauge.
    pub fn set(gauge: &AtomicI64, value: i64) {
        gauge.store(value, Ordering::Relaxed);
    }

    /// Raises a gauge to `value` if it is higher (a high-water mark).
    pub fn raise(gauge: &AtomicI64, value: i64) {
        gauge.fetch_max(value, Ordering::Relaxed);
    }

    /// Records that a hub connection came up (or went down).
    pub fn hub_connected(&self, hub: Hub, connected: bool) {
        self.hub_connected[hub as usize].store(i64::from(connected), Ordering::Relaxed);
    }

    /// Failover: this process leads (`true`) or stands by; the leadership gauges are exported
    /// from the first call on.
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(i64::from(leader), Ordering::Relaxed);
    }

    /// Counts one reconnect of a hub.
    pub fn hub_reconnected(&self, hub: Hub) {
        self.hub_reconnects[hub as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one restart of a supervised child.
    pub fn child_restarted(&self, child: &str) {
        self.bump("mesolive_child_restarts_total", child);
    }

    /// Counts one error of a kind (decode, api, store, …) — bad input is always counted.
    pub fn error(&self, kind: &str) {
        self.bump("mesolive_errors_total", kind);
    }

    /// Counts one workflow decision or transition, by outcome.
    pub fn workflow(&self, outcome: &str) {
        self.bump("mesolive_workflow_transitions_total", outcome);
    }

    fn bump(&self, family: &'static str, label: &str) {
        if let Ok(mut map) = self.labelled.lock() {
            *map.entry((family, label.to_owned())).or_default() += 1;
        }
    }

    /// A labelled counter's current value (tests and the demo view).
    pub fn labelled_value(&self, family: &str, label: &str) -> u64 {
        self.labelled
            .lock()
            .ok()
            .and_then(|map| {
                map.iter()
                    .find(|((f, l), _)| *f == family && l == label)
                    .map(|(_, v)| *v)
            })
            .unwrap_or(0)
    }

    /// Replaces the store-derived gauges.
    pub fn set_state_gauges(&self, gauges: StateGauges) {
        if let Ok(mut current) = self.state_gauges.lock() {
            *current = gauges;
        }
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let gauges = self
            .state_gauges
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default();
        let mut out = String::with_capacity(4096);
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let gauge = |g: &AtomicI64| g.load(Ordering::Relaxed);
        counter(
            &mut out,
            "mesolive_events_applied_total",
            "Events applied exactly once.",
            load(&self.events_applied),
        );
        counter(
            &mut out,
            "mesolive_events_duplicate_total",
            "Events skipped as already processed.",
            load(&self.events_duplicate),
        );
        counter(
            &mut out,
            "mesolive_events_quarantined_total",
            "Events quarantined: undecodable, or out of sequence.",
            load(&self.events_quarantined),
        );
        counter(
            &mut out,
            "mesolive_events_unsequenced_total",
            "Events received without an EventSeqId (on-connect pushes).",
            load(&self.events_unsequenced),
        );
        counter(
            &mut out,
            "mesolive_events_reasserted_total",
            "States at or below the cursor applied as re-assertions (on-connect pushes).",
            load(&self.events_reasserted),
        );
        counter(
            &mut out,
            "mesolive_event_batches_total",
            "Event store transactions committed.",
            load(&self.event_batches),
        );
        counter(
            &mut out,
            "mesolive_events_pruned_total",
            "Dedupe keys forgotten after the dedupe window.",
            load(&self.events_pruned),
        );
        counter(
            &mut out,
            "mesolive_gap_catchups_total",
            "Catch-ups triggered by an EventSeqId jump.",
            load(&self.gap_catchups),
        );
        counter(
            &mut out,
            "mesolive_history_gaps_total",
            "Holes met in the server's event history (events it no longer had after the cursor).",
            load(&self.history_gaps),
        );
        let cursor = gauge(&self.cursor);
        let latest = gauge(&self.latest_seq).max(cursor);
        single(
            &mut out,
            "gauge",
            "mesolive_event_cursor",
            "Last committed EventSeqId.",
            cursor,
        );
        single(
            &mut out,
            "gauge",
            "mesolive_event_latest_seq",
            "Newest EventSeqId known on the server.",
            latest,
        );
        single(
            &mut out,
            "gauge",
            "mesolive_event_lag",
            "Events known on the server but not yet committed.",
            latest - cursor,
        );
        single(
            &mut out,
            "gauge",
            "mesolive_monitors_running",
            "Position monitor tasks running.",
            gauge(&self.monitors_running),
        );
        single(
            &mut out,
            "gauge",
            "mesolive_monitors_streaming",
            "Position monitors whose current stream has delivered an item.",
            gauge(&self.monitors_streaming),
        );
        single(
            &mut out,
            "gauge",
            "mesolive_positions_stale",
            "Monitored positions with stale data.",
            gauge(&self.positions_stale),
        );
        counter(
            &mut out,
            "mesolive_stream_restarts_total",
            "Position stream restarts.",
            load(&self.stream_restarts),
        );
        counter(
            &mut out,
            "mesolive_stream_items_total",
            "Position stream items received.",
            load(&self.stream_items),
        );
        counter(
            &mut out,
            "mesolive_snapshot_resyncs_total",
            "Position snapshot resyncs.",
            load(&self.snapshot_resyncs),
        );
        let leader = gauge(&self.leader);
        if leader != NOT_EXPORTED {
            single(
                &mut out,
                "gauge",
                "mesolive_leader",
                "1 while this daemon holds its group's lease, 0 while it stands by.",
                leader,
            );
            single(
                &mut out,
                "gauge",
                "mesolive_lease_epoch",
                "Epoch (fencing token) of the lease this daemon last held.",
                gauge(&self.lease_epoch),
            );
            counter(
                &mut out,
                "mesolive_takeovers_total",
                "Times this daemon became its group's leader.",
                load(&self.takeovers),
            );
        }
        header(
            &mut out,
            "gauge",
            "mesolive_hub_connected",
            "1 while the hub connection is up.",
        );
        for hub in Hub::ALL {
            let _ = writeln!(
                out,
                "mesolive_hub_connected{{hub=\"{}\"}} {}",
                hub.as_str(),
                gauge(&self.hub_connected[hub as usize])
            );
        }
        header(
            &mut out,
            "counter",
            "mesolive_hub_reconnects_total",
            "Hub reconnects after a lost connection.",
        );
        for hub in Hub::ALL {
            let _ = writeln!(
                out,
                "mesolive_hub_reconnects_total{{hub=\"{}\"}} {}",
                hub.as_str(),
                load(&self.hub_reconnects[hub as usize])
            );
        }
        labelled_family(
            &mut out,
            "gauge",
            "mesolive_intents",
            "Intents by state.",
            "state",
            &gauges.intents,
        );
        labelled_family(
            &mut out,
            "gauge",
            "mesolive_workflows",
            "Workflows by state.",
            "state",
            &gauges.workflows,
        );
        if let Ok(map) = self.labelled.lock() {
            let families = [
                (
                    "mesolive_child_restarts_total",
                    "Restarts per supervised child.",
                    "child",
                ),
                (
                    "mesolive_errors_total",
                    "Errors by kind (bad input is always counted).",
                    "kind",
                ),
                (
                    "mesolive_workflow_transitions_total",
                    "Workflow transitions by outcome.",
                    "outcome",
                ),
            ];
            for (family, help, label) in families {
                let rows: Vec<(String, i64)> = map
                    .iter()
                    .filter(|((f, _), _)| *f == family)
                    .map(|((_, l), v)| (l.clone(), i64::try_from(*v).unwrap_or(i64::MAX)))
                    .collect();
                labelled_family(&mut out, "counter", family, help, label, &rows);
            }
        }
        out
    }
}

/// Reads one series (`name` or `name{labels}`) from Prometheus text: what a probe of another
/// process's `/metrics` needs (the benchmark's child daemon, the process tests).
pub fn series_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
}

fn header(out: &mut String, kind: &str, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn single(out: &mut String, kind: &str, name: &str, help: &str, value: i64) {
    header(out, kind, name, help);
    let _ = writeln!(out, "{name} {value}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, "counter", name, help);
    let _ = writeln!(out, "{name} {value}");
}

fn labelled_family(
    out: &mut String,
    kind: &str,
    name: &str,
    help: &str,
    label: &str,
    rows: &[(String, i64)],
) {
    header(out, kind, name, help);
    for (value_label, value) in rows {
        let escaped = value_label
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = writeln!(out, "{name}{{{label}=\"{escaped}\"}} {value}");
    }
}
