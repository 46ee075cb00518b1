//! A sink: where notifications go and in which format — a generic JSON webhook signed with
//! HMAC-SHA256, Slack/Mattermost `{"text": …}`, Discord `{"content": …}`, or the Telegram Bot
//! API's `sendMessage`. Building a request's body and signature and reading an answer into a
//! [`Verdict`] are pure (unit-tested); [`Sink::deliver`] is the one HTTP call.
//!
//! A sink's URL may carry a secret (a Slack or Discord webhook token, the Telegram bot token in
//! its path), so neither the URL nor an error that quotes it is ever shown: logs, `state` and
//! `notify test` name a sink by its label (kind and host), and transport errors are stripped of
//! their URL.

use std::fmt;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde::Serialize;
use serde_json::{Value, json};
use url::Url;

use super::notice::Severity;
use crate::config::{ConfigError, NotifySettings, Secret, SinkKind, SinkSettings};
use crate::store::{Notification, SinkRegistration, Timestamp};

/// The header carrying a webhook body's HMAC-SHA256: `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Mesolive-Signature";

/// Longest text a Discord message takes (its limit is 2,000 characters).
const DISCORD_MAX: usize = 2_000;
/// Longest text a Telegram message takes (its limit is 4,096 characters).
const TELEGRAM_MAX: usize = 4_096;
/// How much of a refusal's body is quoted in the log and in `state`.
const EXCERPT_MAX: usize = 200;
/// Longest wait a `Retry-After` answer is obeyed for.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(600);

/// One configured sink, ready to post.
pub struct Sink {
    kind: SinkKind,
    /// Where to POST: may carry a secret, never shown.
    target: Url,
    label: String,
    key: String,
    /// The webhook's HMAC key.
    signing_key: Option<Secret>,
    chat_id: String,
    min_severity: Severity,
    kinds: Vec<String>,
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sink")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// A notification as a sink sends it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Outgoing<'a> {
    /// The stable id a receiver dedupes on.
    pub id: &'a str,
    /// What it is about.
    pub kind: &'a str,
    /// How urgent.
    pub severity: Severity,
    /// When its cause was committed.
    pub at: Timestamp,
    /// One line for a human.
    pub text: &'a str,
    /// The facts.
    pub data: &'a Value,
}

impl<'a> Outgoing<'a> {
    /// A queued notification under its id.
    pub fn queued(notification: &'a Notification, id: &'a str) -> Outgoing<'a> {
        Outgoing {
            id,
            kind: &notification.kind,
            severity: notification.severity,
            at: notification.created_at,
            text: &notification.text,
            data: &notification.data,
        }
    }
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted (2xx).
    Delivered {
        /// The HTTP status.
        status: u16,
    },
    /// Refused for good (a 4xx other than 408 and 429, or a redirect, which is not followed):
    /// retrying the same request cannot help.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The status and an excerpt of the answer.
        reason: String,
    },
    /// Not delivered now (5xx, 408, 429, a timeout, an unreachable sink): try again later.
    Retry {
        /// What went wrong, for the log.
        reason: String,
        /// The `errors_total{kind}` it counts under.
        error_kind: &'static str,
        /// How long the sink asked to wait (`Retry-After`), if it did.
        after: Option<Duration>,
    },
}

impl Sink {
    /// The configured sinks (`notify.sinks`), with their secrets read at load.
    pub fn all(settings: &NotifySettings) -> Result<Vec<Sink>, ConfigError> {
        settings
            .sinks
            .iter()
            .enumerate()
            .map(|(n, sink)| Sink::new(n, sink, settings.min_severity))
            .collect()
    }

