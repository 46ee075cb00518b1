//! The shape-level forms: the envelope, pages, history pages and items, what prepare and
//! execution calls answer, an unknown idempotency key, agents, provider refusals, stream items
//! and callbacks. Each takes the domain's own shape (PascalCase, as `mesolive_api::wire`
//! builds it) and returns the profile's; [`super::values::walk`] then applies the value forms.

use serde_json::{Map, Value, json};

use super::dimensions::{
    AgentInfoFields, CallbackArguments, CallbackNamesInferred, ConditionEvaluation,
    EnvelopeDataField, EnvelopeErrorFields, ExecutionPayload, ExtraFields, Forms,
    HistoryItemPayload, HistoryPage, IdempotencyNotFound, JobStartedPayload, NullVsAbsent,
    PageContinuation, PageWrapper, PreparationStatusMembers, ProviderRequired, StatusCodeSpelling,
    StreamItemEnvelope,
};
use super::values::{camel_case, property, walk};
use super::{Answer, schema};

/// Callback targets in API §4.1's order (the numeric `EventType` is the position here).
const CALLBACKS: &[&str] = &[
    "OnEntrySignal",
    "OnExitSignal",
    "OnAdjustmentSignal",
    "OnError",
    "OnOrderUpdate",
    "OnPositionUpdate",
    "OnLegUpdate",
    "OnPositionAdjustmentPreparationCompleted",
    "OnPositionAdjustmentPreparationFailed",
    "OnPositionEntryPreparationCompleted",
    "OnPositionEntryPreparationFailed",
    "OnPositionExitPreparationCompleted",
    "OnPositionExitPreparationFailed",
    "OnAgentStatus",
];

/// The paged list methods and the list name a `named_list` page uses.
const PAGED: &[(&str, &str)] = &[
    ("ListAccounts", "Accounts"),
    ("ListStrategies", "Strategies"),
    ("ListPositions", "Positions"),
    ("ListLegs", "Legs"),
    ("ListOrders", "Orders"),
];

/// ASP.NET Core's text when a hub method throws (detailed errors off).
pub(crate) fn hub_exception(method: &str) -> String {
    format!("An unexpected error occurred invoking '{method}' on the server.")
}

fn take(object: &mut Map<String, Value>, name: &str) -> Value {
    object.remove(name).unwrap_or(Value::Null)
}

/// A callback's bare name: `OnOrderUpdate` → `OrderUpdate`.
fn bare_name(target: &str) -> &str {
    target.strip_prefix("On").unwrap_or(target)
}

/// A callback's model name: `OnOrderUpdate` → `OrderUpdateEvent`.
fn model_name(target: &str) -> String {
    format!("{}Event", bare_name(target))
}

/// The callback name the profile uses for `target`.
pub(crate) fn callback_name(forms: &Forms, target: &str) -> String {
    match forms.callback_names_inferred {
        CallbackNamesInferred::Inferred => target.to_owned(),
        CallbackNamesInferred::ModelName => model_name(target),
        CallbackNamesInferred::OtherName => match target {
            "OnAgentStatus" => "OnAgentStatusChanged".to_owned(),
            _ => match target.strip_prefix("OnPosition") {
                Some(rest) if rest.starts_with("Entry") || rest.starts_with("Exit") => {
                    format!("On{rest}")
                }
                _ => target.to_owned(),
            },
        },
    }
}

/// An event payload in the profile's shape (before the value forms).
fn event(forms: &Forms, target: &str, mut payload: Value) -> Value {
    if target == "OnAdjustmentSignal"
        && let Some(condition) = payload.get_mut("Condition")
    {
        *condition = condition_evaluation(forms, condition.take());
    }
    payload
}

fn condition_evaluation(forms: &Forms, condition: Value) -> Value {
    let name = condition
        .get("Name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    match forms.condition_evaluation {
        ConditionEvaluation::ObjectName => condition,
        ConditionEvaluation::String => Value::String(name),
        ConditionEvaluation::ObjectWithOperation => {
            json!({"ConditionId": name, "Operation": "UpdateVars"})
        }
        ConditionEvaluation::ObjectUnrecognized => {
            json!({"Expression": format!("{name} > 0"), "Value": true})
        }
    }
}

