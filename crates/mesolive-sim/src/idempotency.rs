//! Idempotency records exactly as API §6.1 describes them: one record per key, Processing until
//! the call's response is settled, then Completed or Failed. A key seen again with the same
//! request gets `DuplicateRequest` and the original response's data; with a different request,
//! or while still Processing, it gets `Conflict`.

use std::collections::HashMap;

use serde_json::Value;

use mesolive_api::models::{
    IdempotencyRecord, IdempotencyRecordStatus, MesoLiveApiError, PreparationStatus, StatusCode,
};
use mesolive_api::wire::envelope::Envelope;

/// The server's record of one key.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub key: String,
    pub operation: String,
    pub status: IdempotencyRecordStatus,
    pub created_at: String,
    pub updated_at: String,
    pub request_hash: String,
    pub live_exec_plan_id: Option<i64>,
    pub live_order_ids: Option<Vec<i64>>,
    pub job_id: Option<String>,
    pub job_status: Option<PreparationStatus>,
    pub job_result: Option<Value>,
    pub job_error_message: Option<String>,
    /// The response the original call got, once captured.
    pub response: Option<Envelope>,
}

impl Record {
    /// The FACT model `IdempotencyRecord`.
    pub(crate) fn to_model(&self) -> IdempotencyRecord {
        let response = self.response.as_ref();
        let failed = response.filter(|r| r.status != StatusCode::Success);
        IdempotencyRecord {
            idempotency_key: self.key.clone(),
            operation: Some(self.operation.clone()),
            status: self.status.clone(),
            created_at: Some(self.created_at.clone()),
            updated_at: Some(self.updated_at.clone()),
            request_hash: Some(self.request_hash.clone()),
            live_exec_plan_id: self.live_exec_plan_id,
            live_order_ids: self.live_order_ids.clone(),
            error_message: failed.and_then(|r| r.message.clone()),
            job_id: self.job_id.clone(),
            job_status: self.job_status.clone(),
            job_result: self.job_result.clone(),
            job_error_message: self.job_error_message.clone(),
            response_status: response.map(|r| r.status.clone()),
            response_message: response.and_then(|r| r.message.clone()),
            response_error: response
                .and_then(|r| r.error.clone())
                .filter(non_empty_error),
            response_data: response.map(|r| r.data.to_string()),
        }
    }
}

fn non_empty_error(error: &MesoLiveApiError) -> bool {
    *error != MesoLiveApiError::default()
}

/// What a keyed call may do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Admission {
    /// First use of the key: a Processing record now exists; apply the effect.
    New,
    /// Same key, same request, already settled: answer `DuplicateRequest` with this data.
    Duplicate {
        original: Value,
        outcome: StatusCode,
    },
    /// Still processing, or reused for a different request: answer `Conflict`.
    Conflict(String),
}

/// Every record, by key (per user: the simulator has one user).
#[derive(Debug, Default)]
pub(crate) struct Idempotency {
    records: HashMap<String, Record>,
}

impl Idempotency {
    /// Checks a keyed call and, for a new key, opens its Processing record.
    pub(crate) fn admit(
        &mut self,
        key: &str,
        operation: &str,
        request_hash: &str,
        now: &str,
    ) -> Admission {
        if let Some(record) = self.records.get(key) {
            if record.request_hash != request_hash {
                return Admission::Conflict(format!(
                    "IdempotencyKey '{key}' was already used for a different {} request",
                    record.operation
                ));
            }
            return match (&record.status, &record.response) {
                (IdempotencyRecordStatus::Processing, _) | (_, None) => {
                    Admission::Conflict(format!("IdempotencyKey '{key}' is still being processed"))
                }
                (_, Some(response)) => Admission::Duplicate {
                    original: response.data.clone(),
                    outcome: response.status.clone(),
                },
            };
        }
        self.records.insert(
            key.to_owned(),
            Record {
                key: key.to_owned(),
                operation: operation.to_owned(),
                status: IdempotencyRecordStatus::Processing,
                created_at: now.to_owned(),
                updated_at: now.to_owned(),
                request_hash: request_hash.to_owned(),
                live_exec_plan_id: None,
                live_order_ids: None,
                job_id: None,
                job_status: None,
                job_result: None,
                job_error_message: None,
                response: None,
            },
        );
        Admission::New
    }

