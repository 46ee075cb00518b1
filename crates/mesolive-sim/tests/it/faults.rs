//! Every admin fault does what it says, asserted through what the client observes, the ledger
//! and the counters.

use std::time::Duration;

use mesolive_api::lenient::decode;
use mesolive_api::models::{
    IdempotencyRecord, IdempotencyRecordStatus, PreparationStatus, PrepareStatusResult,
    PreparedPlan, StatusCode,
};
use mesolive_api::wire::args;
use mesolive_sim::{Hub, LIVE_ACCOUNT, PAPER_ACCOUNT};
use serde_json::{Value, json};
use signalr::{CallbackReceiver, Connection, SignalrError};
use testkit::wait_some;

use crate::support::*;

async fn subscribed(sim: &TestSim) -> (Connection, CallbackReceiver) {
    let events = sim.connect(Hub::Event).await;
    let callbacks = events.take_callbacks().unwrap();
    ok(&events, "SubscribeToStrategies", args::strategies(None)).await;
    (events, callbacks)
}

fn entry(key: &str, strategy: i64, account: &str) -> Value {
    json!({"IdempotencyKey": key, "StrategyId": strategy, "BrokerAccountId": account, "PositionName": key})
}

/// Prepares an entry and returns its plan, polling the job (not relying on live events).
async fn plan(control: &Connection, key: &str, strategy: i64, account: &str) -> PreparedPlan {
    let job = ok(
        control,
        "StartPreparePositionEntry",
        entry(key, strategy, account),
    )
    .await["JobId"]
        .as_str()
        .unwrap()
        .to_owned();
    let status = wait_some("the job to finish", PATIENCE, || async {
        let status: PrepareStatusResult =
            decode(ok(control, "GetPreparePositionEntryStatus", args::job(&job)).await).unwrap();
        status.status.is_terminal().then_some(status)
    })
    .await;
    decode(status.result.expect("a completed job")).unwrap()
}

async fn record(control: &Connection, key: &str) -> IdempotencyRecord {
    decode(
        ok(
            control,
            "GetIdempotencyRecord",
            args::idempotency_record(key),
        )
        .await,
    )
    .unwrap()
}

