//! Every inbound decoder against hostile payloads: every callback target with a wrong type in
//! a typed field, a bad header, unknown enum members and targets, and proptest-generated JSON
//! for the event, history, envelope, page and model decoders. Nothing may panic; a rejected
//! event names the field that was wrong. What the daemon makes of decoded and rejected events
//! is fuzzed in the root package's tests (`tests/it/fuzz_decoders.rs`).
//!
//! The proptests run 256 cases each in CI; `PROPTEST_CASES=100000 cargo test -p mesolive-api
//! --test it decoders` runs them longer. (`cargo fuzz` needs a nightly toolchain, so it is not
//! used.)

use mesolive_api::events::HubEvent;
use mesolive_api::lenient::decode;
use mesolive_api::models::{
    AgentInfo, IdempotencyRecord, LatestEventSeqId, LiveAccount, LiveLeg, LivePosition,
    LiveStrategy, PositionDataEntry, PrepareStatusResult, PreparedPlan, SubscriptionResult,
};
use mesolive_api::wire::{envelope::Envelope, history, paging};
use proptest::prelude::*;
use serde_json::json;

use crate::support::events::{
    field_name, json_value, required_field_violations, sample, samples, unknown_enum_members,
    with_field,
};

#[test]
fn every_sample_decodes_and_is_acted_on() {
    for (target, payload) in samples() {
        let event = HubEvent::from_callback(&target, &payload)
            .unwrap_or_else(|err| panic!("{target}: {err}"));
        assert!(event.is_recognized(), "{target}");
        assert!(event.unknown_members().is_empty(), "{target}");
    }
}

#[test]
fn a_wrong_type_in_a_typed_field_of_every_target_is_rejected() {
    for (target, field, wrong) in required_field_violations() {
        let hostile = with_field(sample(&target), field, wrong.clone());
        let error = HubEvent::from_callback(&target, &hostile)
            .expect_err(&format!("{target}.{field} = {wrong} must be rejected"));
        assert!(error.reason.starts_with(field), "{}", error.reason);
    }
}

#[test]
fn a_header_field_of_the_wrong_type_rejects_the_event_but_keeps_what_was_readable() {
    let payload = with_field(sample("OnOrderUpdate"), "EventSeqId", json!("seven"));
    let payload = with_field(payload, "EventId", json!("E-1"));
    let error = HubEvent::from_callback("OnOrderUpdate", &payload).expect_err("bad EventSeqId");
    assert!(error.reason.starts_with("EventSeqId: "), "{}", error.reason);
    assert_eq!(error.header.event_id.as_deref(), Some("E-1"));
    assert_eq!(error.header.event_seq_id, None);

    let absent = HubEvent::from_callback("OnOrderUpdate", &sample("OnOrderUpdate"))
        .expect("a missing header is not an error (on-connect pushes have none)");
    assert_eq!(absent.header.event_seq_id, None);
}

#[test]
fn unknown_enum_members_are_kept_and_reported() {
    for (target, field) in unknown_enum_members() {
        let hostile = with_field(sample(target), field, json!("Exploded"));
        let event = HubEvent::from_callback(target, &hostile).expect("unknown members decode");
        assert_eq!(
            event.unknown_members(),
            vec![format!("{field}=Exploded")],
            "{target}"
        );
    }
    // An integer could only be a guess at an undocumented value: refused, naming the form.
    let numeric = with_field(sample("OnOrderUpdate"), "State", json!(42));
    let refused =
        HubEvent::from_callback("OnOrderUpdate", &numeric).expect_err("an integer is not a member");
    assert!(
        refused.reason.contains("enum_encoding=numeric"),
        "{}",
        refused.reason
    );
}

#[test]
fn an_unknown_target_is_recorded_not_acted_on() {
    let event = HubEvent::from_callback("OnSomethingNew", &json!({"EventSeqId": 3, "X": [1]}))
        .expect("unknown targets decode");
    assert!(!event.is_recognized());
    assert_eq!(event.header.event_seq_id, Some(3));
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn a_sample_with_one_field_replaced_by_any_value_never_panics(
        index in any::<prop::sample::Index>(),
        field in field_name(),
        value in json_value(),
    ) {
        let all = samples();
        let (target, payload) = &all[index.index(all.len())];
        let hostile = with_field(payload.clone(), &field, value);
        if let Err(error) = HubEvent::from_callback(target, &hostile) {
            prop_assert!(!error.reason.is_empty());
        }
    }

    #[test]
    fn history_envelope_and_page_readers_never_panic(payload in json_value()) {
        if let Some(page) = history::read_page(payload.clone()) {
            for event in page.events {
                let target = event.event_type.unwrap_or_default();
                let _ = HubEvent::from_callback(&target, &event.payload);
            }
        }
        let envelope = Envelope::from_result(payload.clone());
        let _ = envelope.is_not_found();
        let _ = paging::read_page(envelope.data);
        let _ = paging::read_page(payload);
    }

    #[test]
    fn control_and_data_models_never_panic(payload in json_value()) {
        let _ = decode::<AgentInfo>(payload.clone());
        let _ = decode::<LiveAccount>(payload.clone());
        let _ = decode::<LiveStrategy>(payload.clone());
        let _ = decode::<LivePosition>(payload.clone());
        let _ = decode::<LiveLeg>(payload.clone());
        let _ = decode::<IdempotencyRecord>(payload.clone());
        let _ = decode::<PrepareStatusResult>(payload.clone());
        let _ = decode::<PreparedPlan>(payload.clone());
        let _ = decode::<PositionDataEntry>(payload.clone());
        let _ = decode::<LatestEventSeqId>(payload.clone());
        let _ = decode::<SubscriptionResult>(payload);
    }
}
