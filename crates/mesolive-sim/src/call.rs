//! Reading hub call arguments leniently (any casing, numbers as JSON numbers or text) and
//! answering with the envelope shapes of [`mesolive_api::wire`]. Arguments come from outside the
//! process: a bad one is a failed envelope naming the field, never a panic.

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;

use mesolive_api::models::StatusCode;
use mesolive_api::wire::{args, envelope, paging};

/// Default and maximum page sizes of every paged list (API §3.1.3; values INFERRED).
pub(crate) const DEFAULT_LIMIT: usize = 100;
/// Largest `Limit` honoured; larger requests are capped, not rejected.
pub(crate) const MAX_LIMIT: usize = 1000;

/// A call that did not succeed: the envelope's status and message, plus the offending field for
/// validation errors.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    pub status: StatusCode,
    pub message: String,
    pub field: Option<String>,
}

impl Failure {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
            field: None,
        }
    }

    /// A missing or malformed argument.
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Failure {
        Failure {
            status: StatusCode::ValidationError,
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::NotFound, message)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::BadRequest, message)
    }

    /// The failed envelope sent to the caller.
    pub(crate) fn envelope(&self) -> Value {
        match &self.field {
            Some(field) => envelope::invalid(field, &self.message),
            None => envelope::failure(&self.status, &self.message, Value::Null),
        }
    }
}

/// The outcome of a hub method, before it becomes an envelope.
pub(crate) type CallResult = Result<Value, Failure>;

/// Turns an outcome into the envelope the caller receives.
pub(crate) fn into_envelope(result: CallResult) -> Value {
    match result {
        Ok(data) => envelope::success(data),
        Err(failure) => failure.envelope(),
    }
}

/// Serializes a payload model; our own models always serialize.
pub(crate) fn to_value(payload: &impl Serialize) -> Value {
    serde_json::to_value(payload).unwrap_or(Value::Null)
}

fn present<'a>(args: &'a Value, name: &str) -> Option<&'a Value> {
    args::read(args, name).filter(|v| !v.is_null())
}

fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An optional integer argument.
pub(crate) fn opt_i64(args: &Value, name: &str) -> Result<Option<i64>, Failure> {
    present(args, name)
        .map(|v| {
            as_i64(v).ok_or_else(|| Failure::invalid(name, format!("{name} must be an integer")))
        })
        .transpose()
}

/// A required integer argument.
pub(crate) fn req_i64(args: &Value, name: &str) -> Result<i64, Failure> {
    opt_i64(args, name)?.ok_or_else(|| Failure::invalid(name, format!("{name} is required")))
}

/// An optional text argument; empty text counts as absent.
pub(crate) fn opt_str(args: &Value, name: &str) -> Result<Option<String>, Failure> {
    match present(args, name) {
        None => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(Failure::invalid(name, format!("{name} must be text"))),
    }
}

/// A required, non-empty text argument.
pub(crate) fn req_str(args: &Value, name: &str) -> Result<String, Failure> {
    opt_str(args, name)?.ok_or_else(|| Failure::invalid(name, format!("{name} is required")))
}

/// An optional boolean argument (also `"true"`/`"false"`).
pub(crate) fn opt_bool(args: &Value, name: &str) -> Result<Option<bool>, Failure> {
    match present(args, name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(Failure::invalid(name, format!("{name} must be a boolean"))),
    }
}

/// An optional decimal argument (JSON number or text).
pub(crate) fn opt_decimal(args: &Value, name: &str) -> Result<Option<Decimal>, Failure> {
    let invalid = || Failure::invalid(name, format!("{name} must be a decimal number"));
    match present(args, name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.to_string().parse().map(Some).map_err(|_| invalid()),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| invalid()),
        Some(_) => Err(invalid()),
    }
}

