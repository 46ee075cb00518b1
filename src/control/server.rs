//! The daemon's control socket: a Unix domain socket (`ops.control_socket`) in mode 0600,
//! where each connection carries one request and one reply. Only the daemon's own user (and
//! root) may use it: the file mode keeps others from connecting, and every connection's peer
//! is checked with SO_PEERCRED — one that is neither is answered with a refusal and closed.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::protocol::{Failure, MAX_LINE, Reply, Request};
use super::reload::{self, Reloaded};
use super::{change_trading_state, status};
use crate::store::{ActionSource, CancelRefusal};
use crate::supervisor::context::Ctx;

/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request waits for a term to start (a daemon still opening its store) before it is
/// refused as one made to a standby.
const TERM_WAIT: Duration = Duration::from_secs(5);

/// The daemon's term running, if any: a request is carried out on its context. A failover
/// standby has none (it does not act), nor has a daemon still starting.
pub type Terms = watch::Receiver<Option<Arc<Ctx>>>;

/// Why the control socket cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another process answers on the path.
    #[error("ops.control_socket {}: another daemon answers on it", .0.display())]
    InUse(PathBuf),
    /// The socket cannot be created or restricted.
    #[error("ops.control_socket {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The bound socket; the file is removed when it is dropped.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl ControlSocket {
    /// Binds `path` in mode 0600, replacing a stale socket file a killed daemon left behind
    /// (one that nobody answers on), never one another process serves.
    pub async fn bind(path: &Path) -> Result<ControlSocket, BindError> {
        let io_error = |source| BindError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_error)?;
        }
        if path.exists() {
            if UnixStream::connect(path).await.is_ok() {
                return Err(BindError::InUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(io_error)?;
        }
        let listener = UnixListener::bind(path).map_err(io_error)?;
        let socket = ControlSocket {
            listener,
            path: path.to_path_buf(),
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_error)?;
        Ok(socket)
    }

    /// Where it listens.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves requests on the term running (see [`Terms`]) until `stop` is cancelled; each
    /// connection in its own task.
    pub async fn serve(self, terms: Terms, stop: CancellationToken) {
        // SAFETY: geteuid(2) has no preconditions and touches no memory.
        let owner = unsafe { libc::geteuid() };
        loop {
            let stream = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        tracing::warn!(error = %err, "control socket: accept failed");
                        continue;
                    }
                },
                _ = stop.cancelled() => return,
            };
            let terms = terms.clone();
            tokio::spawn(async move {
                if let Err(err) = connection(terms, stream, owner).await {
                    tracing::debug!(error = %err, "control socket: connection ended early");
                }
            });
        }
    }
}

/// One connection: check the peer, read one request, answer it on the term running.
async fn connection(mut terms: Terms, stream: UnixStream, owner: u32) -> io::Result<()> {
    let peer = stream.peer_cred()?;
    let (read, mut write) = stream.into_split();
    if peer.uid() != owner && peer.uid() != 0 {
        tracing::warn!(
            uid = peer.uid(),
            pid = ?peer.pid(),
            "control socket: refused a peer that is not the daemon's user"
        );
        let reply = Reply::failed(
            Failure::Permission,
            format!(
                "permission denied: uid {} is neither the daemon's user (uid {owner}) nor root",
                peer.uid()
            ),
        );
        return send(&mut write, &reply).await;
    }
    let mut line = String::new();
    let mut reader = BufReader::new(read).take(MAX_LINE as u64);
    let reply = match tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line)).await {
        Ok(Ok(_)) => match serde_json::from_str::<Request>(line.trim()) {
            Ok(request) => match term(&mut terms).await {
                Some(ctx) => handle(&ctx, request).await,
                None => Reply::failed(
                    Failure::Refused,
                    "no term is running: this daemon stands by in its failover group (the leader \
                     acts; `mesolive-supervisor state` shows the lease), or is still starting",
                ),
            },
            Err(err) => Reply::failed(Failure::Invalid, format!("unreadable request: {err}")),
        },
        Ok(Err(err)) => return Err(err),
        Err(_) => Reply::failed(Failure::Invalid, "no request within 5 s"),
    };
    send(&mut write, &reply).await
}

/// The term running, waiting [`TERM_WAIT`] at most for one to start.
async fn term(terms: &mut Terms) -> Option<Arc<Ctx>> {
    let running = tokio::time::timeout(TERM_WAIT, terms.wait_for(Option::is_some)).await;
    match running {
        Ok(Ok(term)) => term.clone(),
        _ => None,
    }
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, reply: &Reply) -> io::Result<()> {
    let mut text = serde_json::to_string(reply).map_err(io::Error::other)?;
    text.push('\n');
    write.write_all(text.as_bytes()).await?;
    write.shutdown().await
}

/// Carries out one request.
async fn handle(ctx: &Ctx, request: Request) -> Reply {
    match request {
        Request::Status => match status::read(ctx).await {
            Ok(status) => Reply {
                text: Some(status::render(&status)),
                status: serde_json::to_value(&status).ok(),
                ..Reply::done("status")
            },
            Err(err) => Reply::failed(Failure::Internal, err.to_string()),
        },
        Request::SetState { state, reason } => {
            let reason = reason.unwrap_or_else(|| "no reason given".to_owned());
            match change_trading_state(ctx, state, &reason, ActionSource::Ctl).await {
                Ok(change) if change.changed() => {
                    Reply::done(format!("trading state {} (was {})", change.to, change.from))
                }
                Ok(change) => Reply::done(format!("trading state already {}", change.to)),
                Err(err) => Reply::failed(Failure::Internal, err.to_string()),
            }
        }
        Request::Reload => match reload::reload(ctx, ActionSource::Ctl).await {
            Ok(Reloaded::Applied(keys)) => {
                Reply::done(format!("configuration reloaded: {}", keys.join(", ")))
            }
            Ok(Reloaded::Unchanged) => Reply::done("configuration unchanged"),
            Err(err) => Reply::failed(Failure::Refused, err.to_string()),
        },
        Request::CancelWorkflow { id, reason } => {
            let reason = format!(
                "cancelled by the operator: {}",
                reason.as_deref().unwrap_or("no reason given")
            );
            match ctx
                .store()
                .cancel_workflow(id, &reason, ActionSource::Ctl)
                .await
            {
                Ok(Ok(workflow)) => {
                    ctx.metrics().workflow("cancelled");
                    tracing::warn!(workflow = id, kind = workflow.kind.as_str(), %reason, "workflow cancelled by the operator");
                    ctx.wake().workflows.notify_one();
                    Reply::done(format!("workflow {id} cancelled"))
                }
                Ok(Err(CancelRefusal::Unknown)) => {
                    Reply::failed(Failure::Refused, format!("no workflow {id}"))
                }
                Ok(Err(CancelRefusal::Finished(state))) => Reply::failed(
                    Failure::Refused,
                    format!("workflow {id} already ended ({state})"),
                ),
                Err(err) => Reply::failed(Failure::Internal, err.to_string()),
            }
        }
    }
}
