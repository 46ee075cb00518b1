//! The admin HTTP API (its own 127.0.0.1 port, JSON bodies) for tests, demos and benchmarks.
//! The routes listed in the README are fixed: external tools depend on them. Bad input is a
//! 400 with `{"error": "..."}`, never a panic.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::call::to_value;
use super::domain::SignalKey;
use super::faults::{FaultKind, FaultPatch, Faults};
use super::server::Hosts;
use super::signals::{SignalKind, SignalRequest};
use super::sim::Sim;
use mesolive_api::Hub;
use mesolive_api::models::SignalState;

/// Most events one `POST /events/emit` may ask for (the log keeps every event in memory, about
/// 1 KiB each).
const MAX_EMIT: usize = 1_000_000;
/// Most positions one `POST /positions/open` may ask for.
const MAX_OPEN: usize = 100_000;

#[derive(Clone)]
struct Admin {
    sim: Arc<Sim>,
    hosts: Arc<Hosts>,
}

/// A refused admin request.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadRequest(String);

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, Json(json!({"error": self.0}))).into_response()
    }
}

type Answer = Result<Json<Value>, BadRequest>;

/// A report as the JSON answer.
fn reply(report: &impl serde::Serialize) -> Json<Value> {
    Json(to_value(report))
}

/// Parses a JSON body; an empty body is the type's default.
fn body<T: DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, BadRequest> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|err| BadRequest(format!("invalid JSON body: {err}")))
}

/// The admin routes over one simulator and its hub hosts.
pub(crate) fn router(sim: Arc<Sim>, hosts: Arc<Hosts>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/events", get(events))
        .route("/events/emit", post(emit))
        .route("/events/inject", post(inject))
        .route("/raw", post(raw))
        .route("/signals", post(signal))
        .route("/errors", post(error))
        .route("/positions/open", post(open_positions))
        .route("/positions/close", post(close_positions))
        .route("/connections/drop", post(drop_connections))
        .route("/outage", post(outage))
        .route("/faults", get(faults).post(add_faults).delete(clear_faults))
        .route("/ledger", get(ledger))
        .route("/world", get(world))
        .route("/stats", get(stats))
        .route("/requests", get(requests))
        .route("/wire", get(wire))
        .with_state(Admin { sim, hosts })
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Count {
    count: usize,
}

async fn emit(State(admin): State<Admin>, bytes: Bytes) -> Answer {
    let Count { count } = body(&bytes)?;
    if count > MAX_EMIT {
        return Err(BadRequest(format!("count must be at most {MAX_EMIT}")));
    }
    let mut world = admin.sim.world();
    let first = world.log.latest() + 1;
    world.emit_generic(count);
    Ok(Json(json!({
        "emitted": count,
        "first_event_seq_id": first,
        "latest_event_seq_id": world.log.latest(),
    })))
}

/// Most events one `GET /events` lists.
const MAX_LISTED: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    #[serde(default)]
    after: i64,
    limit: Option<usize>,
}

