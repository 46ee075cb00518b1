//! Negotiate (v1, redirects) and the URLs derived from it.

use std::error::Error as StdError;

use reqwest::StatusCode;
use serde::Deserialize;
use serde::de::IgnoredAny;
use url::Url;

use super::AccessToken;
use crate::error::{AuthStage, SignalrError};

/// The JS client's limit, after which it fails with the same text.
const MAX_REDIRECTS: usize = 100;

/// Where and how to open the WebSocket, once negotiate succeeded.
pub(super) struct Negotiated {
    /// The hub URL after any redirect.
    pub url: Url,
    /// The bearer token to use from now on (replaced by a redirect's `accessToken`).
    pub access_token: Option<AccessToken>,
    /// The public connection id (for logs).
    pub connection_id: String,
    /// The secret that goes into `id=` (v1: `connectionToken`; v0: `connectionId`).
    pub connection_token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NegotiateResponse {
    negotiate_version: Option<u32>,
    connection_id: Option<String>,
    connection_token: Option<String>,
    url: Option<String>,
    access_token: Option<String>,
    error: Option<String>,
    available_transports: Option<Vec<AvailableTransport>>,
    #[serde(rename = "ProtocolVersion")]
    classic_protocol_version: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct AvailableTransport {
    transport: String,
}

enum Step {
    Redirect {
        url: Url,
        access_token: Option<AccessToken>,
    },
    Connect {
        connection_id: String,
        connection_token: String,
    },
}

/// Runs negotiate against `url`, following redirects, and returns where to connect.
pub(super) async fn negotiate(
    http: &reqwest::Client,
    mut url: Url,
    mut access_token: Option<AccessToken>,
) -> Result<Negotiated, SignalrError> {
    for _ in 0..=MAX_REDIRECTS {
        match negotiate_once(http, &url, access_token.as_ref()).await? {
            Step::Redirect {
                url: next,
                access_token: replacement,
            } => {
                tracing::debug!(to = %redacted(&next), "negotiate redirected");
                url = next;
                access_token = replacement.or(access_token);
            }
            Step::Connect {
                connection_id,
                connection_token,
            } => {
                return Ok(Negotiated {
                    url,
                    access_token,
                    connection_id,
                    connection_token,
                });
            }
        }
    }
    Err(SignalrError::Negotiate(
        "Negotiate redirection limit exceeded.".to_owned(),
    ))
}

async fn negotiate_once(
    http: &reqwest::Client,
    url: &Url,
    access_token: Option<&AccessToken>,
) -> Result<Step, SignalrError> {
    let mut request = http.post(negotiate_url(url));
    if let Some(token) = access_token {
        request = request.header(reqwest::header::AUTHORIZATION, token.bearer_header()?);
    }
    let response = request.send().await.map_err(http_error)?;
    match response.status() {
        StatusCode::OK => {}
        status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
            return Err(SignalrError::Unauthorized {
                stage: AuthStage::Negotiate,
                status: status.as_u16(),
            });
        }
        status => {
            return Err(SignalrError::Negotiate(format!(
                "unexpected status code {}",
                status.as_u16()
            )));
        }
    }
    let body = response.bytes().await.map_err(http_error)?;
    let parsed: NegotiateResponse = serde_json::from_slice(&body).map_err(|error| {
        // serde's message may quote a value from the body; the body can hold tokens.
        SignalrError::Negotiate(format!(
            "unreadable response ({:?} error at line {} column {})",
            error.classify(),
            error.line(),
            error.column()
        ))
    })?;
    parsed.into_step()
}

impl NegotiateResponse {
    fn into_step(self) -> Result<Step, SignalrError> {
        if let Some(error) = self.error {
            return Err(SignalrError::Negotiate(error));
        }
        if self.classic_protocol_version.is_some() {
            return Err(SignalrError::Negotiate(
                "the server is a classic ASP.NET SignalR server, not ASP.NET Core SignalR"
                    .to_owned(),
            ));
        }
        if let Some(url) = self.url {
            return Ok(Step::Redirect {
                url: http_base_url(&url)?,
                access_token: self.access_token.map(AccessToken::new),
            });
        }
        if let Some(transports) = &self.available_transports
            && !transports.iter().any(|t| t.transport == "WebSockets")
        {
            return Err(SignalrError::Negotiate(
                "the server does not offer the WebSockets transport".to_owned(),
            ));
        }
        let connection_id = self.connection_id.ok_or_else(|| {
            SignalrError::Negotiate("the response has no connectionId".to_owned())
        })?;
        let connection_token = match self.negotiate_version {
            Some(version) if version >= 1 => self.connection_token.ok_or_else(|| {
                SignalrError::Negotiate("the v1 response has no connectionToken".to_owned())
            })?,
            _ => connection_id.clone(),
        };
        Ok(Step::Connect {
            connection_id,
            connection_token,
        })
    }
}

/// `{hub}/negotiate?{existing query}&negotiateVersion=1` (JS `_resolveNegotiateUrl`).
fn negotiate_url(hub: &Url) -> Url {
    let mut url = hub.clone();
    let path = match hub.path() {
        path if path.ends_with('/') => format!("{path}negotiate"),
        path => format!("{path}/negotiate"),
    };
    url.set_path(&path);
    url.query_pairs_mut().append_pair("negotiateVersion", "1");
    url
}

/// Parses a hub URL and normalises it to http(s), the scheme negotiate is posted to.
pub(super) fn http_base_url(text: &str) -> Result<Url, SignalrError> {
    let url = Url::parse(text)
        .map_err(|error| SignalrError::InvalidConfig(format!("hub URL: {error}")))?;
    to_scheme(url, |scheme| match scheme {
        "http" | "ws" => Some("http"),
        "https" | "wss" => Some("https"),
        _ => None,
    })
}

/// The WebSocket URL: ws(s) scheme, `id=<connection token>` and `access_token=<token>` added.
pub(super) fn websocket_url(
    hub: &Url,
    connection_token: &str,
    access_token: Option<&AccessToken>,
) -> Result<Url, SignalrError> {
    let mut url = to_scheme(hub.clone(), |scheme| match scheme {
        "http" => Some("ws"),
        "https" => Some("wss"),
        _ => None,
    })?;
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("id", connection_token);
        if let Some(token) = access_token {
            query.append_pair("access_token", token.expose());
        }
    }
    Ok(url)
}

