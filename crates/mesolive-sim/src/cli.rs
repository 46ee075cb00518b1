//! `mesolive-supervisor sim`: its flags, and running the simulator until SIGTERM or Ctrl-C.

use std::time::Duration;

use clap::Args;

use super::faults::{ConnectPush, FaultPatch, LoseCompletion, LossMode, OneOrMany, RetentionMode};
use super::sim::Timing;
use super::wire_profile::{ArgumentBinding, WireProfile};
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
    /// What a new Event Hub connection is pushed on connect: the active signals and errors
    /// without their EventSeqId (`bare`), as first sent with it (`repeat`), or nothing (`none`).
    #[arg(long, value_enum, default_value_t = ConnectPush::Bare)]
    pub connect_push: ConnectPush,
    /// Serve only the latest N events from `GetEventsSince` (history is kept otherwise).
    #[arg(long)]
    pub retention: Option<u64>,
    /// How a cursor older than the retained history is answered: `error` (BadRequest) or
    /// `gap` (the page starts at the oldest event kept).
    #[arg(long, value_enum, default_value_t = RetentionMode::Error)]
    pub retention_mode: RetentionMode,
    /// Never answer a client's Close handshake until the fault is cleared through the admin API.
    #[arg(long)]
    pub ignore_close: bool,
    /// Refuse StreamUnderlyingData / GetUnderlyingSnapshot without a Provider, as the API says
    /// the real server does (by default a missing Provider means the first agent's connector).
    #[arg(long)]
    pub require_provider: bool,
    /// The wire forms to play: `default`, `aspnet-strict`, `alt` or `random:SEED`, optionally
    /// followed by `,dimension=form` pins and `,!dimension=form` exclusions (see `GET /wire`).
    #[arg(long, default_value = "default", value_parser = WireProfile::parse)]
    pub wire_profile: WireProfile,
    /// Bind arguments like a stock ASP.NET Core server: a string where the argument model says
    /// number (or the other way round) fails the call (`argument_binding=strict_stj`).
    #[arg(long)]
    pub strict_types: bool,
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
        let mut wire = self.wire_profile.clone();
        if self.strict_types {
            // A form of the catalogue: always accepted.
            let _ = wire.pin("argument_binding", ArgumentBinding::StrictStj.name());
        }
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
                connect_push: Some(self.connect_push),
                retention: self.retention,
                retention_mode: Some(self.retention_mode),
                ignore_close: Some(self.ignore_close),
                require_provider: Some(self.require_provider),
                never_fill: Some(self.never_fill),
            },
            wire,
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
        let options = args.options();
        let wire = options.wire.summary();
        let sim = Simulator::start(options).await?;
        tracing::info!(
            hubs = %sim.hub_base_url(),
            control = %sim.hub_url(super::Hub::Control),
            data = %sim.hub_url(super::Hub::Data),
            event = %sim.hub_url(super::Hub::Event),
            admin = %sim.admin_url(),
            seed = args.seed,
            %wire,
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

    /// `sim`'s flags as the command line parses them.
    #[derive(Debug, clap::Parser)]
    struct Sim {
        #[command(flatten)]
        args: SimArgs,
    }

    #[test]
    fn the_connect_push_flag_sets_the_form_and_defaults_to_bare() {
        let parse = |flags: &[&str]| {
            let argv = std::iter::once("sim").chain(flags.iter().copied());
            <Sim as clap::Parser>::try_parse_from(argv).map(|sim| sim.args.options().faults)
        };
        assert_eq!(parse(&[]).unwrap().connect_push, Some(ConnectPush::Bare));
        let repeat = parse(&["--connect-push", "repeat"]).unwrap();
        assert_eq!(repeat.connect_push, Some(ConnectPush::Repeat));
        assert_eq!(
            parse(&["--connect-push", "none"]).unwrap().connect_push,
            Some(ConnectPush::None)
        );
        assert!(parse(&["--connect-push", "fresh"]).is_err());
    }

    #[test]
    fn the_retention_flags_keep_the_latest_events_and_say_how_older_ones_are_refused() {
        let parse = |flags: &[&str]| {
            let argv = std::iter::once("sim").chain(flags.iter().copied());
            let cli = <Sim as clap::Parser>::try_parse_from(argv)?;
            Ok::<_, clap::Error>(cli.args.options().faults)
        };
        let default = parse(&[]).unwrap();
        assert_eq!(
            (default.retention, default.retention_mode),
            (None, Some(RetentionMode::Error))
        );
        let gap = parse(&["--retention", "1000", "--retention-mode", "gap"]).unwrap();
        assert_eq!(
            (gap.retention, gap.retention_mode),
            (Some(1000), Some(RetentionMode::Gap))
        );
        assert!(parse(&["--retention-mode", "drop"]).is_err());
    }

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