/// The log as the simulator holds it (sequence, EventId, callback of each event after
/// `after`), whatever wire profile the hubs play: what tests compare a client's view with.
async fn events(
    State(admin): State<Admin>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Answer {
    let Query(query) = query.map_err(|rejection| BadRequest(rejection.body_text()))?;
    let limit = query.limit.unwrap_or(MAX_LISTED).min(MAX_LISTED);
    let world = admin.sim.world();
    let (events, more) = world.log.since(query.after, limit);
    let listed: Vec<Value> = events
        .iter()
        .map(|e| json!({"event_seq_id": e.seq, "event_id": e.id, "target": e.target}))
        .collect();
    Ok(Json(json!({"events": listed, "more": more})))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct InjectBody {
    target: String,
    payload: Value,
    #[serde(default)]
    header: serde_json::Map<String, Value>,
}

/// One event exactly as given (any target, any payload, header fields overridden or removed
/// with `null`), logged and delivered like every other: hostile input for tests.
async fn inject(State(admin): State<Admin>, bytes: Bytes) -> Answer {
    let request: InjectBody = body(&bytes)?;
    if request.target.is_empty() {
        return Err(BadRequest("target is required".into()));
    }
    let event = admin
        .sim
        .world()
        .inject(request.target, request.payload, &request.header);
    Ok(event_answer(&event))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBody {
    hub: Option<Hub>,
    text: String,
}

/// Text sent as is (no separator added, nothing checked) on every connection of a hub:
/// malformed records, oversized messages, a Close with an error.
async fn raw(State(admin): State<Admin>, bytes: Bytes) -> Answer {
    let RawBody { hub, text } = body(&bytes)?;
    let sent = admin.hosts.send_raw(hub, &text).await;
    Ok(Json(json!({"sent": sent})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalBody {
    kind: SignalKind,
    state: String,
    strategy_id: Option<i64>,
    position_id: Option<i64>,
    account: Option<String>,
    condition: Option<String>,
}

fn event_answer(event: &super::event_log::LoggedEvent) -> Json<Value> {
    Json(json!({"event_seq_id": event.seq, "event_id": event.id, "target": event.target}))
}

async fn signal(State(admin): State<Admin>, bytes: Bytes) -> Answer {
    if bytes.is_empty() {
        return Err(BadRequest(
            "a JSON body with kind and state is required".into(),
        ));
    }
    let request: SignalBody = serde_json::from_slice(&bytes)
        .map_err(|err| BadRequest(format!("invalid JSON body: {err}")))?;
    let state = match SignalState::from_name(&request.state) {
        SignalState::Unknown(other) => {
            return Err(BadRequest(format!(
                "state must be On or Off, not '{other}'"
            )));
        }
        state => state,
    };
    let mut world = admin.sim.world();
    let event = world
        .set_signal(SignalRequest {
            kind: request.kind,
            state,
            strategy_id: request.strategy_id,
            position_id: request.position_id,
            account: request.account,
            condition: request.condition,
        })
        .map_err(|failure| BadRequest(failure.message))?;
    // Read under the world lock: no connection can have been sent the event before this.
    let at_us = admin.sim.stats.elapsed_us();
    drop(world);
    let Json(mut answer) = event_answer(&event);
    answer["at_us"] = json!(at_us);
    Ok(Json(answer))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorBody {
    /// `Raised` (default) or `Cleared`.
    state: Option<String>,
    error_id: Option<String>,
    strategy_id: Option<i64>,
    position_id: Option<i64>,
    message: Option<String>,
}

async fn error(State(admin): State<Admin>, bytes: Bytes) -> Answer {
    let request: ErrorBody = body(&bytes)?;
    let raise = match request.state.as_deref() {
        None => true,
        Some(s) if s.eq_ignore_ascii_case("raised") => true,
        Some(s) if s.eq_ignore_ascii_case("cleared") => false,
        Some(other) => {
            return Err(BadRequest(format!(
                "state must be Raised or Cleared, not '{other}'"
            )));
        }
    };
    let event = admin
        .sim
        .world()
        .set_error(
            raise,
            request.error_id,
            request.strategy_id,
            request.position_id,
            request.message,
        )
        .map_err(|failure| BadRequest(failure.message))?;
    let error_id = event.payload.get("ErrorId").cloned().unwrap_or(Value::Null);
    let mut answer = event_answer(&event);
    answer["error_id"] = error_id;
    Ok(answer)
}

async fn open_positions(State(admin): State<Admin>, bytes: Bytes) -> Answer {
    let Count { count } = body(&bytes)?;
    if count > MAX_OPEN {
        return Err(BadRequest(format!("count must be at most {MAX_OPEN}")));
    }
    let ids = admin.sim.world().open_positions(count);
    Ok(Json(json!({"ids": ids})))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ids {
    ids: Vec<i64>,
}

async fn close_positions(State(admin): State<Admin>, bytes: Bytes) -> Answer {
    let Ids { ids } = body(&bytes)?;
    let mut world = admin.sim.world();
    let (closed, not_open): (Vec<i64>, Vec<i64>) =
        ids.into_iter().partition(|id| world.close_position(*id));
    Ok(Json(json!({"closed": closed, "not_open": not_open})))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DropBody {
    hub: Option<Hub>,
}

async fn drop_connections(State(admin): State<Admin>, bytes: Bytes) -> Answer {
    let DropBody { hub } = body(&bytes)?;
    let dropped = admin.hosts.drop_connections(hub);
    admin
        .sim
        .stats
        .faults(FaultKind::ConnectionDrop, dropped as u64);
    Ok(Json(json!({"dropped": dropped})))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutageBody {
    ms: u64,
}

async fn outage(State(admin): State<Admin>, bytes: Bytes) -> Answer {
    let OutageBody { ms } = body(&bytes)?;
    let dropped = admin.hosts.outage(Duration::from_millis(ms));
    admin.sim.stats.fault(FaultKind::Outage);
    admin
        .sim
        .stats
        .faults(FaultKind::ConnectionDrop, dropped as u64);
    Ok(Json(json!({"dropped": dropped, "refusing_ms": ms})))
}

/// Applies the host switches of the active faults (auth, close) and answers the active set.
fn active_faults(admin: &Admin, faults: Faults) -> Answer {
    admin.hosts.reject_auth(faults.reject_auth);
    admin.hosts.ignore_close(faults.ignore_close);
    Ok(reply(&faults))
}

async fn faults(State(admin): State<Admin>) -> Answer {
    Ok(reply(&*admin.sim.faults()))
}

async fn add_faults(State(admin): State<Admin>, bytes: Bytes) -> Answer {
    let patch: FaultPatch = body(&bytes)?;
    let rejects = patch.reject_auth == Some(true);
    let ignores_close = patch.ignore_close == Some(true);
    let faults = {
        let mut faults = admin.sim.faults();
        faults.apply(patch);
        faults.clone()
    };
    if rejects {
        admin.sim.stats.fault(FaultKind::RejectAuth);
    }
    if ignores_close {
        admin.sim.stats.fault(FaultKind::IgnoreClose);
    }
    active_faults(&admin, faults)
}

async fn clear_faults(State(admin): State<Admin>) -> Answer {
    let faults = {
        let mut faults = admin.sim.faults();
        *faults = Faults::default();
        faults.clone()
    };
    active_faults(&admin, faults)
}

async fn ledger(State(admin): State<Admin>) -> Answer {
    Ok(reply(&admin.sim.world().ledger.report()))
}

/// The ground truth a test checks the daemon against: open positions and active signals.
async fn world(State(admin): State<Admin>) -> Answer {
    let world = admin.sim.world();
    let positions: Vec<Value> = world
        .positions
        .values()
        .filter(|p| p.is_open())
        .map(|p| json!({"id": p.id, "strategy_id": p.strategy_id, "account": p.account}))
        .collect();
    let signals: Vec<Value> = world
        .signals
        .iter()
        .map(|(key, event)| {
            let (kind, about) = match key {
                SignalKey::Entry {
                    strategy_id,
                    account,
                } => (
                    "entry",
                    json!({"strategy_id": strategy_id, "account": account}),
                ),
                SignalKey::Exit { position_id } => ("exit", json!({"position_id": position_id})),
                SignalKey::Adjustment { position_id } => {
                    ("adjustment", json!({"position_id": position_id}))
                }
            };
            json!({"kind": kind, "about": about, "event_id": event.id, "seq": event.seq})
        })
        .collect();
    Ok(Json(
        json!({"open_positions": positions, "active_signals": signals}),
    ))
}

async fn stats(State(admin): State<Admin>) -> Answer {
    let latest = admin.sim.world().log.latest();
    Ok(reply(
        &admin.sim.stats.report(latest, admin.hosts.connections()),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestsQuery {
    /// Only requests recorded after this many microseconds since the start.
    #[serde(default)]
    after_us: u64,
}

async fn requests(
    State(admin): State<Admin>,
    query: Result<Query<RequestsQuery>, QueryRejection>,
) -> Answer {
    let Query(query) = query.map_err(|rejection| BadRequest(rejection.body_text()))?;
    Ok(reply(&admin.sim.stats.requests_after(query.after_us)))
}

/// The wire profile in force: its spec, seed, the form of every dimension, the catalogue.
async fn wire(State(admin): State<Admin>) -> Answer {
    Ok(reply(&admin.sim.wire.report()))
}
