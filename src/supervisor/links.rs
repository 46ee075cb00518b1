//! Hub links: one child per hub that connects (retrying with backoff while the hub is
//! unreachable), verifies the hub as the runbook asks, publishes the connection to its
//! dependents, and reports the loss when the connection ends. Dependents watch the link and
//! recover on every new generation — rest_for_one along the real dependencies, without
//! restarting hubs that did not fail.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::child::{ChildError, Fatal, Unauthorized};
use super::context::{Ctx, Directory, HubLinkSenders};
use super::policy::backoff;
use crate::config::{HubSettings, Settings};
use crate::ops::metrics::Metrics;
use mesolive_api::Hub;
use mesolive_api::client::{ControlHub, DataHub, EventHub, HubClient, HubError, Learned};
use mesolive_api::wire::{args, history, methods};
use signalr::{ConnectOptions, Connection, MalformedRecordHook, SignalrError};

/// Page size for the Control Hub lists read at verification.
const LIST_PAGE_SIZE: u32 = 100;

/// Builds connections to the configured hubs (URL, key, TLS, timeouts).
#[derive(Debug, Clone)]
pub struct Connector {
    hubs: HubSettings,
    api_key: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
    metrics: Option<Arc<Metrics>>,
    /// What the clients learned of the server's wire forms, shared by the three hubs.
    learned: Arc<Learned>,
}

impl Connector {
    /// A connector for `settings`; `tls` is the client config built from the trust settings.
    pub fn new(settings: &Settings, tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        Connector {
            hubs: settings.hubs.clone(),
            api_key: settings.api_key.as_ref().map(|k| k.expose().to_owned()),
            tls,
            metrics: None,
            learned: Arc::default(),
        }
    }

    /// Counts every malformed record a hub sends in `errors_total{kind="<hub>_protocol"}`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn path(&self, hub: Hub) -> &str {
        match hub {
            Hub::Control => &self.hubs.control_path,
            Hub::Data => &self.hubs.data_path,
            Hub::Event => &self.hubs.event_path,
        }
    }

    /// Opens one connection to `hub`.
    pub async fn connect(&self, hub: Hub) -> Result<Arc<Connection>, SignalrError> {
        let url = self
            .hubs
            .hub_url(self.path(hub))
            .map_err(|err| SignalrError::InvalidConfig(err.to_string()))?;
        let mut options = ConnectOptions::new(url);
        if let Some(key) = &self.api_key {
            options = options.with_access_token(key.clone());
        }
        options.tls = self.tls.clone();
        options.http_timeout = self.hubs.handshake_timeout;
        options.handshake_timeout = self.hubs.handshake_timeout;
        options.keep_alive_interval = self.hubs.keep_alive_interval;
        options.server_timeout = self.hubs.server_timeout;
        options.invoke_timeout = self.hubs.invocation_timeout;
        options.max_pending_callbacks = self.hubs.max_pending_callbacks;
        options.max_message_bytes = self.hubs.max_message_bytes;
        if let Some(metrics) = &self.metrics {
            let metrics = metrics.clone();
            let kind = format!("{}_protocol", hub.as_str());
            options.on_malformed_record = Some(MalformedRecordHook::new(move |_| {
                metrics.error(&kind);
            }));
        }
        Connection::connect(options).await.map(Arc::new)
    }

    /// A client of `hub` that shares what the other hubs' clients learned of the server.
    pub async fn client(&self, hub: Hub) -> Result<HubClient, SignalrError> {
        let connection = self.connect(hub).await?;
        Ok(HubClient::sharing(connection, Arc::clone(&self.learned)))
    }
}

/// Why connecting or verifying a hub did not work this time.
enum LinkError {
    Fatal(Fatal),
    /// Worth another attempt; `kind` labels the failure in `errors_total`.
    Retry {
        kind: &'static str,
        reason: String,
    },
}

impl From<HubError> for LinkError {
    fn from(err: HubError) -> Self {
        match err {
            HubError::Unauthorized(source) => LinkError::Fatal(Unauthorized(source).into()),
            HubError::Unsupported { source, .. } => {
                LinkError::Fatal(Fatal::Unsupported(source.to_string()))
            }
            other => LinkError::Retry {
                kind: "verify",
                reason: other.to_string(),
            },
        }
    }
}

