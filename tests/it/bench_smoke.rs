//! `bench --quick --runs 1 --json` runs every scenario end to end and reports a positive figure
//! for each. No timing is asserted: performance lives in the benchmarks, not in tests.
//! Scenario 9 (the Python baseline) is named out on purpose: it installs pysignalr with pip into
//! a virtualenv, and tests install nothing from a registry. Scenario 8 (PostgreSQL beside
//! SQLite) runs against a cluster of its own, with the other PostgreSQL tests.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use crate::support::daemon::BIN;
use crate::support::pg::Cluster;

/// Runs `bench --quick --runs 1 --json --only <only>` with `env` set; its JSON report, which
/// must list no failed scenario.
fn quick_bench(only: &str, env: &[(&str, &str)]) -> Value {
    let output = Command::new(BIN)
        .args(["bench", "--quick", "--runs", "1", "--json", "--only", only])
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench failed:\n{stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("stdout is the JSON report");
    assert_eq!(report["failures"], serde_json::json!([]), "{stderr}");
    report
}

#[test]
fn quick_bench_reports_every_scenario() {
    let report = quick_bench("1,2,3,4,5,6,7,10", &[]);
    assert_eq!(report["quick"], true);
    assert_eq!(report["runs"], 1);
    let figures = report["figures"].as_array().expect("figures");
    let scenarios: BTreeSet<&str> = figures
        .iter()
        .filter_map(|f| f["scenario"].as_str())
        .collect();
    let expected: BTreeSet<&str> = [
        "1 transport",
        "2 ingest",
        "3 replay",
        "4 recovery",
        "5 monitoring",
        "6 startup",
        "7 sweep",
        "10 reaction",
    ]
    .into();
    assert_eq!(scenarios, expected);
    for figure in figures {
        let median = figure["median"].as_f64().expect("median");
        assert!(median > 0.0, "not a positive figure: {figure}");
        assert_eq!(figure["samples"].as_array().map(Vec::len), Some(1));
    }
    let sweep = figures
        .iter()
        .filter(|f| f["scenario"] == "7 sweep")
        .count();
    assert_eq!(sweep, 8, "synchronous full/normal × batch_max 1/16/256/512");
}

/// `bench --only 8` is on demand: named, it runs both backends, gives their ratios, and times
/// a takeover of a failover pair.
#[test]
#[ignore = "needs PostgreSQL: cargo test --test it -- --ignored postgres"]
fn quick_bench_compares_postgres_with_sqlite_postgres() {
    let cluster = Cluster::start(true);
    let url = cluster.url();
    let report = quick_bench(
        "8",
        &[
            ("MESOLIVE__DATABASE__URL", url.as_str()),
            ("MESOLIVE__HA__LEASE_TTL", "3s"),
            ("MESOLIVE__HA__SAFETY_MARGIN", "1s"),
        ],
    );
    let figures: BTreeSet<(String, String)> = report["figures"]
        .as_array()
        .expect("figures")
        .iter()
        .filter(|f| f["median"].as_f64().is_some_and(|m| m > 0.0))
        .filter_map(|f| Some((f["scenario"].as_str()?.into(), f["name"].as_str()?.into())))
        .collect();
    for figure in [
        "ingest sqlite",
        "replay sqlite",
        "ingest postgres",
        "replay postgres",
        "ingest postgres/sqlite",
        "replay postgres/sqlite",
        "takeover after SIGKILL",
    ] {
        assert!(
            figures.contains(&("8 backends".into(), figure.into())),
            "no positive {figure:?} in {figures:?}"
        );
    }
}
