//! SIGTERM / SIGINT as a stream of stop requests, SIGHUP as a stream of reload requests. What a
//! request means (the first stop drains, the second forces; a reload re-reads the
//! configuration) is the daemon's business; this module only installs the handlers early and
//! names what arrived.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// The process's termination signals, caught from the moment [`Termination::install`] ran.
#[derive(Debug)]
pub struct Termination {
    handlers: Option<(Signal, Signal)>,
}

impl Termination {
    /// Installs the SIGTERM/SIGINT handlers NOW (before anything else starts, so a signal that
    /// arrives during startup is caught rather than killing the process by its default
    /// action; it waits for [`Termination::next`]). Must be called inside the runtime.
    pub fn install() -> Termination {
        let handlers = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Some((term, int)),
            _ => {
                tracing::error!("cannot install SIGTERM/SIGINT handlers; stop with SIGKILL only");
                None
            }
        };
        Termination { handlers }
    }

    /// The next termination signal's name; never resolves if the handlers could not be
    /// installed.
    pub async fn next(&mut self) -> &'static str {
        let Some((term, int)) = &mut self.handlers else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    }
}

/// SIGHUP, caught from the moment [`Hangups::install`] ran (its default action would end the
/// process).
#[derive(Debug)]
pub struct Hangups {
    handler: Option<Signal>,
}

impl Hangups {
    /// Installs the SIGHUP handler now. Must be called inside the runtime.
    pub fn install() -> Hangups {
        let handler = signal(SignalKind::hangup())
            .inspect_err(|err| tracing::error!(error = %err, "cannot install the SIGHUP handler; reload with `ctl reload`"))
            .ok();
        Hangups { handler }
    }

    /// Resolves at the next SIGHUP; never if the handler could not be installed.
    pub async fn next(&mut self) {
        match &mut self.handler {
            Some(hangup) => {
                hangup.recv().await;
            }
            None => std::future::pending().await,
        }
    }
}