/// A live callback: its target and arguments.
pub(crate) fn callback(forms: &Forms, target: &str, payload: Value) -> (String, Vec<Value>) {
    let strategy = payload.get("StrategyId").cloned().unwrap_or(Value::Null);
    let payload = walk(forms, event(forms, target, payload));
    let arguments = match forms.callback_arguments {
        CallbackArguments::SingleObject => vec![payload],
        CallbackArguments::ExtraLeadingArg => vec![walk(forms, strategy), payload],
        CallbackArguments::JsonText => vec![Value::String(payload.to_string())],
    };
    (callback_name(forms, target), arguments)
}

/// The answer of a hub method: the domain's envelope (`{Status, Message, Error, Data}`) in the
/// profile's shape, or a hub error where the profile throws.
pub(crate) fn reply(forms: &Forms, method: &str, args: &Value, envelope: Value) -> Answer {
    let Value::Object(mut envelope) = envelope else {
        return Answer::Value(envelope);
    };
    let mut status = take(&mut envelope, "Status")
        .as_str()
        .unwrap_or("Success")
        .to_owned();
    let mut message = take(&mut envelope, "Message");
    let mut error = take(&mut envelope, "Error");
    let mut data = Some(take(&mut envelope, "Data"));
    if method == "GetIdempotencyRecord" && status == "NotFound" {
        match forms.idempotency_not_found {
            IdempotencyNotFound::StatusNotFound => {}
            IdempotencyNotFound::SuccessNullData => {
                (status, message, error, data) = (
                    "Success".into(),
                    Value::Null,
                    Value::Null,
                    Some(Value::Null),
                );
            }
            IdempotencyNotFound::SuccessNoData => {
                (status, message, error, data) = ("Success".into(), Value::Null, Value::Null, None);
            }
            IdempotencyNotFound::EmptyRecord => {
                (status, message, error, data) =
                    ("Success".into(), Value::Null, Value::Null, Some(json!({})));
            }
            IdempotencyNotFound::OtherStatus => {
                status = "BadRequest".into();
                error = json!({"Code": "IdempotencyKeyNotFound", "Detail": message.clone()});
            }
            IdempotencyNotFound::HubError => return Answer::Error(hub_exception(method)),
        }
    }
    if provider_refused(&status, &error) && method.starts_with("GetUnderlying") {
        match forms.provider_required {
            ProviderRequired::EnvelopeValidation => {}
            ProviderRequired::EnvelopeOtherStatus => {
                status = "BadRequest".into();
                message = Value::String("Provider is required for this request".into());
                error = json!({"Code": "BadRequest", "Detail": message.clone()});
            }
            ProviderRequired::HubError => return Answer::Error(hub_exception(method)),
        }
    }
    if matches!(status.as_str(), "Success" | "DuplicateRequest") {
        data = data.map(|payload| self::payload(forms, method, args, payload));
    }
    let data = data.map(|payload| walk(forms, payload));
    Answer::Value(envelope_of(
        forms,
        &status,
        message,
        walk(forms, error),
        data,
    ))
}

/// Whether a failed envelope refuses a missing `Provider`.
fn provider_refused(status: &str, error: &Value) -> bool {
    status == "ValidationError"
        && error
            .get("ValidationErrors")
            .and_then(Value::as_object)
            .is_some_and(|fields| fields.contains_key("Provider"))
}

/// The text a refused stream ends with.
pub(crate) fn stream_refusal(forms: &Forms, method: &str, text: String) -> String {
    if forms.provider_required == ProviderRequired::HubError && text.contains("Provider") {
        return hub_exception(method);
    }
    text
}

/// One Data Hub stream item.
pub(crate) fn stream_item(forms: &Forms, item: Value) -> Value {
    let item = walk(forms, item);
    match forms.stream_item_envelope {
        StreamItemEnvelope::Bare => item,
        StreamItemEnvelope::Enveloped => {
            envelope_of(forms, "Success", Value::Null, Value::Null, Some(item))
        }
    }
}

