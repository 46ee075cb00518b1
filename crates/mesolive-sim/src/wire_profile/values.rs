//! The value-level forms, applied to every JSON value the simulator sends: property casing,
//! enum members, decimals, numbers as text, times, nulls, extra fields, order states and greeks.
//! The simulator's domain code writes PascalCase with names, text decimals and millisecond UTC
//! times; this walk turns that into the profile's forms, knowing field types by name
//! ([`super::schema`]).

use chrono::{DateTime, SecondsFormat};
use serde_json::{Map, Number, Value};

use super::dimensions::{
    DecimalInbound, EnumEncoding, ExtraFields, Forms, IntegerAsString, LiveGreeksShape,
    NullVsAbsent, OrderStateMembers, PropertyCasing, TimestampFormat,
};
use super::schema;

/// The field every object gets under `extra_fields=inbound_extra` (no model has it).
const EXTRA_FIELD: &str = "ServerRevision";

/// System.Text.Json's `JsonNamingPolicy.CamelCase`: the leading run of capitals is lowered,
/// except the last one when a lowercase letter follows it (`PnL` → `pnL`, `IBKR` → `ibkr`,
/// `URLValue` → `urlValue`).
pub(crate) fn camel_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    if !chars.first().is_some_and(|c| c.is_uppercase()) {
        return name.to_owned();
    }
    let mut out = chars.clone();
    for i in 0..chars.len() {
        if i == 1 && !chars[i].is_uppercase() {
            break;
        }
        let next_is_lower = chars.get(i + 1).is_some_and(|c| !c.is_uppercase());
        if i > 0 && next_is_lower {
            break;
        }
        out[i] = chars[i].to_lowercase().next().unwrap_or(chars[i]);
    }
    out.into_iter().collect()
}

/// A property name as the profile writes it.
pub(crate) fn property(forms: &Forms, name: &str) -> String {
    match forms.property_casing {
        PropertyCasing::Pascal => name.to_owned(),
        PropertyCasing::Camel | PropertyCasing::CamelStrict => camel_case(name),
    }
}

/// A `Decimal` as the profile writes it (from the domain's text or number).
pub(crate) fn decimal(forms: &Forms, value: Value) -> Value {
    match (forms.decimal_inbound, value) {
        (DecimalInbound::Number, Value::String(text)) => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map_or(Value::String(text), Value::Number),
        (DecimalInbound::String, Value::Number(n)) => Value::String(n.to_string()),
        (_, other) => other,
    }
}

/// An enum member as the profile writes it.
pub(crate) fn enum_member(forms: &Forms, field: &str, member: &str) -> Value {
    match forms.enum_encoding {
        EnumEncoding::NamePascal => Value::String(member.to_owned()),
        EnumEncoding::NameCamel => Value::String(camel_case(member)),
        EnumEncoding::Numeric => Value::from(
            schema::enum_number(field, member).unwrap_or_else(|| unlisted_number(member)),
        ),
    }
}

/// A stable integer for a member no list has (every member the simulator writes is listed;
/// this keeps a numeric server numeric even if one is missed).
fn unlisted_number(member: &str) -> i64 {
    1000 + member.bytes().map(i64::from).sum::<i64>()
}

/// A UTC time (RFC 3339, as the domain writes it) in the profile's format.
fn timestamp(forms: &Forms, text: String) -> Value {
    let Ok(time) = DateTime::parse_from_rfc3339(&text) else {
        return Value::String(text);
    };
    let utc = time.to_utc();
    let formatted = match forms.timestamp_format {
        TimestampFormat::UtcZMillis => utc.to_rfc3339_opts(SecondsFormat::Millis, true),
        TimestampFormat::UtcZTicks => format!(
            "{}.{:07}Z",
            utc.format("%Y-%m-%dT%H:%M:%S"),
            utc.timestamp_subsec_nanos() / 100
        ),
        TimestampFormat::Offset => utc.to_rfc3339_opts(SecondsFormat::Millis, false),
        TimestampFormat::Unspecified => utc.format("%Y-%m-%dT%H:%M:%S%.3f").to_string(),
    };
    Value::String(formatted)
}

/// An order state under `order_state_members`.
fn order_state(forms: &Forms, member: &str) -> String {
    let renamed = match (forms.order_state_members, member) {
        (OrderStateMembers::CanceledSpelling, "Cancelled") => "Canceled",
        (OrderStateMembers::OtherTerminalNames, "Filled") => "Done",
        (OrderStateMembers::OtherTerminalNames, "Cancelled") => "ApiCancelled",
        (_, other) => other,
    };
    renamed.to_owned()
}

/// A flat greeks block (`{SnapshotTime, Delta, Gamma, Theta, Vega}`) in the profile's shape.
fn greeks(forms: &Forms, block: Value) -> Value {
    let Value::Object(flat) = block else {
        return block;
    };
    let time = flat.get("SnapshotTime").cloned().unwrap_or(Value::Null);
    let measures = flat.into_iter().filter(|(name, _)| name != "SnapshotTime");
    let mut shaped = Map::new();
    shaped.insert("SnapshotTime".into(), time);
    match forms.live_greeks_shape {
        LiveGreeksShape::Flat => shaped.extend(measures),
        LiveGreeksShape::PerBasis => {
            let set: Map<String, Value> = measures.collect();
            for basis in ["Mark", "Bid", "Ask"] {
                shaped.insert(basis.into(), Value::Object(set.clone()));
            }
        }
        LiveGreeksShape::Prefixed => {
            for (name, value) in measures {
                shaped.insert(format!("Mark{name}"), value);
                shaped.insert(format!("Mark{name}AgeMs"), Value::from(0));
            }
        }
    }
    Value::Object(shaped)
}

