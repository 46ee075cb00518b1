//! The resource soak: ONE daemon process for the whole length (no restarts, so its figures
//! mean something) under churn — events all the time, a hub dropped every 3 s, positions
//! opened and closed every 2 s, a signal every 5 s — sampling RSS, threads, fds, the dedupe
//! set and /metrics gauges, so "flat" is shown by first/last/max numbers. The dedupe window is
//! short so pruning happens within the soak.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::json;
use sqlx::Connection as _;
use tokio::time::Instant;

use super::invariants;
use super::run::{exit_candidates, keep_running, settle, sim_options, stop, toggle};
use crate::support::daemon::{Daemon, Sim, metric_value};

/// Positions churn keeps open at most.
const CHURN_OPEN: usize = 8;
/// Entry targets of the soak's signals (all allowed; 103 on LIVE-1 sends orders).
const ENTRIES: [(i64, &str); 3] = [(101, "PAPER-1"), (103, "LIVE-1"), (103, "PAPER-1")];

/// One sample of the daemon.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sample {
    pub at: Duration,
    pub rss_kib: u64,
    pub threads: u64,
    pub fds: u64,
    pub dedupe_keys: i64,
    /// The database file and its WAL, in KiB.
    pub db_kib: u64,
    pub monitors: f64,
    pub reconnects: f64,
    pub applied: f64,
    pub pruned: f64,
}

/// One figure of a sample.
type Figure = fn(&Sample) -> f64;

/// What the soak saw.
#[derive(Debug, Default)]
pub(crate) struct SoakReport {
    pub length: Duration,
    pub window: Duration,
    pub samples: Vec<Sample>,
    /// Index of the first sample after the warm-up (the reference for "flat").
    pub warm: usize,
    pub positions_opened: u64,
    pub positions_closed: u64,
    pub drops: u64,
    pub signals: u64,
    pub violations: Vec<String>,
}

/// The dedupe window of a soak of `length`: a tenth of it, between 10 s and 2 minutes.
fn window(length: Duration) -> Duration {
    (length / 10).clamp(Duration::from_secs(10), Duration::from_secs(120))
}

async fn dedupe_keys(daemon: &Daemon) -> i64 {
    let url = format!("sqlite://{}?mode=ro", daemon.db.display());
    let Ok(mut db) = sqlx::SqliteConnection::connect(&url).await else {
        return -1;
    };
    let count = sqlx::query_scalar("SELECT COUNT(*) FROM processed_events")
        .fetch_one(&mut db)
        .await
        .unwrap_or(-1);
    let _ = db.close().await;
    count
}

async fn sample(daemon: &Daemon, at: Duration) -> Option<Sample> {
    let resources = daemon.resources()?;
    let metrics = daemon.metrics().await;
    let value = |series: &str| metric_value(&metrics, series).unwrap_or(0.0);
    let file_kib = |suffix: &str| {
        let mut path = daemon.db.clone().into_os_string();
        path.push(suffix);
        std::fs::metadata(path).map_or(0, |m| m.len() / 1024)
    };
    let reconnects = ["control", "data", "event"]
        .iter()
        .map(|hub| value(&format!("mesolive_hub_reconnects_total{{hub=\"{hub}\"}}")))
        .sum();
    Some(Sample {
        at,
        rss_kib: resources.rss_kib,
        threads: resources.threads,
        fds: resources.fds,
        dedupe_keys: dedupe_keys(daemon).await,
        db_kib: file_kib("") + file_kib("-wal"),
        monitors: value("mesolive_monitors_running"),
        reconnects,
        applied: value("mesolive_events_applied_total"),
        pruned: value("mesolive_events_pruned_total"),
    })
}