/// An optional list of integers; `None` when absent or null.
pub(crate) fn opt_i64_list(args: &Value, name: &str) -> Result<Option<Vec<i64>>, Failure> {
    let Some(value) = present(args, name) else {
        return Ok(None);
    };
    let invalid = || Failure::invalid(name, format!("{name} must be a list of integers"));
    value
        .as_array()
        .ok_or_else(invalid)?
        .iter()
        .map(|v| as_i64(v).ok_or_else(invalid))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// An optional list of texts.
pub(crate) fn opt_str_list(args: &Value, name: &str) -> Result<Option<Vec<String>>, Failure> {
    let Some(value) = present(args, name) else {
        return Ok(None);
    };
    let invalid = || Failure::invalid(name, format!("{name} must be a list of texts"));
    value
        .as_array()
        .ok_or_else(invalid)?
        .iter()
        .map(|v| v.as_str().map(str::to_owned).ok_or_else(invalid))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The page size a call asked for: default 100, at least 1, capped at 1000.
pub(crate) fn limit(args: &Value) -> Result<usize, Failure> {
    Ok(match opt_i64(args, "Limit")? {
        None => DEFAULT_LIMIT,
        Some(n) if n < 1 => return Err(Failure::invalid("Limit", "Limit must be at least 1")),
        Some(n) => usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
    })
}

/// The offset a list continuation token points at. Tokens are `p:<offset>`; clients treat them
/// as opaque.
fn page_offset(args: &Value) -> Result<usize, Failure> {
    let Some(token) = opt_str(args, "ContinuationToken")? else {
        return Ok(0);
    };
    token
        .strip_prefix("p:")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            Failure::invalid("ContinuationToken", "unknown or expired ContinuationToken")
        })
}

/// One page of `items` (already filtered and in a stable order) per the call's `Limit` and
/// `ContinuationToken`, in the [`paging::page`] shape.
pub(crate) fn page<T: Serialize>(args: &Value, items: impl IntoIterator<Item = T>) -> CallResult {
    let limit = limit(args)?;
    let offset = page_offset(args)?;
    let mut rest = items.into_iter().skip(offset);
    let chunk: Vec<Value> = rest
        .by_ref()
        .take(limit)
        .map(|item| to_value(&item))
        .collect();
    let more = rest.next().is_some();
    let token = more.then(|| format!("p:{}", offset + chunk.len()));
    Ok(paging::page(chunk, token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_any_casing_and_numbers_as_text() {
        let args = json!({"positionid": "42", "LIMIT": 5, "flag": "TRUE", "Qty": "1.5"});
        assert_eq!(req_i64(&args, "PositionId"), Ok(42));
        assert_eq!(limit(&args), Ok(5));
        assert_eq!(opt_bool(&args, "Flag"), Ok(Some(true)));
        assert_eq!(opt_decimal(&args, "qty"), Ok(Some(Decimal::new(15, 1))));
    }

    #[test]
    fn bad_input_is_a_validation_failure() {
        let args = json!({"PositionId": {"x": 1}, "Limit": 0});
        let err = req_i64(&args, "PositionId").unwrap_err();
        assert_eq!(err.status, StatusCode::ValidationError);
        assert_eq!(err.field.as_deref(), Some("PositionId"));
        assert!(limit(&args).is_err());
        assert!(req_str(&json!(null), "IdempotencyKey").is_err());
        assert!(req_str(&json!({"IdempotencyKey": "  "}), "IdempotencyKey").is_err());
    }

    #[test]
    fn pages_follow_tokens_to_the_end() {
        let mut seen = Vec::new();
        let mut args = json!({"Limit": 3});
        loop {
            let page = page(&args, 0..8).unwrap();
            seen.extend(
                page["Items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_i64().unwrap()),
            );
            match page["ContinuationToken"].as_str() {
                Some(token) => args = json!({"Limit": 3, "ContinuationToken": token}),
                None => break,
            }
        }
        assert_eq!(seen, (0..8).collect::<Vec<_>>());
        assert!(page(&json!({"ContinuationToken": "zz"}), 0..1).is_err());
    }
}
