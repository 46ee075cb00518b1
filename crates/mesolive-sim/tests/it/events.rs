//! The simulator's Event Hub: replay returns exactly the logged events across page boundaries,
//! live delivery follows strategy groups, the active state is pushed on connect, every
//! callback decodes with the daemon's own decoder.

use std::collections::HashSet;
use std::time::Duration;

use mesolive_api::events::HubEvent;
use mesolive_api::lenient::decode;
use mesolive_api::models::{LatestEventSeqId, SubscriptionResult};
use mesolive_api::wire::{args, history};
use mesolive_sim::{Hub, SimOptions, Timing};
use serde_json::{Value, json};
use signalr::{Callback, CallbackReceiver, Connection};

use crate::support::*;

async fn latest(events: &Connection) -> i64 {
    let latest: LatestEventSeqId =
        decode(ok(events, "GetLatestEventSeqId", json!({})).await).unwrap();
    latest.latest_event_seq_id
}

async fn collect(callbacks: &mut CallbackReceiver, n: usize) -> Vec<Callback> {
    let mut received = Vec::with_capacity(n);
    while received.len() < n {
        received.push(next_callback(callbacks).await);
    }
    received
}

fn decoded(target: &str, payload: Value) -> HubEvent {
    let event = HubEvent::from_callback(target, &payload)
        .unwrap_or_else(|err| panic!("{target} decodes: {err}"));
    assert!(event.is_recognized(), "{target} is a known callback");
    event
}

