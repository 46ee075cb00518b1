//! Issue 18: the daemon sends values a stock ASP.NET Core server binds. Under
//! `argument_binding=strict_stj` (the simulator's `--strict-types`: a string where the
//! argument model says number fails the call with ASP.NET Core's binding error), live and
//! paper entries and exits complete, with one answer lost and settled on the way.

use crate::support::wire::{core_scenario, core_scenario_with};

fn assert_passed(outcome: &crate::support::wire::Outcome) {
    assert!(
        outcome.refused.is_none() && outcome.violations.is_empty(),
        "{}: refused {:?}\n  - {}",
        outcome.profile,
        outcome.refused,
        outcome.violations.join("\n  - ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_core_scenario_passes_on_todays_forms() {
    assert_passed(&core_scenario("default").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_and_paper_entries_and_exits_complete_under_strict_types() {
    assert_passed(&core_scenario("default,argument_binding=strict_stj").await);
}

/// The regression guard: a daemon that writes decimals as text (the encoding before issue 18,
/// still available as `hubs.wire.decimal = "string"`) fails the same scenario with ASP.NET
/// Core's binding error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decimals_sent_as_text_fail_under_strict_types() {
    let outcome = core_scenario_with(
        "default,argument_binding=strict_stj",
        &[("MESOLIVE__HUBS__WIRE__DECIMAL", "string")],
    )
    .await;
    let text = outcome.violations.join("\n");
    assert!(
        text.contains("entry: failed") && text.contains("Error binding arguments"),
        "{text}"
    );
}