/// Every value-level form applied to `value` (a payload in the domain's own form).
pub(crate) fn walk(forms: &Forms, value: Value) -> Value {
    let shaped = typed(forms, None, value);
    if forms.integer_as_string == IntegerAsString::String {
        numbers_as_text(shaped)
    } else {
        shaped
    }
}

/// `value`, held by the field `field` (PascalCase; `None` at the top or in a list's item).
fn typed(forms: &Forms, field: Option<&str>, value: Value) -> Value {
    let name = field.unwrap_or("");
    match value {
        Value::Object(object) if schema::is_dictionary(name) => {
            let decimals = schema::is_decimal_dictionary(name);
            let entries = object.into_iter().map(|(key, entry)| {
                let entry = if decimals {
                    decimal(forms, entry)
                } else {
                    typed(forms, None, entry)
                };
                (key, entry)
            });
            Value::Object(entries.collect())
        }
        Value::Object(object) if name.ends_with("Greeks") => {
            object_fields(forms, greeks(forms, Value::Object(object)))
        }
        Value::Object(object) => object_fields(forms, Value::Object(object)),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| typed(forms, field, item))
                .collect(),
        ),
        Value::String(text) if schema::is_decimal(name) => decimal(forms, Value::String(text)),
        Value::Number(n) if schema::is_decimal(name) => decimal(forms, Value::Number(n)),
        Value::String(member) if name == "State" => {
            let member = order_state(forms, &member);
            enum_member(forms, name, &member)
        }
        Value::String(member) if schema::is_enum(name) => enum_member(forms, name, &member),
        Value::String(text) if schema::is_timestamp(name) => timestamp(forms, text),
        other => other,
    }
}

/// A model object: each field typed by its name, then renamed, nulls dropped, an extra added.
fn object_fields(forms: &Forms, object: Value) -> Value {
    let Value::Object(fields) = object else {
        return object;
    };
    let mut out = Map::new();
    for (name, value) in fields {
        let value = typed(forms, Some(&name), value);
        if value.is_null() && forms.null_vs_absent == NullVsAbsent::OmittedNull {
            continue;
        }
        out.insert(property(forms, &name), value);
    }
    if forms.extra_fields == ExtraFields::InboundExtra {
        out.insert(property(forms, EXTRA_FIELD), Value::from(7));
    }
    Value::Object(out)
}

/// Every number as text (`JsonNumberHandling.WriteAsString`).
fn numbers_as_text(value: Value) -> Value {
    match value {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_text).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, numbers_as_text(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn camel_case_follows_system_text_json() {
        for (pascal, camel) in [
            ("EventSeqId", "eventSeqId"),
            ("PnL", "pnL"),
            ("LegPnLs", "legPnLs"),
            ("IBKR", "ibkr"),
            ("URLValue", "urlValue"),
            ("ID", "id"),
            ("already", "already"),
            ("$type", "$type"),
            ("RealizedPnLChanged", "realizedPnLChanged"),
        ] {
            assert_eq!(camel_case(pascal), camel, "{pascal}");
        }
    }

    #[test]
    fn default_forms_change_nothing() {
        let payload = json!({
            "State": "Filled", "LimitPrice": "2.35", "EventTime": "2024-05-01T14:30:00.123Z",
            "LegGroups": {"1": ["ShortPut"]}, "Vars": {"Width": "5"}, "Rejection": null,
            "PositionGreeks": {"SnapshotTime": "2024-05-01T14:30:00.123Z", "Delta": 0.1}
        });
        assert_eq!(walk(&Forms::default(), payload.clone()), payload);
    }

    #[test]
    fn camel_numbers_and_names() {
        let forms = Forms {
            property_casing: PropertyCasing::Camel,
            enum_encoding: EnumEncoding::Numeric,
            decimal_inbound: DecimalInbound::Number,
            null_vs_absent: NullVsAbsent::OmittedNull,
            timestamp_format: TimestampFormat::UtcZTicks,
            ..Forms::default()
        };
        let payload = json!({
            "State": "Filled", "LimitPrice": "2.35", "EventTime": "2024-05-01T14:30:00.123Z",
            "LegGroups": {"1": ["ShortPut"]}, "Vars": {"Width": "5"}, "Rejection": null,
            "Legs": [{"LegId": 3, "Qty": "-1"}]
        });
        assert_eq!(
            walk(&forms, payload),
            json!({
                "state": 4, "limitPrice": 2.35, "eventTime": "2024-05-01T14:30:00.1230000Z",
                "legGroups": {"1": ["ShortPut"]}, "vars": {"Width": 5.0},
                "legs": [{"legId": 3, "qty": -1.0}]
            })
        );
    }

    #[test]
    fn numbers_as_text_extras_and_renamed_states() {
        let forms = Forms {
            integer_as_string: IntegerAsString::String,
            extra_fields: ExtraFields::InboundExtra,
            order_state_members: OrderStateMembers::OtherTerminalNames,
            live_greeks_shape: LiveGreeksShape::Prefixed,
            ..Forms::default()
        };
        let payload = json!({"OrderId": 9, "State": "Filled", "LegGroups": {"1": ["a"]},
                             "PositionGreeks": {"SnapshotTime": "t", "Delta": 0.5}});
        assert_eq!(
            walk(&forms, payload),
            json!({"OrderId": "9", "State": "Done", "LegGroups": {"1": ["a"]},
                   "PositionGreeks": {"SnapshotTime": "t", "MarkDelta": "0.5", "MarkDeltaAgeMs": "0", "ServerRevision": "7"},
                   "ServerRevision": "7"})
        );
    }
}