impl From<SignalrError> for LinkError {
    fn from(err: SignalrError) -> Self {
        match err {
            SignalrError::Unauthorized { .. } => LinkError::Fatal(Unauthorized(err).into()),
            SignalrError::InvalidConfig(_) | SignalrError::Tls(_) => {
                LinkError::Fatal(Fatal::Setup(err))
            }
            other => LinkError::Retry {
                kind: other.kind(),
                reason: other.to_string(),
            },
        }
    }
}

/// Counts connections per hub, so each published connection has a new generation.
#[derive(Debug, Default)]
pub struct Generations([AtomicU64; 3]);

impl Generations {
    fn next(&self, hub: Hub) -> u64 {
        self.0[hub as usize].fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Runs one hub link until its connection is lost (an error, so the supervisor counts the
/// restart and backs off) or the daemon stops (`Ok`). Failed connection attempts while the hub
/// is unreachable are retried here with backoff and are not restarts: an outage is ridden out.
///
/// Once the stop has begun (intake closed) no hub is (re)connected: a connect, negotiate,
/// upgrade, handshake or verification in flight is dropped at once rather than awaited to its
/// timeout, no retry is scheduled, and a connection lost during the drain is not replaced. A
/// connection that is up stays up until the children stop, for the in-flight work.
pub async fn run_link(
    ctx: Arc<Ctx>,
    hub: Hub,
    connector: Connector,
    senders: Arc<HubLinkSenders>,
    generations: Arc<Generations>,
) -> Result<(), ChildError> {
    let supervisor = &ctx.settings().supervisor;
    let mut delays = backoff(supervisor);
    let mut attempts = 0u32;
    let drain = ctx.drain();
    let client = loop {
        if drain.is_intake_closed() {
            return Ok(());
        }
        attempts += 1;
        let attempt = tokio::select! {
            attempt = connect_and_verify(&ctx, &connector, hub) => attempt,
            _ = drain.intake_closed() => return Ok(()),
        };
        match attempt {
            Ok(client) => break client,
            Err(LinkError::Fatal(fatal)) => return Err(fatal.into()),
            Err(LinkError::Retry { kind, reason }) => {
                ctx.metrics()
                    .error(&format!("{}_connect_{kind}", hub.as_str()));
                let delay = delays.next().unwrap_or(supervisor.backoff_max);
                if attempts == 1 || attempts.is_power_of_two() {
                    tracing::warn!(hub = hub.as_str(), attempts, retry_in = ?delay, %reason, "hub unavailable");
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = drain.intake_closed() => return Ok(()),
                }
            }
        }
    };
    let generation = generations.next(hub);
    senders.publish(hub, generation, Some(client.clone()));
    ctx.health().set_hub(hub, true);
    ctx.metrics().hub_connected(hub, true);
    if generation > 1 {
        ctx.metrics().hub_reconnected(hub);
    }
    // The connection id is the one the server knows it by (its logs, the simulator's request
    // log): it tells which daemon sent what.
    tracing::info!(
        hub = hub.as_str(),
        generation,
        connection_id = client.connection().connection_id(),
        "hub connected"
    );
    ctx.wake().reconcile.notify_one();
    let reason = tokio::select! {
        reason = client.connection().closed() => reason,
        _ = drain.stopping() => return Ok(()),
    };
    senders.publish(hub, generation, None);
    ctx.health().set_hub(hub, false);
    ctx.metrics().hub_connected(hub, false);
    ctx.metrics()
        .error(&format!("{}_lost_{}", hub.as_str(), reason.kind()));
    if drain.is_intake_closed() {
        tracing::info!(hub = hub.as_str(), %reason, "hub connection lost while stopping; not reconnecting");
        return Ok(());
    }
    Err(ChildError::HubLost {
        hub,
        source: reason.error.clone().unwrap_or_else(|| reason.into()),
    })
}

async fn connect_and_verify(
    ctx: &Ctx,
    connector: &Connector,
    hub: Hub,
) -> Result<HubClient, LinkError> {
    let client = connector.client(hub).await?;
    match hub {
        Hub::Control => verify_control(ctx, &ControlHub(client.clone())).await?,
        Hub::Data => prove_data(ctx, &DataHub(client.clone())).await?,
        Hub::Event => verify_event(&EventHub(client.clone())).await?,
    }
    Ok(client)
}

/// Runbook step 1: agents, accounts and strategies answer; keeps accounts and strategies.
async fn verify_control(ctx: &Ctx, control: &ControlHub) -> Result<(), LinkError> {
    let agents = control.list_agents_raw().await?;
    let accounts = control.list_accounts(LIST_PAGE_SIZE).await?;
    let strategies = control.list_strategies(LIST_PAGE_SIZE).await?;
    if agents.is_empty() {
        tracing::error!("ListAgents returned no agent: no broker or data connector is connected");
        ctx.metrics().error("no_agents");
    }
    tracing::info!(
        agents = agents.len(),
        accounts = accounts.len(),
        strategies = strategies.len(),
        "control hub verified"
    );
    ctx.set_directory(Directory {
        accounts: accounts
            .into_iter()
            .map(|a| (a.broker_account_id.clone(), a))
            .collect(),
        strategies: strategies.into_iter().map(|s| (s.id, s)).collect(),
        data_provider: mesolive_api::wire::agents::pick_provider(&agents),
    });
    Ok(())
}

/// Runbook step 3, before the pump replays anything: the newest history item is readable and
/// a replay starts where it is asked to. A server whose history items carry no readable type,
/// or that does not read the sequence argument, is refused here, at connect, rather than at a
/// replay after events were acted on live.
async fn verify_event(event: &EventHub) -> Result<(), LinkError> {
    let latest = event.latest_seq_id().await?;
    if latest > 1 {
        let after = latest - 1;
        let page = event.events_since(after, 1, None).await?;
        if let Some(ignored) = history::ignores_cursor(after, &page) {
            return Err(LinkError::Fatal(Fatal::Unsupported(ignored.to_string())));
        }
    }
    Ok(())
}

/// Runbook step 2: prove data flows — a snapshot of a monitored position, or of the probe
/// symbol from `hubs.probe_provider`, else from the provider of a connected agent (the server
/// refuses underlying data without one). A failed proof is logged and counted, not fatal: the
/// monitors retry on their own and the hub itself answered. A proof refused because the
/// server binds flags only as integers is fatal: no monitor could ever stream.
async fn prove_data(ctx: &Ctx, data: &DataHub) -> Result<(), LinkError> {
    let settings = ctx.settings();
    let hubs = &settings.hubs;
    let (provider, source) = if hubs.probe_provider.is_empty() {
        (ctx.directory().data_provider, "a connected agent")
    } else {
        (Some(hubs.probe_provider.clone()), "hubs.probe_provider")
    };
    let position = ctx
        .store()
        .open_position_keys()
        .await
        .ok()
        .and_then(|positions| positions.first().map(|p| p.position_id));
    let (method, call_args, what) = match position {
        Some(id) => (
            methods::GET_POSITION_SNAPSHOT,
            args::position_data(id),
            format!("position {id}"),
        ),
        None if provider.is_some() && !hubs.probe_symbol.is_empty() => (
            methods::GET_UNDERLYING_SNAPSHOT,
            args::underlying(&hubs.probe_symbol, provider.as_deref()),
            format!(
                "underlying {} from provider {} ({source})",
                hubs.probe_symbol,
                provider.as_deref().unwrap_or_default()
            ),
        ),
        None => {
            tracing::info!(
                "data hub connected; no open position, no hubs.probe_provider and no connected agent naming a provider, so no snapshot to prove data with"
            );
            return Ok(());
        }
    };
    match data.0.call_value(method, call_args.clone()).await {
        Ok(_) => tracing::info!(snapshot = %what, "data hub verified"),
        Err(err) if err.is_binding() => {
            if let Some(refused) = data.flags_refused(method, call_args).await {
                return Err(LinkError::Fatal(Fatal::Unsupported(refused.to_string())));
            }
            ctx.metrics().error("data_probe");
            tracing::warn!(error = %err, "data hub connected but the server refused the proof snapshot's arguments");
        }
        Err(err) => {
            ctx.metrics().error("data_probe");
            tracing::warn!(error = %err, "data hub connected but the proof snapshot failed");
        }
    }
    Ok(())
}
