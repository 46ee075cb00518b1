//! A client of the simulator's admin API, for the programs that drive a simulator they started
//! (the demo's chaos, the benchmarks). Answers are read leniently and every failure is an
//! [`AdminError`]: the simulator is another party, its answers are never trusted to parse.

use std::time::Duration;

use serde_json::{Value, json};

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request could not be sent or its answer read.
    #[error("admin {path}: {source}")]
    Http {
        /// The route.
        path: String,
        /// The transport error.
        source: reqwest::Error,
    },
    /// The simulator refused the request.
    #[error("admin {path}: HTTP {status}: {body}")]
    Refused {
        /// The route.
        path: String,
        /// The status.
        status: u16,
        /// The answer, for the operator.
        body: String,
    },
    /// The answer lacks a field the caller needs.
    #[error("admin {path}: the answer has no '{field}'")]
    Missing {
        /// The route.
        path: String,
        /// The field.
        field: &'static str,
    },
}

/// The admin API of one simulator.
#[derive(Debug, Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
}

impl AdminClient {
    /// A client of the admin API at `base` (`RunningSim::admin_url`). Needs the process-wide
    /// rustls provider (`signalr::tls::install_default_provider`), like every reqwest client here.
    pub fn new(base: impl Into<String>) -> Self {
        AdminClient {
            http: reqwest::Client::new(),
            base: base.into(),
        }
    }

    /// `POST path` with a JSON body; the JSON answer (`null` if it has none).
    pub async fn post(&self, path: &str, body: Value) -> Result<Value, AdminError> {
        let request = self.http.post(format!("{}{path}", self.base)).json(&body);
        self.answer(path, request).await
    }

    /// `GET path`; the JSON answer.
    pub async fn get(&self, path: &str) -> Result<Value, AdminError> {
        let request = self.http.get(format!("{}{path}", self.base));
        self.answer(path, request).await
    }

    /// `DELETE path`; the JSON answer.
    pub async fn delete(&self, path: &str) -> Result<Value, AdminError> {
        let request = self.http.delete(format!("{}{path}", self.base));
        self.answer(path, request).await
    }

    async fn answer(
        &self,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, AdminError> {
        let http = |source| AdminError::Http {
            path: path.to_owned(),
            source,
        };
        let response = request.send().await.map_err(http)?;
        let status = response.status();
        let text = response.text().await.map_err(http)?;
        if !status.is_success() {
            return Err(AdminError::Refused {
                path: path.to_owned(),
                status: status.as_u16(),
                body: text,
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Emits `count` events with real effects; returns the latest EventSeqId afterwards.
    pub async fn emit(&self, count: u64) -> Result<i64, AdminError> {
        let answer = self.post("/events/emit", json!({ "count": count })).await?;
        field_i64(&answer, "/events/emit", "latest_event_seq_id")
    }

    /// The newest EventSeqId of the simulator's log.
    pub async fn latest_seq(&self) -> Result<i64, AdminError> {
        let stats = self.get("/stats").await?;
        field_i64(&stats, "/stats", "latest_event_seq_id")
    }

    /// Drops every connection and refuses new ones for `duration`.
    pub async fn outage(&self, duration: Duration) -> Result<(), AdminError> {
        let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        self.post("/outage", json!({ "ms": ms })).await.map(drop)
    }

    /// Faults injected so far, all kinds together (0 if the answer has no counts).
    pub async fn faults_injected(&self) -> Result<u64, AdminError> {
        let stats = self.get("/stats").await?;
        Ok(stats["faults_injected"]
            .as_object()
            .map(|kinds| kinds.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0))
    }
}

fn field_i64(answer: &Value, path: &str, field: &'static str) -> Result<i64, AdminError> {
    answer[field].as_i64().ok_or_else(|| AdminError::Missing {
        path: path.to_owned(),
        field,
    })
}