/// The envelope in the profile's names and spellings (payload and error already shaped).
fn envelope_of(
    forms: &Forms,
    status: &str,
    message: Value,
    error: Value,
    data: Option<Value>,
) -> Value {
    let status = match forms.status_code_spelling {
        StatusCodeSpelling::Pascal => Value::String(status.to_owned()),
        StatusCodeSpelling::Camel => Value::String(camel_case(status)),
        StatusCodeSpelling::Numeric => Value::from(schema::status_number(status).unwrap_or(-1)),
    };
    let mut fields = vec![("Status", status)];
    match forms.envelope_error_fields {
        EnvelopeErrorFields::MessageAndError => {
            fields.push(("Message", message));
            fields.push(("Error", error));
        }
        EnvelopeErrorFields::MessageOnly => fields.push(("Message", message)),
        EnvelopeErrorFields::ErrorAsString => {
            let text = message
                .as_str()
                .map(|text| Value::String(text.to_owned()))
                .unwrap_or(Value::Null);
            fields.push(("Error", if error.is_null() { Value::Null } else { text }));
        }
    }
    if let Some(data) = data {
        let name = match forms.envelope_data_field {
            EnvelopeDataField::Data => "Data",
            EnvelopeDataField::Payload => "Payload",
            EnvelopeDataField::Result => "Result",
            EnvelopeDataField::OtherName => "Response",
        };
        fields.push((name, data));
    }
    if forms.extra_fields == ExtraFields::InboundExtra {
        fields.push(("TraceId", Value::String("00-sim-trace".into())));
    }
    let omit_nulls = forms.null_vs_absent == NullVsAbsent::OmittedNull;
    Value::Object(
        fields
            .into_iter()
            .filter(|(_, value)| !(omit_nulls && value.is_null()))
            .map(|(name, value)| (property(forms, name), value))
            .collect(),
    )
}

/// A successful payload of `method` in the profile's shape.
fn payload(forms: &Forms, method: &str, args: &Value, payload: Value) -> Value {
    if let Some((_, list)) = PAGED.iter().find(|(name, _)| *name == method) {
        return page(forms, list, payload);
    }
    match method {
        "GetEventsSince" => history(forms, args, payload),
        "ListAgents" => agents(forms, payload),
        "SendOrder" | "ApplyPaperFills" => execution(forms, payload),
        "GetIdempotencyRecord" => record(forms, payload),
        _ if method.starts_with("StartPreparePosition") => job_started(forms, payload),
        _ if method.starts_with("GetPreparePosition") => renamed_status(forms, payload, "Status"),
        _ => payload,
    }
}

fn page(forms: &Forms, list: &str, page: Value) -> Value {
    let Value::Object(mut page) = page else {
        return page;
    };
    let items = take(&mut page, "Items");
    let token = take(&mut page, "ContinuationToken");
    let list = match forms.page_wrapper {
        PageWrapper::BareArray => return items,
        PageWrapper::ItemsToken => "Items",
        PageWrapper::NamedList => list,
    };
    let mut shaped = Map::new();
    shaped.insert(list.to_owned(), items);
    match forms.page_continuation {
        PageContinuation::NullToken => {
            shaped.insert("ContinuationToken".into(), token);
        }
        PageContinuation::AbsentToken => {
            if !token.is_null() {
                shaped.insert("ContinuationToken".into(), token);
            }
        }
        PageContinuation::EmptyToken => {
            let token = if token.is_null() { json!("") } else { token };
            shaped.insert("ContinuationToken".into(), token);
        }
        PageContinuation::OtherTokenName => {
            shaped.insert("NextPageToken".into(), token);
        }
        PageContinuation::NonStringToken => {
            let offset = token
                .as_str()
                .and_then(|t| t.strip_prefix("p:"))
                .and_then(|n| n.parse::<i64>().ok());
            let token = offset.map_or(Value::Null, |offset| json!({"Offset": offset}));
            shaped.insert("ContinuationToken".into(), token);
        }
    }
    Value::Object(shaped)
}

