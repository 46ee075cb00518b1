//! One well-formed payload per Event Hub callback target, and the hostile variants built from
//! them: a field of the wrong type, an enum member this build does not know. Shared by the
//! decoder fuzz tests and the daemon-level hostile-input tests.
#![allow(dead_code)] // each test binary uses a different part of this module

use mesolive_api::FlowKind;
use mesolive_api::wire::callbacks;
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

/// Values of every JSON kind; each is the wrong type for most fields.
pub(crate) fn wrong_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(1.5),
        json!(-7),
        json!("text"),
        json!([1, "a"]),
        json!({"nested": {}}),
    ]
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