#[tokio::test]
async fn a_lost_completion_with_drop_applies_the_effect_then_drops_the_connection() {
    let sim = start().await;
    let control = sim.connect(Hub::Control).await;
    let plan = plan(&control, "prep", 103, LIVE_ACCOUNT).await;
    sim.admin
        .faults(json!({"lose_completion": {"method": "SendOrder", "mode": "drop"}}))
        .await;

    let order = json!({"IdempotencyKey": "send_order_1", "BrokerAccountId": LIVE_ACCOUNT, "ExecPlanId": plan.exec_plan_id, "LegGroupId": 1});
    match control.invoke_raw("SendOrder", vec![order.clone()]).await {
        Err(SignalrError::ConnectionLost(_)) => {}
        other => panic!("expected the connection to drop, got {other:?}"),
    }
    let ledger = sim.admin.ledger().await;
    assert_eq!(
        ledger["total_effects"], 1,
        "the effect was applied: {ledger}"
    );
    assert_eq!(ledger["keys"][0]["key"], "send_order_1");

    let control = sim.connect(Hub::Control).await;
    let settled = record(&control, "send_order_1").await;
    assert_eq!(settled.status, IdempotencyRecordStatus::Completed);
    let order_ids = settled
        .live_order_ids
        .clone()
        .expect("the order is recorded");
    let retry = call(&control, "SendOrder", order).await;
    assert_eq!(retry.status, StatusCode::DuplicateRequest);
    assert_eq!(retry.data["LiveOrderIds"], json!(order_ids));
    let ledger = sim.admin.ledger().await;
    assert_eq!(
        (
            ledger["total_effects"].as_u64(),
            ledger["second_effects"].as_u64()
        ),
        (Some(1), Some(0))
    );
    assert_eq!(sim.admin.fault_count("lose_completion").await, 1);
    assert_eq!(
        sim.admin.get("/faults").await["lose_completion"],
        json!([]),
        "used up"
    );
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn a_lost_completion_with_silence_never_answers_but_keeps_the_connection() {
    let sim = start().await;
    let mut options = sim.options(Hub::Control);
    options.invoke_timeout = Duration::from_millis(300);
    let control = Connection::connect(options).await.unwrap();
    let plan = plan(&control, "prep", 101, PAPER_ACCOUNT).await;
    sim.admin
        .faults(json!({"lose_completion": [{"method": "ApplyPaperFills", "mode": "silence"}]}))
        .await;

    let fill = json!({"IdempotencyKey": "paper_1", "BrokerAccountId": PAPER_ACCOUNT, "ExecPlanId": plan.exec_plan_id});
    match control.invoke_raw("ApplyPaperFills", vec![fill]).await {
        Err(SignalrError::Timeout { .. }) => {}
        other => panic!("expected no answer, got {other:?}"),
    }
    assert_eq!(
        record(&control, "paper_1").await.status,
        IdempotencyRecordStatus::Completed,
        "same connection still works"
    );
    assert_eq!(
        sim.admin.ledger().await["total_effects"],
        2,
        "both leg groups filled"
    );
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn lost_job_events_are_missing_live_but_present_in_history() {
    let sim = start().await;
    let control = sim.connect(Hub::Control).await;
    let (events, mut callbacks) = subscribed(&sim).await;
    let before = sim.admin.latest_seq().await;
    sim.admin.faults(json!({"lose_job_events": 1})).await;

    let lost = plan(&control, "prep_1", 101, PAPER_ACCOUNT).await;
    let delivered = plan(&control, "prep_2", 102, PAPER_ACCOUNT).await;
    let live = next_of(&mut callbacks, "OnPositionEntryPreparationCompleted").await;
    assert_eq!(
        live["Result"]["ExecPlanId"],
        json!(delivered.exec_plan_id),
        "the first completion was lost live"
    );

    let (history, _) = replay(&events, before, 100).await;
    let completions: Vec<i64> = history
        .iter()
        .filter(|e| e["EventType"] == "OnPositionEntryPreparationCompleted")
        .map(|e| e["Result"]["ExecPlanId"].as_i64().unwrap())
        .collect();
    assert_eq!(completions, vec![lost.exec_plan_id, delivered.exec_plan_id]);
    assert_eq!(sim.admin.fault_count("lose_job_event").await, 1);
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn suppressed_events_leave_a_gap_that_replay_fills() {
    let sim = start().await;
    let (events, mut callbacks) = subscribed(&sim).await;
    let before = sim.admin.latest_seq().await;
    sim.admin.faults(json!({"suppress_events": 3})).await;
    sim.admin.post("/events/emit", json!({"count": 5})).await;

    let first_live = next_callback(&mut callbacks).await;
    assert_eq!(
        first_live.arguments[0]["EventSeqId"],
        before + 4,
        "events +1..+3 were suppressed"
    );
    let second_live = next_callback(&mut callbacks).await;
    assert_eq!(second_live.arguments[0]["EventSeqId"], before + 5);
    let (history, _) = replay(&events, before, 2).await;
    assert_eq!(history.len(), 5);
    assert_eq!(sim.admin.fault_count("suppress_event").await, 3);
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn duplicated_events_arrive_twice_with_the_same_event_id() {
    let sim = start().await;
    let (_events, mut callbacks) = subscribed(&sim).await;
    sim.admin.faults(json!({"duplicate_events": 2})).await;
    sim.admin.post("/events/emit", json!({"count": 3})).await;
    let mut seqs = Vec::new();
    for _ in 0..5 {
        let callback = next_callback(&mut callbacks).await;
        seqs.push((
            callback.arguments[0]["EventSeqId"].as_i64().unwrap(),
            callback.arguments[0]["EventId"].clone(),
        ));
    }
    let s0 = seqs[0].0;
    assert_eq!(
        seqs.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![s0, s0, s0 + 1, s0 + 1, s0 + 2]
    );
    assert_eq!(seqs[0].1, seqs[1].1);
    sim.admin.post("/events/emit", json!({"count": 1})).await;
    let after = next_callback(&mut callbacks).await;
    assert_eq!(
        after.arguments[0]["EventSeqId"],
        s0 + 3,
        "only two events were duplicated"
    );
    assert_eq!(sim.admin.fault_count("duplicate_event").await, 2);
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn delayed_events_arrive_late_and_in_order() {
    let sim = start().await;
    let (_events, mut callbacks) = subscribed(&sim).await;
    sim.admin.faults(json!({"delay_events_ms": 300})).await;
    let sent = tokio::time::Instant::now();
    sim.admin.post("/events/emit", json!({"count": 20})).await;
    let received: Vec<i64> = {
        let mut seqs = Vec::new();
        for _ in 0..20 {
            seqs.push(
                next_callback(&mut callbacks).await.arguments[0]["EventSeqId"]
                    .as_i64()
                    .unwrap(),
            );
        }
        seqs
    };
    assert!(
        sent.elapsed() >= Duration::from_millis(300),
        "arrived after the delay"
    );
    assert!(
        received.windows(2).all(|w| w[1] == w[0] + 1),
        "order preserved: {received:?}"
    );
    sim.admin.delete("/faults").await;
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn failed_prepares_end_failed_with_an_error_event() {
    let sim = start().await;
    let control = sim.connect(Hub::Control).await;
    let (_events, mut callbacks) = subscribed(&sim).await;
    sim.admin.faults(json!({"fail_prepares": 1})).await;
    let job = ok(
        &control,
        "StartPreparePositionExit",
        json!({"IdempotencyKey": "prep_exit", "PositionId": 1001}),
    )
    .await["JobId"]
        .clone();
    let failed = next_of(&mut callbacks, "OnPositionExitPreparationFailed").await;
    assert_eq!(failed["JobId"], job);
    assert!(failed["Error"].as_str().unwrap().contains("fault"));
    let status: PrepareStatusResult = decode(
        ok(
            &control,
            "GetPreparePositionExitStatus",
            args::job(job.as_str().unwrap()),
        )
        .await,
    )
    .unwrap();
    assert_eq!(status.status, PreparationStatus::Failed);
    let record = record(&control, "prep_exit").await;
    assert_eq!(record.job_status, Some(PreparationStatus::Failed));
    assert!(record.job_error_message.is_some());
    ok(
        &control,
        "StartPreparePositionExit",
        json!({"IdempotencyKey": "prep_exit_2", "PositionId": 1001}),
    )
    .await;
    next_of(&mut callbacks, "OnPositionExitPreparationCompleted").await;
    assert_eq!(sim.admin.fault_count("fail_prepare").await, 1);
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn held_records_answer_conflict_until_they_settle() {
    let sim = start().await;
    let control = sim.connect(Hub::Control).await;
    let plan = plan(&control, "prep", 101, PAPER_ACCOUNT).await;
    sim.admin.faults(json!({"hold_processing_ms": 400})).await;
    let fill = json!({"IdempotencyKey": "paper_held", "BrokerAccountId": PAPER_ACCOUNT, "ExecPlanId": plan.exec_plan_id, "LegGroupId": 1});
    let first = ok(&control, "ApplyPaperFills", fill.clone()).await;
    assert_eq!(
        call(&control, "ApplyPaperFills", fill.clone()).await.status,
        StatusCode::Conflict
    );
    assert_eq!(
        record(&control, "paper_held").await.status,
        IdempotencyRecordStatus::Processing
    );
    wait_some("the record to settle", PATIENCE, || async {
        (record(&control, "paper_held").await.status == IdempotencyRecordStatus::Completed)
            .then_some(())
    })
    .await;
    let duplicate = call(&control, "ApplyPaperFills", fill).await;
    assert_eq!(duplicate.status, StatusCode::DuplicateRequest);
    assert_eq!(duplicate.data, first);
    assert_eq!(sim.admin.ledger().await["total_effects"], 1);
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn rejected_auth_lasts_until_cleared() {
    let sim = start().await;
    sim.admin.faults(json!({"reject_auth": true})).await;
    match sim.try_connect(Hub::Control, sim.sim.token()).await {
        Err(SignalrError::Unauthorized { status: 401, .. }) => {}
        other => panic!("expected 401, got {other:?}"),
    }
    sim.admin.delete("/faults").await;
    sim.connect(Hub::Control).await;
    assert_eq!(sim.admin.fault_count("reject_auth").await, 1);
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn dropping_connections_and_outages() {
    let sim = start().await;
    let control = sim.connect(Hub::Control).await;
    let data = sim.connect(Hub::Data).await;
    let events = sim.connect(Hub::Event).await;
    let connections = sim.admin.get("/stats").await["connections"].clone();
    assert_eq!(connections, json!({"control": 1, "data": 1, "event": 1}));

    let dropped = sim
        .admin
        .post("/connections/drop", json!({"hub": "event"}))
        .await;
    assert_eq!(dropped["dropped"], 1);
    tokio::time::timeout(PATIENCE, events.closed())
        .await
        .expect("the event connection ends");
    ok(&control, "ListAgents", json!({})).await;

    let outage = sim.admin.post("/outage", json!({"ms": 400})).await;
    assert_eq!(outage["dropped"], 2);
    tokio::time::timeout(PATIENCE, control.closed())
        .await
        .expect("control ends");
    tokio::time::timeout(PATIENCE, data.closed())
        .await
        .expect("data ends");
    assert!(
        sim.try_connect(Hub::Control, sim.sim.token())
            .await
            .is_err(),
        "refused during the outage"
    );
    let back = wait_some("the outage to end", PATIENCE, || async {
        sim.try_connect(Hub::Control, sim.sim.token()).await.ok()
    })
    .await;
    ok(&back, "ListAgents", json!({})).await;
    let stats = sim.admin.get("/stats").await;
    assert_eq!(stats["faults_injected"]["connection_drop"], 3);
    assert_eq!(stats["faults_injected"]["outage"], 1);
    assert!(stats["calls"]["ListAgents"].as_u64().unwrap() >= 2);
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn bad_admin_input_is_a_400_not_a_panic() {
    let sim = start().await;
    for (path, body) in [
        ("/faults", json!({"lose_completion": {"count": 1}})),
        ("/faults", json!({"typo": true})),
        ("/events/emit", json!({"count": -1})),
        ("/events/emit", json!({"count": 1_000_000_000})),
        (
            "/signals",
            json!({"kind": "entry", "state": "Maybe", "strategy_id": 101}),
        ),
        ("/signals", json!({"kind": "exit", "state": "On"})),
        (
            "/signals",
            json!({"kind": "exit", "state": "On", "position_id": 4242}),
        ),
        ("/connections/drop", json!({"hub": "everything"})),
        ("/positions/close", json!({"ids": "all"})),
    ] {
        let (status, answer) = sim.admin.post_raw(path, body.clone()).await;
        assert_eq!(status, 400, "{path} {body} → {answer}");
        assert!(answer["error"].as_str().is_some());
    }
    assert_eq!(sim.admin.get("/healthz").await["status"], "ok");
    sim.sim.shutdown().await;
}
