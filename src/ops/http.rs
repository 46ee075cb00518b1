//! The ops listener: `/healthz` (the process answers), `/readyz` (hubs connected and caught up,
//! and a leased leader's send gate open; 503 `standby` on a standby),
//! `/metrics` (Prometheus text). Loopback by default (`ops.listen`); it exposes no secrets and
//! accepts no input.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use super::health::{Health, Role};
use super::metrics::{self, Metrics};

/// What the handlers read (and what the demo's live view watches).
#[derive(Debug, Clone, Default)]
pub struct OpsState {
    /// Readiness and liveness facts.
    pub health: Arc<Health>,
    /// Counters and gauges.
    pub metrics: Arc<Metrics>,
}

/// The router, separate from the listener so tests and the demo can mount it anywhere.
pub fn router(state: OpsState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<OpsState>) -> impl IntoResponse {
    if state.health.ready() {
        (StatusCode::OK, "ready\n")
    } else if state.health.role() == Role::Standby {
        (StatusCode::SERVICE_UNAVAILABLE, "standby\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics(State(state): State<OpsState>) -> impl IntoResponse {
    // The same answer /readyz would give now.
    Metrics::set(&state.metrics.ready, i64::from(state.health.ready()));
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
}

/// Binds the listener (failing early, before any hub is touched, if the port is taken).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: OpsState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    if let Err(err) = result {
        tracing::error!(error = %err, "ops listener failed");
    }
}

/// `mesolive-supervisor health`: probes `/readyz` of a running daemon (Docker HEALTHCHECK).
/// A failover standby (503 `standby`) is healthy: it is doing its job. An unspecified listen
/// address (`0.0.0.0`) is probed on loopback.
pub async fn probe_ready(listen: SocketAddr) -> Result<(), String> {
    let mut target = listen;
    if target.ip().is_unspecified() {
        target.set_ip(match target {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let url = format!("http://{target}/readyz");
    signalr::tls::install_default_provider();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()
        .map_err(|err| format!("http client: {err}"))?;
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|err| format!("{url}: {err}"))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    if status == StatusCode::SERVICE_UNAVAILABLE && body.trim() == "standby" {
        return Ok(());
    }
    Err(format!("{url}: {status}"))
}
