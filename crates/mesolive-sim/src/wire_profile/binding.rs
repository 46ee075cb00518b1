//! The inbound forms: how a call's SignalR arguments bind to the method's argument model
//! ([`super::schema::arguments`]) — how many arguments, which casing binds, the argument
//! names a server may use instead of the INFERRED ones, and whether a value of the wrong type,
//! an unknown field or a `null` fails the call with ASP.NET Core's binding error.

use serde_json::{Map, Value, json};

use super::dimensions::{
    ArgumentArity, ArgumentBinding, EnumEncoding, ExtraFields, FlagsEncoding, Forms, HistoryArgs,
    NullVsAbsent, PageArgs, PageContinuation, PageWrapper, PropertyCasing, UnderlyingDataArgs,
};
use super::schema::{self, Field, Kind};

/// The largest page a `bare_array` server answers with (the domain's cap).
const WHOLE_LIST: i64 = 1000;

/// ASP.NET Core's Completion error for arguments that do not bind (detailed errors on).
pub(crate) fn binding_error(method: &str) -> String {
    format!(
        "Failed to invoke '{method}' due to an error on the server. InvalidDataException: Error \
         binding arguments. Make sure that the types of the provided values match the types of \
         the hub method being invoked."
    )
}

fn arity_error(method: &str, given: usize, expected: usize) -> String {
    format!(
        "Failed to invoke '{method}' due to an error on the server. InvalidDataException: \
         Invocation provides {given} argument(s) but target expects {expected}."
    )
}

/// The args object the domain code reads, or the Completion error of a call that does not
/// bind (the method never runs).
pub(crate) fn bind(forms: &Forms, method: &str, arguments: Vec<Value>) -> Result<Value, String> {
    let Some(model) = schema::arguments(method) else {
        return Ok(arguments.into_iter().next().unwrap_or(Value::Null));
    };
    let strict = forms.argument_binding == ArgumentBinding::StrictStj;
    let expected = match forms.argument_arity {
        ArgumentArity::ZeroArgs if model.is_empty() => 0,
        _ => 1,
    };
    if (strict || expected == 0) && arguments.len() != expected {
        return Err(arity_error(method, arguments.len(), expected));
    }
    let mut args = arguments.into_iter().next().unwrap_or_else(|| json!({}));
    if forms.property_casing == PropertyCasing::CamelStrict {
        args = camel_only(args);
    }
    if let Value::Object(object) = &mut args {
        rename(forms, method, object);
    }
    check_object(forms, model, &args).map_err(|()| binding_error(method))?;
    Ok(args)
}

/// Only camelCase names bind: every other member is left unbound (absent).
fn camel_only(value: Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(
            object
                .into_iter()
                .filter(|(name, _)| !name.starts_with(|c: char| c.is_ascii_uppercase()))
                .map(|(name, value)| (name, camel_only(value)))
                .collect(),
        ),
        other => other,
    }
}

/// Removes a member by any casing.
fn remove(object: &mut Map<String, Value>, name: &str) -> Option<Value> {
    let key = object
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))?
        .clone();
    object.remove(&key)
}

/// The argument names the profile's server reads, turned into the domain's names.
fn rename(forms: &Forms, method: &str, args: &mut Map<String, Value>) {
    let paged = matches!(
        method,
        "ListAccounts" | "ListStrategies" | "ListPositions" | "ListLegs" | "ListOrders"
    );
    if (paged || method == "GetEventsSince") && forms.page_args == PageArgs::OtherNames {
        remove(args, "Limit");
        if let Some(size) = remove(args, "PageSize") {
            args.insert("Limit".into(), size);
        }
    }
    if paged {
        if forms.page_wrapper == PageWrapper::BareArray {
            remove(args, "ContinuationToken");
            args.insert("Limit".into(), json!(WHOLE_LIST));
        }
        if forms.page_continuation == PageContinuation::NonStringToken
            && let Some(token) = remove(args, "ContinuationToken")
        {
            let offset = token
                .as_object()
                .and_then(|t| t.iter().find(|(k, _)| k.eq_ignore_ascii_case("Offset")))
                .and_then(|(_, v)| v.as_i64());
            let token = offset.map_or(token, |offset| json!(format!("p:{offset}")));
            args.insert("ContinuationToken".into(), token);
        }
    }
    if method == "GetEventsSince" {
        let after = match forms.history_args {
            HistoryArgs::AfterExclusive => None,
            HistoryArgs::SinceInclusive => {
                remove(args, "AfterEventSeqId").map(|n| n.as_i64().map_or(n, |n| json!(n - 1)))
            }
            HistoryArgs::OtherName => {
                remove(args, "AfterEventSeqId");
                remove(args, "SinceEventSeqId");
                remove(args, "EventSeqId");
                Some(
                    remove(args, "FromEventSeqId")
                        .and_then(|n| n.as_i64())
                        .map_or(json!(0), |n| json!(n - 1)),
                )
            }
        };
        if let Some(after) = after {
            args.insert("AfterEventSeqId".into(), after);
        }
    }
    if method.contains("Underlying")
        && forms.underlying_data_args == UnderlyingDataArgs::UnderlyingObject
    {
        remove(args, "Symbol");
    }
}

