//! The simulator's Control Hub over real sockets with the project's own client: every method
//! round-trips, paging follows tokens, prepare → execute takes effect, idempotency behaves as
//! API §6.1 says.

use std::time::Duration;

use mesolive_api::lenient::decode;
use mesolive_api::models::{
    IdempotencyRecord, IdempotencyRecordStatus, LiveAccount, LiveLeg, LivePosition, LiveStrategy,
    Order, OrderState, PreparationStatus, PrepareStatusResult, PreparedPlan, StatusCode,
};
use mesolive_api::wire::envelope::Envelope;
use mesolive_api::wire::{args, paging};
use mesolive_sim::{Hub, LIVE_ACCOUNT, PAPER_ACCOUNT, SimOptions, Timing};
use serde_json::{Value, json};
use signalr::{CallbackReceiver, Connection, SignalrError};

use crate::support::*;

fn items<T: serde::de::DeserializeOwned>(page: Value) -> Vec<T> {
    paging::read_page(page)
        .expect("a page")
        .items
        .into_iter()
        .map(|item| decode(item).expect("model decodes"))
        .collect()
}

async fn events(sim: &TestSim) -> (Connection, CallbackReceiver) {
    let connection = sim.connect(Hub::Event).await;
    let callbacks = connection.take_callbacks().expect("callbacks");
    ok(&connection, "SubscribeToStrategies", args::strategies(None)).await;
    (connection, callbacks)
}

/// Starts a prepare job, waits for its completion event, returns the job id and result.
async fn prepare(
    control: &Connection,
    callbacks: &mut CallbackReceiver,
    kind: &str,
    arguments: Value,
) -> (String, Value) {
    let started = ok(control, &format!("StartPreparePosition{kind}"), arguments).await;
    let job_id = started["JobId"].as_str().expect("JobId").to_owned();
    let event = next_of(callbacks, &format!("OnPosition{kind}PreparationCompleted")).await;
    assert_eq!(event["JobId"], json!(job_id));
    assert!(event["EventSeqId"].as_i64().is_some());
    (job_id, event["Result"].clone())
}

fn entry_args(key: &str, strategy: i64, account: &str) -> Value {
    json!({
        "IdempotencyKey": key, "PositionName": format!("test {key}"), "StrategyId": strategy,
        "BrokerAccountId": account, "LegSelectionConstraint": "FullyUnique",
        "Underlying": {"Symbol": "SPX"}, "DataProvider": null,
    })
}

