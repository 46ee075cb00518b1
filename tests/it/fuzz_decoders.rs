//! The daemon's side of hostile payloads: what a decoded or rejected event becomes for the
//! store (`tasks::effects`), for every callback target with every field given every wrong JSON
//! type, and for proptest-generated JSON. Nothing may panic; a rejected event names the field
//! that was wrong (the reason kept in quarantine). The decoders alone are fuzzed in
//! mesolive-api's tests (`crates/mesolive-api/tests/it/decoders.rs`).
//!
//! The proptests run 256 cases each in CI; `PROPTEST_CASES=100000 cargo test --test it
//! fuzz_decoders` runs them longer. (`cargo fuzz` needs a nightly toolchain, so it is not used.)

use mesolive_api::events::HubEvent;
use mesolive_supervisor::tasks::effects;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::support::events::{json_value, samples, with_field};

/// Values of every JSON kind; each is the wrong type for most fields.
fn wrong_values() -> Vec<Value> {
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

#[test]
fn every_field_of_every_target_with_every_wrong_type_is_decoded_or_rejected_by_name() {
    let mut rejected = 0;
    for (target, payload) in samples() {
        let fields: Vec<String> = payload.as_object().unwrap().keys().cloned().collect();
        for field in fields {
            for wrong in wrong_values() {
                let hostile = with_field(payload.clone(), &field, wrong.clone());
                match HubEvent::from_callback(&target, &hostile) {
                    Ok(event) => {
                        // Accepted leniently (null for an optional field, any JSON for a
                        // model-less field, a number or text for an enum or a decimal): what
                        // the store gets from it must still be computable.
                        let _ = effects::record(&event, &hostile);
                    }
                    Err(error) => {
                        rejected += 1;
                        assert!(
                            error.reason.starts_with(&format!("{field}: "))
                                || error.reason.contains(&format!("`{field}`")),
                            "{target}.{field} = {wrong}: the reason must name the field: {}",
                            error.reason
                        );
                        let quarantined = effects::quarantine(&error, &hostile);
                        assert_eq!(quarantined.target, target);
                    }
                }
            }
        }
    }
    assert!(rejected > 100, "only {rejected} hostile variants rejected");
}

/// A known callback target as often as a random name.
fn target() -> impl Strategy<Value = String> {
    let known: Vec<String> = samples().into_iter().map(|(t, _)| t).collect();
    prop_oneof![prop::sample::select(known), "[A-Za-z]{0,12}"]
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn any_payload_for_any_target_decodes_or_is_rejected_without_panicking(
        target in target(),
        payload in json_value(),
    ) {
        match HubEvent::from_callback(&target, &payload) {
            Ok(event) => {
                let record = effects::record(&event, &payload);
                prop_assert_eq!(record.seq_id, event.header.event_seq_id);
            }
            Err(error) => {
                let record = effects::quarantine(&error, &payload);
                prop_assert_eq!(record.seq_id, error.header.event_seq_id);
            }
        }
    }
}