/// Whether the profile checks anything at all at binding.
fn checks(forms: &Forms) -> bool {
    forms.argument_binding == ArgumentBinding::StrictStj
        || forms.enum_encoding == EnumEncoding::Numeric
        || forms.flags_encoding == FlagsEncoding::NumericOnly
        || forms.null_vs_absent == NullVsAbsent::NullIntoValueType
        || forms.extra_fields == ExtraFields::OutboundRejected
}

/// The fields the profile's model has for `model` (the argument names that replace INFERRED
/// ones are part of it).
fn declared(forms: &Forms, model: &'static [Field], name: &str) -> Option<Field> {
    let renamed = [
        ("PageSize", "Limit", forms.page_args == PageArgs::OtherNames),
        (
            "FromEventSeqId",
            "AfterEventSeqId",
            forms.history_args == HistoryArgs::OtherName,
        ),
    ];
    let name = renamed
        .iter()
        .find(|(alias, _, on)| *on && alias.eq_ignore_ascii_case(name))
        .map_or(name, |(_, canonical, _)| canonical);
    model
        .iter()
        .copied()
        .find(|field| field.name.eq_ignore_ascii_case(name))
}

fn check_object(forms: &Forms, model: &'static [Field], args: &Value) -> Result<(), ()> {
    if !checks(forms) {
        return Ok(());
    }
    let Value::Object(object) = args else {
        return if args.is_null() { Ok(()) } else { Err(()) };
    };
    for (name, value) in object {
        match declared(forms, model, name) {
            Some(field) => check_value(forms, field, value)?,
            None if forms.extra_fields == ExtraFields::OutboundRejected => return Err(()),
            None => {}
        }
    }
    Ok(())
}

fn check_value(forms: &Forms, field: Field, value: &Value) -> Result<(), ()> {
    if value.is_null() {
        let refused = forms.null_vs_absent == NullVsAbsent::NullIntoValueType
            && field.kind.is_value_type()
            && !field.nullable;
        return if refused { Err(()) } else { Ok(()) };
    }
    let strict = forms.argument_binding == ArgumentBinding::StrictStj;
    let integer = value.is_i64() || value.is_u64();
    let ok = match field.kind {
        Kind::Enum(_) if forms.enum_encoding == EnumEncoding::Numeric => integer,
        Kind::Flags(_) if forms.flags_encoding == FlagsEncoding::NumericOnly => integer,
        Kind::Object(model) if value.is_object() => check_object(forms, model, value).is_ok(),
        _ if !strict => true,
        Kind::Int => integer,
        Kind::Decimal => value.is_number(),
        Kind::Text => value.is_string(),
        Kind::Enum(_) => integer || value.as_str().is_some_and(|name| member(field.kind, name)),
        Kind::Flags(_) => {
            integer
                || value.as_str().is_some_and(|names| {
                    names.split(',').all(|name| member(field.kind, name.trim()))
                })
        }
        Kind::IntList => value
            .as_array()
            .is_some_and(|items| items.iter().all(|i| i.is_i64() || i.is_u64())),
        Kind::TextList => value
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_string)),
        Kind::Object(_) => false,
    };
    if ok { Ok(()) } else { Err(()) }
}