/// Runs the soak for `length`.
pub(crate) async fn soak(length: Duration, seed: u64) -> SoakReport {
    let window = window(length);
    let warm_up = window + window / 4 + Duration::from_secs(10);
    let sample_every = (length / 60).clamp(Duration::from_secs(2), Duration::from_secs(10));
    let mut report = SoakReport {
        length,
        window,
        ..SoakReport::default()
    };
    let mut rng = fastrand::Rng::with_seed(seed);
    let sim = Sim::start(sim_options(seed)).await;
    let dir = testkit::temp_dir();
    let window_text = format!("{}s", window.as_secs());
    let mut daemon = Daemon::spawn(
        &sim,
        dir.path(),
        &[
            ("MESOLIVE__EVENTS__FIRST_RUN", "all"),
            ("MESOLIVE__EVENTS__DEDUPE_WINDOW", &window_text),
            ("MESOLIVE__AUTOMATION__MODE", "live"),
            ("MESOLIVE__AUTOMATION__ALLOW_STRATEGIES", "101,103"),
            ("MESOLIVE__AUTOMATION__MAX_OPEN_POSITIONS", "3"),
            ("MESOLIVE__LOG__FILTER", "warn"),
        ],
    );
    daemon.wait_ready(Duration::from_secs(30)).await;
    let origin = Instant::now();
    let mut next_sample = origin;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut churn: VecDeque<i64> = VecDeque::new();
    let mut active_signal: Option<serde_json::Value> = None;
    let hubs = [Some("control"), Some("data"), Some("event"), None];
    let mut turn = 0u64;
    while origin.elapsed() < length {
        tick.tick().await;
        turn += 1;
        keep_running(&mut daemon, &mut report.violations);
        sim.emit(rng.u64(20..80)).await;
        if turn.is_multiple_of(12) {
            sim.drop_hub(hubs[(turn / 12 % 4) as usize]).await;
            report.drops += 1;
        }
        if turn.is_multiple_of(8) {
            let opened = sim
                .post("/positions/open", json!({"count": rng.u64(1..=2)}))
                .await;
            for id in opened["ids"].as_array().into_iter().flatten() {
                churn.extend(id.as_i64());
                report.positions_opened += 1;
            }
            while churn.len() > CHURN_OPEN
                && let Some(id) = churn.pop_front()
            {
                sim.post("/positions/close", json!({"ids": [id]})).await;
                report.positions_closed += 1;
            }
        }
        if turn.is_multiple_of(20) {
            // Signals go Off again after one period, so no active signal outlives the window.
            if let Some(mut signal) = active_signal.take() {
                signal["state"] = json!("Off");
                let _ = sim.try_post("/signals", signal).await;
            }
            let churned: Vec<i64> = churn.iter().copied().collect();
            let exits = exit_candidates(&daemon, &churned).await;
            let signal = if rng.bool() && !exits.is_empty() {
                json!({"kind": "exit", "position_id": exits[rng.usize(..exits.len())]})
            } else {
                let (strategy, account) = ENTRIES[rng.usize(..ENTRIES.len())];
                json!({"kind": "entry", "strategy_id": strategy, "account": account})
            };
            if toggle(&sim, signal.clone()).await {
                report.signals += 1;
                active_signal = Some(signal);
            }
        }
        if Instant::now() >= next_sample {
            next_sample += sample_every;
            let at = origin.elapsed();
            if let Some(sample) = sample(&daemon, at).await {
                if at < warm_up {
                    report.warm = report.samples.len() + 1;
                }
                report.samples.push(sample);
            }
        }
    }
    if let Some(mut signal) = active_signal.take() {
        signal["state"] = json!("Off");
        let _ = sim.try_post("/signals", signal).await;
    }
    settle(&sim, std::slice::from_ref(&daemon), &mut report.violations).await;
    if let Some(last) = sample(&daemon, origin.elapsed()).await {
        report.samples.push(last);
    }
    let (_, violations) = invariants::check(&sim, &daemon).await;
    // Keys older than the window were forgotten on purpose; every other invariant holds.
    report.violations.extend(
        violations
            .into_iter()
            .filter(|v| !v.contains("never applied")),
    );
    report.violations.extend(flatness(&report));
    stop(&mut daemon, &mut report.violations).await;
    sim.running.shutdown().await;
    report
}

