//! `mesolive-supervisor notify test`: one test notification straight to every configured sink
//! (no outbox, so it works beside a running daemon), and what each answered.

use serde::Serialize;

use super::notice;
use super::sink::{self, Outgoing, Sink, Verdict};
use crate::config::{ConfigError, Settings};
use crate::exit;
use crate::store::Timestamp;
use crate::table::columns;

/// Why the test could not be sent at all.
#[derive(Debug, thiserror::Error)]
pub enum NotifyTestError {
    /// No sink, or one that cannot be built.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The TLS trust or the HTTP client cannot be set up.
    #[error("notification HTTP client: {0}")]
    Client(String),
}

impl NotifyTestError {
    /// The process exit status.
    pub fn exit_code(&self) -> u8 {
        match self {
            NotifyTestError::Config(_) => exit::CONFIG,
            NotifyTestError::Client(_) => exit::FAILURE,
        }
    }
}

/// What one sink answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestAnswer {
    /// The sink's label (kind and host).
    pub sink: String,
    /// Whether it accepted the notification.
    pub delivered: bool,
    /// What it answered, in one line.
    pub answer: String,
}

/// Sends the test notification to every sink at once; one answer per sink, in configuration
/// order.
pub async fn send_test(settings: &Settings) -> Result<Vec<TestAnswer>, NotifyTestError> {
    let sinks = Sink::all(&settings.notify)?;
    if sinks.is_empty() {
        return Err(ConfigError::Invalid {
            key: "notify.sinks".into(),
            value: "[]".into(),
            expected: "at least one [[notify.sinks]] table (in the --config file)".into(),
        }
        .into());
    }
    signalr::tls::install_default_provider();
    let tls = signalr::tls::client_config(&settings.hubs.extra_ca_file)
        .map_err(|err| NotifyTestError::Client(err.to_string()))?;
    let client = sink::client(&tls, settings.notify.timeout)
        .map_err(|err| NotifyTestError::Client(err.without_url().to_string()))?;
    let notice = notice::test(env!("CARGO_PKG_VERSION"));
    let at = Timestamp::now();
    let id = format!("test-{}", at.unix_millis());
    let outgoing = Outgoing {
        id: &id,
        kind: notice.kind.as_str(),
        severity: notice.severity,
        at,
        text: &notice.text,
        data: &notice.data,
    };
    let verdicts =
        futures_util::future::join_all(sinks.iter().map(|sink| sink.deliver(&client, &outgoing)))
            .await;
    Ok(sinks
        .iter()
        .zip(verdicts)
        .map(|(sink, verdict)| {
            let (delivered, answer) = match verdict {
                Verdict::Delivered { status } => (true, format!("delivered: HTTP {status}")),
                Verdict::Refused { reason, .. } => (false, format!("refused: {reason}")),
                Verdict::Retry { reason, .. } => (false, format!("not delivered: {reason}")),
            };
            TestAnswer {
                sink: sink.label().to_owned(),
                delivered,
                answer,
            }
        })
        .collect())
}

/// The answers as a table.
pub fn render(answers: &[TestAnswer]) -> String {
    columns(
        &["SINK", "ANSWER"],
        answers
            .iter()
            .map(|a| vec![a.sink.clone(), a.answer.clone()])
            .collect(),
    )
}
