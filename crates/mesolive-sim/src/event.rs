//! The Event Hub's methods (API §3.3): the latest EventSeqId, paged replay from the log, and
//! strategy-group membership for live callbacks; plus what a new connection is told on connect.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;

use super::call::{self, CallResult, Failure, into_envelope, to_value};
use super::faults::{ConnectPush, FaultKind, RetentionMode};
use super::live::{self, LivePeer};
use super::sim::Sim;
use super::world::timestamp;
use mesolive_api::models::LatestEventSeqId;
use mesolive_api::wire::{self, history, methods};

/// Handles one Event Hub call of connection `connection_id`; `None` for an unknown method.
pub(crate) fn invoke(sim: &Sim, connection_id: &str, method: &str, args: &Value) -> Option<Value> {
    let result = match method {
        methods::GET_LATEST_EVENT_SEQ_ID => Ok(to_value(&LatestEventSeqId {
            latest_event_seq_id: sim.world().log.latest(),
            snapshot_time: Some(timestamp()),
        })),
        methods::GET_EVENTS_SINCE => events_since(sim, args),
        methods::SUBSCRIBE_TO_STRATEGIES => groups(sim, connection_id, args, true),
        methods::UNSUBSCRIBE_FROM_STRATEGIES => groups(sim, connection_id, args, false),
        _ => return None,
    };
    Some(into_envelope(result))
}

/// History tokens are `s:<EventSeqId>`: the page after that id.
fn token_position(token: &str) -> Result<i64, Failure> {
    token
        .strip_prefix("s:")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            Failure::invalid("ContinuationToken", "unknown or expired ContinuationToken")
        })
}

/// `GetEventsSince`: events strictly after the given EventSeqId (or after the token's), in
/// order, `Limit` at most, as a [`history::page`]. Under the retention setting, a cursor older
/// than the retained history is refused (`error`) or silently answered from the oldest event
/// kept (`gap`).
fn events_since(sim: &Sim, args: &Value) -> CallResult {
    let mut after = match call::opt_str(args, "ContinuationToken")? {
        Some(token) => token_position(&token)?,
        None => wire::EVENTS_SINCE_ARG_NAMES
            .iter()
            .map(|name| call::opt_i64(args, name))
            .find_map(Result::transpose)
            .transpose()?
            .unwrap_or(0),
    }
    // A server that reads its argument inclusively was asked from 0 as from -1: the whole
    // history, never a cursor older than it.
    .max(0);
    let limit = call::limit(args)?;
    let (retention, mode) = {
        let faults = sim.faults();
        (faults.retention, faults.retention_mode)
    };
    let world = sim.world();
    let oldest = world.log.oldest_retained(retention);
    if after + 1 < oldest {
        sim.stats.fault(FaultKind::Retention);
        match mode {
            RetentionMode::Error => {
                return Err(Failure::bad_request(history::too_old_message(
                    after, oldest,
                )));
            }
            RetentionMode::Gap => after = oldest - 1,
        }
    }
    let (events, more) = world.log.since(after, limit);
    let token = match events.last() {
        Some(last) if more => Some(format!("s:{}", last.seq)),
        _ => None,
    };
    let items = events
        .iter()
        .map(|e| history::item(e.seq, &e.id, &e.target, e.payload.clone()))
        .collect();
    Ok(history::page(items, token, more))
}

/// `SubscribeToStrategies` / `UnsubscribeFromStrategies` (`Strategies: null` = all).
fn groups(sim: &Sim, connection_id: &str, args: &Value, join: bool) -> CallResult {
    let strategies = call::opt_i64_list(args, "Strategies")?;
    let known: BTreeSet<i64> = sim.world().strategies.keys().copied().collect();
    let result = sim.live.with_groups(connection_id, |groups| {
        if join {
            groups.subscribe(strategies, &known)
        } else {
            groups.unsubscribe(strategies, &known)
        }
    });
    Ok(to_value(&result))
}

/// A new Event Hub connection: joins live delivery (no groups yet), is sent the active signals
/// and errors in the form the connect-push setting asks for, and only then starts receiving
/// live events, which queue up meanwhile. Joining and reading the active set happen under the
/// world lock, so no event falls between them.
pub(crate) async fn connected<P: LivePeer>(sim: &Arc<Sim>, connection_id: &str, peer: Arc<P>) {
    let form = sim.faults().connect_push;
    let (active, backlog) = {
        let world = sim.world();
        let backlog = sim.live.join(connection_id, &peer);
        (world.active_state(), backlog)
    };
    let mut sent = 0;
    for event in active {
        let payload = match form {
            ConnectPush::Bare => event.without_seq_id(),
            ConnectPush::Repeat => event.payload.clone(),
            ConnectPush::None => break,
        };
        if !peer.send(&event.target, payload).await {
            return;
        }
        sent += 1;
    }
    sim.stats.delivered(sent);
    sim.spawn(live::forward(peer, backlog));
}
