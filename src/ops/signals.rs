//! SIGTERM / SIGINT as a stream of stop requests. What a request means (the first drains, the
//! second forces) is the daemon's business; this module only installs the handlers early and
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