    fn new(n: usize, settings: &SinkSettings, default: Severity) -> Result<Sink, ConfigError> {
        let endpoint = settings.endpoint(n)?;
        let host = match (endpoint.host_str(), endpoint.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => String::new(),
        };
        let label = format!("{} {host}", settings.kind.as_str());
        let key = identity(settings.kind, &endpoint, &settings.chat_id);
        let target = match settings.kind {
            SinkKind::Telegram => {
                let token = settings.secret.as_ref().map_or("", Secret::expose);
                let origin = endpoint.as_str().trim_end_matches('/');
                Url::parse(&format!("{origin}/bot{token}/sendMessage")).map_err(|_| {
                    ConfigError::KeyFile {
                        key: format!("notify.sinks[{n}].secret_file"),
                        path: settings.secret_file.clone(),
                        reason: "does not hold a usable Telegram bot token".into(),
                    }
                })?
            }
            _ => endpoint,
        };
        Ok(Sink {
            kind: settings.kind,
            target,
            label,
            key,
            signing_key: match settings.kind {
                SinkKind::Webhook => settings.secret.clone(),
                _ => None,
            },
            chat_id: settings.chat_id.clone(),
            min_severity: settings.min_severity_or(default),
            kinds: settings.kinds.clone(),
        })
    }

    /// Kind and host: how logs, `state` and `notify test` name the sink.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The sink's stable identity in the outbox.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The sink as the outbox registers it.
    pub fn registration(&self) -> SinkRegistration {
        SinkRegistration {
            key: self.key.clone(),
            label: self.label.clone(),
            min_severity: self.min_severity,
            kinds: self.kinds.clone(),
        }
    }

    /// The request body for `outgoing`, in this sink's format.
    pub fn body(&self, outgoing: &Outgoing<'_>) -> Vec<u8> {
        let value = match self.kind {
            SinkKind::Webhook => json!(outgoing),
            SinkKind::Slack => json!({ "text": chat_text(outgoing, usize::MAX) }),
            SinkKind::Discord => json!({ "content": chat_text(outgoing, DISCORD_MAX) }),
            SinkKind::Telegram => json!({
                "chat_id": self.chat_id,
                "text": chat_text(outgoing, TELEGRAM_MAX),
                "disable_web_page_preview": true,
            }),
        };
        value.to_string().into_bytes()
    }

    /// `sha256=<hex>` of `body` under the webhook's secret, if it has one.
    pub fn signature(&self, body: &[u8]) -> Option<String> {
        self.signing_key.as_ref().map(|secret| sign(secret, body))
    }