/// The figures that must stay flat after the warm-up: RSS, threads, fds, the dedupe set.
fn flatness(report: &SoakReport) -> Vec<String> {
    let Some(first) = report.samples.get(report.warm) else {
        return vec!["no sample after the warm-up".into()];
    };
    let after = &report.samples[report.warm..];
    let max = |f: fn(&Sample) -> f64| after.iter().map(f).fold(f64::MIN, f64::max);
    let mut violations = Vec::new();
    let mut bound = |what: &str, first: f64, max: f64, limit: f64| {
        if max > limit {
            violations.push(format!(
                "{what} grew: {first} after the warm-up, {max} at most (bound {limit})"
            ));
        }
    };
    let rss = first.rss_kib as f64;
    bound(
        "RSS KiB",
        rss,
        max(|s| s.rss_kib as f64),
        rss * 1.5 + 16_384.0,
    );
    let threads = first.threads as f64;
    bound(
        "threads",
        threads,
        max(|s| s.threads as f64),
        threads + 16.0,
    );
    let fds = first.fds as f64;
    bound("fds", fds, max(|s| s.fds as f64), fds + 32.0);
    let keys = first.dedupe_keys as f64;
    bound(
        "dedupe keys",
        keys,
        max(|s| s.dedupe_keys as f64),
        keys * 2.0 + 2_000.0,
    );
    violations
}

impl SoakReport {
    /// First (after warm-up), last and max of every sampled figure, as Markdown.
    pub(crate) fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "One daemon process for {} (no restarts), {} samples, dedupe window {} s; churn: {} positions opened and {} closed server-side, {} hub drops, {} signals.\n",
            if self.length.as_secs() < 120 {
                format!("{} s", self.length.as_secs())
            } else {
                format!("{} min", self.length.as_secs() / 60)
            },
            self.samples.len(),
            self.window.as_secs(),
            self.positions_opened,
            self.positions_closed,
            self.drops,
            self.signals
        );
        let (Some(first), Some(warm), Some(last)) = (
            self.samples.first(),
            self.samples.get(self.warm),
            self.samples.last(),
        ) else {
            return out;
        };
        let rows: [(&str, Figure); 9] = [
            ("RSS (MiB)", |s| s.rss_kib as f64 / 1024.0),
            ("threads", |s| s.threads as f64),
            ("open fds", |s| s.fds as f64),
            ("dedupe keys (processed_events rows)", |s| {
                s.dedupe_keys as f64
            }),
            ("database + WAL (MiB)", |s| s.db_kib as f64 / 1024.0),
            ("mesolive_monitors_running", |s| s.monitors),
            ("hub reconnects (total)", |s| s.reconnects),
            ("mesolive_events_applied_total", |s| s.applied),
            ("mesolive_events_pruned_total", |s| s.pruned),
        ];
        let tenths: Vec<&Sample> = (0..=10)
            .filter_map(|i| self.samples.get(i * (self.samples.len() - 1) / 10))
            .collect();
        let series = |figure: Figure| {
            tenths
                .iter()
                .map(|s| format!("{:.1}", figure(s)))
                .collect::<Vec<_>>()
                .join(" → ")
        };
        let _ = writeln!(
            out,
            "RSS (MiB) at every tenth of the soak: {}; database + WAL (MiB): {}; open positions monitored: {}.\n",
            series(|s| s.rss_kib as f64 / 1024.0),
            series(|s| s.db_kib as f64 / 1024.0),
            series(|s| s.monitors)
        );
        let _ = writeln!(
            out,
            "| figure | first (at) | after warm-up (at) | last (at) | max |\n|---|---|---|---|---|"
        );
        for (name, figure) in rows {
            let max = self.samples.iter().map(figure).fold(f64::MIN, f64::max);
            let _ = writeln!(
                out,
                "| {name} | {:.1} ({}s) | {:.1} ({}s) | {:.1} ({}s) | {max:.1} |",
                figure(first),
                first.at.as_secs(),
                figure(warm),
                warm.at.as_secs(),
                figure(last),
                last.at.as_secs()
            );
        }
        out
    }
}