fn history(forms: &Forms, args: &Value, page: Value) -> Value {
    let Value::Object(mut page) = page else {
        return page;
    };
    let items = match take(&mut page, "Events") {
        Value::Array(items) => items,
        _ => Vec::new(),
    };
    let token = take(&mut page, "ContinuationToken");
    let has_more = take(&mut page, "HasMore");
    let seq = |item: Option<&Value>| {
        item.and_then(|i| i.get("EventSeqId"))
            .and_then(Value::as_i64)
    };
    let (first, last) = (seq(items.first()), seq(items.last()));
    let events: Vec<Value> = items
        .into_iter()
        .map(|item| history_item(forms, item))
        .collect();
    match forms.history_page {
        HistoryPage::EventsTokenHasmore => {
            json!({"Events": events, "ContinuationToken": token, "HasMore": has_more})
        }
        HistoryPage::ItemsToken => json!({"Items": events, "ContinuationToken": token}),
        HistoryPage::BareArray => Value::Array(events),
        HistoryPage::NextSeqOnly => {
            json!({"Events": events, "NextEventSeqId": last.map(|seq| seq + 1)})
        }
        HistoryPage::EmptyPageHasMore => match first {
            Some(first) if !has_token(args) => json!({
                "Events": [], "ContinuationToken": format!("s:{}", first - 1), "HasMore": true,
            }),
            _ => json!({"Events": events, "ContinuationToken": token, "HasMore": has_more}),
        },
    }
}

/// Whether a call's arguments (in the caller's casing) carry a continuation token.
fn has_token(args: &Value) -> bool {
    args.as_object().is_some_and(|object| {
        object
            .iter()
            .any(|(name, value)| name.eq_ignore_ascii_case("ContinuationToken") && !value.is_null())
    })
}

/// One history item, from the domain's `{EventSeqId, EventId, EventType, Payload}`.
fn history_item(forms: &Forms, item: Value) -> Value {
    let Value::Object(mut item) = item else {
        return item;
    };
    let target = take(&mut item, "EventType")
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let payload = event(forms, &target, take(&mut item, "Payload"));
    let (seq, id) = (take(&mut item, "EventSeqId"), take(&mut item, "EventId"));
    let named = callback_name(forms, &target);
    let with = |mut payload: Value, name: &str, value: Value| {
        if let Some(object) = payload.as_object_mut() {
            object.insert(name.to_owned(), value);
        }
        payload
    };
    match forms.history_item_payload {
        HistoryItemPayload::Wrapped => {
            json!({"EventSeqId": seq, "EventId": id, "EventType": named, "Payload": payload})
        }
        HistoryItemPayload::WrappedStringPayload => json!({
            "EventSeqId": seq,
            "EventType": model_name(&target),
            "Payload": walk(forms, payload).to_string(),
        }),
        HistoryItemPayload::HeaderOutside => {
            let mut body = payload;
            let time = body
                .as_object_mut()
                .map(|object| {
                    object.remove("EventSeqId");
                    object.remove("EventId");
                    take(object, "EventTime")
                })
                .unwrap_or(Value::Null);
            json!({"EventSeqId": seq, "EventId": id, "EventTime": time,
                   "Type": bare_name(&named), "Event": body})
        }
        HistoryItemPayload::FlatTyped => with(payload, "EventType", json!(model_name(&target))),
        HistoryItemPayload::DollarType => with(payload, "$type", json!(model_name(&target))),
        HistoryItemPayload::NumericType => {
            let number = CALLBACKS.iter().position(|known| *known == target);
            json!({"EventSeqId": seq, "EventId": id, "EventType": number, "Payload": payload})
        }
        HistoryItemPayload::Untyped => payload,
    }
}

