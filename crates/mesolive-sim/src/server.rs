//! The three hubs on the project's SignalR server ([`signalr::HubHost`]), and the
//! switches the admin API pulls on them: drop connections, refuse connections for a while,
//! reject every token. Lost Completions (a fault) are applied here, after the hub method ran.
//!
//! Worked around here, because the host does not offer it: "reject every token" swaps in a
//! random token nobody has (no deny-all switch), so refusals are counted per activation (no
//! hook reports refused requests); "drop after the effect" is `Reply::Swallow` plus
//! `ServerConnection::abort`; `ServerConnection::send` only awaits a bounded queue (no
//! `try_send`), so live delivery keeps its own per-connection backlog and forwarder
//! ([`super::live`]); shutdown closes each connection itself (no close-all on the host).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use serde_json::Value;

use super::faults::{FaultKind, LossMode};
use super::live::LivePeer;
use futures_util::StreamExt;

use super::sim::Sim;
use super::wire_profile::{Answer, AuthTokenLocation};
use super::{control, data, event};
use mesolive_api::Hub as HubKind;
use signalr::{
    Hub, HubHost, HubItems, HubOptions, Reply, ServerAuth, ServerConnection, TokenSource,
    unknown_method_error,
};

/// The Completion of a call: the domain's envelope in the profile's wire forms, unless the
/// lose-completion fault takes it (then the effect stands and the caller gets nothing
/// (`silence`) or loses its connection (`drop`)).
fn answer(
    sim: &Sim,
    connection: &ServerConnection,
    method: &str,
    args: &Value,
    envelope: Option<Value>,
) -> Reply {
    let Some(envelope) = envelope else {
        return Reply::unknown_method(method);
    };
    let lost = sim.faults().take_lost_completion(method);
    match lost {
        None => match sim.wire.reply(method, args, envelope) {
            Answer::Value(value) => Reply::Value(value),
            Answer::Error(text) => Reply::Error(text),
        },
        Some(mode) => {
            sim.stats.fault(FaultKind::LoseCompletion);
            if mode == LossMode::Drop {
                connection.abort();
            }
            Reply::Swallow
        }
    }
}

/// A call of `hub`: counted (with its connection and idempotency key), bound to its argument
/// model (a call that does not bind fails before the method runs, like ASP.NET Core's),
/// handled by `handle`, answered.
fn call(
    sim: &Sim,
    hub: HubKind,
    connection: &ServerConnection,
    method: &str,
    arguments: Vec<Value>,
    handle: impl FnOnce(&Value) -> Option<Value>,
) -> Reply {
    let bound = sim.wire.bind(method, arguments);
    let key = bound
        .as_ref()
        .ok()
        .and_then(|args| args.get("IdempotencyKey"))
        .and_then(Value::as_str);
    sim.stats.call(hub, method, connection.id(), key);
    match bound {
        Ok(args) => {
            let envelope = handle(&args);
            answer(sim, connection, method, &args, envelope)
        }
        Err(text) => Reply::Error(text),
    }
}

/// `/hubs/control/v1`.
pub(crate) struct ControlHub(Arc<Sim>);

impl Hub for ControlHub {
    async fn invoke(
        &self,
        connection: &ServerConnection,
        method: &str,
        arguments: Vec<Value>,
    ) -> Reply {
        call(
            &self.0,
            HubKind::Control,
            connection,
            method,
            arguments,
            |args| control::invoke(&self.0, method, args),
        )
    }
}

/// `/hubs/data/v1`.
pub(crate) struct DataHub(Arc<Sim>);

impl Hub for DataHub {
    async fn invoke(
        &self,
        connection: &ServerConnection,
        method: &str,
        arguments: Vec<Value>,
    ) -> Reply {
        call(
            &self.0,
            HubKind::Data,
            connection,
            method,
            arguments,
            |args| data::invoke(&self.0, method, args),
        )
    }

    fn stream(
        &self,
        connection: &ServerConnection,
        method: &str,
        arguments: Vec<Value>,
    ) -> Result<HubItems, String> {
        let sim = &self.0;
        sim.stats.call(HubKind::Data, method, connection.id(), None);
        let args = sim.wire.bind(method, arguments)?;
        let items = data::stream(sim, method, &args)
            .unwrap_or_else(|| Err(unknown_method_error(method)))
            .map_err(|text| sim.wire.stream_refusal(method, text))?;
        let wire = Arc::clone(sim);
        Ok(items
            .map(move |item| item.map(|value| wire.wire.stream_item(value)))
            .boxed())
    }
}

/// `/hubs/event/v1`.
pub(crate) struct EventHub(Arc<Sim>);

/// An Event Hub connection as live delivery sees it: every callback (live events and
/// on-connect pushes) leaves in the profile's wire forms.
struct Peer {
    connection: ServerConnection,
    sim: Arc<Sim>,
}

impl LivePeer for Peer {
    async fn send(&self, target: &str, payload: Value) -> bool {
        let (target, arguments) = self.sim.wire.callback(target, payload);
        self.connection.send(&target, arguments).await.is_ok()
    }

    fn close(&self, reason: &str) {
        self.connection.close(Some(reason.to_owned()), true);
    }
}

impl Hub for EventHub {
    async fn on_connected(&self, connection: &ServerConnection) {
        let peer = Peer {
            connection: connection.clone(),
            sim: Arc::clone(&self.0),
        };
        event::connected(&self.0, connection.id(), Arc::new(peer)).await;
    }

