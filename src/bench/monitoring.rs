//! (5) The cost of monitoring: resident memory and CPU of the daemon — a child process, so the
//! simulator's own work is not counted — with many open positions each streaming 2 updates/s.
//! Read from `/proc/<pid>` over a steady-state window that starts once every monitor streams.

use std::time::{Duration, Instant};

use super::child::{ChildDaemon, cpu_time, resident_bytes};
use super::harness::{BenchSim, Scratch, progress, rate, until};
use super::report::{Figure, Target};
use super::{BenchError, Sizes};

/// Longest the daemon may take to be ready with every monitor streaming.
const SETTLE_LIMIT: Duration = Duration::from_secs(120);
/// Time given after every monitor streams, before the window opens (start-up work settles).
const SETTLE: Duration = Duration::from_secs(2);
/// How often RSS is sampled within the window (the figure is the highest sample).
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// The targets.
const TARGET_RSS_MIB: f64 = 64.0;
const TARGET_CPU_PERCENT: f64 = 25.0;

/// One window's readings.
struct Reading {
    rss_mib: f64,
    cpu_percent: f64,
    items_per_second: f64,
}

/// Runs the scenario `runs` times.
pub(super) async fn run(runs: usize, sizes: &Sizes) -> Result<Vec<Figure>, BenchError> {
    let mut rss = Vec::with_capacity(runs);
    let mut cpu = Vec::with_capacity(runs);
    let mut items = Vec::with_capacity(runs);
    for run in 1..=runs {
        let reading = once(sizes).await?;
        progress(format_args!(
            "5 monitoring run {run}/{runs}: {:.1} MiB, {:.1}% CPU, {:.0} items/s",
            reading.rss_mib, reading.cpu_percent, reading.items_per_second
        ));
        rss.push(reading.rss_mib);
        cpu.push(reading.cpu_percent);
        items.push(reading.items_per_second);
    }
    let note = format!(
        "{} positions, child process, {:?} window",
        sizes.monitoring_positions, sizes.monitoring_window
    );
    Ok(vec![
        Figure::new("5 monitoring", "RSS (highest in window)", "MiB", rss)
            .target(Target::AtMost(TARGET_RSS_MIB))
            .note(note.clone()),
        Figure::new("5 monitoring", "CPU", "% of one core", cpu)
            .target(Target::AtMost(TARGET_CPU_PERCENT))
            .note(note),
        Figure::new("5 monitoring", "stream items received", "items/s", items)
            .note("2 updates/s per position expected"),
    ])
}

async fn once(sizes: &Sizes) -> Result<Reading, BenchError> {
    let positions = sizes.monitoring_positions;
    let sim = BenchSim::start(positions).await?;
    let scratch = Scratch::new()?;
    let daemon = ChildDaemon::spawn(&sim, &scratch, &[])?;
    let reading = measure(&daemon, positions, sizes.monitoring_window).await;
    drop(daemon);
    sim.stop().await;
    reading
}

async fn measure(
    daemon: &ChildDaemon,
    positions: usize,
    window: Duration,
) -> Result<Reading, BenchError> {
    let wanted = positions as f64;
    until(
        "every monitor streaming",
        SETTLE_LIMIT,
        Duration::from_millis(50),
        || async {
            daemon.check_alive()?;
            let streaming = daemon.metric("mesolive_monitors_streaming").await;
            Ok((daemon.ready().await && streaming == Some(wanted)).then_some(()))
        },
    )
    .await?;
    tokio::time::sleep(SETTLE).await;
    let pid = daemon.pid();
    let items_before = stream_items(daemon).await?;
    let cpu_before = cpu_time(pid)?;
    let opened = Instant::now();
    let mut rss = resident_bytes(pid)?;
    while opened.elapsed() < window {
        tokio::time::sleep(SAMPLE_EVERY).await;
        rss = rss.max(resident_bytes(pid)?);
    }
    let cpu = cpu_time(pid)?.saturating_sub(cpu_before);
    let elapsed = opened.elapsed();
    let items = stream_items(daemon).await?.saturating_sub(items_before);
    daemon.check_alive()?;
    Ok(Reading {
        rss_mib: rss as f64 / (1024.0 * 1024.0),
        cpu_percent: 100.0 * cpu.as_secs_f64() / elapsed.as_secs_f64(),
        items_per_second: rate(items, elapsed),
    })
}

async fn stream_items(daemon: &ChildDaemon) -> Result<u64, BenchError> {
    let total = daemon
        .metric("mesolive_stream_items_total")
        .await
        .ok_or_else(|| BenchError::Child("no mesolive_stream_items_total".into()))?;
    Ok(total as u64)
}