fn agents(forms: &Forms, agents: Value) -> Value {
    let Value::Array(agents) = agents else {
        return agents;
    };
    let shaped = agents.into_iter().map(|agent| {
        let Value::Object(mut agent) = agent else {
            return agent;
        };
        match forms.agent_info_fields {
            AgentInfoFields::InferredNames => {}
            AgentInfoFields::OtherNames => {
                agent.remove("Name");
                let connector = take(&mut agent, "Connector");
                let connected = take(&mut agent, "Connected");
                let time = take(&mut agent, "LastSnapshotTime");
                agent.insert("Provider".into(), connector);
                agent.insert("IsConnected".into(), connected);
                agent.insert("LastSnapshotUtc".into(), time);
            }
            AgentInfoFields::EnumNumberConnector => {
                let connector = take(&mut agent, "Connector");
                let number = connector
                    .as_str()
                    .and_then(|name| schema::enum_number("Connector", name));
                agent.insert("Connector".into(), json!(number));
            }
            AgentInfoFields::ObjectConnector => {
                let connector = take(&mut agent, "Connector");
                agent.insert(
                    "Connector".into(),
                    json!({"Type": connector, "Host": "127.0.0.1"}),
                );
            }
        }
        Value::Object(agent)
    });
    Value::Array(shaped.collect())
}

fn execution(forms: &Forms, accepted: Value) -> Value {
    let ids = accepted
        .get("LiveOrderIds")
        .cloned()
        .unwrap_or_else(|| json!([]));
    let first = ids.get(0).cloned().unwrap_or(Value::Null);
    match forms.execution_payload {
        ExecutionPayload::LiveOrderIds => accepted,
        ExecutionPayload::OrderIds => json!({"OrderIds": ids}),
        ExecutionPayload::OrderId => json!({"OrderId": first}),
        ExecutionPayload::BareNumber => first,
        ExecutionPayload::BareArray => ids,
        ExecutionPayload::Null => Value::Null,
    }
}

fn job_started(forms: &Forms, started: Value) -> Value {
    match forms.job_started_payload {
        JobStartedPayload::ObjectString => started,
        JobStartedPayload::BareString => started.get("JobId").cloned().unwrap_or(started),
    }
}

/// `PreparationStatus` members under `preparation_status_members`, in the field `field`.
fn renamed_status(forms: &Forms, mut object: Value, field: &str) -> Value {
    if let Some(status) = object.get_mut(field)
        && let Some(member) = status.as_str()
    {
        let renamed = match (forms.preparation_status_members, member) {
            (PreparationStatusMembers::CanceledSpelling, "Cancelled") => "Canceled",
            (PreparationStatusMembers::OtherNames, "Running") => "InProgress",
            (PreparationStatusMembers::OtherNames, "Completed") => "Succeeded",
            (PreparationStatusMembers::OtherNames, "Failed") => "Error",
            (PreparationStatusMembers::OtherNames, "Cancelled") => "Aborted",
            (_, other) => other,
        };
        *status = Value::String(renamed.to_owned());
    }
    object
}