#[tokio::test]
async fn replay_returns_exactly_the_logged_events_in_order_across_pages() {
    let sim = start().await;
    let events = sim.connect(Hub::Event).await;
    let mut callbacks = events.take_callbacks().unwrap();
    ok(&events, "SubscribeToStrategies", args::strategies(None)).await;
    let before = latest(&events).await;
    assert!(before > 0, "the seeded positions opened the log");

    let emitted = sim.admin.post("/events/emit", json!({"count": 2500})).await;
    assert_eq!(emitted["first_event_seq_id"], before + 1);
    let live = collect(&mut callbacks, 2500).await;
    assert_eq!(latest(&events).await, before + 2500);

    let (replayed, pages) = replay(&events, before, 333).await;
    assert_eq!(pages, 8);
    assert_eq!(replayed.len(), 2500);
    let seqs: Vec<i64> = replayed
        .iter()
        .map(|e| e["EventSeqId"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (before + 1..=before + 2500).collect::<Vec<_>>());
    let ids: HashSet<&str> = replayed
        .iter()
        .map(|e| e["EventId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2500, "EventIds are unique");
    for (live, logged) in live.iter().zip(&replayed) {
        let payload = &live.arguments[0];
        assert_eq!(payload["EventSeqId"], logged["EventSeqId"]);
        assert_eq!(payload["EventId"], logged["EventId"]);
        assert_eq!(json!(live.target), logged["EventType"]);
        decoded(&live.target, payload.clone());
    }
    let uuid = replayed[0]["EventId"].as_str().unwrap();
    assert_eq!(
        uuid::Uuid::parse_str(uuid)
            .unwrap()
            .hyphenated()
            .to_string(),
        uuid,
        "hyphenated lowercase"
    );

    let capped =
        history::read_page(ok(&events, "GetEventsSince", args::events_since(0, 5000, None)).await)
            .unwrap();
    assert_eq!(capped.events.len(), 1000);
    assert_eq!(capped.has_more, Some(true));
    let end = history::read_page(
        ok(
            &events,
            "GetEventsSince",
            args::events_since(before + 2500, 10, None),
        )
        .await,
    )
    .unwrap();
    assert!(end.events.is_empty() && end.continuation.is_none() && end.has_more == Some(false));
    let alias = history::read_page(
        ok(
            &events,
            "GetEventsSince",
            json!({"SinceEventSeqId": before + 2499}),
        )
        .await,
    )
    .unwrap();
    assert_eq!(alias.events.len(), 1);
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn active_signals_and_errors_are_pushed_on_connect_without_seq_ids() {
    let sim = start().await;
    let entry = sim
        .admin
        .post(
            "/signals",
            json!({"kind": "entry", "state": "On", "strategy_id": 101}),
        )
        .await;
    let exit = sim
        .admin
        .post(
            "/signals",
            json!({"kind": "exit", "state": "On", "position_id": 1001}),
        )
        .await;
    sim.admin
        .post(
            "/signals",
            json!({"kind": "adjustment", "state": "On", "position_id": 1002}),
        )
        .await;
    sim.admin
        .post(
            "/signals",
            json!({"kind": "adjustment", "state": "Off", "position_id": 1002}),
        )
        .await;
    let error = sim
        .admin
        .post(
            "/errors",
            json!({"strategy_id": 102, "message": "bad expression"}),
        )
        .await;
    let cleared = sim
        .admin
        .post("/errors", json!({"message": "transient"}))
        .await;
    sim.admin
        .post(
            "/errors",
            json!({"state": "Cleared", "error_id": cleared["error_id"]}),
        )
        .await;

    let events = sim.connect(Hub::Event).await;
    let mut callbacks = events.take_callbacks().unwrap();
    let pushed = collect(&mut callbacks, 3).await;
    let mut seen: Vec<(String, Value)> = pushed
        .iter()
        .map(|c| {
            let payload = &c.arguments[0];
            assert!(
                payload.get("EventSeqId").is_none(),
                "no EventSeqId on a push: {payload}"
            );
            let header = decoded(&c.target, payload.clone()).header;
            assert!(header.event_seq_id.is_none());
            (c.target.clone(), payload["EventId"].clone())
        })
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        vec![
            ("OnEntrySignal".to_owned(), entry["event_id"].clone()),
            ("OnError".to_owned(), error["event_id"].clone()),
            ("OnExitSignal".to_owned(), exit["event_id"].clone()),
        ]
    );
    assert_eq!(
        pushed
            .iter()
            .find(|c| c.target == "OnError")
            .unwrap()
            .arguments[0]["State"],
        "Raised"
    );
    // Nothing more is pushed: after a subscribe, the next callback is the next live event.
    ok(&events, "SubscribeToStrategies", args::strategies(None)).await;
    sim.admin
        .post(
            "/signals",
            json!({"kind": "exit", "state": "Off", "position_id": 1001}),
        )
        .await;
    let off = next_callback(&mut callbacks).await;
    assert_eq!(off.target, "OnExitSignal");
    assert_eq!(off.arguments[0]["State"], "Off");
    assert!(
        off.arguments[0]["EventSeqId"].as_i64().is_some(),
        "live events carry EventSeqId"
    );
    sim.sim.shutdown().await;
}

/// Receives until the strategy-less sentinel error with `message`, returning what came first.
async fn until_sentinel(callbacks: &mut CallbackReceiver, message: &str) -> Vec<(String, Value)> {
    let mut received = Vec::new();
    loop {
        let callback = next_callback(callbacks).await;
        let payload = callback.arguments[0].clone();
        if callback.target == "OnError" && payload["Message"] == message {
            return received;
        }
        received.push((callback.target, payload["StrategyId"].clone()));
    }
}

#[tokio::test]
async fn live_callbacks_follow_strategy_groups() {
    let sim = start().await;
    let only_101 = sim.connect(Hub::Event).await;
    let everything = sim.connect(Hub::Event).await;
    let nothing = sim.connect(Hub::Event).await;
    let mut to_101 = only_101.take_callbacks().unwrap();
    let mut to_all = everything.take_callbacks().unwrap();
    let mut to_none = nothing.take_callbacks().unwrap();

    let joined: SubscriptionResult = decode(
        ok(
            &only_101,
            "SubscribeToStrategies",
            args::strategies(Some(&[101, 999])),
        )
        .await,
    )
    .unwrap();
    assert_eq!(
        (joined.successful_strategies, joined.failed_strategies),
        (vec![101], vec![999])
    );
    let all: SubscriptionResult =
        decode(ok(&everything, "SubscribeToStrategies", args::strategies(None)).await).unwrap();
    assert_eq!(all.successful_strategies, vec![101, 102, 103]);
    let noop: SubscriptionResult = decode(
        ok(
            &nothing,
            "SubscribeToStrategies",
            args::strategies(Some(&[])),
        )
        .await,
    )
    .unwrap();
    assert!(noop.successful_strategies.is_empty() && noop.failed_strategies.is_empty());

    let round = async |sentinel: &str| {
        sim.admin
            .post(
                "/signals",
                json!({"kind": "entry", "state": "On", "strategy_id": 101}),
            )
            .await;
        sim.admin
            .post(
                "/signals",
                json!({"kind": "entry", "state": "On", "strategy_id": 102}),
            )
            .await;
        sim.admin
            .post("/errors", json!({"message": sentinel}))
            .await;
    };
    round("first").await;
    let entry = |strategy: i64| ("OnEntrySignal".to_owned(), json!(strategy));
    assert_eq!(until_sentinel(&mut to_101, "first").await, vec![entry(101)]);
    assert_eq!(
        until_sentinel(&mut to_all, "first").await,
        vec![entry(101), entry(102)]
    );
    assert_eq!(until_sentinel(&mut to_none, "first").await, vec![]);

    ok(
        &only_101,
        "UnsubscribeFromStrategies",
        args::strategies(Some(&[101])),
    )
    .await;
    ok(
        &only_101,
        "SubscribeToStrategies",
        args::strategies(Some(&[102])),
    )
    .await;
    ok(
        &everything,
        "UnsubscribeFromStrategies",
        args::strategies(Some(&[102])),
    )
    .await;
    ok(
        &nothing,
        "UnsubscribeFromStrategies",
        args::strategies(None),
    )
    .await;
    round("second").await;
    assert_eq!(
        until_sentinel(&mut to_101, "second").await,
        vec![entry(102)]
    );
    assert_eq!(
        until_sentinel(&mut to_all, "second").await,
        vec![entry(101)]
    );
    assert_eq!(until_sentinel(&mut to_none, "second").await, vec![]);
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn generic_events_have_real_effects() {
    let sim = start().await;
    let control = sim.connect(Hub::Control).await;
    let events = sim.connect(Hub::Event).await;
    let mut callbacks = events.take_callbacks().unwrap();
    ok(&events, "SubscribeToStrategies", args::strategies(None)).await;

    sim.admin.post("/events/emit", json!({"count": 4})).await;
    let updates = collect(&mut callbacks, 4).await;
    for update in &updates {
        assert_eq!(update.target, "OnPositionUpdate");
        assert_eq!(update.arguments[0]["Status"], "RealizedPnLChanged");
    }
    let last_for_1001 = updates
        .iter()
        .rev()
        .find(|u| u.arguments[0]["PositionId"] == 1001)
        .unwrap();
    let detail = ok(&control, "GetPosition", json!({"PositionId": 1001})).await;
    assert_eq!(
        detail["RealizedPnL"],
        last_for_1001.arguments[0]["RealizedPnL"]
    );

    let closed = sim
        .admin
        .post("/positions/close", json!({"ids": [1001, 1002]}))
        .await;
    assert_eq!(closed["closed"], json!([1001, 1002]));
    sim.admin.post("/events/emit", json!({"count": 1})).await;
    let agent = next_of(&mut callbacks, "OnAgentStatus").await;
    assert_eq!(agent["Status"], "Connected");
    decoded("OnAgentStatus", agent);
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn the_signal_generator_raises_and_ends_signals_on_its_cadence() {
    let sim = start_with(SimOptions {
        timing: Timing {
            signal_interval: Some(Duration::from_millis(30)),
            ..fast_options().timing
        },
        ..fast_options()
    })
    .await;
    let events = sim.connect(Hub::Event).await;
    let mut callbacks = events.take_callbacks().unwrap();
    ok(&events, "SubscribeToStrategies", args::strategies(None)).await;
    let (mut entry_on, mut exit_on, mut any_off) = (false, false, false);
    while !(entry_on && exit_on && any_off) {
        let callback = next_callback(&mut callbacks).await;
        let on = callback.arguments[0]["State"] == "On";
        let off = callback.arguments[0]["State"] == "Off";
        match callback.target.as_str() {
            "OnEntrySignal" if on => {
                entry_on = true;
                assert_eq!(callback.arguments[0]["BrokerAccountId"], "PAPER-1");
            }
            "OnExitSignal" if on => exit_on = true,
            _ if off => any_off = true,
            _ => {}
        }
        decoded(&callback.target, callback.arguments[0].clone());
    }
    sim.sim.shutdown().await;
}
