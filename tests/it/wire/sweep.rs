//! Issue 20: the daemon against a simulator that disagrees. Every wire dimension the simulator
//! plays is flipped alone to each of its forms against the core scenario (`support::wire`:
//! startup in runbook order, replay, paper and live entries and exits, a lost answer, a
//! reconnect, SIGTERM, then the exactly-once invariants), and a few `random:SEED` profiles
//! (new seeds each run, printed; `WIRE_SEED=<n>` replays one) mix every dimension at once.
//!
//! `crate::support::wire::REFUSED` is the daemon's verdict per form, as `docs/inferred.md` lists it: the
//! daemon meets every form but those, which it refuses in one line naming the dimension and the
//! form (exit 76), having acted on nothing. A dimension the simulator gains (the on-connect push
//! forms and history retention other work adds belong in its catalogue) needs one line in
//! `sweeps!` below — `every_dimension_is_swept` fails until it has it — and its forms must pass
//! unless listed as refused.

use std::time::Duration;

use serde_json::json;

use crate::support::wire::{
    Outcome, core_scenario, core_scenario_with_faults, random_profile, refused,
};
use mesolive_sim::Forms;

/// Random profiles per run (`WIRE_PROFILES=<n>` for more).
const RANDOM_PROFILES: usize = 3;

/// The verdict on one outcome; `None` when it is what the table expects.
fn judge(outcome: &Outcome, expect_refusal: Option<(&str, &str)>) -> Option<String> {
    let seconds = outcome.elapsed.as_secs_f64();
    match (expect_refusal, &outcome.refused) {
        (None, None) if outcome.violations.is_empty() => None,
        (Some((dimension, form)), Some(line))
            if outcome.violations.is_empty() && line.contains(&format!("{dimension}={form}")) =>
        {
            None
        }
        (expected, refused) => Some(format!(
            "{} ({seconds:.1} s): expected {}, got refusal {refused:?}\n  - {}",
            outcome.profile,
            expected.map_or("a pass".to_owned(), |(d, f)| format!(
                "a refusal naming {d}={f}"
            )),
            outcome.violations.join("\n  - ")
        )),
    }
}

/// Every non-default form of `dimension`, each alone, against the core scenario.
async fn sweep(dimension: &str) {
    let (_, forms) = Forms::CATALOGUE
        .iter()
        .find(|(id, _)| *id == dimension)
        .unwrap_or_else(|| panic!("the simulator has no dimension {dimension}"));
    let mut failures = Vec::new();
    for form in forms().into_iter().skip(1) {
        let outcome = core_scenario(&format!("default,{dimension}={form}")).await;
        let expected = refused(dimension, form).then_some((dimension, form));
        println!(
            "{dimension}={form}: {} in {:.1} s",
            match &outcome.refused {
                Some(_) => "refused",
                None if outcome.violations.is_empty() => "passed",
                None => "FAILED",
            },
            outcome.elapsed.as_secs_f64()
        );
        failures.extend(judge(&outcome, expected));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One test per dimension, so a failure names its dimension.
macro_rules! sweeps {
    ($($test:ident => $dimension:literal),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                sweep($dimension).await;
            }
        )+

        /// Every dimension of the simulator's catalogue has a sweep above.
        #[test]
        fn every_dimension_is_swept() {
            let swept = [$($dimension),+];
            for (dimension, _) in Forms::CATALOGUE {
                assert!(swept.contains(dimension), "no sweep for {dimension}");
            }
        }
    };
}

sweeps! {
    auth_token_location => "auth_token_location",
    argument_arity => "argument_arity",
    argument_binding => "argument_binding",
    property_casing => "property_casing",
    extra_fields => "extra_fields",
    null_vs_absent => "null_vs_absent",
    envelope_data_field => "envelope_data_field",
    envelope_error_fields => "envelope_error_fields",
    status_code_spelling => "status_code_spelling",
    enum_encoding => "enum_encoding",
    flags_encoding => "flags_encoding",
    timestamp_format => "timestamp_format",
    decimal_inbound => "decimal_inbound",
    integer_as_string => "integer_as_string",
    page_wrapper => "page_wrapper",
    page_continuation => "page_continuation",
    page_args => "page_args",
    history_args => "history_args",
    history_page => "history_page",
    history_item_payload => "history_item_payload",
    idempotency_not_found => "idempotency_not_found",
    job_started_payload => "job_started_payload",
    execution_payload => "execution_payload",
    agent_info_fields => "agent_info_fields",
    provider_required => "provider_required",
    underlying_data_args => "underlying_data_args",
    stream_item_envelope => "stream_item_envelope",
    live_greeks_shape => "live_greeks_shape",
    condition_evaluation => "condition_evaluation",
    order_state_members => "order_state_members",
    preparation_status_members => "preparation_status_members",
    callback_names_inferred => "callback_names_inferred",
    callback_arguments => "callback_arguments",
}

/// The on-connect push that repeats the original event with its EventSeqId (API §4.2), which
/// the simulator plays as a fault (`--connect-push repeat`): the scenario's first entry arrives
/// only that way. (`none` cannot pass by design: a signal raised before a first start at the
/// latest event is then unknown until it changes; `connect_push::` tests that.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_push() {
    let outcome = core_scenario_with_faults("default", json!({"connect_push": "repeat"})).await;
    println!(
        "connect_push=repeat: {:?} in {:.1} s",
        outcome.refused,
        outcome.elapsed.as_secs_f64()
    );
    assert_eq!(judge(&outcome, None), None);
}

/// `random:SEED` profiles drawn from the forms the daemon meets: every dimension at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_profiles() {
    let seeds: Vec<u64> = match std::env::var("WIRE_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => {
            let count = std::env::var("WIRE_PROFILES")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(RANDOM_PROFILES);
            (0..count).map(|_| fastrand::u64(..)).collect()
        }
    };
    let mut failures = Vec::new();
    for seed in seeds {
        let spec = random_profile(seed, false);
        println!("random profile: WIRE_SEED={seed} ({spec})");
        let outcome = tokio::time::timeout(Duration::from_secs(240), core_scenario(&spec))
            .await
            .unwrap_or_else(|_| panic!("WIRE_SEED={seed}: the scenario did not end"));
        failures.extend(judge(&outcome, None).map(|f| format!("WIRE_SEED={seed}: {f}")));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