/// An idempotency record: its job status renamed, and the captured response data (JSON text)
/// in the shape the original call answered with.
fn record(forms: &Forms, record: Value) -> Value {
    let mut record = renamed_status(forms, record, "JobStatus");
    let operation = record
        .get("Operation")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(response) = record.get_mut("ResponseData")
        && let Some(text) = response.as_str()
        && let Ok(data) = serde_json::from_str::<Value>(text)
    {
        let shaped = walk(forms, payload(forms, &operation, &Value::Null, data));
        *response = Value::String(shaped.to_string());
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire_profile::dimensions::PropertyCasing;

    fn envelope(data: Value) -> Value {
        json!({"Status": "Success", "Message": null, "Error": null, "Data": data})
    }

    fn value(answer: Answer) -> Value {
        match answer {
            Answer::Value(value) => value,
            Answer::Error(text) => panic!("a hub error: {text}"),
        }
    }

    #[test]
    fn default_forms_change_no_reply() {
        let forms = Forms::default();
        for (method, data) in [
            (
                "ListAccounts",
                json!({"Items": [{"BrokerAccountId": "A"}], "ContinuationToken": "p:1"}),
            ),
            (
                "GetEventsSince",
                json!({"Events": [{"EventSeqId": 1, "EventId": "e", "EventType": "OnOrderUpdate", "Payload": {"OrderId": 1}}], "ContinuationToken": null, "HasMore": false}),
            ),
            ("SendOrder", json!({"LiveOrderIds": [9], "ExecPlanId": 5})),
            ("StartPreparePositionEntry", json!({"JobId": "j"})),
        ] {
            assert_eq!(
                value(reply(&forms, method, &Value::Null, envelope(data.clone()))),
                envelope(data),
                "{method}"
            );
        }
    }

    #[test]
    fn envelope_names_and_statuses() {
        let forms = Forms {
            envelope_data_field: EnvelopeDataField::OtherName,
            status_code_spelling: StatusCodeSpelling::Numeric,
            envelope_error_fields: EnvelopeErrorFields::ErrorAsString,
            property_casing: PropertyCasing::Camel,
            ..Forms::default()
        };
        let failed = json!({"Status": "NotFound", "Message": "no such thing",
                            "Error": {"Code": "NotFound", "Detail": "no such thing"}, "Data": null});
        assert_eq!(
            value(reply(&forms, "GetPosition", &Value::Null, failed)),
            json!({"status": 3, "error": "no such thing", "response": null})
        );
    }

    #[test]
    fn unknown_keys_and_hub_errors() {
        let not_found = json!({"Status": "NotFound", "Message": "no record", "Error": {"Code": "NotFound"}, "Data": null});
        let forms = |form| Forms {
            idempotency_not_found: form,
            ..Forms::default()
        };
        assert!(matches!(
            reply(&forms(IdempotencyNotFound::HubError), "GetIdempotencyRecord", &Value::Null, not_found.clone()),
            Answer::Error(text) if text.contains("GetIdempotencyRecord")
        ));
        assert_eq!(
            value(reply(
                &forms(IdempotencyNotFound::SuccessNoData),
                "GetIdempotencyRecord",
                &Value::Null,
                not_found.clone()
            )),
            json!({"Status": "Success", "Message": null, "Error": null})
        );
        assert_eq!(
            value(reply(
                &forms(IdempotencyNotFound::EmptyRecord),
                "GetIdempotencyRecord",
                &Value::Null,
                not_found
            ))["Data"],
            json!({})
        );
    }

    #[test]
    fn history_items_in_every_shape() {
        let item = json!({"EventSeqId": 5, "EventId": "e5", "EventType": "OnOrderUpdate",
                          "Payload": {"EventSeqId": 5, "EventId": "e5", "EventTime": "t", "OrderId": 1}});
        let shaped = |form| {
            let forms = Forms {
                history_item_payload: form,
                ..Forms::default()
            };
            history_item(&forms, item.clone())
        };
        assert_eq!(
            shaped(HistoryItemPayload::DollarType)["$type"],
            "OrderUpdateEvent"
        );
        assert_eq!(shaped(HistoryItemPayload::NumericType)["EventType"], 4);
        assert_eq!(
            shaped(HistoryItemPayload::HeaderOutside)["Type"],
            "OrderUpdate"
        );
        assert!(
            shaped(HistoryItemPayload::HeaderOutside)["Event"]
                .get("EventId")
                .is_none()
        );
        assert!(
            shaped(HistoryItemPayload::Untyped)
                .get("EventType")
                .is_none()
        );
        let text = shaped(HistoryItemPayload::WrappedStringPayload)["Payload"].clone();
        assert!(text.as_str().unwrap().contains("\"OrderId\":1"));
    }

    #[test]
    fn callback_names_and_arguments() {
        let forms = Forms {
            callback_names_inferred: CallbackNamesInferred::OtherName,
            callback_arguments: CallbackArguments::ExtraLeadingArg,
            ..Forms::default()
        };
        let (target, arguments) = callback(
            &forms,
            "OnPositionEntryPreparationCompleted",
            json!({"StrategyId": 7, "JobId": "j"}),
        );
        assert_eq!(target, "OnEntryPreparationCompleted");
        assert_eq!(
            arguments,
            vec![json!(7), json!({"StrategyId": 7, "JobId": "j"})]
        );
        assert_eq!(
            callback_name(&forms, "OnPositionAdjustmentPreparationFailed"),
            "OnPositionAdjustmentPreparationFailed"
        );
        assert_eq!(
            callback_name(&forms, "OnAgentStatus"),
            "OnAgentStatusChanged"
        );
    }
}
