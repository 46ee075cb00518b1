//! `mesolive-supervisor ctl …`: one request to the running daemon over its control socket.
//! With no daemon answering (no socket, or a stale one a killed daemon left), `halt`,
//! `reduce-only` and `resume` write the trading state to the database directly, so a stopped
//! daemon starts in it; the other commands need the daemon.
//!
//! Exit statuses: 0 done (by the daemon, or written to the database); 1 the daemon refused
//! (unknown workflow, reload refused); 69 no daemon answers (status, reload, cancel-workflow);
//! 74 the database could not be written; 75 a daemon holds the database (on PostgreSQL: the
//! lease, perhaps on another host) but its socket does not answer here; 77 the socket refused
//! this user; 78 the configuration is invalid.

use std::io;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::protocol::{Failure, MAX_LINE, Reply, Request};
use crate::config::Settings;
use crate::daemon::store_options;
use crate::exit;
use crate::store::{ActionSource, Store, StoreError, TradingState};

/// How long the daemon may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// What `ctl` prints and the status it exits with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The exit status.
    pub code: u8,
    /// Printed on standard output (success) or standard error (failure).
    pub text: String,
}

impl Outcome {
    fn ok(text: impl Into<String>) -> Outcome {
        Outcome {
            code: exit::OK,
            text: text.into(),
        }
    }

    fn failed(code: u8, text: impl Into<String>) -> Outcome {
        Outcome {
            code,
            text: text.into(),
        }
    }
}

/// Sends `request` to the daemon configured by `settings`; `json` prints a status as JSON.
pub async fn run(settings: &Settings, request: Request, json: bool) -> Outcome {
    let socket = settings.control_socket();
    match UnixStream::connect(&socket).await {
        Ok(stream) => match exchange(stream, &request).await {
            Ok(reply) => from_reply(reply, json),
            Err(err) => Outcome::failed(
                exit::FAILURE,
                format!("control socket {}: {err}", socket.display()),
            ),
        },
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => Outcome::failed(
            exit::NO_PERMISSION,
            format!(
                "control socket {}: permission denied: it is the daemon's user's only (mode 0600); run ctl as that user or as root",
                socket.display()
            ),
        ),
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            no_daemon(settings, &socket, request).await
        }
        Err(err) => Outcome::failed(
            exit::UNAVAILABLE,
            format!("control socket {}: {err}", socket.display()),
        ),
    }
}

async fn exchange(stream: UnixStream, request: &Request) -> io::Result<Reply> {
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(request).map_err(io::Error::other)?;
    line.push('\n');
    // A daemon that refuses this peer answers before reading and closes: the write may then
    // fail, and the answer that says why is still there to read.
    let written = write.write_all(line.as_bytes()).await;
    let mut answer = String::new();
    let mut reader = BufReader::new(read).take(MAX_LINE as u64 * 16);
    tokio::time::timeout(ANSWER_TIMEOUT, reader.read_line(&mut answer))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer within 30 s"))??;
    if answer.trim().is_empty() {
        written?;
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the daemon closed the connection without an answer",
        ));
    }
    serde_json::from_str(answer.trim()).map_err(io::Error::other)
}

fn from_reply(reply: Reply, json: bool) -> Outcome {
    if !reply.ok {
        let code = match reply.failure {
            Some(Failure::Permission) => exit::NO_PERMISSION,
            _ => exit::FAILURE,
        };
        return Outcome::failed(code, reply.message);
    }
    match (reply.status, reply.text) {
        (Some(status), _) if json => {
            Outcome::ok(serde_json::to_string_pretty(&status).unwrap_or_default())
        }
        (_, Some(text)) => Outcome::ok(text.trim_end().to_owned()),
        _ => Outcome::ok(reply.message),
    }
}

/// No daemon answers on `socket`: a trading state is written to the database; the rest fail.
async fn no_daemon(settings: &Settings, socket: &Path, request: Request) -> Outcome {
    let Request::SetState { state, reason } = request else {
        return Outcome::failed(
            exit::UNAVAILABLE,
            format!(
                "no daemon answers on {} (`mesolive-supervisor state` shows the stored state)",
                socket.display()
            ),
        );
    };
    let reason = reason.unwrap_or_else(|| "no reason given".to_owned());
    let database = settings.store_location().describe();
    match write_state(settings, state, &reason).await {
        Ok(Written::Was(from)) => Outcome::ok(format!(
            "no daemon answers on {}: trading state {state} (was {from}) written to {database}; the daemon starts {state}",
            socket.display(),
        )),
        Ok(Written::LeaseHeld { holder }) => Outcome::failed(
            exit::TEMP_FAIL,
            format!(
                "{holder} leads on {database} (it holds the lease of group {}): run ctl on its host, where it answers on its own control socket",
                settings.ha.group
            ),
        ),
        Err(StoreError::Locked { .. }) => Outcome::failed(
            exit::TEMP_FAIL,
            format!(
                "a daemon holds {database} but does not answer on {}: is ops.control_socket the same for both?",
                socket.display()
            ),
        ),
        Err(err) => Outcome::failed(exit::IO_ERROR, err.to_string()),
    }
}

/// What writing the trading state with no daemon answering did.
enum Written {
    /// Written; the state before.
    Was(TradingState),
    /// Not written: on a shared database, a live daemon holds the lease (elsewhere) and would
    /// not see the change before its next term.
    LeaseHeld { holder: String },
}

/// Writes `state` to the database of a stopped daemon.
async fn write_state(
    settings: &Settings,
    state: TradingState,
    reason: &str,
) -> Result<Written, StoreError> {
    let store = Store::connect(&settings.store_location(), &store_options(settings)).await?;
    let written = match leader(&store, &settings.ha.group).await {
        Ok(Some(holder)) => Ok(Written::LeaseHeld { holder }),
        Ok(None) => store
            .set_trading_state(state, reason, ActionSource::Ctl)
            .await
            .map(|change| Written::Was(change.from)),
        Err(err) => Err(err),
    };
    let _ = store.close().await;
    written
}

/// Who holds the lease of `group` now (never anyone on SQLite).
async fn leader(store: &Store, group: &str) -> Result<Option<String>, StoreError> {
    Ok(store
        .leases()
        .await?
        .into_iter()
        .find(|lease| lease.group == group && lease.is_held())
        .and_then(|lease| lease.holder))
}
