//! The official `@microsoft/signalr` JavaScript client against our server side: this test
//! serves the hub the other tests use ([`TestHub`], with a `Welcome` push on connect and bearer
//! authentication) on 127.0.0.1:0 and runs `conformance/conformance.mjs` against it, which
//! checks connect, invoke, send, callbacks in order, streams, cancellation, client results
//! and a clean stop. Needs Node.js and npm (the packages are pinned by the project's
//! `package-lock.json` and installed with `npm ci` when missing or stale).

use std::path::Path;

use signalr::{HubOptions, ServerAuth};

use crate::support::{TestHub, TestServer};

const TOKEN: &str = "conformance-token";

#[tokio::test]
#[ignore = "needs Node.js and npm: cargo test -p signalr --test it -- --ignored conformance"]
async fn the_official_javascript_client_passes_every_check() {
    let hub = TestHub {
        welcome: true,
        ..TestHub::default()
    };
    let options = HubOptions {
        auth: Some(ServerAuth::bearer(TOKEN)),
        ..HubOptions::default()
    };
    let server = TestServer::start_with(hub, options).await;
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let url = server.hub_url().to_string();
    testkit::run_node(&project, "conformance.mjs", &[&url, TOKEN]).await;
}
