//! `mesolive-supervisor sim`: its flags, and running the simulator until SIGTERM or Ctrl-C.

use std::time::Duration;

use clap::Args;

use super::faults::{FaultPatch, LoseCompletion, LossMode, OneOrMany};
use super::sim::Timing;
use super::{SimError, SimOptions, Simulator};

/// Flags of `sim`. Every fault the admin API sets can also be set here, active from the start.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Port of the three hubs on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 5080)]
    pub port: u16,
    /// Port of the admin API on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 5081)]
    pub admin_port: u16,
    /// Seed of every random choice: same seed, same world, same ids.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The bearer token clients must present.
    #[arg(long, default_value = super::DEFAULT_TOKEN)]
    pub token: String,
    /// Open positions at start.
    #[arg(long, default_value_t = 2)]
    pub positions: usize,
    /// Signal generator cadence, e.g. `5s` (off when absent).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub signal_interval: Option<Duration>,
    /// How long prepare jobs take.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "150ms")]
    pub prepare_delay: Duration,
    /// How long Working orders take to fill.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "150ms")]
    pub fill_delay: Duration,
    /// Shortest time between two updates of a data stream.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "500ms")]
    pub stream_interval: Duration,
    /// Lose the Completion of the next calls of a method after their effect:
    /// `METHOD[:COUNT[:drop|silence]]` (repeatable).
    #[arg(long, value_parser = lose_completion)]
    pub lose_completion: Vec<LoseCompletion>,
    /// Lose the next K job-completion events from the live stream.
    #[arg(long)]
    pub lose_job_events: Option<u32>,
    /// Suppress the next K live events.
    #[arg(long)]
    pub suppress_events: Option<u32>,
    /// Deliver the next K live events twice.
    #[arg(long)]
    pub duplicate_events: Option<u32>,
    /// Delay every live event, e.g. `200ms`.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub delay_events: Option<Duration>,
    /// Fail the next K prepare jobs.
    #[arg(long)]
    pub fail_prepares: Option<u32>,
    /// Keep idempotency records Processing this long after their effect.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub hold_processing: Option<Duration>,
    /// Answer 401 to everyone until the fault is cleared through the admin API.
    #[arg(long)]
    pub reject_auth: bool,
    /// Never answer a client's Close handshake until the fault is cleared through the admin API.
    #[arg(long)]
    pub ignore_close: bool,
    /// Leave every broker order Working (never filled) until the fault is cleared through the
    /// admin API; CancelOrder still cancels it.
    #[arg(long)]
    pub never_fill: bool,
}

fn lose_completion(text: &str) -> Result<LoseCompletion, String> {
    let mut parts = text.split(':');
    let method = parts
        .next()
        .filter(|m| !m.is_empty())
        .ok_or("expected METHOD[:COUNT[:drop|silence]]")?;
    let count = parts
        .next()
        .map(|n| {
            n.parse::<u32>()
                .map_err(|_| format!("'{n}' is not a count"))
        })
        .transpose()?
        .unwrap_or(1);
    let mode = match parts.next() {
        None | Some("drop") => LossMode::Drop,
        Some("silence") => LossMode::Silence,
        Some(other) => return Err(format!("mode must be drop or silence, not '{other}'")),
    };
    Ok(LoseCompletion {
        method: method.to_owned(),
        count,
        mode,
    })
}

fn millis(duration: Option<Duration>) -> Option<u64> {
    duration.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl SimArgs {
    /// The options these flags describe.
    pub fn options(&self) -> SimOptions {
        SimOptions {
            port: self.port,
            admin_port: self.admin_port,
            seed: self.seed,
            token: self.token.clone(),
            positions: self.positions,
            timing: Timing {
                prepare_delay: self.prepare_delay,
                fill_delay: self.fill_delay,
                stream_interval: self.stream_interval,
                signal_interval: self.signal_interval,
            },
            faults: FaultPatch {
                lose_completion: Some(OneOrMany::Many(self.lose_completion.clone())),
                lose_job_events: self.lose_job_events,
                suppress_events: self.suppress_events,
                duplicate_events: self.duplicate_events,
                delay_events_ms: millis(self.delay_events),
                fail_prepares: self.fail_prepares,
                hold_processing_ms: millis(self.hold_processing),
                reject_auth: Some(self.reject_auth),
                ignore_close: Some(self.ignore_close),
                never_fill: Some(self.never_fill),
            },
        }
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn stop_requested() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted,
        _ = terminate.recv() => Ok(()),
    }
}

/// Runs the simulator alone until SIGTERM or SIGINT, then stops it cleanly.
pub fn run_cli(args: &SimArgs) -> Result<(), SimError> {
    let runtime = tokio::runtime::Runtime::new().map_err(SimError::Runtime)?;
    runtime.block_on(async {
        let sim = Simulator::start(args.options()).await?;
        tracing::info!(
            hubs = %sim.hub_base_url(),
            control = %sim.hub_url(super::Hub::Control),
            data = %sim.hub_url(super::Hub::Data),
            event = %sim.hub_url(super::Hub::Event),
            admin = %sim.admin_url(),
            seed = args.seed,
            "MesoLive simulator listening; stop with Ctrl-C or SIGTERM"
        );
        stop_requested().await.map_err(SimError::Runtime)?;
        tracing::info!("stopping the simulator");
        sim.shutdown().await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lose_completion_flag_forms() {
        assert_eq!(lose_completion("SendOrder").unwrap().count, 1);
        let parsed = lose_completion("ApplyPaperFills:3:silence").unwrap();
        assert_eq!((parsed.count, parsed.mode), (3, LossMode::Silence));
        assert!(lose_completion("").is_err());
        assert!(lose_completion("X:many").is_err());
        assert!(lose_completion("X:1:loud").is_err());
    }
}