    /// Posts `outgoing` once (the client's timeout applies) and reads the answer.
    pub async fn deliver(&self, client: &reqwest::Client, outgoing: &Outgoing<'_>) -> Verdict {
        let body = self.body(outgoing);
        let mut request = client
            .post(self.target.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(signature) = self.signature(&body) {
            request = request.header(SIGNATURE_HEADER, signature);
        }
        let mut response = match request.body(body).send().await {
            Ok(response) => response,
            Err(err) => return transport_failure(err),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // The first chunk is enough to quote; the rest is not waited for.
        let excerpt = match response.chunk().await {
            Ok(Some(chunk)) => excerpt(&String::from_utf8_lossy(&chunk)),
            _ => String::new(),
        };
        verdict(status, retry_after, &excerpt)
    }
}

/// The HTTP client every sink posts through: the daemon's TLS trust (system roots plus
/// `hubs.extra_ca_file`, verification always on), no redirects, `notify.timeout` per attempt.
pub fn client(
    tls: &rustls::ClientConfig,
    timeout: Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls.clone())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .user_agent(concat!(
            env!("CARGO_PKG_NAME"),
            "/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
}

/// What an answer means for the notification.
pub fn verdict(status: u16, retry_after: Option<Duration>, excerpt: &str) -> Verdict {
    let reason = if excerpt.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {excerpt}")
    };
    match status {
        200..=299 => Verdict::Delivered { status },
        408 | 429 | 500..=599 => Verdict::Retry {
            reason,
            error_kind: "notify_http_status",
            after: retry_after.map(|after| after.min(RETRY_AFTER_MAX)),
        },
        _ => Verdict::Refused { status, reason },
    }
}

/// A request that got no answer: always worth another attempt.
fn transport_failure(err: reqwest::Error) -> Verdict {
    let error_kind = if err.is_timeout() {
        "notify_timeout"
    } else {
        "notify_unreachable"
    };
    // Without the URL: a webhook's or a bot's token may be in it.
    let err = err.without_url();
    let mut reason = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    Verdict::Retry {
        reason,
        error_kind,
        after: None,
    }
}

/// What a chat shows: severity, text and when the cause happened, cut to `max` characters.
fn chat_text(outgoing: &Outgoing<'_>, max: usize) -> String {
    let text = format!(
        "[{}] {} ({})",
        outgoing.severity.as_str().to_uppercase(),
        outgoing.text,
        outgoing.at
    );
    if text.chars().count() <= max {
        return text;
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// One line of at most [`EXCERPT_MAX`] characters of an answer's body.
fn excerpt(body: &str) -> String {
    let line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    line.chars().take(EXCERPT_MAX).collect()
}

/// `sha256=<hex>` of HMAC-SHA256(`secret`, `body`).
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose().as_bytes());
    format!("sha256={}", hex(ring::hmac::sign(&key, body).as_ref()))
}

/// A sink's identity: a digest of its kind, address and chat (never of its secret), so it keeps
/// its place in the outbox across restarts for as long as its configuration names the same
/// place.
fn identity(kind: SinkKind, endpoint: &Url, chat_id: &str) -> String {
    let named = format!("{}\n{endpoint}\n{chat_id}", kind.as_str());
    let digest = ring::digest::digest(&ring::digest::SHA256, named.as_bytes());
    hex(&digest.as_ref()[..8])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(kind: SinkKind, url: &str, secret: Option<&str>, chat_id: &str) -> Sink {
        let settings = SinkSettings {
            kind,
            url: url.into(),
            secret_file: Default::default(),
            chat_id: chat_id.into(),
            min_severity: None,
            kinds: vec![],
            secret: secret.map(Secret::new),
        };
        Sink::new(0, &settings, Severity::Info).expect("a sink")
    }

    fn outgoing(data: &Value) -> Outgoing<'_> {
        Outgoing {
            id: "ab12-n7",
            kind: "workflow_failed",
            severity: Severity::Warning,
            at: Timestamp::from(
                chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678Z")
                    .expect("a time")
                    .to_utc(),
            ),
            text: "entry workflow 7 failed",
            data,
        }
    }

    #[test]
    fn a_webhook_posts_every_field_and_signs_the_exact_body() {
        let data = json!({"workflow": 7});
        let webhook = sink(
            SinkKind::Webhook,
            "https://example.org/hook",
            Some("s3cret"),
            "",
        );
        let body = webhook.body(&outgoing(&data));
        let sent: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(
            sent,
            json!({
                "id": "ab12-n7", "kind": "workflow_failed", "severity": "warning",
                "at": "2026-01-02T03:04:05.678Z", "text": "entry workflow 7 failed",
                "data": {"workflow": 7},
            })
        );
        // HMAC-SHA256 of "hello" under "s3cret", as `openssl dgst -sha256 -hmac s3cret` gives it.
        assert_eq!(
            sign(&Secret::new("s3cret"), b"hello"),
            "sha256=e5a01537481fa0b2c697f787c7aff885412cf0760d08e08502259b39d2d6ae68"
        );
        let signature = webhook.signature(&body).expect("signed");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret");
        let tag = signature.strip_prefix("sha256=").expect("prefix");
        assert_eq!(tag.len(), 64);
        let raw: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&tag[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        assert!(ring::hmac::verify(&key, &body, &raw).is_ok());
        assert_eq!(
            sink(SinkKind::Webhook, "https://example.org/hook", None, "").signature(&body),
            None,
            "no secret, no signature"
        );
    }

    #[test]
    fn chat_formats_carry_severity_text_and_time() {
        let data = json!({});
        let slack = sink(SinkKind::Slack, "https://hooks.example.org/T/B/x", None, "");
        let sent: Value = serde_json::from_slice(&slack.body(&outgoing(&data))).expect("JSON");
        assert_eq!(
            sent,
            json!({"text": "[WARNING] entry workflow 7 failed (2026-01-02T03:04:05.678Z)"})
        );
        let discord = sink(
            SinkKind::Discord,
            "https://discord.example.org/api/webhooks/1/t",
            None,
            "",
        );
        let sent: Value = serde_json::from_slice(&discord.body(&outgoing(&data))).expect("JSON");
        assert_eq!(
            sent["content"],
            "[WARNING] entry workflow 7 failed (2026-01-02T03:04:05.678Z)"
        );
        let telegram = sink(SinkKind::Telegram, "", Some("123:ABC"), "-100200");
        let sent: Value = serde_json::from_slice(&telegram.body(&outgoing(&data))).expect("JSON");
        assert_eq!(sent["chat_id"], "-100200");
        assert_eq!(
            telegram.target.as_str(),
            "https://api.telegram.org/bot123:ABC/sendMessage"
        );
        assert_eq!(telegram.label(), "telegram api.telegram.org");
        assert!(
            !format!("{telegram:?}").contains("123:ABC"),
            "Debug shows the label only"
        );
        let long = "x".repeat(5_000);
        let cut = chat_text(
            &Outgoing {
                text: &long,
                ..outgoing(&data)
            },
            DISCORD_MAX,
        );
        assert_eq!(cut.chars().count(), DISCORD_MAX);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn a_custom_telegram_origin_keeps_its_path_prefix() {
        let telegram = sink(
            SinkKind::Telegram,
            "http://127.0.0.1:4000/tg/",
            Some("9:Z"),
            "1",
        );
        assert_eq!(
            telegram.target.as_str(),
            "http://127.0.0.1:4000/tg/bot9:Z/sendMessage"
        );
        assert_eq!(telegram.label(), "telegram 127.0.0.1:4000");
    }

    #[test]
    fn answers_are_delivered_refused_or_retried() {
        assert_eq!(verdict(200, None, ""), Verdict::Delivered { status: 200 });
        assert_eq!(verdict(204, None, ""), Verdict::Delivered { status: 204 });
        assert_eq!(
            verdict(400, None, "bad chat_id"),
            Verdict::Refused {
                status: 400,
                reason: "HTTP 400: bad chat_id".into()
            }
        );
        for status in [401, 403, 404, 410, 413, 301, 302] {
            assert!(
                matches!(verdict(status, None, ""), Verdict::Refused { .. }),
                "{status}"
            );
        }
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(
                matches!(verdict(status, None, ""), Verdict::Retry { .. }),
                "{status}"
            );
        }
        assert_eq!(
            verdict(429, Some(Duration::from_secs(3)), ""),
            Verdict::Retry {
                reason: "HTTP 429".into(),
                error_kind: "notify_http_status",
                after: Some(Duration::from_secs(3)),
            }
        );
        let Verdict::Retry { after, .. } = verdict(503, Some(Duration::from_secs(86_400)), "")
        else {
            panic!("a retry");
        };
        assert_eq!(after, Some(RETRY_AFTER_MAX));
    }

    #[test]
    fn an_excerpt_is_one_short_line() {
        assert_eq!(excerpt("  a\n  b\tc "), "a b c");
        assert_eq!(excerpt(&"y".repeat(1_000)).len(), EXCERPT_MAX);
    }

    #[test]
    fn the_identity_follows_the_address_not_the_secret() {
        let a = sink(SinkKind::Webhook, "https://example.org/a", Some("one"), "");
        let b = sink(SinkKind::Webhook, "https://example.org/a", Some("two"), "");
        let c = sink(SinkKind::Webhook, "https://example.org/b", Some("one"), "");
        assert_eq!(a.key(), b.key());
        assert_ne!(a.key(), c.key());
        assert_eq!(a.key().len(), 16);
        let t1 = sink(SinkKind::Telegram, "", Some("1:A"), "5");
        let t2 = sink(SinkKind::Telegram, "", Some("1:B"), "5");
        assert_eq!(t1.key(), t2.key(), "a new bot token, the same chat");
    }
}
