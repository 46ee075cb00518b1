//! `check` against a simulator that disagrees: `check data` with the default configuration
//! (no provider) against a server that requires one (API §3.2.1) says which setting to set, and
//! `check probe` names every wire form it finds, the ones the daemon refuses included.

mod daemon_support;

use std::process::{Command, Output};

use daemon_support::{BIN, Sim};
use mesolive_sim::{SimOptions, WireProfile};

fn sim_options(profile: &str) -> SimOptions {
    SimOptions {
        wire: WireProfile::parse(profile).expect("a valid profile"),
        ..SimOptions::default()
    }
}

/// `mesolive-supervisor check ARGS` against `sim`, with `settings` on top of the defaults.
fn check(sim: &Sim, args: &[&str], settings: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .arg("check")
        .args(args)
        .env_clear()
        .env("MESOLIVE_API_KEY", sim.running.token())
        .env("MESOLIVE__HUBS__BASE_URL", sim.running.hub_base_url())
        .envs(settings.iter().copied())
        .output()
        .expect("check runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The defect the independent stand-in found: with the default configuration the runbook's
/// data check sent `Provider: null`, and a server that answers that with a bare hub error
/// left the operator nothing to go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_data_without_a_provider_names_the_setting() {
    let sim = Sim::start(sim_options("default,provider_required=hub_error")).await;
    let out = tokio::task::block_in_place(|| check(&sim, &["data", "--seconds", "1"], &[]));
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("hubs.probe_provider"), "{said}");
    let with_provider = tokio::task::block_in_place(|| {
        check(
            &sim,
            &["data", "--seconds", "1"],
            &[("MESOLIVE__HUBS__PROBE_PROVIDER", "IBKR")],
        )
    });
    assert_eq!(
        with_provider.status.code(),
        Some(0),
        "{}",
        text(&with_provider)
    );
}
