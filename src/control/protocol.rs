//! The control socket's protocol: the client writes one JSON request on one line, the daemon
//! answers one JSON reply on one line and closes. Small on purpose: `socat` can speak it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::TradingState;

/// Longest request line accepted.
pub const MAX_LINE: usize = 64 * 1024;

/// What `ctl` asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    /// The daemon's state (`ctl status`).
    Status,
    /// Set the trading state (`ctl halt | reduce-only | resume`).
    SetState {
        /// The new state.
        state: TradingState,
        /// Why, as the operator said it.
        reason: Option<String>,
    },
    /// Re-read the configuration (`ctl reload`).
    Reload,
    /// Cancel an active workflow (`ctl cancel-workflow ID`).
    CancelWorkflow {
        /// The workflow id.
        id: i64,
        /// Why.
        reason: Option<String>,
    },
}

/// Why a request was not carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The peer is not the daemon's user (nor root).
    Permission,
    /// The request could not be read.
    Invalid,
    /// The daemon refused it (unknown workflow, reload refused…).
    Refused,
    /// The daemon failed carrying it out (the store).
    Internal,
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Whether it was carried out.
    pub ok: bool,
    /// One line for the operator.
    pub message: String,
    /// Why not, when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// `status`: the state as one JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
    /// `status`: the same, as text for a terminal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl Reply {
    /// Carried out.
    pub fn done(message: impl Into<String>) -> Reply {
        Reply {
            ok: true,
            message: message.into(),
            failure: None,
            status: None,
            text: None,
        }
    }

    /// Not carried out.
    pub fn failed(failure: Failure, message: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            message: message.into(),
            failure: Some(failure),
            status: None,
            text: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_one_tagged_object() {
        let halt = Request::SetState {
            state: TradingState::Halted,
            reason: Some("bad day".into()),
        };
        let line = serde_json::to_string(&halt).unwrap();
        assert_eq!(
            line,
            r#"{"command":"set_state","state":"halted","reason":"bad day"}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), halt);
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"command":"status"}"#).unwrap(),
            Request::Status
        );
        assert!(serde_json::from_str::<Request>(r#"{"command":"launch"}"#).is_err());
    }
}
