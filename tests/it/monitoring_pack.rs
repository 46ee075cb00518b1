//! The monitoring pack (`deploy/monitoring/`) reads only metrics the daemon exports: every
//! metric name its dashboard and rules use (`check.sh --metrics`, which needs python3 only)
//! must be on a running daemon's `/metrics` — no panel or alert on a metric that does not
//! exist. A labelled family is on `/metrics` from its first series on, so the daemon first does
//! some work: a paper entry and a reconnect. Two configurations: alone on SQLite (every name
//! but the [`FAILOVER_ONLY`] ones, which it must not export), and a failover leader on
//! PostgreSQL (every name; ignored unless PostgreSQL is installed).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use mesolive_sim::SimOptions;
use serde_json::json;
use testkit::{eventually, wait_for};

use crate::support::daemon::{Daemon, Sim};
use crate::support::pg;

/// Names the pack reads that exist only while a daemon holds a failover role (`ha.enabled`, on
/// PostgreSQL): a daemon alone on its database does not export them (its `/metrics` would
/// otherwise say `mesolive_leader 0` forever and fire the no-leader alert).
/// [`a_failover_leader_on_postgresql_exports_every_metric_the_pack_reads`] checks them.
const FAILOVER_ONLY: [&str; 3] = [
    "mesolive_leader",
    "mesolive_lease_epoch",
    "mesolive_takeovers_total",
];

/// The metric names the pack reads, from `check.sh --metrics`.
fn names_the_pack_reads() -> BTreeSet<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/monitoring/check.sh");
    let output = std::process::Command::new(&script)
        .arg("--metrics")
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", script.display()));
    assert!(
        output.status.success(),
        "{} --metrics failed (it needs python3 on PATH): {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let names: BTreeSet<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    assert!(names.len() > 20, "check.sh --metrics listed {names:?}");
    names
}

/// Every series name an exposition can carry: sample names, and for each `# TYPE` line the
/// names of the family (a counter's samples end in `_total`), so that a labelled family with
/// no series yet counts as exported.
fn exported(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut parts = declared.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                names.insert(name.to_owned());
                if kind == "counter" {
                    names.insert(format!("{name}_total"));
                }
            }
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            if !name.is_empty() {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_the_rules_read_is_exported() {
    let wanted = names_the_pack_reads();
    assert!(
        FAILOVER_ONLY.iter().all(|name| wanted.contains(*name)),
        "FAILOVER_ONLY names a metric the pack does not read"
    );
    let sim = sim().await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn(&sim, dir.path(), &[("MESOLIVE__AUTOMATION__MODE", "paper")]);
    let alone: BTreeSet<String> = wanted
        .iter()
        .filter(|name| !FAILOVER_ONLY.contains(&name.as_str()))
        .cloned()
        .collect();
    let exported = exported_after_some_work(&sim, daemon, &alone).await;
    assert_eq!(
        missing(&alone, &exported),
        Vec::<String>::new(),
        "what the pack reads and a daemon alone on SQLite does not export (a panel or an alert \
         on a metric that does not exist)"
    );
    let failover_named: Vec<&str> = FAILOVER_ONLY
        .into_iter()
        .filter(|name| exported.contains(*name))
        .collect();
    assert!(
        failover_named.is_empty(),
        "without failover these are not exported: {failover_named:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: cargo test --test it -- --ignored postgres"]
async fn a_failover_leader_on_postgresql_exports_every_metric_the_pack_reads() {
    let wanted = names_the_pack_reads();
    let cluster = pg::shared();
    let url = cluster.url();
    let schema = pg::fresh_schema();
    let sim = sim().await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn(
        &sim,
        dir.path(),
        &[
            ("MESOLIVE__AUTOMATION__MODE", "paper"),
            ("MESOLIVE__DATABASE__URL", &url),
            ("MESOLIVE__DATABASE__SCHEMA", &schema),
            ("MESOLIVE__HA__ENABLED", "true"),
            ("MESOLIVE__HA__LEASE_TTL", "5s"),
            ("MESOLIVE__HA__SAFETY_MARGIN", "1s"),
        ],
    );
    let exported = exported_after_some_work(&sim, daemon, &wanted).await;
    assert_eq!(
        missing(&wanted, &exported),
        Vec::<String>::new(),
        "what the pack reads and a failover leader on PostgreSQL does not export"
    );
}

/// A simulator with quick prepares and fills and no positions.
async fn sim() -> Sim {
    let mut options = SimOptions {
        positions: 0,
        ..SimOptions::default()
    };
    options.timing.prepare_delay = Duration::from_millis(30);
    options.timing.fill_delay = Duration::from_millis(30);
    Sim::start(options).await
}

/// The names `daemon` exports once it has done a paper entry and reconnected every hub, and
/// the store-derived gauges had time to follow (until `wanted` are all exported, or a
/// refresh period or three went by); the daemon is stopped after.
async fn exported_after_some_work(
    sim: &Sim,
    mut daemon: Daemon,
    wanted: &BTreeSet<String>,
) -> BTreeSet<String> {
    daemon.wait_ready(Duration::from_secs(30)).await;
    // Labelled families appear with their first series: some work (intents and workflows by
    // state, transitions) and a reconnect of every hub (errors, child restarts) make them.
    sim.post(
        "/signals",
        json!({"kind": "entry", "state": "On", "strategy_id": 101, "account": "PAPER-1"}),
    )
    .await;
    wait_for(
        "the entry's workflow transitions",
        Duration::from_secs(20),
        || async {
            daemon
                .metric("mesolive_workflow_transitions_total{outcome=\"done\"}")
                .await
                .is_some()
        },
    )
    .await;
    sim.drop_connections().await;
    daemon.wait_ready(Duration::from_secs(20)).await;
    // The store-derived gauges follow within their refresh period.
    eventually(Duration::from_secs(15), || async {
        missing(wanted, &exported(&daemon.metrics().await)).is_empty()
    })
    .await;
    let names = exported(&daemon.metrics().await);
    daemon.signal(libc::SIGTERM);
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(10)).await.code(),
        Some(0)
    );
    names
}

/// The names of `wanted` that `exported` lacks.
fn missing(wanted: &BTreeSet<String>, exported: &BTreeSet<String>) -> Vec<String> {
    wanted.difference(exported).cloned().collect()
}

#[test]
fn family_names_are_read_from_type_lines_and_samples() {
    let text = "# TYPE mesolive_errors counter\n# HELP mesolive_errors x\n\
                # TYPE mesolive_ready gauge\nmesolive_ready 1\n\
                mesolive_hub_connected{hub=\"data\"} 0\n# EOF\n";
    let names = exported(text);
    for name in [
        "mesolive_errors_total",
        "mesolive_ready",
        "mesolive_hub_connected",
    ] {
        assert!(names.contains(name), "{name}: {names:?}");
    }
}