    async fn invoke(
        &self,
        connection: &ServerConnection,
        method: &str,
        arguments: Vec<Value>,
    ) -> Reply {
        call(
            &self.0,
            HubKind::Event,
            connection,
            method,
            arguments,
            |args| event::invoke(&self.0, connection.id(), method, args),
        )
    }

    async fn on_disconnected(&self, connection: &ServerConnection) {
        self.0.live.leave(connection.id());
    }
}

/// The three hub hosts of one simulator.
pub(crate) struct Hosts {
    control: HubHost<ControlHub>,
    data: HubHost<DataHub>,
    event: HubHost<EventHub>,
    token: String,
    /// Where the token is accepted (the profile's `auth_token_location`).
    source: TokenSource,
}

/// The bearer check of `token`, read where the profile says. Under `query` the upgrade must
/// carry `access_token` in its query (a browser cannot set headers on a WebSocket) and
/// negotiate is left unchecked here: JwtBearer reads the header there, which a
/// query-only check cannot express.
fn bearer(token: impl Into<String>, source: TokenSource) -> ServerAuth {
    ServerAuth {
        source,
        on_negotiate: source != TokenSource::Query,
        ..ServerAuth::bearer(token)
    }
}

impl Hosts {
    /// Hosts for the three hubs, each checking `token` on negotiate and upgrade.
    pub(crate) fn new(sim: &Arc<Sim>, token: &str) -> Hosts {
        let source = match sim.wire.forms().auth_token_location {
            AuthTokenLocation::Either => TokenSource::Either,
            AuthTokenLocation::Header => TokenSource::Header,
            AuthTokenLocation::Query => TokenSource::Query,
        };
        let options = || HubOptions {
            auth: Some(bearer(token, source)),
            ..HubOptions::default()
        };
        Hosts {
            control: HubHost::new(
                HubKind::Control.path(),
                ControlHub(Arc::clone(sim)),
                options(),
            ),
            data: HubHost::new(HubKind::Data.path(), DataHub(Arc::clone(sim)), options()),
            event: HubHost::new(HubKind::Event.path(), EventHub(Arc::clone(sim)), options()),
            token: token.to_owned(),
            source,
        }
    }

    /// The routes of all three hubs, for one listener.
    pub(crate) fn router(&self) -> Router {
        self.control
            .router()
            .merge(self.data.router())
            .merge(self.event.router())
    }

    /// Open connections per hub.
    pub(crate) fn connections(&self) -> BTreeMap<&'static str, usize> {
        BTreeMap::from([
            (HubKind::Control.as_str(), self.control.connections().len()),
            (HubKind::Data.as_str(), self.data.connections().len()),
            (HubKind::Event.as_str(), self.event.connections().len()),
        ])
    }

    /// The live connections of one hub (or of all).
    fn connections_of(&self, hub: Option<HubKind>) -> Vec<ServerConnection> {
        let wanted = |kind: HubKind| hub.is_none_or(|h| h == kind);
        let mut connections = Vec::new();
        if wanted(HubKind::Control) {
            connections.extend(self.control.connections());
        }
        if wanted(HubKind::Data) {
            connections.extend(self.data.connections());
        }
        if wanted(HubKind::Event) {
            connections.extend(self.event.connections());
        }
        connections
    }

    /// Drops every connection of one hub (or of all), as a network failure would.
    pub(crate) fn drop_connections(&self, hub: Option<HubKind>) -> usize {
        let connections = self.connections_of(hub);
        for connection in &connections {
            connection.abort();
        }
        connections.len()
    }

    /// Sends `text` unframed and unchecked to every connection of one hub (or of all), as a
    /// broken or hostile server would; returns how many connections it went to.
    pub(crate) async fn send_raw(&self, hub: Option<HubKind>, text: &str) -> usize {
        let mut sent = 0;
        for connection in self.connections_of(hub) {
            if connection.send_raw(text.to_owned()).await.is_ok() {
                sent += 1;
            }
        }
        sent
    }

    /// Drops everything and refuses new connections for `duration`.
    pub(crate) fn outage(&self, duration: Duration) -> usize {
        self.control.refuse_for(duration);
        self.data.refuse_for(duration);
        self.event.refuse_for(duration);
        self.drop_connections(None)
    }

    /// Leaves every client's Close handshake unanswered (`true`), or answers it again.
    pub(crate) fn ignore_close(&self, ignore: bool) {
        self.control.ignore_close(ignore);
        self.data.ignore_close(ignore);
        self.event.ignore_close(ignore);
    }

    /// Answers 401 to every negotiate and upgrade (`true`), or checks the token again.
    pub(crate) fn reject_auth(&self, reject: bool) {
        let auth = if reject {
            // A token no client has: every request fails the check.
            let impossible: String = std::iter::repeat_with(fastrand::alphanumeric)
                .take(48)
                .collect();
            bearer(impossible, self.source)
        } else {
            bearer(self.token.clone(), self.source)
        };
        self.control.set_auth(Some(auth.clone()));
        self.data.set_auth(Some(auth.clone()));
        self.event.set_auth(Some(auth));
    }

    /// Says goodbye to every client (Close, then WS close), for a clean shutdown.
    pub(crate) fn close_all(&self) {
        let connections = self
            .control
            .connections()
            .into_iter()
            .chain(self.data.connections())
            .chain(self.event.connections());
        for connection in connections {
            connection.close(None, false);
        }
    }
}
