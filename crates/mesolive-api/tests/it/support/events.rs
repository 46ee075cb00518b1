//! One well-formed payload per Event Hub callback target, the hostile variants built from them
//! (a field of the wrong type, an enum member this build does not know), and arbitrary JSON
//! that favours real field names. Shared by mesolive-api's decoder tests and the root package's
//! tests (the daemon's hostile-input and effect tests), which include this file by path: one
//! copy of the samples, and every item here is used by both.

use mesolive_api::FlowKind;
use mesolive_api::wire::callbacks;
use proptest::prelude::*;
use serde_json::{Value, json};

/// A valid payload (without the header) for every target of `callbacks::all()`.
pub(crate) fn samples() -> Vec<(String, Value)> {
    let preparation = json!({
        "JobId": "job-1", "StrategyId": 101, "StrategyName": "S", "BrokerAccountId": "PAPER-1",
        "Result": {"PositionId": 1001}, "Error": null
    });
    let mut samples = vec![
        (
            callbacks::ENTRY_SIGNAL.to_owned(),
            json!({"State": "Off", "StrategyId": 101, "StrategyName": "S",
                   "BrokerAccountId": "PAPER-1", "EntrySignalResult": {"Ok": true}}),
        ),
        (
            callbacks::EXIT_SIGNAL.to_owned(),
            json!({"State": "Off", "StrategyId": 101, "StrategyName": "S", "PositionId": 1001,
                   "PositionName": "P", "BrokerAccountId": "PAPER-1", "ExitSignalResult": null}),
        ),
        (
            callbacks::ADJUSTMENT_SIGNAL.to_owned(),
            json!({"State": "Off", "StrategyId": 101, "PositionId": 1001,
                   "AdjustmentTimeOk": true, "Condition": "c1"}),
        ),
        (
            callbacks::ERROR.to_owned(),
            json!({"State": "Raised", "ErrorId": "e1", "StrategyId": 101, "PositionId": 1001,
                   "Message": "m"}),
        ),
        (
            callbacks::ORDER_UPDATE.to_owned(),
            json!({"OrderId": 50001, "BrokerAccountId": "PAPER-1", "ExecPlanId": 70001,
                   "LegGroupId": 1, "StrategyId": 101, "State": "Working", "FilledQty": "0",
                   "RemainingQty": 1, "FillPrice": null, "AvgFillPrice": "1.25"}),
        ),
        (
            callbacks::POSITION_UPDATE.to_owned(),
            json!({"PositionId": 1001, "StrategyId": 101, "StrategyName": "S",
                   "PositionName": "P", "BrokerAccountId": "PAPER-1", "Status": "Adjusted",
                   "RealizedPnL": "0"}),
        ),
        (
            callbacks::LEG_UPDATE.to_owned(),
            json!({"BrokerAccountId": "PAPER-1", "PositionId": 1001, "StrategyId": 101,
                   "LegId": 20001, "LegName": "shortPut",
                   "Contract": {"ContractType": "Options", "Root": "SPXW", "OptionType": "Put",
                                "Expiration": "2030-01-18", "Strike": 4000, "Multiplier": 100},
                   "Status": "QtyChanged", "Qty": -1, "RealizedPnL": 0}),
        ),
        (
            callbacks::AGENT_STATUS.to_owned(),
            json!({"Status": "Connected", "Message": "ok", "Connector": {"Name": "Sim"}}),
        ),
    ];
    for kind in FlowKind::ALL {
        for completed in [true, false] {
            samples.push((callbacks::preparation(kind, completed), preparation.clone()));
        }
    }
    samples
}

/// For each target, one field whose wrong-typed value must get the event quarantined (a
/// required field, or an optional one whose type is fixed), with that value.
pub(crate) fn required_field_violations() -> Vec<(String, &'static str, Value)> {
    let by_model = |target: &str| -> (&'static str, Value) {
        match target {
            callbacks::ENTRY_SIGNAL => ("StrategyId", json!("abc")),
            callbacks::EXIT_SIGNAL => ("PositionId", json!({})),
            callbacks::ADJUSTMENT_SIGNAL => ("StrategyId", json!([])),
            callbacks::ERROR => ("ErrorId", json!(5)),
            callbacks::ORDER_UPDATE => ("OrderId", json!("x")),
            callbacks::POSITION_UPDATE => ("Status", json!(true)),
            callbacks::LEG_UPDATE => ("LegId", json!(1.5)),
            callbacks::AGENT_STATUS => ("Message", json!([])),
            _ => ("JobId", json!(17)),
        }
    };
    samples()
        .into_iter()
        .map(|(target, _)| {
            let (field, value) = by_model(&target);
            (target, field, value)
        })
        .collect()
}

/// For each target with an enum, one field set to a member no build knows.
pub(crate) fn unknown_enum_members() -> Vec<(&'static str, &'static str)> {
    vec![
        (callbacks::ENTRY_SIGNAL, "State"),
        (callbacks::EXIT_SIGNAL, "State"),
        (callbacks::ADJUSTMENT_SIGNAL, "State"),
        (callbacks::ORDER_UPDATE, "State"),
        (callbacks::POSITION_UPDATE, "Status"),
        (callbacks::LEG_UPDATE, "Status"),
    ]
}

/// The sample of `target`.
pub(crate) fn sample(target: &str) -> Value {
    samples()
        .into_iter()
        .find(|(t, _)| t == target)
        .map(|(_, payload)| payload)
        .unwrap_or_else(|| panic!("no sample for {target}"))
}

/// `payload` with `field` set to `value`.
pub(crate) fn with_field(mut payload: Value, field: &str, value: Value) -> Value {
    payload
        .as_object_mut()
        .expect("samples are objects")
        .insert(field.to_owned(), value);
    payload
}

/// Any JSON up to four levels deep, its object keys drawn by [`field_name`].
pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[ -~\u{e9}\u{1F600}]{0,12}".prop_map(Value::from),
        "-?[0-9]{1,30}(\\.[0-9]{1,30})?".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(field_name(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Real field names (in any case) as often as random ones, so decoders get past the first key.
pub(crate) fn field_name() -> impl Strategy<Value = String> {
    let known: Vec<String> = samples()
        .into_iter()
        .flat_map(|(_, payload)| {
            payload
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        })
        .chain(
            [
                "EventId",
                "EventSeqId",
                "Items",
                "Events",
                "Payload",
                "EventType",
                "Status",
                "Data",
                "ContinuationToken",
                "HasMore",
                "Id",
                "Legs",
                "Error",
            ]
            .map(str::to_owned),
        )
        .collect();
    prop_oneof![
        prop::sample::select(known.clone()),
        prop::sample::select(known).prop_map(|name| name.to_lowercase()),
        "[A-Za-z]{1,8}",
    ]
}
