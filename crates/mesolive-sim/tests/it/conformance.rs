//! The official `@microsoft/signalr` JavaScript client against the simulator's Event Hub: this
//! test starts a simulator (default options, as `mesolive-supervisor sim` runs) on 127.0.0.1:0
//! and runs `conformance/sim_session.mjs` against it, which checks the token, the on-connect
//! push, subscribing, live callbacks in EventSeqId order and their replay across pages. Needs
//! Node.js and npm (the packages are pinned by the project's `package-lock.json` and installed
//! with `npm ci` when missing or stale).

use std::path::Path;

use mesolive_sim::{Hub, SimOptions};

#[tokio::test]
#[ignore = "needs Node.js and npm: cargo test -p mesolive-sim --test it -- --ignored conformance"]
async fn the_official_javascript_client_runs_an_event_hub_session() {
    let sim = crate::support::start_with(SimOptions::default()).await;
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let event_hub = sim.sim.hub_url(Hub::Event);
    let admin = sim.sim.admin_url();
    let token = sim.sim.token();
    testkit::run_node(&project, "sim_session.mjs", &[&event_hub, &admin, token]).await;
}