fn member(kind: Kind, name: &str) -> bool {
    kind.members().iter().any(|m| m.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> Forms {
        Forms {
            argument_binding: ArgumentBinding::StrictStj,
            ..Forms::default()
        }
    }

    fn send_order(qty: Value, limit: Value) -> Vec<Value> {
        vec![json!({
            "IdempotencyKey": "k", "ReplacesOrder": null, "BrokerAccountId": "LIVE-1",
            "ExecPlanId": 70001, "QtyMultiplier": qty, "LegGroupId": 1,
            "LegGroupOrder": {"OrderType": "Limit", "TimeInForce": "Day", "LimitPrice": limit,
                              "StopPrice": null, "LegNames": ["ShortPut"]}
        })]
    }

    #[test]
    fn lenient_binding_takes_anything() {
        let forms = Forms::default();
        assert!(bind(&forms, "SendOrder", send_order(json!("1"), json!("2.35"))).is_ok());
        assert!(bind(&forms, "ListAgents", vec![json!({}), json!(1)]).is_ok());
    }

    #[test]
    fn strict_binding_refuses_text_for_numbers_and_numbers_for_text() {
        let forms = strict();
        assert!(bind(&forms, "SendOrder", send_order(json!(1), json!(2.35))).is_ok());
        let text = bind(&forms, "SendOrder", send_order(json!("1"), json!(2.35))).unwrap_err();
        assert!(text.contains("Error binding arguments"), "{text}");
        assert!(bind(&forms, "SendOrder", send_order(json!(1), json!("2.35"))).is_err());
        assert!(bind(&forms, "GetAccount", vec![json!({"BrokerAccountId": 5})]).is_err());
        assert!(bind(&forms, "GetPosition", vec![json!({"PositionId": "5"})]).is_err());
        assert!(
            bind(&forms, "ListAgents", vec![]).is_err(),
            "one argument expected"
        );
    }

    #[test]
    fn enums_flags_nulls_and_unknown_fields() {
        let numeric = Forms {
            enum_encoding: EnumEncoding::Numeric,
            ..Forms::default()
        };
        assert!(bind(&numeric, "SendOrder", send_order(json!(1), json!(2))).is_err());
        let flags = Forms {
            flags_encoding: FlagsEncoding::NumericOnly,
            ..Forms::default()
        };
        let snapshot = |v: Value| vec![json!({"PositionId": 1, "IncludeLegs": v})];
        assert!(bind(&flags, "GetPositionSnapshot", snapshot(json!("All"))).is_err());
        assert!(bind(&flags, "GetPositionSnapshot", snapshot(json!(7))).is_ok());
        let nulls = Forms {
            null_vs_absent: NullVsAbsent::NullIntoValueType,
            ..Forms::default()
        };
        let fills = |price: Value| vec![json!({"IdempotencyKey": "k", "FillPrice": price})];
        assert!(bind(&nulls, "ApplyPaperFills", fills(Value::Null)).is_err());
        assert!(bind(&nulls, "ApplyPaperFills", fills(json!(1.5))).is_ok());
        let rejected = Forms {
            extra_fields: ExtraFields::OutboundRejected,
            ..Forms::default()
        };
        assert!(bind(&rejected, "ListPositions", vec![json!({"OpenOnly": true})]).is_err());
        assert!(
            bind(
                &rejected,
                "ListPositions",
                vec![json!({"LiveStrategyId": 1})]
            )
            .is_ok()
        );
    }

    #[test]
    fn argument_names_and_arity() {
        let zero = Forms {
            argument_arity: ArgumentArity::ZeroArgs,
            ..Forms::default()
        };
        assert!(bind(&zero, "ListAgents", vec![json!({})]).is_err());
        assert_eq!(bind(&zero, "ListAgents", vec![]), Ok(json!({})));
        let camel = Forms {
            property_casing: PropertyCasing::CamelStrict,
            ..Forms::default()
        };
        assert_eq!(
            bind(
                &camel,
                "GetPosition",
                vec![json!({"PositionId": 1, "positionId": 2})]
            ),
            Ok(json!({"positionId": 2}))
        );
        let other = Forms {
            history_args: HistoryArgs::OtherName,
            page_args: PageArgs::OtherNames,
            ..Forms::default()
        };
        assert_eq!(
            bind(
                &other,
                "GetEventsSince",
                vec![json!({"AfterEventSeqId": 9, "Limit": 5})]
            ),
            Ok(json!({"AfterEventSeqId": 0}))
        );
        let tokens = Forms {
            page_continuation: PageContinuation::NonStringToken,
            ..Forms::default()
        };
        assert_eq!(
            bind(
                &tokens,
                "ListAccounts",
                vec![json!({"ContinuationToken": {"Offset": 4}})]
            ),
            Ok(json!({"ContinuationToken": "p:4"}))
        );
    }
}