#[tokio::test]
async fn every_read_round_trips_and_decodes_as_the_daemon_does() {
    let sim = start().await;
    let control = sim.connect(Hub::Control).await;

    let agents = ok(&control, "ListAgents", json!({})).await;
    assert!(!paging::read_page(agents).unwrap().items.is_empty());

    let accounts: Vec<LiveAccount> =
        items(ok(&control, "ListAccounts", args::page(None, None)).await);
    let ids: Vec<_> = accounts
        .iter()
        .map(|a| (a.broker_account_id.as_str(), a.is_paper_account))
        .collect();
    assert_eq!(ids, vec![(PAPER_ACCOUNT, true), (LIVE_ACCOUNT, false)]);
    let paper: LiveAccount = decode(
        ok(
            &control,
            "GetAccount",
            json!({"BrokerAccountId": "PAPER-1"}),
        )
        .await,
    )
    .unwrap();
    assert_eq!(paper.active_positions, Some(2));
    let missing = call(&control, "GetAccount", json!({"BrokerAccountId": "NOPE"})).await;
    assert!(missing.is_not_found());

    let strategies: Vec<LiveStrategy> = items(ok(&control, "ListStrategies", json!({})).await);
    assert_eq!(
        strategies.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![101, 102, 103]
    );
    assert!(strategies.iter().all(|s| s.symbol.is_some()));
    let live_only: Vec<LiveStrategy> = items(
        ok(
            &control,
            "ListStrategies",
            json!({"ActiveOnAccounts": [LIVE_ACCOUNT]}),
        )
        .await,
    );
    assert_eq!(
        live_only.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![103]
    );
    let strategy: LiveStrategy =
        decode(ok(&control, "GetStrategy", json!({"StrategyId": 102})).await).unwrap();
    assert_eq!(strategy.symbol.as_deref(), Some("RUT"));

    let positions: Vec<LivePosition> = items(ok(&control, "ListPositions", json!({})).await);
    assert_eq!(positions.len(), 2);
    assert!(positions.iter().all(LivePosition::is_open));
    let of_strategy: Vec<LivePosition> = items(
        ok(
            &control,
            "ListPositions",
            args::positions_of_strategy(103, None, None),
        )
        .await,
    );
    assert!(of_strategy.iter().all(|p| p.live_strategy_id == 103));
    let on_live: Vec<LivePosition> = items(
        ok(
            &control,
            "ListPositions",
            json!({"BrokerAccountId": LIVE_ACCOUNT}),
        )
        .await,
    );
    assert!(
        on_live
            .iter()
            .all(|p| p.broker_account_id.as_deref() == Some(LIVE_ACCOUNT))
    );

    let position_id = positions[0].id;
    let detail = ok(&control, "GetPosition", json!({"PositionId": position_id})).await;
    let legs: Vec<LiveLeg> = decode(detail["Legs"].clone()).unwrap();
    assert_eq!(legs.len(), 4);
    assert_eq!(detail["Id"], json!(position_id));

    let listed: Vec<LiveLeg> =
        items(ok(&control, "ListLegs", json!({"PositionId": position_id})).await);
    assert_eq!(listed, legs);
    let leg_ids: Vec<i64> = legs.iter().map(|l| l.id).take(2).collect();
    let fetched: Vec<LiveLeg> =
        decode(ok(&control, "GetLegs", json!({"LegIds": leg_ids})).await).unwrap();
    assert_eq!(fetched.iter().map(|l| l.id).collect::<Vec<_>>(), leg_ids);

    let orders: Vec<Order> = items(ok(&control, "ListOrders", json!({})).await);
    assert!(orders.is_empty());
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn paging_follows_continuation_tokens_and_filters_open_positions() {
    let sim = start().await;
    let control = sim.connect(Hub::Control).await;
    let opened = sim
        .admin
        .post("/positions/open", json!({"count": 25}))
        .await;
    assert_eq!(opened["ids"].as_array().unwrap().len(), 25);
    sim.admin
        .post("/positions/close", json!({"ids": [1001]}))
        .await;

    let mut seen = Vec::new();
    let mut token: Option<Value> = None;
    let mut pages = 0;
    loop {
        let page = ok(
            &control,
            "ListPositions",
            args::page(Some(7), token.as_ref()),
        )
        .await;
        let page = paging::read_page(page).unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|p| p["Id"].as_i64().unwrap()));
        match page.continuation {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(seen.len(), 27);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "stable ascending order"
    );

    let open: Vec<LivePosition> = items(
        ok(
            &control,
            "ListPositions",
            args::open_positions(Some(1000), None),
        )
        .await,
    );
    assert_eq!(open.len(), 26);
    assert!(!open.iter().any(|p| p.id == 1001));

    let capped = ok(&control, "ListPositions", json!({"Limit": 100_000})).await;
    assert_eq!(capped["Items"].as_array().unwrap().len(), 27);
    let zero = call(&control, "ListPositions", json!({"Limit": 0})).await;
    assert_eq!(zero.status, StatusCode::ValidationError);
    let stale = call(
        &control,
        "ListPositions",
        json!({"ContinuationToken": "garbage"}),
    )
    .await;
    assert_eq!(stale.status, StatusCode::ValidationError);
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn paper_entry_prepares_then_fills_group_by_group() {
    let sim = start().await;
    let control = sim.connect(Hub::Control).await;
    let (_events, mut callbacks) = events(&sim).await;

    let (job_id, result) = prepare(
        &control,
        &mut callbacks,
        "Entry",
        entry_args("prep_entry_1", 101, PAPER_ACCOUNT),
    )
    .await;
    let plan: PreparedPlan = decode(result).unwrap();
    assert_eq!(plan.leg_group_ids(), vec![1, 2]);
    assert!(plan.allowed());
    assert!(plan.leg_group_prices["1"].mid().is_some());
    let status: PrepareStatusResult = decode(
        ok(
            &control,
            "GetPreparePositionEntryStatus",
            args::job(&job_id),
        )
        .await,
    )
    .unwrap();
    assert_eq!(status.status, PreparationStatus::Completed);
    let wrong_kind = call(&control, "GetPreparePositionExitStatus", args::job(&job_id)).await;
    assert!(wrong_kind.is_not_found());

    let fill = |key: &str, group: i64| json!({"IdempotencyKey": key, "BrokerAccountId": PAPER_ACCOUNT, "ExecPlanId": plan.exec_plan_id, "LegGroupId": group});
    ok(&control, "ApplyPaperFills", fill("paper_entry_1_g1", 1)).await;
    let open_positions = async || {
        let page = ok(&control, "ListPositions", json!({})).await;
        page["Items"].as_array().unwrap().len()
    };
    assert_eq!(
        open_positions().await,
        2,
        "one of two leg groups filled: nothing opens yet"
    );
    ok(&control, "ApplyPaperFills", fill("paper_entry_1_g2", 2)).await;
    let leg = next_of(&mut callbacks, "OnLegUpdate").await;
    assert_eq!(leg["Status"], "Created");
    let position_id = leg["PositionId"].as_i64().unwrap();
    assert_eq!(open_positions().await, 3);
    let created = next_of(&mut callbacks, "OnPositionUpdate").await;
    assert_eq!(created["Status"], "Created");
    assert_eq!(created["PositionId"], json!(position_id));
    assert_eq!(created["PositionName"], "test prep_entry_1");

    let detail = ok(&control, "GetPosition", json!({"PositionId": position_id})).await;
    assert_eq!(detail["Legs"].as_array().unwrap().len(), 4);
    let ledger = sim.admin.ledger().await;
    assert_eq!(ledger["total_effects"], 2);
    assert_eq!(ledger["second_effects"], 0);

    let live_on_paper = call(
        &control,
        "SendOrder",
        json!({"IdempotencyKey": "send_order_x", "BrokerAccountId": PAPER_ACCOUNT, "ExecPlanId": plan.exec_plan_id, "LegGroupId": 1}),
    )
    .await;
    assert_eq!(live_on_paper.status, StatusCode::BadRequest);
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn live_orders_work_then_fill_and_open_the_position() {
    let sim = start().await;
    let control = sim.connect(Hub::Control).await;
    let (_events, mut callbacks) = events(&sim).await;
    let (_, result) = prepare(
        &control,
        &mut callbacks,
        "Entry",
        entry_args("prep_entry_live", 103, LIVE_ACCOUNT),
    )
    .await;
    let plan: PreparedPlan = decode(result).unwrap();

    let mut order_ids = Vec::new();
    for group in plan.leg_group_ids() {
        let accepted = ok(
            &control,
            "SendOrder",
            json!({
                "IdempotencyKey": format!("send_order_{group}"), "ReplacesOrder": null,
                "BrokerAccountId": LIVE_ACCOUNT, "ExecPlanId": plan.exec_plan_id, "QtyMultiplier": 1,
                "LegGroupId": group,
                "LegGroupOrder": {"OrderType": "Limit", "TimeInForce": "Day", "LimitPrice": "1.25", "LegNames": []},
            }),
        )
        .await;
        order_ids.push(accepted["LiveOrderIds"][0].as_i64().unwrap());
    }
    let mut states = Vec::new();
    while states.len() < 4 {
        let update = next_of(&mut callbacks, "OnOrderUpdate").await;
        states.push((
            update["OrderId"].as_i64().unwrap(),
            update["State"].as_str().unwrap().to_owned(),
        ));
    }
    for id in &order_ids {
        let mine: Vec<&str> = states
            .iter()
            .filter(|(o, _)| o == id)
            .map(|(_, s)| s.as_str())
            .collect();
        assert_eq!(mine, vec!["Working", "Filled"]);
    }
    let created = next_of(&mut callbacks, "OnPositionUpdate").await;
    assert_eq!(created["Status"], "Created");
    assert_eq!(created["BrokerAccountId"], LIVE_ACCOUNT);

    let orders: Vec<Order> = items(
        ok(
            &control,
            "ListOrders",
            json!({"ExecPlanId": plan.exec_plan_id}),
        )
        .await,
    );
    assert_eq!(orders.len(), 2);
    assert!(orders.iter().all(|o| o.state == OrderState::Filled));
    let paper_on_live = call(
        &control,
        "ApplyPaperFills",
        json!({"IdempotencyKey": "paper_x", "BrokerAccountId": LIVE_ACCOUNT, "ExecPlanId": plan.exec_plan_id}),
    )
    .await;
    assert_eq!(paper_on_live.status, StatusCode::BadRequest);
    sim.sim.shutdown().await;
}

fn slow(prepare_delay: Duration, fill_delay: Duration) -> SimOptions {
    SimOptions {
        timing: Timing {
            prepare_delay,
            fill_delay,
            ..fast_options().timing
        },
        ..fast_options()
    }
}

#[tokio::test]
async fn running_jobs_cancel_best_effort() {
    let sim = start_with(slow(Duration::from_secs(30), Duration::from_millis(40))).await;
    let control = sim.connect(Hub::Control).await;
    let started = ok(
        &control,
        "StartPreparePositionExit",
        json!({"IdempotencyKey": "prep_exit_1", "PositionId": 1002}),
    )
    .await;
    let job_id = started["JobId"].as_str().unwrap().to_owned();
    let status: PrepareStatusResult =
        decode(ok(&control, "GetPreparePositionExitStatus", args::job(&job_id)).await).unwrap();
    assert!(!status.status.is_terminal());
    let cancelled: PrepareStatusResult = decode(
        ok(
            &control,
            "CancelPreparePositionExit",
            args::cancel_job(&job_id, "cancel_exit_1"),
        )
        .await,
    )
    .unwrap();
    assert_eq!(cancelled.status, PreparationStatus::Cancelled);
    let record: IdempotencyRecord = decode(
        ok(
            &control,
            "GetIdempotencyRecord",
            args::idempotency_record("prep_exit_1"),
        )
        .await,
    )
    .unwrap();
    assert_eq!(record.job_status, Some(PreparationStatus::Cancelled));
    let unknown = call(
        &control,
        "CancelPreparePositionExit",
        args::cancel_job("no-such-job", "cancel_exit_2"),
    )
    .await;
    assert!(unknown.is_not_found());
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn working_orders_cancel_once() {
    let sim = start_with(slow(Duration::from_millis(40), Duration::from_secs(30))).await;
    let control = sim.connect(Hub::Control).await;
    let (_events, mut callbacks) = events(&sim).await;
    let (_, result) = prepare(
        &control,
        &mut callbacks,
        "Entry",
        entry_args("prep_live", 103, LIVE_ACCOUNT),
    )
    .await;
    let plan: PreparedPlan = decode(result).unwrap();
    let accepted = ok(
        &control,
        "SendOrder",
        json!({"IdempotencyKey": "send_1", "BrokerAccountId": LIVE_ACCOUNT, "ExecPlanId": plan.exec_plan_id, "LegGroupId": 1}),
    )
    .await;
    let order_id = accepted["LiveOrderIds"][0].as_i64().unwrap();
    assert_eq!(
        next_of(&mut callbacks, "OnOrderUpdate").await["State"],
        "Working"
    );
    let cancelled = ok(
        &control,
        "CancelOrder",
        json!({"IdempotencyKey": "cancel_1", "OrderId": order_id}),
    )
    .await;
    assert_eq!(cancelled["State"], "Cancelled");
    assert_eq!(
        next_of(&mut callbacks, "OnOrderUpdate").await["State"],
        "Cancelled"
    );
    let again = call(
        &control,
        "CancelOrder",
        json!({"IdempotencyKey": "cancel_2", "OrderId": order_id}),
    )
    .await;
    assert_eq!(again.status, StatusCode::BadRequest);
    sim.sim.shutdown().await;
}

/// Runs the same calls on a fresh simulator and returns what they produced.
async fn scripted_session(seed: u64) -> (Value, Vec<Value>) {
    let sim = start_with(SimOptions {
        seed,
        ..fast_options()
    })
    .await;
    let control = sim.connect(Hub::Control).await;
    let (_events, mut callbacks) = events(&sim).await;
    let (_, result) = prepare(
        &control,
        &mut callbacks,
        "Entry",
        entry_args("k1", 101, PAPER_ACCOUNT),
    )
    .await;
    let plan: PreparedPlan = decode(result).unwrap();
    ok(&control, "ApplyPaperFills", json!({"IdempotencyKey": "k2", "BrokerAccountId": PAPER_ACCOUNT, "ExecPlanId": plan.exec_plan_id})).await;
    next_of(&mut callbacks, "OnPositionUpdate").await;
    let events = ok(&control, "ListLegs", json!({"Limit": 1000})).await;
    let replayed = {
        let event_hub = sim.connect(Hub::Event).await;
        replay(&event_hub, 0, 1000).await.0
    };
    sim.sim.shutdown().await;
    let ids = replayed
        .iter()
        .map(|e| json!([e["EventSeqId"], e["EventId"], e["EventType"]]))
        .collect();
    (
        json!([plan.exec_plan_id, events["Items"].as_array().unwrap().len()]),
        ids,
    )
}

#[tokio::test]
async fn same_seed_same_ids_and_events() {
    let (a, a_events) = scripted_session(7).await;
    let (b, b_events) = scripted_session(7).await;
    assert_eq!(a, b);
    assert_eq!(a_events, b_events);
    let (_, c_events) = scripted_session(8).await;
    assert_ne!(
        a_events[0][1], c_events[0][1],
        "another seed, other EventIds"
    );
}

#[tokio::test]
async fn exits_and_adjustments_take_effect() {
    let sim = start().await;
    let control = sim.connect(Hub::Control).await;
    let (_events, mut callbacks) = events(&sim).await;
    let position_id = 1001; // seeded, on the paper account

    let adjust = json!({"IdempotencyKey": "prep_adj_1", "PositionId": position_id, "Operation": "AddLegs", "Condition": "DeltaBreach"});
    let (_, result) = prepare(&control, &mut callbacks, "Adjustment", adjust).await;
    let plan: PreparedPlan = decode(result.clone()).unwrap();
    assert_eq!(result["Condition"], "DeltaBreach");
    assert_eq!(plan.leg_group_ids(), vec![1]);
    ok(&control, "ApplyPaperFills", json!({"IdempotencyKey": "paper_adj_1", "BrokerAccountId": PAPER_ACCOUNT, "ExecPlanId": plan.exec_plan_id})).await;
    assert_eq!(
        next_of(&mut callbacks, "OnLegUpdate").await["Status"],
        "Created"
    );
    assert_eq!(
        next_of(&mut callbacks, "OnPositionUpdate").await["Status"],
        "Adjusted"
    );

    let vars = json!({"IdempotencyKey": "prep_adj_2", "PositionId": position_id, "Operation": "UpdateVars"});
    let (_, result) = prepare(&control, &mut callbacks, "Adjustment", vars).await;
    assert_eq!(result["LegGroups"], json!({}));
    assert_eq!(
        next_of(&mut callbacks, "OnPositionUpdate").await["Status"],
        "Adjusted"
    );
    let detail = ok(&control, "GetPosition", json!({"PositionId": position_id})).await;
    assert_eq!(detail["Vars"]["AdjustmentCount"], json!("1"));
    let bad = call(
        &control,
        "StartPreparePositionAdjustment",
        json!({"IdempotencyKey": "prep_adj_3", "PositionId": position_id, "Operation": "Teleport"}),
    )
    .await;
    assert_eq!(bad.status, StatusCode::ValidationError);

    let (_, result) = prepare(
        &control,
        &mut callbacks,
        "Exit",
        json!({"IdempotencyKey": "prep_exit_1", "PositionId": position_id}),
    )
    .await;
    let plan: PreparedPlan = decode(result).unwrap();
    assert_eq!(plan.position_id, Some(position_id));
    ok(&control, "ApplyPaperFills", json!({"IdempotencyKey": "paper_exit_1", "BrokerAccountId": PAPER_ACCOUNT, "ExecPlanId": plan.exec_plan_id})).await;
    let closed = next_of(&mut callbacks, "OnPositionUpdate").await;
    assert_eq!(closed["Status"], "Closed");
    let position: LivePosition =
        decode(ok(&control, "GetPosition", json!({"PositionId": position_id})).await).unwrap();
    assert!(!position.is_open());
    let again = call(
        &control,
        "StartPreparePositionExit",
        json!({"IdempotencyKey": "prep_exit_2", "PositionId": position_id}),
    )
    .await;
    assert_eq!(again.status, StatusCode::BadRequest);
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn duplicate_requests_get_the_original_data_and_reuse_is_a_conflict() {
    let sim = start().await;
    let control = sim.connect(Hub::Control).await;
    let (_events, mut callbacks) = events(&sim).await;

    let (job_id, result) = prepare(
        &control,
        &mut callbacks,
        "Entry",
        entry_args("prep_entry_k", 101, PAPER_ACCOUNT),
    )
    .await;
    let again = call(
        &control,
        "StartPreparePositionEntry",
        entry_args("prep_entry_k", 101, PAPER_ACCOUNT),
    )
    .await;
    assert_eq!(again.status, StatusCode::DuplicateRequest);
    assert_eq!(again.data, json!({"JobId": job_id}));
    let mut recased = entry_args("prep_entry_k", 101, PAPER_ACCOUNT);
    recased["dataprovider"] = Value::Null;
    let recased = call(&control, "StartPreparePositionEntry", recased).await;
    assert_eq!(
        recased.status,
        StatusCode::DuplicateRequest,
        "null fields and casing do not change the request"
    );
    let reused = call(
        &control,
        "StartPreparePositionEntry",
        entry_args("prep_entry_k", 102, PAPER_ACCOUNT),
    )
    .await;
    assert_eq!(reused.status, StatusCode::Conflict);
    let other_method = call(
        &control,
        "StartPreparePositionExit",
        json!({"IdempotencyKey": "prep_entry_k", "PositionId": 1001}),
    )
    .await;
    assert_eq!(other_method.status, StatusCode::Conflict);

    let record: IdempotencyRecord = decode(
        ok(
            &control,
            "GetIdempotencyRecord",
            args::idempotency_record("prep_entry_k"),
        )
        .await,
    )
    .unwrap();
    assert_eq!(record.status, IdempotencyRecordStatus::Completed);
    assert_eq!(record.job_id.as_deref(), Some(job_id.as_str()));
    assert_eq!(record.job_status, Some(PreparationStatus::Completed));
    assert_eq!(record.job_result, Some(result.clone()));
    assert_eq!(record.response_status, Some(StatusCode::Success));
    assert_eq!(
        record.operation.as_deref(),
        Some("StartPreparePositionEntry")
    );

    let plan: PreparedPlan = decode(result).unwrap();
    let fill = json!({"IdempotencyKey": "paper_k", "BrokerAccountId": PAPER_ACCOUNT, "ExecPlanId": plan.exec_plan_id});
    let first = ok(&control, "ApplyPaperFills", fill.clone()).await;
    let duplicate = call(&control, "ApplyPaperFills", fill).await;
    assert_eq!(duplicate.status, StatusCode::DuplicateRequest);
    assert_eq!(duplicate.data, first);
    let record: IdempotencyRecord = decode(
        ok(
            &control,
            "GetIdempotencyRecord",
            args::idempotency_record("paper_k"),
        )
        .await,
    )
    .unwrap();
    assert_eq!(record.live_exec_plan_id, Some(plan.exec_plan_id));
    assert_eq!(
        sim.admin.ledger().await["total_effects"],
        2,
        "a duplicate has no effect"
    );

    let unknown = call(
        &control,
        "GetIdempotencyRecord",
        args::idempotency_record("never-sent"),
    )
    .await;
    assert!(unknown.is_not_found());
    let unkeyed = call(
        &control,
        "SendOrder",
        json!({"BrokerAccountId": LIVE_ACCOUNT}),
    )
    .await;
    assert_eq!(unkeyed.status, StatusCode::ValidationError);
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn bad_arguments_are_failed_envelopes_and_unknown_methods_errors() {
    let sim = start().await;
    let control = sim.connect(Hub::Control).await;
    let wrong_type = call(&control, "GetPosition", json!({"PositionId": "abc"})).await;
    assert_eq!(wrong_type.status, StatusCode::ValidationError);
    assert!(
        wrong_type
            .error
            .unwrap()
            .validation_errors
            .unwrap()
            .contains_key("PositionId")
    );
    let no_args = Envelope::from_result(control.invoke_raw("GetPosition", vec![]).await.unwrap());
    assert_eq!(no_args.status, StatusCode::ValidationError);
    let not_object = Envelope::from_result(
        control
            .invoke_raw("GetStrategy", vec![json!([1, 2])])
            .await
            .unwrap(),
    );
    assert_eq!(not_object.status, StatusCode::ValidationError);
    match control.invoke_raw("Teleport", vec![json!({})]).await {
        Err(SignalrError::Hub { message, .. }) => {
            assert_eq!(message, "Unknown hub method 'Teleport'")
        }
        other => panic!("expected a hub error, got {other:?}"),
    }
    let requests = sim.admin.get("/requests").await;
    let methods: Vec<&str> = requests
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        methods,
        vec!["GetPosition", "GetPosition", "GetStrategy", "Teleport"]
    );
    assert!(
        requests
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["hub"] == "control")
    );
    sim.sim.shutdown().await;
}
