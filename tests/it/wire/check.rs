//! `check` against a simulator that disagrees: `check data` with the default configuration
//! against a server that refuses a missing provider with a bare hub error (API §3.2.1), and
//! `check probe` names every wire form it finds, the ones the daemon refuses included.

use std::process::{Command, Output};

use crate::support::daemon::{BIN, Sim};
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
/// left the operator nothing to go on. Now no call goes without a provider: the check takes a
/// connected agent's and says so, and a configured one wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_data_against_a_server_refusing_a_missing_provider_with_a_bare_error() {
    let mut options = sim_options("default,provider_required=hub_error");
    options.faults.require_provider = Some(true);
    let sim = Sim::start(options).await;
    let out = tokio::task::block_in_place(|| check(&sim, &["data", "--seconds", "1"], &[]));
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("of a connected agent"), "{said}");
    let with_provider = tokio::task::block_in_place(|| {
        check(
            &sim,
            &["data", "--seconds", "1"],
            &[("MESOLIVE__HUBS__PROBE_PROVIDER", "IBKR")],
        )
    });
    let said = text(&with_provider);
    assert_eq!(with_provider.status.code(), Some(0), "{said}");
    assert!(said.contains("IBKR"), "{said}");
}

/// `check probe`'s lines (`ok  name summary` / `FAIL name summary`).
fn probe(sim: &Sim) -> String {
    let out = tokio::task::block_in_place(|| check(sim, &["probe"], &[]));
    text(&out)
}

fn line<'a>(said: &'a str, check: &str) -> &'a str {
    said.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(check))
        .unwrap_or_else(|| panic!("no {check} line in:\n{said}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_reports_every_form_on_todays_server() {
    let sim = Sim::start(sim_options("default")).await;
    let said = probe(&sim);
    for check in [
        "envelope", "casing", "enums", "paging", "history", "not", "flags", "decimals",
    ] {
        assert!(line(&said, check).starts_with("ok"), "{check}: {said}");
    }
    assert!(
        line(&said, "casing").contains("property_casing=pascal"),
        "{said}"
    );
    assert!(
        line(&said, "decimals").contains("exact JSON numbers"),
        "{said}"
    );
}

/// Each form the daemon refuses is a FAIL line naming it, in the words the daemon stops with;
/// forms it meets are named too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_names_the_forms_it_finds() {
    for (profile, check, ok, form) in [
        (
            "aspnet-strict",
            "envelope",
            false,
            "status_code_spelling=numeric",
        ),
        ("aspnet-strict", "casing", true, "property_casing=camel"),
        (
            "aspnet-strict",
            "flags",
            false,
            "flags_encoding=numeric_only",
        ),
        (
            "default,enum_encoding=numeric",
            "enums",
            false,
            "enum_encoding=numeric",
        ),
        (
            "default,history_item_payload=untyped",
            "history",
            false,
            "history_item_payload=untyped",
        ),
        (
            "default,history_args=other_name",
            "history",
            false,
            "history_args=other_name",
        ),
        (
            "default,idempotency_not_found=hub_error",
            "not",
            false,
            "idempotency_not_found=hub_error",
        ),
        (
            "default,page_wrapper=bare_array",
            "paging",
            true,
            "page_wrapper=bare_array",
        ),
    ] {
        let sim = Sim::start(sim_options(profile)).await;
        sim.emit(5).await;
        let said = probe(&sim);
        let found = line(&said, check);
        assert_eq!(found.starts_with("ok"), ok, "{profile}: {found}");
        assert!(found.contains(form), "{profile}: {found}");
    }
}