fn to_scheme(
    mut url: Url,
    map: impl FnOnce(&str) -> Option<&'static str>,
) -> Result<Url, SignalrError> {
    if url.host_str().is_none() {
        return Err(SignalrError::InvalidConfig(
            "hub URL has no host".to_owned(),
        ));
    }
    let scheme = map(url.scheme()).ok_or_else(|| {
        SignalrError::InvalidConfig(format!("unsupported hub URL scheme '{}'", url.scheme()))
    })?;
    url.set_scheme(scheme).map_err(|()| {
        SignalrError::InvalidConfig(format!("cannot switch the hub URL to '{scheme}'"))
    })?;
    Ok(url)
}

/// A URL fit for logs: scheme, host, port and path; the query (which may carry
/// `access_token` or the connection token) is left out.
pub(super) fn redacted(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_password(None);
    shown.to_string()
}

/// Error text for a failed HTTP exchange, without the URL and with its causes.
fn http_error(error: reqwest::Error) -> SignalrError {
    let error = error.without_url();
    if error.is_timeout() {
        return SignalrError::Transport("negotiate request timed out".to_owned());
    }
    SignalrError::Transport(format!("negotiate request failed: {}", error_chain(&error)))
}

/// `error: cause: cause…` for errors whose sources never carry a URL (hyper, io, rustls).
pub(super) fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).expect("test URL")
    }

    #[test]
    fn negotiate_url_keeps_the_query_and_appends_the_version() {
        assert_eq!(
            negotiate_url(&url("https://h/hub?hub=x")).as_str(),
            "https://h/hub/negotiate?hub=x&negotiateVersion=1"
        );
        assert_eq!(
            negotiate_url(&url("https://x.service.signalr.net/client/?hub=chat")).as_str(),
            "https://x.service.signalr.net/client/negotiate?hub=chat&negotiateVersion=1"
        );
    }

    #[test]
    fn websocket_url_switches_scheme_and_encodes_the_tokens() {
        let token = AccessToken::new("a b&c");
        let ws = websocket_url(&url("https://h/hubs/event/v1?x=1"), "tok+1", Some(&token))
            .expect("valid");
        assert_eq!(
            ws.as_str(),
            "wss://h/hubs/event/v1?x=1&id=tok%2B1&access_token=a+b%26c"
        );
        assert_eq!(redacted(&ws), "wss://h/hubs/event/v1");
    }

    #[test]
    fn hub_urls_must_be_http_or_ws() {
        assert_eq!(
            http_base_url("ws://h:1/hub")
                .expect("ws maps to http")
                .as_str(),
            "http://h:1/hub"
        );
        assert!(matches!(
            http_base_url("ftp://h/hub"),
            Err(SignalrError::InvalidConfig(_))
        ));
    }

    fn step(body: &str) -> Result<Step, SignalrError> {
        serde_json::from_str::<NegotiateResponse>(body)
            .expect("test body")
            .into_step()
    }

    #[test]
    fn v1_uses_the_connection_token_and_v0_the_connection_id() {
        let v1 = r#"{"negotiateVersion":1,"connectionId":"pub","connectionToken":"secret",
            "availableTransports":[{"transport":"WebSockets","transferFormats":["Text","Binary"]}],"extra":1}"#;
        assert!(
            matches!(step(v1), Ok(Step::Connect { connection_token, .. }) if connection_token == "secret")
        );
        let v0 = r#"{"negotiateVersion":0,"connectionId":"pub","availableTransports":[]}"#;
        assert!(
            matches!(step(v0), Err(SignalrError::Negotiate(_))),
            "no WebSockets offered"
        );
        let v0 = r#"{"connectionId":"pub"}"#;
        assert!(
            matches!(step(v0), Ok(Step::Connect { connection_token, .. }) if connection_token == "pub")
        );
    }

    #[test]
    fn error_and_redirect_forms() {
        assert!(matches!(
            step(r#"{"error":"This connection is not allowed."}"#),
            Err(SignalrError::Negotiate(text)) if text == "This connection is not allowed."
        ));
        let redirect = step(r#"{"url":"https://x/client/?hub=chat","accessToken":"jwt"}"#);
        assert!(matches!(
            redirect,
            Ok(Step::Redirect { access_token: Some(token), .. }) if token.expose() == "jwt"
        ));
    }
}
