//! (8) Takeover on PostgreSQL: two daemons as child processes with `ha.enabled` (the lease ttl
//! and margin of the settings given, the defaults 10 s and 2 s) on one scratch schema; the
//! leader is SIGKILLed, as when its machine dies, and the figure is the time until the standby
//! answers `/readyz` 200 (hubs up, replayed, in-flight intents settled). Target: ttl + 2 s.

use std::time::{Duration, Instant};

use super::BenchError;
use super::child::ChildDaemon;
use super::harness::{BenchSim, Scratch, progress, seconds, until};
use super::report::{Figure, Target};
use crate::config::Settings;

/// Open positions in the simulator: the new leader bootstraps their monitors before ready.
const POSITIONS: usize = 20;
/// How long a start, or a takeover, may take before the benchmark gives up.
const LIMIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(10);
/// The bound issue 13 sets beyond the ttl.
const SLACK: Duration = Duration::from_secs(2);

/// Runs the takeover `runs` times against the PostgreSQL database of `base`.
pub(super) async fn run(base: &Settings, runs: usize) -> Result<Figure, BenchError> {
    let ttl = base.ha.lease_ttl;
    let mut samples = Vec::with_capacity(runs);
    for run in 1..=runs {
        let took = once(base).await?;
        progress(format_args!(
            "8 takeover run {run}/{runs}: {:.3} s",
            seconds(took)
        ));
        samples.push(seconds(took));
    }
    Ok(
        Figure::new("8 backends", "takeover after SIGKILL", "s", samples)
            .target(Target::AtMost(seconds(ttl + SLACK)))
            .note(format!(
                "ttl {}, margin {}, {POSITIONS} positions: leader killed -> standby /readyz 200",
                humantime::format_duration(ttl),
                humantime::format_duration(base.ha.safety_margin)
            )),
    )
}

/// One takeover in a fresh schema, dropped afterwards.
async fn once(base: &Settings) -> Result<Duration, BenchError> {
    let sim = BenchSim::start(POSITIONS).await?;
    let scratches = [Scratch::new()?, Scratch::new()?];
    let mut settings = base.clone();
    settings.database.schema = scratches[0].schema();
    let measured = measure(&sim, &scratches, &settings).await;
    sim.stop().await;
    scratches[0].drop_schema(&settings).await;
    measured
}

async fn measure(
    sim: &BenchSim,
    scratches: &[Scratch; 2],
    settings: &Settings,
) -> Result<Duration, BenchError> {
    let ttl = humantime::format_duration(settings.ha.lease_ttl).to_string();
    let margin = humantime::format_duration(settings.ha.safety_margin).to_string();
    let password_file = settings.database.password_file.display().to_string();
    let mut env = vec![
        ("MESOLIVE__DATABASE__URL", settings.database.url.as_str()),
        (
            "MESOLIVE__DATABASE__SCHEMA",
            settings.database.schema.as_str(),
        ),
        ("MESOLIVE__HA__ENABLED", "true"),
        ("MESOLIVE__HA__LEASE_TTL", ttl.as_str()),
        ("MESOLIVE__HA__SAFETY_MARGIN", margin.as_str()),
        ("MESOLIVE__AUTOMATION__MODE", "paper"),
    ];
    if !password_file.is_empty() {
        env.push(("MESOLIVE__DATABASE__PASSWORD_FILE", password_file.as_str()));
    }
    let password = std::env::var("PGPASSWORD").unwrap_or_default();
    if !password.is_empty() {
        env.push(("PGPASSWORD", password.as_str()));
    }
    let daemons = [
        ChildDaemon::spawn(sim, &scratches[0], &env)?,
        ChildDaemon::spawn(sim, &scratches[1], &env)?,
    ];
    let leader = until("a leader", LIMIT, POLL, || async {
        for (n, daemon) in daemons.iter().enumerate() {
            daemon.check_alive()?;
            if daemon.ready().await {
                return Ok(Some(n));
            }
        }
        Ok(None)
    })
    .await?;
    let standby = &daemons[1 - leader];
    until("the other daemon standing by", LIMIT, POLL, || async {
        standby.check_alive()?;
        Ok((standby.metric("mesolive_leader").await == Some(0.0)).then_some(()))
    })
    .await?;
    daemons[leader].kill()?;
    let killed = Instant::now();
    let led = until("the standby taking over", LIMIT, POLL, || async {
        standby.check_alive()?;
        Ok(standby.ready().await.then(Instant::now))
    })
    .await?;
    Ok(led - killed)
}
