//! `check …` as a process against the simulator: the runbook checks pass in order, `probe`
//! confirms every INFERRED wire detail the simulator shares with the daemon, a refused key
//! fails with one line, and data is asked for with a provider when the server requires one.

use std::process::{Command, Output};
use std::time::Duration;

use mesolive_sim::SimOptions;
use serde_json::Value;

use crate::support::daemon::{BIN, Daemon, Sim};

fn check(sim: &Sim, key: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("check")
        .args(args)
        .env_clear()
        .env("MESOLIVE_API_KEY", key)
        .env("MESOLIVE__HUBS__BASE_URL", sim.running.hub_base_url())
        .env("MESOLIVE__HUBS__PROBE_PROVIDER", "Sim")
        .output()
        .expect("check runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_checks_pass_in_runbook_order() {
    let sim = Sim::start(SimOptions::default()).await;
    let token = sim.running.token().to_owned();
    let out =
        tokio::task::block_in_place(|| check(&sim, &token, &["all", "--seconds", "2", "--json"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: Vec<Value> = serde_json::from_str(&stdout).expect("JSON reports");
    let names: Vec<&str> = reports.iter().filter_map(|r| r["check"].as_str()).collect();
    assert_eq!(
        names,
        ["agents", "accounts", "strategies", "data", "events"]
    );
    assert!(reports.iter().all(|r| r["ok"] == true), "{stdout}");
    let accounts = &reports[1]["rows"];
    assert_eq!(accounts.as_array().map(Vec::len), Some(2), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_confirms_the_inferred_wire_details() {
    let sim = Sim::start(SimOptions::default()).await;
    let token = sim.running.token().to_owned();
    let out = tokio::task::block_in_place(|| check(&sim, &token, &["probe"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for verdict in [
        "envelope",
        "enums",
        "paging",
        "history args",
        "not found",
        "flags",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("ok") && l.contains(verdict)),
            "{verdict} confirmed: {stdout}"
        );
    }
    assert!(stdout.contains("RAW"), "raw JSON printed: {stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_fails_with_one_line() {
    let sim = Sim::start(SimOptions::default()).await;
    let out = tokio::task::block_in_place(|| check(&sim, "not-the-key", &["agents"]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("credentials refused"), "{stderr}");
    assert!(!stderr.contains("not-the-key"));
}

/// `check data` against a server that refuses underlying data without a Provider (as the API
/// says the real one does): with `--provider` it uses that one; without, the provider of a
/// connected agent from ListAgents, and it says which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_data_names_a_provider_or_picks_a_connected_agents() {
    let mut options = SimOptions::default();
    options.faults.require_provider = Some(true);
    let sim = Sim::start(options).await;
    let token = sim.running.token().to_owned();
    let data = |args: &[&str]| {
        let mut command = Command::new(BIN);
        command
            .args(["check", "data", "--seconds", "2"])
            .args(args)
            .env_clear()
            .env("MESOLIVE_API_KEY", &token)
            .env("MESOLIVE__HUBS__BASE_URL", sim.running.hub_base_url());
        tokio::task::block_in_place(|| command.output()).expect("check runs")
    };
    let given = data(&["--provider", "IBKR"]);
    let stdout = String::from_utf8_lossy(&given.stdout);
    assert_eq!(given.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("with provider IBKR (given)"), "{stdout}");

    let picked = data(&[]);
    let stdout = String::from_utf8_lossy(&picked.stdout);
    assert_eq!(picked.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("with provider IBKR (of a connected agent (ListAgents))"),
        "{stdout}"
    );
    let requests = sim.requests().await;
    let streams = requests
        .iter()
        .filter(|(_, m)| m == "StreamUnderlyingData")
        .count();
    assert_eq!(streams, 2, "{requests:?}");
}

/// The daemon's startup Data Hub proof, with no `hubs.probe_provider` and no open position,
/// asks for the underlying with a connected agent's provider (the server requires one) instead
/// of skipping the proof.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_startup_data_proof_uses_a_connected_agents_provider() {
    let mut options = SimOptions {
        positions: 0,
        ..SimOptions::default()
    };
    options.faults.require_provider = Some(true);
    let sim = Sim::start(options).await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn(&sim, dir.path(), &[("MESOLIVE__HUBS__PROBE_PROVIDER", "")]);
    daemon.wait_ready(Duration::from_secs(20)).await;
    daemon
        .wait_log(
            &[
                "data hub verified",
                "underlying SPX from provider IBKR (a connected agent)",
            ],
            Duration::from_secs(10),
        )
        .await;
    let requests = sim.requests().await;
    assert!(
        requests.iter().any(|(_, m)| m == "GetUnderlyingSnapshot"),
        "{requests:?}"
    );
    assert_eq!(
        daemon
            .metric("mesolive_errors_total{kind=\"data_probe\"}")
            .await,
        None
    );
}
