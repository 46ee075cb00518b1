//! A hub for `tests/conformance/run.sh`: the official @microsoft/signalr client checks our
//! server side against it. It serves the hub the Rust SignalR tests use
//! (`tests/hub_support`), with a `Welcome` callback on connect and bearer authentication.
//!
//! Usage: `conformance_server [PORT]` (default 0: any free port). Prints
//! `listening on http://127.0.0.1:PORT/hub` once it accepts connections, then serves until
//! killed. The bearer token is `conformance-token`.

#[path = "../tests/hub_support/mod.rs"]
mod hub_support;

use hub_support::{HUB_PATH, TestHub};
use signalr::{HubHost, HubOptions, ServerAuth};

const TOKEN: &str = "conformance-token";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|port| port.parse().ok())
        .unwrap_or(0);
    let hub = TestHub {
        welcome: true,
        ..TestHub::default()
    };
    let options = HubOptions {
        auth: Some(ServerAuth::bearer(TOKEN)),
        ..HubOptions::default()
    };
    let host = HubHost::new(HUB_PATH, hub, options);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}{HUB_PATH}", listener.local_addr()?);
    axum::serve(listener, host.router()).await
}
