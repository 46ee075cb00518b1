//! Thin CLI: parses arguments, loads settings, starts logging, and hands over to the library.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
#[cfg(feature = "sim")]
use mesolive_supervisor::bench::{self, BenchOptions};
use mesolive_supervisor::check::{self, Check};
use mesolive_supervisor::config::Settings;
use mesolive_supervisor::control::client;
use mesolive_supervisor::control::protocol::Request;
use mesolive_supervisor::daemon;
#[cfg(feature = "sim")]
use mesolive_supervisor::demo::{self, DemoOptions};
use mesolive_supervisor::exit;
use mesolive_supervisor::notifications::command as notify_command;
use mesolive_supervisor::ops::notify::Notifier;
use mesolive_supervisor::ops::{http, logging};
use mesolive_supervisor::store::Location;
use mesolive_supervisor::store::TradingState;
use mesolive_supervisor::store::report::{ReportFormat, state_report};
use mesolive_supervisor::table::columns;

/// The process's allocator. The event path decodes and re-encodes JSON (a map, strings and
/// vectors per event); glibc's malloc and free were a fifth of the daemon's replay profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    #[cfg(feature = "sim")]
    Demo {
        /// Stop after this long, e.g. `20s` (default: until Ctrl-C).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
        /// Inject faults periodically: drops, outages, lost answers and events.
        #[arg(long)]
        chaos: bool,
        /// Directory of the demo database (recreated each run).
        #[arg(long, default_value = "demo-data", value_name = "DIR")]
        data_dir: PathBuf,
        /// Simulator seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Run the MesoLive simulator alone.
    #[cfg(feature = "sim")]
    Sim(Box<mesolive_sim::SimArgs>),
    /// End-to-end benchmarks against the built-in simulator (median of several runs).
    #[cfg(feature = "sim")]
    Bench {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Runs per scenario.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Small sizes and short windows: a smoke test, not figures.
        #[arg(long)]
        quick: bool,
        /// Only these scenarios, e.g. `2,3` (1 transport, 2 ingest, 3 replay, 4 recovery,
        /// 5 monitoring, 6 startup, 7 sweep, 8 PostgreSQL vs SQLite — needs database.url, run
        /// only when named, 9 Python baseline, 10 reaction latency); default: every one but 8.
        /// With database.url set, 2, 3 and 7 run on PostgreSQL.
        #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u8).range(1..=10))]
        only: Vec<u8>,
        /// Background events/s under the reaction scenario (10): default 10,000 (1,000 with
        /// --quick); lower on a machine whose daemon cannot ingest that much.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        background: Option<u64>,
    },
    /// Health checks against the configured hubs, in runbook order.
    Check {
        #[command(subcommand)]
        check: CheckCommand,
        /// Print JSON instead of tables.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Print the persisted state: cursor, in-flight intents, jobs, monitored positions.
    State {
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// SQLite database file (default: database.url if set, else database.path).
        #[arg(long, value_name = "PATH")]
        database: Option<PathBuf>,
    },
    /// Probe the running daemon's /readyz (the Docker HEALTHCHECK).
    Health,
    /// Control the running daemon over its control socket (ops.control_socket).
    Ctl {
        #[command(subcommand)]
        command: CtlCommand,
        /// Why (recorded with the action).
        #[arg(long, global = true, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// The configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Operator notifications (`notify.sinks`).
    Notify {
        #[command(subcommand)]
        command: NotifyCommand,
    },
}

#[derive(Debug, Subcommand)]
enum CtlCommand {
    /// Trading state, role, hubs, cursor and lag, active workflows, last operator actions.
    Status {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Send nothing that changes state (reads, settling and monitoring go on).
    Halt,
    /// Start no entries (nor adjustments unless allowed); exits go on.
    ReduceOnly,
    /// Trade again: the paused workflows continue.
    Resume,
    /// Re-read the configuration (as SIGHUP does).
    Reload,
    /// Cancel an active workflow.
    CancelWorkflow {
        /// The workflow id (`state` and `ctl status` list them).
        id: i64,
    },
}

impl CtlCommand {
    fn request(self, reason: Option<String>) -> (Request, bool) {
        let state = |state| Request::SetState {
            state,
            reason: reason.clone(),
        };
        match self {
            CtlCommand::Status { json } => (Request::Status, json),
            CtlCommand::Halt => (state(TradingState::Halted), false),
            CtlCommand::ReduceOnly => (state(TradingState::ReduceOnly), false),
            CtlCommand::Resume => (state(TradingState::Active), false),
            CtlCommand::Reload => (Request::Reload, false),
            CtlCommand::CancelWorkflow { id } => (
                Request::CancelWorkflow {
                    id,
                    reason: reason.clone(),
                },
                false,
            ),
        }
    }
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// The effective configuration, each key with the layer it came from (the key redacted).
    Show,
}

#[derive(Debug, Subcommand)]
enum NotifyCommand {
    /// Send one test notification to every sink and print what each answered.
    Test,
}

#[derive(Debug, Subcommand)]
enum CheckCommand {
    /// Control Hub: connected providers/agents.
    Agents,
    /// Control Hub: accounts.
    Accounts {
        /// Most rows listed.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Control Hub: strategies.
    Strategies {
        /// Most rows listed.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Data Hub: an underlying stream yields updates.
    Data {
        /// Underlying symbol.
        #[arg(long, default_value = "SPX")]
        symbol: String,
        /// Data provider (default: hubs.probe_provider, else that of a connected agent).
        #[arg(long, value_name = "P")]
        provider: Option<String>,
        /// How long to listen.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Event Hub: subscribe to all strategies and count callbacks.
    Events {
        /// How long to listen.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Every check above, in runbook order.
    All {
        /// Underlying symbol for the data check.
        #[arg(long, default_value = "SPX")]
        symbol: String,
        /// Seconds for the data and event checks.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Rows listed for accounts and strategies.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Print the raw answers behind every INFERRED wire detail, with a verdict each.
    Probe,
}

impl From<CheckCommand> for Check {
    fn from(command: CheckCommand) -> Check {
        match command {
            CheckCommand::Agents => Check::Agents,
            CheckCommand::Accounts { limit } => Check::Accounts { limit },
            CheckCommand::Strategies { limit } => Check::Strategies { limit },
            CheckCommand::Data {
                symbol,
                provider,
                seconds,
            } => Check::Data {
                symbol,
                provider,
                seconds,
            },
            CheckCommand::Events { seconds } => Check::Events { seconds },
            CheckCommand::All {
                symbol,
                seconds,
                limit,
            } => Check::All {
                symbol,
                seconds,
                limit,
            },
            CheckCommand::Probe => Check::Probe,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(err) => return fail(exit::CONFIG, err),
    };
    #[cfg(feature = "sim")]
    if matches!(cli.command, Command::Demo { .. } | Command::Bench { .. }) {
        // The demo's live view and the benchmark's report own the terminal (and the daemons
        // they run in-process would log every monitor): only warnings and errors are logged.
        settings.log.filter = "warn".into();
    }
    logging::init(&settings.log);
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    match cli.command {
        Command::Run => {
            if let Err(err) = settings.require_api_key() {
                return fail(exit::CONFIG, err);
            }
            block_on(async move {
                match daemon::run(settings, Notifier::from_env()).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(err) => fail(err.exit_code(), err),
                }
            })
        }
        Command::State { json, database } => {
            let location = match database {
                Some(path) => Location::Sqlite(path),
                None => settings.store_location(),
            };
            let format = if json {
                ReportFormat::Json
            } else {
                ReportFormat::Table
            };
            block_on(async move {
                match state_report(&location, format).await {
                    Ok(report) => {
                        println!("{report}");
                        ExitCode::SUCCESS
                    }
                    Err(err) => fail(exit::IO_ERROR, err),
                }
            })
        }
        Command::Ctl { command, reason } => {
            let (request, json) = command.request(reason);
            block_on(async move {
                let outcome = client::run(&settings, request, json).await;
                if outcome.code == exit::OK {
                    println!("{}", outcome.text);
                    ExitCode::SUCCESS
                } else {
                    fail(outcome.code, outcome.text)
                }
            })
        }
        Command::Config {
            command: ConfigCommand::Show,
        } => match settings.show() {
            Ok(keys) => {
                let rows = keys
                    .into_iter()
                    .map(|k| vec![k.key, k.value, k.layer.as_str().to_owned()])
                    .collect();
                print!("{}", columns(&["KEY", "VALUE", "FROM"], rows));
                ExitCode::SUCCESS
            }
            Err(err) => fail(exit::CONFIG, err),
        },
        Command::Health => {
            let listen = settings.ops.listen;
            block_on(async move {
                match http::probe_ready(listen).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(err) => fail(exit::FAILURE, err),
                }
            })
        }
        Command::Notify {
            command: NotifyCommand::Test,
        } => block_on(async move {
            match notify_command::send_test(&settings).await {
                Ok(answers) => {
                    print!("{}", notify_command::render(&answers));
                    let refused = answers.iter().filter(|a| !a.delivered).count();
                    if refused == 0 {
                        ExitCode::SUCCESS
                    } else {
                        fail(
                            exit::FAILURE,
                            format!(
                                "{refused} of {} sinks did not take the test notification",
                                answers.len()
                            ),
                        )
                    }
                }
                Err(err) => fail(err.exit_code(), err),
            }
        }),
        Command::Check { check, json } => {
            if let Err(err) = settings.require_api_key() {
                return fail(exit::CONFIG, err);
            }
            let check = Check::from(check);
            block_on(async move {
                let reports = check::run(&settings, &check).await;
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&reports).unwrap_or_default()
                    );
                } else {
                    print!("{}", check::render_table(&reports));
                }
                match reports.iter().find(|r| !r.ok) {
                    None => ExitCode::SUCCESS,
                    Some(failed) => fail(
                        exit::FAILURE,
                        format!("check {} failed: {}", failed.check, failed.summary),
                    ),
                }
            })
        }
        #[cfg(feature = "sim")]
        Command::Sim(args) => match mesolive_sim::run_cli(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(exit::FAILURE, err),
        },
        #[cfg(feature = "sim")]
        Command::Bench {
            json,
            runs,
            quick,
            only,
            background,
        } => {
            let options = BenchOptions {
                runs,
                quick,
                only,
                background,
            };
            block_on(async move {
                match bench::run(settings, options).await {
                    Ok(report) => {
                        if json {
                            println!("{}", report.to_json());
                        } else {
                            print!("{}", report.table());
                        }
                        if report.failures.is_empty() {
                            ExitCode::SUCCESS
                        } else {
                            let failed: Vec<String> = report
                                .failures
                                .iter()
                                .map(|f| f.scenario.to_string())
                                .collect();
                            fail(
                                exit::FAILURE,
                                format!("scenario(s) {} failed", failed.join(", ")),
                            )
                        }
                    }
                    Err(err) => fail(exit::FAILURE, err),
                }
            })
        }
        #[cfg(feature = "sim")]
        Command::Demo {
            duration,
            chaos,
            data_dir,
            seed,
        } => {
            let options = DemoOptions {
                duration,
                chaos,
                data_dir,
                seed,
            };
            block_on(async move {
                match demo::run(settings, options).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(err) => fail(exit::FAILURE, err),
                }
            })
        }
    }
}

/// Prints the one-line reason and returns the exit status.
fn fail(code: u8, err: impl std::fmt::Display) -> ExitCode {
    eprintln!("mesolive-supervisor: {err}");
    ExitCode::from(code)
}

fn block_on(work: impl Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(work),
        Err(err) => fail(
            exit::FAILURE,
            format!("cannot start the async runtime: {err}"),
        ),
    }
}
