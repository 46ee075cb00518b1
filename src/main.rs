//! Thin CLI: parses arguments, loads settings, starts logging, and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mesolive_supervisor::config::Settings;
use mesolive_supervisor::exit;
use mesolive_supervisor::ops::logging;
use mesolive_supervisor::sim;

/// Runs MesoLive automation restart-safely: hubs in runbook order, durable event cursor,
/// position monitors, reconnect recovery, keyed intents.
#[derive(Debug, Parser)]
#[command(name = "mesolive-supervisor", version, about)]
struct Cli {
    /// TOML file layered over the embedded defaults (see config/default.toml).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon against the configured MesoLive hubs.
    Run,
    /// Run the built-in simulator and the daemon against it, with a live view.
    Demo,
    /// Run the MesoLive simulator alone.
    Sim(sim::SimArgs),
    /// Health checks against the configured hubs, in runbook order.
    Check,
    /// Print the persisted state: cursor, in-flight intents, jobs, monitored positions.
    State,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    logging::init(&settings.log);
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    let name = match cli.command {
        Command::Sim(args) => {
            return match sim::run_cli(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!("{err}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Run => "run",
        Command::Demo => "demo",
        Command::Check => "check",
        Command::State => "state",
    };
    eprintln!("mesolive-supervisor {name}: not yet implemented");
    ExitCode::from(exit::NOT_IMPLEMENTED)
}