    /// Keeps the response of the call that opened the record (status stays Processing).
    pub(crate) fn capture(&mut self, key: &str, envelope: &Value, now: &str) {
        if let Some(record) = self.records.get_mut(key) {
            record.response = Some(Envelope::from_result(envelope.clone()));
            record.updated_at = now.to_owned();
        }
    }

    /// Ends Processing: Completed when the captured response succeeded, else Failed.
    pub(crate) fn settle(&mut self, key: &str, now: &str) {
        if let Some(record) = self.records.get_mut(key) {
            let succeeded = record
                .response
                .as_ref()
                .is_some_and(|r| r.status == StatusCode::Success);
            record.status = if succeeded {
                IdempotencyRecordStatus::Completed
            } else {
                IdempotencyRecordStatus::Failed
            };
            record.updated_at = now.to_owned();
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Record> {
        self.records.get(key)
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Record> {
        self.records.get_mut(key)
    }
}

/// A stable hash of a request: the operation and its arguments minus `IdempotencyKey`, with
/// field names lowercased, object keys sorted and null fields dropped, so casing or an explicit
/// `null` does not make the same request look different.
pub(crate) fn request_hash(operation: &str, args: &Value) -> String {
    let mut canonical = String::from(operation);
    canonical.push('|');
    write_canonical(args, true, &mut canonical);
    format!("{:016x}", fnv1a(canonical.as_bytes()))
}

fn write_canonical(value: &Value, top: bool, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut fields: Vec<(String, &Value)> = map
                .iter()
                .filter(|(k, v)| {
                    let is_key = top && k.eq_ignore_ascii_case("IdempotencyKey");
                    !v.is_null() && !is_key
                })
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            out.push('{');
            for (name, field) in fields {
                out.push_str(&name);
                out.push(':');
                write_canonical(field, false, out);
                out.push(',');
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for item in items {
                write_canonical(item, false, out);
                out.push(',');
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// FNV-1a: a tiny stable hash (stable across builds, unlike `DefaultHasher`).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesolive_api::wire::envelope;
    use serde_json::json;

    #[test]
    fn hash_ignores_key_casing_and_nulls() {
        let a = request_hash(
            "SendOrder",
            &json!({"IdempotencyKey": "k1", "ExecPlanId": 1, "X": null}),
        );
        let b = request_hash(
            "SendOrder",
            &json!({"execPlanId": 1, "idempotencykey": "k2"}),
        );
        assert_eq!(a, b);
        assert_ne!(a, request_hash("SendOrder", &json!({"ExecPlanId": 2})));
        assert_ne!(a, request_hash("CancelOrder", &json!({"ExecPlanId": 1})));
    }

    #[test]
    fn lifecycle_new_conflict_duplicate() {
        let mut idem = Idempotency::default();
        assert_eq!(idem.admit("k", "SendOrder", "h", "t0"), Admission::New);
        assert!(matches!(
            idem.admit("k", "SendOrder", "h", "t1"),
            Admission::Conflict(_)
        ));
        idem.capture("k", &envelope::success(json!({"LiveOrderIds": [7]})), "t1");
        assert!(matches!(
            idem.admit("k", "SendOrder", "h", "t1"),
            Admission::Conflict(_)
        ));
        idem.settle("k", "t2");
        assert_eq!(
            idem.get("k").unwrap().status,
            IdempotencyRecordStatus::Completed
        );
        assert_eq!(
            idem.admit("k", "SendOrder", "h", "t3"),
            Admission::Duplicate {
                original: json!({"LiveOrderIds": [7]}),
                outcome: StatusCode::Success
            }
        );
        assert!(matches!(
            idem.admit("k", "SendOrder", "other", "t3"),
            Admission::Conflict(_)
        ));
        let model = idem.get("k").unwrap().to_model();
        assert_eq!(model.response_status, Some(StatusCode::Success));
        assert_eq!(
            model.response_data.as_deref(),
            Some("{\"LiveOrderIds\":[7]}")
        );
    }

    #[test]
    fn failed_response_settles_failed() {
        let mut idem = Idempotency::default();
        idem.admit("k", "ApplyPaperFills", "h", "t0");
        idem.capture(
            "k",
            &envelope::failure(&StatusCode::BadRequest, "no", Value::Null),
            "t0",
        );
        idem.settle("k", "t1");
        let model = idem.get("k").unwrap().to_model();
        assert_eq!(model.status, IdempotencyRecordStatus::Failed);
        assert_eq!(model.error_message.as_deref(), Some("no"));
    }
}
