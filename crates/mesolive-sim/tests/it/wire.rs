//! The simulator's wire profiles over real sockets: `GET /wire` shows the forms in force, a
//! profile changes what leaves the simulator (envelopes, pages, callbacks, stream items) and
//! how arguments bind. (`sim --wire-profile` as a process is in the daemon's `sim_cli` tests.)

use crate::support::{PATIENCE, fast_options, next_callback, start_with};
use futures_util::StreamExt;
use mesolive_api::Hub;
use mesolive_api::wire::{self, args};
use mesolive_sim::{SimOptions, WireProfile};
use serde_json::{Value, json};
use signalr::SignalrError;

fn with_profile(spec: &str) -> SimOptions {
    SimOptions {
        wire: WireProfile::parse(spec).expect("a valid profile"),
        ..fast_options()
    }
}

#[tokio::test]
async fn get_wire_shows_the_forms_in_force() {
    let sim = start_with(with_profile("random:77,property_casing=camel")).await;
    let report = sim.admin.get("/wire").await;
    assert_eq!(report["seed"], 77, "{report}");
    assert_eq!(report["forms"]["property_casing"], "camel", "{report}");
    let catalogue = report["catalogue"].as_object().expect("catalogue");
    assert_eq!(
        report["forms"].as_object().map(|f| f.len()),
        Some(catalogue.len())
    );
    for (dimension, forms) in catalogue {
        let form = &report["forms"][dimension];
        assert!(
            forms.as_array().is_some_and(|all| all.contains(form)),
            "{dimension}: {form} is one of its forms"
        );
    }
    let default = start_with(fast_options()).await;
    let report = default.admin.get("/wire").await;
    assert_eq!(report["spec"], "default");
    for (dimension, forms) in report["catalogue"].as_object().expect("catalogue") {
        assert_eq!(report["forms"][dimension], forms[0], "today's form first");
    }
}

#[tokio::test]
async fn aspnet_strict_answers_in_camel_case_with_numbers() {
    let sim = start_with(with_profile("aspnet-strict")).await;
    let control = sim.connect(Hub::Control).await;
    let raw = control
        .invoke_raw("ListAccounts", wire::call_args(args::page(Some(10), None)))
        .await
        .expect("ListAccounts answers");
    assert_eq!(raw["status"], 0, "Success is member 0: {raw}");
    let first = &raw["data"]["items"][0];
    assert!(first["brokerAccountId"].is_string(), "{raw}");
    assert!(first["netLiquidationValue"].is_number(), "{raw}");
    assert!(first["brokerType"].is_number(), "enums as integers: {raw}");
}

#[tokio::test]
async fn strict_types_refuse_a_decimal_sent_as_text() {
    let sim = start_with(with_profile("default,argument_binding=strict_stj")).await;
    let control = sim.connect(Hub::Control).await;
    let text_price = json!({"IdempotencyKey": "k1", "BrokerAccountId": "LIVE-1", "ExecPlanId": 1,
        "QtyMultiplier": "1", "LegGroupId": 1,
        "LegGroupOrder": {"OrderType": "Market", "TimeInForce": "Day", "LegNames": []}});
    match control
        .invoke_raw("SendOrder", wire::call_args(text_price))
        .await
    {
        Err(SignalrError::Hub { message, .. }) => assert!(
            message.contains("Error binding arguments. Make sure that the types of the provided values match the types of the hub method being invoked."),
            "{message}"
        ),
        other => panic!("expected ASP.NET Core's binding error, got {other:?}"),
    }
    assert_eq!(sim.admin.ledger().await["total_effects"], 0, "nothing ran");
    let unknown = sim
        .admin
        .get("/requests")
        .await
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(unknown, 1, "the call was received and refused");
}

#[tokio::test]
async fn callbacks_and_stream_items_leave_in_the_profile_forms() {
    let sim = start_with(with_profile(
        "default,callback_arguments=extra_leading_arg,callback_names_inferred=model_name,stream_item_envelope=enveloped",
    ))
    .await;
    let events = sim.connect(Hub::Event).await;
    let mut callbacks = events.take_callbacks().expect("callbacks");
    crate::support::ok(&events, "SubscribeToStrategies", args::strategies(None)).await;
    sim.admin
        .post(
            "/signals",
            json!({"kind": "entry", "state": "On", "strategy_id": 101, "account": "PAPER-1"}),
        )
        .await;
    let callback = next_callback(&mut callbacks).await;
    assert_eq!(callback.target, "EntrySignalEvent");
    assert_eq!(callback.arguments.len(), 2, "{:?}", callback.arguments);
    assert_eq!(callback.arguments[0], 101);
    assert_eq!(callback.arguments[1]["State"], "On");

    let data = sim.connect(Hub::Data).await;
    let mut stream = data
        .stream::<Value>(
            "StreamUnderlyingData",
            vec![args::underlying("SPX", Some("IBKR"))],
        )
        .expect("stream opens");
    let item = tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("an item in time")
        .expect("an item")
        .expect("not an error");
    assert_eq!(item["Status"], "Success", "{item}");
    assert!(item["Data"]["Mark"].is_string(), "{item}");
}
