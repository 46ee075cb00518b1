//! (8) PostgreSQL beside SQLite on the same machine: durable live ingest (a burst through the
//! whole event pump, as in (2)) and replay from a fresh database (as in (3)) of the same number
//! of events on each backend, and PostgreSQL's share of SQLite's rate (target ≥ 0.5); then the
//! takeover time of a failover pair (`takeover.rs`). Needs `database.url`; each run works in a
//! scratch schema, dropped afterwards.

use super::harness::{progress, rate, seconds};
use super::ingest::{self, StoreConfig};
use super::replay;
use super::report::{Figure, Target};
use super::takeover;
use super::{BenchError, Sizes};
use crate::config::{Settings, SynchronousMode};

/// The target: PostgreSQL at least half as fast as SQLite.
const TARGET_RATIO: f64 = 0.5;

/// Runs the scenario `runs` times per backend.
pub(super) async fn run(
    base: &Settings,
    runs: usize,
    sizes: &Sizes,
) -> Result<Vec<Figure>, BenchError> {
    if base.database.url.is_empty() {
        return Err(BenchError::Child(
            "scenario 8 compares PostgreSQL with SQLite: set database.url (e.g. \
             MESOLIVE__DATABASE__URL=postgres://user@host/db) to a database it may create \
             scratch schemas in"
                .into(),
        ));
    }
    let mut sqlite = base.clone();
    sqlite.database.url.clear();
    let config = StoreConfig {
        synchronous: SynchronousMode::Full,
        batch_max: 512,
    };
    let events = sizes.backend_events;
    let mut figures = Vec::new();
    let mut medians = Vec::new();
    for (backend, settings) in [("sqlite", &sqlite), ("postgres", base)] {
        let ingest = ingest::repeat(
            &format!("8 ingest {backend}"),
            settings,
            config,
            events,
            runs,
        )
        .await?;
        let mut replays = Vec::with_capacity(runs);
        for run in 1..=runs {
            let elapsed = replay::once(settings, events).await?;
            let per_second = rate(events, elapsed);
            progress(format_args!(
                "8 replay {backend} run {run}/{runs}: {:.3} s ({per_second:.0} events/s)",
                seconds(elapsed)
            ));
            replays.push(per_second);
        }
        let ingest = Figure::new(
            "8 backends",
            &format!("ingest {backend}"),
            "events/s",
            ingest,
        )
        .note(format!("{}, burst of {events}", config.label()));
        let replay = Figure::new(
            "8 backends",
            &format!("replay {backend}"),
            "events/s",
            replays,
        )
        .note(format!("{events} events, first_run=all, fresh database"));
        medians.push((ingest.median, replay.median));
        figures.push(ingest);
        figures.push(replay);
    }
    if let [(sqlite_ingest, sqlite_replay), (pg_ingest, pg_replay)] = medians[..] {
        for (what, pg, sqlite) in [
            ("ingest", pg_ingest, sqlite_ingest),
            ("replay", pg_replay, sqlite_replay),
        ] {
            if sqlite > 0.0 {
                figures.push(
                    Figure::new(
                        "8 backends",
                        &format!("{what} postgres/sqlite"),
                        "x",
                        vec![pg / sqlite],
                    )
                    .target(Target::AtLeast(TARGET_RATIO))
                    .note("median on PostgreSQL / median on SQLite"),
                );
            }
        }
    }
    figures.push(takeover::run(base, runs).await?);
    Ok(figures)
}
