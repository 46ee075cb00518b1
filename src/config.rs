//! Layered settings: the embedded `config/default.toml` → an optional `--config` file →
//! `MESOLIVE__SECTION__KEY` environment variables. Everything is validated before anything
//! connects; a bad setting is one [`ConfigError`] line naming the key, the value and what is
//! expected (the CLI exits with status 78, EX_CONFIG).
//!
//! The API key is a [`ApiKey`]: it comes from `MESOLIVE_API_KEY` or `hubs.api_key_file`, never
//! from a TOML file, and its `Debug`/`Display` are redacted so it cannot reach a log line. The
//! notification sinks' secrets (`notify.sinks[N].secret_file`) are [`Secret`]s the same way.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mesolive_api::wire::encode::{DecimalForm, Outbound};
use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

use crate::notifications::notice::Severity;
use crate::store::{Location, PostgresLocation, TradingState, is_plain_identifier};

/// The embedded defaults; the single source of every key's default value.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Environment variable holding the API key (the alternative to `hubs.api_key_file`).
pub const API_KEY_ENV: &str = "MESOLIVE_API_KEY";

/// Environment variable holding the PostgreSQL password (the alternative to
/// `database.password_file`), as libpq reads it.
pub const PASSWORD_ENV: &str = "PGPASSWORD";

/// A setting that cannot be used; its `Display` is the one line the operator sees.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key holds a value of the wrong shape or out of range.
    #[error("config: {key} = {value}: expected {expected}")]
    Invalid {
        /// Dotted key, e.g. `hubs.base_url`.
        key: String,
        /// The offending value as the operator wrote it (never a secret).
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// The layers could not be read or merged (syntax error, unknown key, wrong type).
    #[error("config: {0}")]
    Load(String),
    /// A secret file (`hubs.api_key_file`, `notify.sinks[N].secret_file`) cannot be used.
    #[error("config: {key} = {path:?}: {reason}")]
    KeyFile {
        /// The dotted key that names the file.
        key: String,
        /// The configured path.
        path: PathBuf,
        /// Why it cannot be used (unreadable, empty).
        reason: String,
    },
    /// A command that talks to MesoLive was started without an API key.
    #[error(
        "config: hubs.api_key_file = \"\": expected an API key in {API_KEY_ENV} or a key file in hubs.api_key_file"
    )]
    MissingApiKey,
}

impl From<config::ConfigError> for ConfigError {
    fn from(err: config::ConfigError) -> Self {
        ConfigError::Load(one_line(&err.to_string()))
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A secret read from the environment or a file (the API key, a webhook's HMAC key, a
/// Telegram bot token). Redacted in `Debug` and `Display`; read it only with
/// [`Secret::expose`] at the point where it is used.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// The MesoLive API key.
pub type ApiKey = Secret;

impl Secret {
    /// Wraps a secret taken from the environment, a file, or a test.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself, where it goes on the wire (the bearer header, an HMAC key, a bot
    /// token in a URL that is never logged).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Everything the daemon can be told, after layering and validation.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where the three hubs are and how to talk to them.
    pub hubs: HubSettings,
    /// The SQLite state file.
    pub database: DatabaseSettings,
    /// What the daemon may do on signals.
    pub automation: AutomationSettings,
    /// Restart policy and shutdown.
    pub supervisor: SupervisorSettings,
    /// Event replay, batching and dedupe.
    pub events: EventSettings,
    /// Position monitoring.
    pub monitor: MonitorSettings,
    /// Health and metrics listener, control socket.
    pub ops: OpsSettings,
    /// Active/standby failover.
    pub ha: HaSettings,
    /// Logging.
    pub log: LogSettings,
    /// Risk limits checked before an intent is committed.
    pub risk: RiskSettings,
    /// Operator notifications.
    pub notify: NotifySettings,
    /// The API key, from the environment or `hubs.api_key_file`; never from TOML.
    #[serde(skip)]
    pub api_key: Option<ApiKey>,
    /// The `--config` file these settings were read from (a reload reads it again).
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
    /// Non-fatal findings (e.g. a key file readable by others), logged once logging is up.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// `[hubs]`: hub URLs, credentials and SignalR timing.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HubSettings {
    /// Origin of the hubs, e.g. `https://mesolive.io`.
    pub base_url: String,
    /// Path of the Control Hub.
    pub control_path: String,
    /// Path of the Data Hub.
    pub data_path: String,
    /// Path of the Event Hub.
    pub event_path: String,
    /// File holding the API key; empty means `MESOLIVE_API_KEY`.
    pub api_key_file: PathBuf,
    /// Extra PEM CA bundle to trust; empty means system roots only.
    pub extra_ca_file: PathBuf,
    /// Per-call invocation timeout.
    #[serde(with = "humantime_serde")]
    pub invocation_timeout: Duration,
    /// Client SignalR ping interval.
    #[serde(with = "humantime_serde")]
    pub keep_alive_interval: Duration,
    /// Silence after which the server is declared dead.
    #[serde(with = "humantime_serde")]
    pub server_timeout: Duration,
    /// Deadline for negotiate + upgrade + handshake.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// Largest inbound SignalR record accepted.
    pub max_message_bytes: usize,
    /// Callbacks allowed to queue before the connection is recycled.
    pub max_pending_callbacks: usize,
    /// Symbol used to prove the Data Hub works when no position is open.
    pub probe_symbol: String,
    /// Data provider for free-standing data calls (the server requires one, API §3.2.1); empty
    /// means none is configured: the underlying proof and `check data` cannot run.
    pub probe_provider: String,
    /// How values the daemon sends are written where the API leaves it open.
    pub wire: WireSettings,
}

/// `[hubs.wire]`: outbound encodings the API leaves open (every encoding choice is listed in
/// `mesolive_api::wire::encode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireSettings {
    /// `number` (binds on every ASP.NET Core server) or `string`.
    pub decimal: DecimalForm,
}

impl WireSettings {
    /// The encodings the argument builders use.
    pub fn outbound(&self) -> Outbound {
        Outbound {
            decimal: self.decimal,
        }
    }
}

/// `database.synchronous`: how hard SQLite pushes each commit to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SynchronousMode {
    /// Every commit survives power loss.
    Full,
    /// Commits survive a process crash; the last few may be lost on power loss.
    Normal,
}

/// `[database]`: where the state is kept (an SQLite file, or PostgreSQL when `url` is set).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Path of the SQLite file (ignored when `url` is set).
    pub path: PathBuf,
    /// `postgres://user@host:5432/db`: the state is in PostgreSQL; empty means SQLite.
    pub url: String,
    /// File holding the PostgreSQL password; empty means `PGPASSWORD` (never the TOML).
    pub password_file: PathBuf,
    /// PostgreSQL schema of the tables (created if missing).
    pub schema: String,
    /// The PostgreSQL password, from `password_file` or `PGPASSWORD`.
    #[serde(skip)]
    pub password: Option<Password>,
    /// Durability of each commit.
    pub synchronous: SynchronousMode,
    /// How long a write waits for another connection's lock.
    #[serde(with = "humantime_serde")]
    pub busy_timeout: Duration,
    /// Number of read-only connections.
    pub read_pool_size: u32,
}

/// The PostgreSQL password. Redacted in `Debug`: it cannot reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The password itself, for the connection only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// `[ha]`: active/standby failover on a shared PostgreSQL store.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HaSettings {
    /// Run as one of an active/standby group (needs `database.url`).
    pub enabled: bool,
    /// Daemons with the same group share one leader.
    pub group: String,
    /// How long a lease lasts after each renewal (renewed every third of it).
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// A leader stops sending once its last renewal is older than `lease_ttl - safety_margin`.
    #[serde(with = "humantime_serde")]
    pub safety_margin: Duration,
    /// This daemon's name in the lease (`state` shows it); empty means the host name.
    pub node: String,
}

/// `automation.mode`: the explicit answer to "may this process trade?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AutomationMode {
    /// Record signals and intended actions; send nothing.
    Observe,
    /// Execute on paper accounts only.
    Paper,
    /// Execute on paper and broker accounts (allow list required).
    Live,
}

impl fmt::Display for AutomationMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AutomationMode::Observe => "observe",
            AutomationMode::Paper => "paper",
            AutomationMode::Live => "live",
        })
    }
}

/// `automation.order_type`: how live leg-group orders are priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStyle {
    /// A limit order at the plan's mid price (market order when the plan has no price).
    LimitMid,
    /// A market order.
    Market,
}

/// `[automation]`: what the daemon may do on signals.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AutomationSettings {
    /// observe | paper | live.
    pub mode: AutomationMode,
    /// Strategy ids the automation may act on; empty means all (not allowed in live mode).
    #[serde(deserialize_with = "ids_from_list_or_csv")]
    pub allow_strategies: Vec<i64>,
    /// Quantity multiplier sent with entry orders.
    pub qty_multiplier: rust_decimal::Decimal,
    /// Entries are refused while a strategy has this many open positions on the account.
    pub max_open_positions: u32,
    /// How live orders are priced.
    pub order_type: OrderStyle,
    /// Leg uniqueness rule for entries (INFERRED member names).
    pub leg_selection_constraint: String,
    /// Adjustment operation used when an adjustment signal names none; empty: such signals are
    /// recorded, not acted on.
    pub adjustment_operation: String,
    /// A prepare job silent for this long is polled with GetPreparePosition*Status.
    #[serde(with = "humantime_serde")]
    pub job_poll_after: Duration,
    /// A prepare job not finished this long after it started is polled, then cancelled.
    #[serde(with = "humantime_serde")]
    pub job_timeout: Duration,
    /// A live order not final this long after the last leg group was sent is cancelled.
    #[serde(with = "humantime_serde")]
    pub order_timeout: Duration,
    /// Retry a failed exit or adjustment while its signal stays On.
    pub exit_retry: bool,
    /// Retry a failed entry while its signal stays On (off: an entry is tried once).
    pub entry_retry: bool,
    /// The first retry's delay; each further retry waits twice as long.
    #[serde(with = "humantime_serde")]
    pub exit_retry_backoff: Duration,
    /// The longest delay between two attempts.
    #[serde(with = "humantime_serde")]
    pub exit_retry_backoff_max: Duration,
    /// Most retries after the first attempt of one signal instance; unset: no limit while the
    /// signal holds.
    #[serde(default)]
    pub exit_retry_max: Option<u32>,
    /// Per-strategy overrides of the sizing and limits above, keyed by strategy id.
    #[serde(default)]
    pub strategies: HashMap<String, StrategyOverrides>,
    /// The trading state a database that has none starts in (a fresh database); afterwards
    /// the stored state wins, so a halted daemon starts halted.
    pub initial_state: TradingState,
    /// Whether adjustments are sent while the trading state is `reduce_only`.
    pub adjust_in_reduce_only: bool,
}

/// `[automation.strategies.<id>]`: one strategy's own sizing and limits.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyOverrides {
    /// Overrides `automation.qty_multiplier`.
    pub qty_multiplier: Option<rust_decimal::Decimal>,
    /// Overrides `automation.max_open_positions`.
    pub max_open_positions: Option<u32>,
}

impl AutomationSettings {
    /// Whether signals of this strategy may lead to actions.
    pub fn allows(&self, strategy_id: i64) -> bool {
        self.allow_strategies.is_empty() || self.allow_strategies.contains(&strategy_id)
    }

    fn overrides(&self, strategy_id: i64) -> Option<&StrategyOverrides> {
        self.strategies.get(&strategy_id.to_string())
    }

    /// The entry quantity multiplier of a strategy (its override, else the default).
    pub fn qty_multiplier_for(&self, strategy_id: i64) -> rust_decimal::Decimal {
        self.overrides(strategy_id)
            .and_then(|o| o.qty_multiplier)
            .unwrap_or(self.qty_multiplier)
    }

    /// The open-position limit of a strategy per account (its override, else the default).
    pub fn max_open_positions_for(&self, strategy_id: i64) -> u32 {
        self.overrides(strategy_id)
            .and_then(|o| o.max_open_positions)
            .unwrap_or(self.max_open_positions)
    }
}

/// `[supervisor]`: restart policy and shutdown.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorSettings {
    /// First retry delay.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    /// Largest retry delay.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Growth factor between retries.
    pub backoff_multiplier: f32,
    /// Randomize delays so many daemons do not reconnect in lockstep.
    pub backoff_jitter: bool,
    /// Restarts of one child tolerated within `restart_window`.
    pub restart_max: u32,
    /// Window of the restart intensity limit.
    #[serde(with = "humantime_serde")]
    pub restart_window: Duration,
    /// Time in-flight work gets after SIGTERM.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

/// `events.first_run`: where a daemon with no cursor starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FirstRun {
    /// Start at the server's latest EventSeqId; take state from Control Hub reads.
    Latest,
    /// Replay the whole history the server keeps.
    All,
}

/// `events.on_history_gap`: what to do when the server no longer has the events after the
/// cursor (API §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnHistoryGap {
    /// Resync the state from the Control Hub, move the cursor past the hole, go on.
    Resync,
    /// Record the hole and exit with status 66 (systemd does not restart it).
    Stop,
}

impl OnHistoryGap {
    /// The setting's value, as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            OnHistoryGap::Resync => "resync",
            OnHistoryGap::Stop => "stop",
        }
    }
}

/// `[events]`: replay, batching and dedupe.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventSettings {
    /// Where a first run starts.
    pub first_run: FirstRun,
    /// GetEventsSince page size.
    pub replay_page_size: u32,
    /// Most events per SQLite transaction.
    pub batch_max: usize,
    /// How long processed EventIds are kept for dedupe.
    #[serde(with = "humantime_serde")]
    pub dedupe_window: Duration,
    /// What a hole in the server's history leads to.
    pub on_history_gap: OnHistoryGap,
}

/// `[monitor]`: position monitoring.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorSettings {
    /// Period of the snapshot resync per position.
    #[serde(with = "humantime_serde")]
    pub snapshot_resync_interval: Duration,
    /// Age after which a position's data is reported stale.
    #[serde(with = "humantime_serde")]
    pub stale_after: Duration,
}

/// `[ops]`: the health/metrics listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OpsSettings {
    /// Listen address of `/healthz`, `/readyz`, `/metrics` (port 0: any free port; the daemon
    /// logs the one it bound).
    pub listen: SocketAddr,
    /// Unix socket of `ctl`; empty: `mesolive-supervisor.sock` beside the database.
    pub control_socket: PathBuf,
}

/// The control socket's file name when `ops.control_socket` is empty.
pub const CONTROL_SOCKET_NAME: &str = "mesolive-supervisor.sock";

/// Longest Unix socket path the kernel accepts (`sun_path` holds 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// `[risk]`: limits checked before an intent is committed. An absent key is no limit.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RiskSettings {
    /// Entries started per account per trading day.
    #[serde(default)]
    pub max_entries_per_day: Option<u32>,
    /// State-changing calls per account in any 60-second window.
    #[serde(default)]
    pub max_orders_per_minute: Option<u32>,
    /// Open positions (and entries in flight) per account, all strategies together.
    #[serde(default)]
    pub max_open_positions_total: Option<u32>,
    /// Realized loss per account per trading day that switches the trading state.
    #[serde(default)]
    pub max_daily_loss: Option<rust_decimal::Decimal>,
    /// The state `max_daily_loss` switches to: reduce_only or halted.
    pub on_daily_loss: TradingState,
    /// IANA time zone of the trading day, e.g. `America/New_York`.
    pub day_timezone: String,
}

impl RiskSettings {
    /// The trading day's time zone (validated at load; New York should it ever not parse).
    pub fn timezone(&self) -> chrono_tz::Tz {
        self.day_timezone
            .parse()
            .unwrap_or(chrono_tz::America::New_York)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("risk.max_entries_per_day", self.max_entries_per_day),
            ("risk.max_orders_per_minute", self.max_orders_per_minute),
            (
                "risk.max_open_positions_total",
                self.max_open_positions_total,
            ),
        ] {
            if value == Some(0) {
                return Err(invalid(
                    key,
                    "0",
                    "at least 1 (leave the key out for no limit; reduce_only stops entries)",
                ));
            }
        }
        if let Some(loss) = self.max_daily_loss
            && loss <= rust_decimal::Decimal::ZERO
        {
            return Err(invalid(
                "risk.max_daily_loss",
                &loss.to_string(),
                "a loss above zero, e.g. 500 (leave the key out for no limit)",
            ));
        }
        if self.on_daily_loss == TradingState::Active {
            return Err(invalid(
                "risk.on_daily_loss",
                "\"active\"",
                "\"reduce_only\" or \"halted\"",
            ));
        }
        if self.day_timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err(invalid(
                "risk.day_timezone",
                &quoted(&self.day_timezone),
                "an IANA time zone such as \"America/New_York\"",
            ));
        }
        Ok(())
    }
}

/// Checks `ops.listen` as written, before deserializing, so a bad value is reported naming its
/// key (serde's own error would not).
fn check_listen(config: &config::Config) -> Result<(), ConfigError> {
    let raw = config.get_string("ops.listen")?;
    match raw.parse::<SocketAddr>() {
        Ok(_) => Ok(()),
        Err(_) => Err(invalid(
            "ops.listen",
            &quoted(&raw),
            "an IP:port socket address such as \"127.0.0.1:9187\"",
        )),
    }
}

/// `log.format`: human or machine logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// `[log]`: logging.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// text | json.
    pub format: LogFormat,
    /// tracing EnvFilter directives.
    pub filter: String,
}

/// `notify.sinks[N].kind`: the format a sink takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// A generic JSON webhook (`id`, `kind`, `severity`, `at`, `text`, `data`), signed with
    /// HMAC-SHA256 when it has a secret.
    Webhook,
    /// A Slack (or Mattermost) incoming webhook: `{"text": …}`.
    Slack,
    /// A Discord webhook: `{"content": …}`.
    Discord,
    /// The Telegram Bot API's `sendMessage` (bot token from `secret_file`).
    Telegram,
}

impl SinkKind {
    /// The configured name.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Webhook => "webhook",
            SinkKind::Slack => "slack",
            SinkKind::Discord => "discord",
            SinkKind::Telegram => "telegram",
        }
    }
}

/// The Telegram Bot API's origin, when a telegram sink names no `url`.
pub const TELEGRAM_API: &str = "https://api.telegram.org";

/// `[[notify.sinks]]`: one place notifications go.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSettings {
    /// The format.
    pub kind: SinkKind,
    /// The webhook URL; for telegram the Bot API's origin (default [`TELEGRAM_API`]). `config
    /// show` prints a fingerprint, never the URL (it often carries a token).
    #[serde(default, serialize_with = "fingerprint")]
    pub url: String,
    /// webhook: the HMAC key (optional); telegram: the bot token (required). Never in TOML.
    #[serde(default)]
    pub secret_file: PathBuf,
    /// telegram: the chat to send to.
    #[serde(default)]
    pub chat_id: String,
    /// The least severity this sink takes (default: `notify.min_severity`).
    #[serde(default)]
    pub min_severity: Option<Severity>,
    /// Only these notification kinds (empty: every kind).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// The secret read from `secret_file`.
    #[serde(skip)]
    pub secret: Option<Secret>,
}

/// A value shown only as a fingerprint: enough to see that it changed (a reload compares the
/// shown values), nothing to read it back from.
fn fingerprint<S: serde::Serializer>(value: &str, serializer: S) -> Result<S::Ok, S::Error> {
    use std::hash::{Hash, Hasher};
    if value.is_empty() {
        return serializer.serialize_str("");
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut hasher);
    serializer.serialize_str(&format!("<redacted {:08x}>", hasher.finish() >> 32))
}

/// `[notify]`: operator notifications through a durable outbox.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// The least severity a sink takes unless it says otherwise.
    pub min_severity: Severity,
    /// A hub down for longer than this is notified.
    #[serde(with = "humantime_serde")]
    pub hub_down_after: Duration,
    /// Not ready for longer than this is notified.
    #[serde(with = "humantime_serde")]
    pub not_ready_after: Duration,
    /// Most notifications kept undelivered; past it the oldest are dropped.
    pub max_pending: u32,
    /// Per delivery attempt.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// First delay after a failed attempt.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    /// Longest delay between attempts.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Where notifications go (none: nothing is queued).
    #[serde(default)]
    pub sinks: Vec<SinkSettings>,
}

impl SinkSettings {
    /// The least severity this sink takes, given the `notify.min_severity` default.
    pub fn min_severity_or(&self, default: Severity) -> Severity {
        self.min_severity.unwrap_or(default)
    }
}

impl Settings {
    /// Layers the embedded defaults, an optional file and the process environment, then validates.
    pub fn load(config_file: Option<&Path>) -> Result<Settings, ConfigError> {
        Settings::load_from(config_file, std::env::vars().collect())
    }

    /// As [`Settings::load`], with the environment given explicitly (tests, the demo).
    pub fn load_from(
        config_file: Option<&Path>,
        env: HashMap<String, String>,
    ) -> Result<Settings, ConfigError> {
        let api_key_env = env
            .get(API_KEY_ENV)
            .filter(|k| !k.trim().is_empty())
            .cloned();
        let password_env = env.get(PASSWORD_ENV).filter(|p| !p.is_empty()).cloned();
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(path) = config_file {
            if !path.is_file() {
                return Err(ConfigError::Load(format!(
                    "--config {}: no such file",
                    path.display()
                )));
            }
            builder = builder.add_source(
                config::File::from(path)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        builder = builder.add_source(environment(env));
        let config = builder.build()?;
        check_listen(&config)?;
        let mut settings: Settings = config.try_deserialize()?;
        settings.validate()?;
        settings.api_key = settings.read_api_key(api_key_env)?;
        settings.database.password = settings.read_password(password_env)?;
        settings.config_file = config_file.map(Path::to_path_buf);
        settings.read_sink_secrets()?;
        Ok(settings)
    }

    /// The control socket: `ops.control_socket`, or `mesolive-supervisor.sock` in the
    /// database's directory.
    pub fn control_socket(&self) -> PathBuf {
        if !self.ops.control_socket.as_os_str().is_empty() {
            return self.ops.control_socket.clone();
        }
        self.database
            .path
            .parent()
            .unwrap_or(Path::new(""))
            .join(CONTROL_SOCKET_NAME)
    }

    /// Every key with its effective value, dotted (`hubs.base_url`) and sorted: what
    /// `config show` prints and what a reload compares. The API key is not among them.
    pub fn keys(&self) -> BTreeMap<String, serde_json::Value> {
        let mut keys = BTreeMap::new();
        if let Ok(value) = serde_json::to_value(self) {
            flatten("", value, &mut keys);
        }
        keys
    }

    /// Every key with its effective value and the layer it came from, then the API key
    /// (redacted): `config show`.
    pub fn show(&self) -> Result<Vec<ShownKey>, ConfigError> {
        self.show_with(std::env::vars().collect())
    }

    /// As [`Settings::show`], with the environment given explicitly (tests).
    pub fn show_with(&self, env: HashMap<String, String>) -> Result<Vec<ShownKey>, ConfigError> {
        let mut from_file = BTreeMap::new();
        if let Some(path) = &self.config_file {
            let file = config::Config::builder()
                .add_source(config::File::from(path.as_path()).format(config::FileFormat::Toml))
                .build()?;
            flatten("", file.try_deserialize()?, &mut from_file);
        }
        let mut from_env = BTreeMap::new();
        let environment = config::Config::builder()
            .add_source(environment(env.clone()))
            .build()?;
        flatten("", environment.try_deserialize()?, &mut from_env);
        let mut shown: Vec<ShownKey> = self
            .keys()
            .into_iter()
            .map(|(key, value)| {
                let layer = if from_env.contains_key(&key) {
                    Layer::Environment
                } else if from_file.contains_key(&key) {
                    Layer::File
                } else {
                    Layer::Default
                };
                let value = match value {
                    serde_json::Value::String(text) => quoted(&text),
                    other => other.to_string(),
                };
                ShownKey { key, value, layer }
            })
            .collect();
        let key_layer = if !self.hubs.api_key_file.as_os_str().is_empty() {
            Layer::KeyFile
        } else if env.get(API_KEY_ENV).is_some_and(|k| !k.trim().is_empty()) {
            Layer::Environment
        } else {
            Layer::Default
        };
        shown.push(ShownKey {
            key: "api_key".into(),
            value: if self.api_key.is_some() {
                ApiKey::new("").to_string()
            } else {
                "(not set)".into()
            },
            layer: key_layer,
        });
        Ok(shown)
    }

    /// The API key, or the error a command that must talk to MesoLive reports.
    pub fn require_api_key(&self) -> Result<&ApiKey, ConfigError> {
        self.api_key.as_ref().ok_or(ConfigError::MissingApiKey)
    }

    fn read_api_key(&mut self, from_env: Option<String>) -> Result<Option<ApiKey>, ConfigError> {
        let path = self.hubs.api_key_file.clone();
        if path.as_os_str().is_empty() {
            return Ok(from_env.map(|k| ApiKey::new(k.trim())));
        }
        read_secret_file(
            "hubs.api_key_file",
            &path,
            "the API key",
            &mut self.warnings,
        )
        .map(Some)
    }

    /// Reads every sink's `secret_file` (validated before: telegram has one).
    fn read_sink_secrets(&mut self) -> Result<(), ConfigError> {
        for (n, sink) in self.notify.sinks.iter_mut().enumerate() {
            if sink.secret_file.as_os_str().is_empty() {
                continue;
            }
            let what = match sink.kind {
                SinkKind::Telegram => "the bot token",
                _ => "the HMAC key",
            };
            let key = format!("notify.sinks[{n}].secret_file");
            sink.secret = Some(read_secret_file(
                &key,
                &sink.secret_file,
                what,
                &mut self.warnings,
            )?);
        }
        Ok(())
    }

    /// Where the state is kept: PostgreSQL when `database.url` is set, else the SQLite file.
    pub fn store_location(&self) -> Location {
        let db = &self.database;
        if db.url.is_empty() {
            return Location::Sqlite(db.path.clone());
        }
        Location::Postgres(PostgresLocation {
            url: db.url.clone(),
            password: db.password.as_ref().map(|p| p.expose().to_owned()),
            schema: db.schema.clone(),
        })
    }

    fn read_password(&mut self, from_env: Option<String>) -> Result<Option<Password>, ConfigError> {
        let path = self.database.password_file.clone();
        if self.database.url.is_empty() {
            return Ok(None);
        }
        if path.as_os_str().is_empty() {
            return Ok(from_env.map(Password));
        }
        let text = std::fs::read_to_string(&path).map_err(|err| ConfigError::Invalid {
            key: "database.password_file".into(),
            value: quoted(&path.display().to_string()),
            expected: format!("a readable file with the password on its first line ({err})"),
        })?;
        let password = text.lines().next().unwrap_or("").trim_end_matches('\r');
        if password.is_empty() {
            return Err(invalid(
                "database.password_file",
                &quoted(&path.display().to_string()),
                "a file with the password on its first line (it is empty)",
            ));
        }
        if let Some(mode) = group_or_other_readable(&path) {
            self.warnings.push(format!(
                "database.password_file {} has mode {mode:o}: readable by group or others; chmod 600 it",
                path.display()
            ));
        }
        Ok(Some(Password(password.to_owned())))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.hubs.validate()?;
        let db = &self.database;
        if db.url.is_empty() && db.path.as_os_str().is_empty() {
            return Err(invalid("database.path", "\"\"", "a file path"));
        }
        if !db.url.is_empty() {
            check_postgres_url(&db.url)?;
        }
        if !is_plain_identifier(&db.schema) {
            return Err(invalid(
                "database.schema",
                &quoted(&db.schema),
                "a lower-case identifier such as \"mesolive\" (letters, digits, _)",
            ));
        }
        self.ha.validate(!db.url.is_empty())?;
        if db.read_pool_size == 0 {
            return Err(invalid("database.read_pool_size", "0", "at least 1"));
        }
        let auto = &self.automation;
        if auto.mode == AutomationMode::Live && auto.allow_strategies.is_empty() {
            return Err(invalid(
                "automation.allow_strategies",
                "[]",
                "a non-empty list of strategy ids when automation.mode = \"live\" (live trading acts only on strategies named explicitly)",
            ));
        }
        if auto.qty_multiplier <= rust_decimal::Decimal::ZERO {
            return Err(invalid(
                "automation.qty_multiplier",
                &auto.qty_multiplier.to_string(),
                "a number above zero",
            ));
        }
        if auto.max_open_positions == 0 {
            return Err(invalid("automation.max_open_positions", "0", "at least 1"));
        }
        for (id, overrides) in &auto.strategies {
            let key = |field: &str| format!("automation.strategies.{id}.{field}");
            if id.parse::<i64>().is_err() {
                return Err(invalid(
                    &format!("automation.strategies.{id}"),
                    &quoted(id),
                    "a numeric strategy id",
                ));
            }
            if overrides
                .qty_multiplier
                .is_some_and(|q| q <= rust_decimal::Decimal::ZERO)
            {
                return Err(invalid(
                    &key("qty_multiplier"),
                    "≤ 0",
                    "a number above zero",
                ));
            }
            if overrides.max_open_positions == Some(0) {
                return Err(invalid(&key("max_open_positions"), "0", "at least 1"));
            }
        }
        positive("automation.job_poll_after", auto.job_poll_after)?;
        positive("automation.job_timeout", auto.job_timeout)?;
        positive("automation.order_timeout", auto.order_timeout)?;
        positive("automation.exit_retry_backoff", auto.exit_retry_backoff)?;
        if auto.exit_retry_backoff_max < auto.exit_retry_backoff {
            return Err(invalid(
                "automation.exit_retry_backoff_max",
                &quoted(&humantime::format_duration(auto.exit_retry_backoff_max).to_string()),
                "a duration at least automation.exit_retry_backoff",
            ));
        }
        if auto.exit_retry_max == Some(0) {
            return Err(invalid(
                "automation.exit_retry_max",
                "0",
                "at least 1 (leave it unset for no limit, or set automation.exit_retry = false)",
            ));
        }
        self.risk.validate()?;
        let socket = self.control_socket();
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(invalid(
                "ops.control_socket",
                &quoted(&socket.display().to_string()),
                "a path of at most 107 bytes (a Unix socket limit): set ops.control_socket",
            ));
        }
        self.supervisor.validate()?;
        let ev = &self.events;
        if ev.replay_page_size == 0 {
            return Err(invalid("events.replay_page_size", "0", "at least 1"));
        }
        if ev.batch_max == 0 {
            return Err(invalid("events.batch_max", "0", "at least 1"));
        }
        positive("events.dedupe_window", ev.dedupe_window)?;
        positive(
            "monitor.snapshot_resync_interval",
            self.monitor.snapshot_resync_interval,
        )?;
        positive("monitor.stale_after", self.monitor.stale_after)?;
        self.notify.validate()?;
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&self.log.filter) {
            return Err(ConfigError::Invalid {
                key: "log.filter".into(),
                value: quoted(&self.log.filter),
                expected: format!("tracing filter directives such as \"info\" ({err})"),
            });
        }
        Ok(())
    }
}

impl HubSettings {
    /// The URL of one hub: base URL joined with its path.
    pub fn hub_url(&self, path: &str) -> Result<Url, ConfigError> {
        let base = self.base()?;
        let mut url = base.clone();
        let joined = format!("{}{}", base.path().trim_end_matches('/'), path);
        url.set_path(&joined);
        Ok(url)
    }

    fn base(&self) -> Result<Url, ConfigError> {
        let expected =
            "an absolute http://, https://, ws:// or wss:// URL such as \"https://mesolive.io\"";
        let url = Url::parse(&self.base_url)
            .map_err(|_| invalid("hubs.base_url", &quoted(&self.base_url), expected))?;
        match url.scheme() {
            "http" | "https" | "ws" | "wss" if url.host().is_some() => Ok(url),
            _ => Err(invalid("hubs.base_url", &quoted(&self.base_url), expected)),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.base()?;
        for (key, path) in [
            ("hubs.control_path", &self.control_path),
            ("hubs.data_path", &self.data_path),
            ("hubs.event_path", &self.event_path),
        ] {
            if !path.starts_with('/') || path.contains(['?', '#', ' ']) {
                return Err(invalid(key, &quoted(path), "a URL path starting with '/'"));
            }
        }
        for (key, value) in [
            ("hubs.invocation_timeout", self.invocation_timeout),
            ("hubs.keep_alive_interval", self.keep_alive_interval),
            ("hubs.handshake_timeout", self.handshake_timeout),
        ] {
            positive(key, value)?;
        }
        if self.server_timeout < self.keep_alive_interval * 2 {
            return Err(invalid(
                "hubs.server_timeout",
                &humantime::format_duration(self.server_timeout).to_string(),
                "at least twice hubs.keep_alive_interval",
            ));
        }
        if self.max_message_bytes < 1024 {
            return Err(invalid(
                "hubs.max_message_bytes",
                &self.max_message_bytes.to_string(),
                "at least 1024",
            ));
        }
        if self.max_pending_callbacks == 0 {
            return Err(invalid("hubs.max_pending_callbacks", "0", "at least 1"));
        }
        Ok(())
    }
}

impl HaSettings {
    /// The checks that need nothing but the settings. `shared` says whether the store is
    /// PostgreSQL: failover on an SQLite file is refused.
    fn validate(&self, shared: bool) -> Result<(), ConfigError> {
        if self.enabled && !shared {
            return Err(invalid(
                "ha.enabled",
                "true",
                "false, or database.url set to a PostgreSQL database (an SQLite file cannot be \
                 shared by two daemons)",
            ));
        }
        if self.group.trim().is_empty() {
            return Err(invalid(
                "ha.group",
                "\"\"",
                "a group name such as \"default\"",
            ));
        }
        if self.lease_ttl < Duration::from_secs(1) {
            return Err(invalid(
                "ha.lease_ttl",
                &humantime::format_duration(self.lease_ttl).to_string(),
                "at least 1s",
            ));
        }
        positive("ha.safety_margin", self.safety_margin)?;
        // Renewals come every third of the ttl: the margin must leave room for one to fail
        // and the next to succeed before the sending deadline.
        if self.safety_margin * 3 >= self.lease_ttl * 2 {
            return Err(invalid(
                "ha.safety_margin",
                &humantime::format_duration(self.safety_margin).to_string(),
                "less than two thirds of ha.lease_ttl",
            ));
        }
        Ok(())
    }

    /// The name this daemon holds the lease under: the node (or host) name and the process id.
    pub fn holder(&self) -> String {
        let node = if self.node.is_empty() {
            host_name()
        } else {
            self.node.clone()
        };
        format!("{node}:{}", std::process::id())
    }
}

/// The host name, or `unknown-host` if the system will not tell.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// `database.url` as written: a `postgres://` URL with a host, a user and no password (the
/// password comes from `database.password_file` or `PGPASSWORD`), and a known `sslmode`.
fn check_postgres_url(raw: &str) -> Result<(), ConfigError> {
    let expected = "postgres://user@host:5432/dbname (optionally ?sslmode=verify-full)";
    let shown = |url: &Url| {
        let mut shown = url.clone();
        let _ = shown.set_password(None);
        quoted(shown.as_str())
    };
    let url = Url::parse(raw).map_err(|_| invalid("database.url", "<unparsable>", expected))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") || url.host().is_none() {
        return Err(invalid("database.url", &shown(&url), expected));
    }
    if url.password().is_some() {
        return Err(invalid(
            "database.url",
            &shown(&url),
            "a URL without a password: put it in database.password_file or PGPASSWORD",
        ));
    }
    for (key, value) in url.query_pairs() {
        if key == "sslmode"
            && !matches!(
                value.as_ref(),
                "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full"
            )
        {
            return Err(invalid(
                "database.url",
                &shown(&url),
                "sslmode one of disable, allow, prefer, require, verify-ca, verify-full",
            ));
        }
    }
    Ok(())
}

impl SupervisorSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        positive("supervisor.backoff_initial", self.backoff_initial)?;
        if self.backoff_max < self.backoff_initial {
            return Err(invalid(
                "supervisor.backoff_max",
                &humantime::format_duration(self.backoff_max).to_string(),
                "at least supervisor.backoff_initial",
            ));
        }
        if !(self.backoff_multiplier >= 1.0 && self.backoff_multiplier.is_finite()) {
            return Err(invalid(
                "supervisor.backoff_multiplier",
                &self.backoff_multiplier.to_string(),
                "a number ≥ 1.0",
            ));
        }
        if self.restart_max == 0 {
            return Err(invalid("supervisor.restart_max", "0", "at least 1"));
        }
        positive("supervisor.restart_window", self.restart_window)?;
        positive("supervisor.shutdown_grace", self.shutdown_grace)
    }
}

/// The `MESOLIVE__SECTION__KEY` layer over `env`.
fn environment(env: HashMap<String, String>) -> config::Environment {
    config::Environment::with_prefix("MESOLIVE")
        .prefix_separator("__")
        .separator("__")
        .source(Some(env.into_iter().collect()))
}

/// Where a key's effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// The embedded `config/default.toml`.
    Default,
    /// The `--config` file.
    File,
    /// A `MESOLIVE__*` variable (or `MESOLIVE_API_KEY`).
    Environment,
    /// The file named by `hubs.api_key_file` (the API key only).
    KeyFile,
}

impl Layer {
    /// The name `config show` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Default => "default",
            Layer::File => "file",
            Layer::Environment => "environment",
            Layer::KeyFile => "hubs.api_key_file",
        }
    }
}

/// One line of `config show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShownKey {
    /// Dotted key.
    pub key: String,
    /// Effective value as TOML-ish text (strings quoted).
    pub value: String,
    /// Where it came from.
    pub layer: Layer,
}

/// Flattens a JSON tree into dotted keys; arrays and scalars are values.
fn flatten(prefix: &str, value: serde_json::Value, out: &mut BTreeMap<String, serde_json::Value>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                let dotted = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&dotted, value, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other);
        }
    }
}

/// The keys whose effective value differs between `old` and `new` (set or unset included).
pub fn changed_keys(old: &Settings, new: &Settings) -> Vec<String> {
    let (old, new) = (old.keys(), new.keys());
    let mut changed: Vec<String> = old
        .iter()
        .filter(|(key, value)| new.get(*key) != Some(*value))
        .map(|(key, _)| key.clone())
        .chain(new.keys().filter(|key| !old.contains_key(*key)).cloned())
        .collect();
    changed.sort();
    changed.dedup();
    changed
}

/// Whether a key can change while the daemon runs: `automation.*`, `risk.*` and `log.filter`
/// are read at every use; every other key was used to build something at start (connections,
/// the store, listeners, the restart policy, the event pump) and needs a restart.
pub fn applies_live(key: &str) -> bool {
    key.starts_with("automation.") || key.starts_with("risk.") || key == "log.filter"
}

impl NotifySettings {
    fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("notify.hub_down_after", self.hub_down_after),
            ("notify.not_ready_after", self.not_ready_after),
            ("notify.timeout", self.timeout),
            ("notify.backoff_initial", self.backoff_initial),
        ] {
            positive(key, value)?;
        }
        if self.backoff_max < self.backoff_initial {
            return Err(invalid(
                "notify.backoff_max",
                &humantime::format_duration(self.backoff_max).to_string(),
                "at least notify.backoff_initial",
            ));
        }
        if self.max_pending < 2 {
            return Err(invalid(
                "notify.max_pending",
                &self.max_pending.to_string(),
                "at least 2",
            ));
        }
        for (n, sink) in self.sinks.iter().enumerate() {
            sink.validate(n)?;
        }
        Ok(())
    }
}

impl SinkSettings {
    /// The URL a sink posts to (telegram: the Bot API origin), checked.
    pub fn endpoint(&self, n: usize) -> Result<Url, ConfigError> {
        let key = format!("notify.sinks[{n}].url");
        let text = match (self.kind, self.url.as_str()) {
            (SinkKind::Telegram, "") => TELEGRAM_API,
            (_, "") => {
                return Err(invalid(
                    &key,
                    "\"\"",
                    "the webhook's URL, e.g. \"https://example.org/hook\"",
                ));
            }
            (_, url) => url,
        };
        let expected = "an absolute http:// or https:// URL";
        // The value is never echoed: a webhook URL often carries a token in its path.
        let url = Url::parse(text).map_err(|_| invalid(&key, "(not shown)", expected))?;
        match url.scheme() {
            "http" | "https" if url.host().is_some() => Ok(url),
            _ => Err(invalid(&key, "(not shown)", expected)),
        }
    }

    fn validate(&self, n: usize) -> Result<(), ConfigError> {
        let key = |field: &str| format!("notify.sinks[{n}].{field}");
        self.endpoint(n)?;
        let has_secret = !self.secret_file.as_os_str().is_empty();
        match self.kind {
            SinkKind::Telegram if !has_secret => {
                return Err(invalid(
                    &key("secret_file"),
                    "\"\"",
                    "a file holding the Telegram bot token",
                ));
            }
            SinkKind::Telegram if self.chat_id.trim().is_empty() => {
                return Err(invalid(
                    &key("chat_id"),
                    "\"\"",
                    "the Telegram chat id to send to",
                ));
            }
            SinkKind::Slack | SinkKind::Discord if has_secret => {
                return Err(invalid(
                    &key("secret_file"),
                    &quoted(&self.secret_file.display().to_string()),
                    "nothing: only webhook (HMAC key) and telegram (bot token) sinks read a secret file",
                ));
            }
            _ => {}
        }
        if self.kind != SinkKind::Telegram && !self.chat_id.is_empty() {
            return Err(invalid(
                &key("chat_id"),
                &quoted(&self.chat_id),
                "nothing: only telegram sinks have a chat id",
            ));
        }
        if let Some(unknown) = self
            .kinds
            .iter()
            .find(|kind| crate::notifications::notice::Kind::from_name(kind).is_none())
        {
            let known: Vec<&str> = crate::notifications::notice::Kind::ALL
                .iter()
                .map(|k| k.as_str())
                .collect();
            return Err(invalid(
                &key("kinds"),
                &quoted(unknown),
                &format!("notification kinds among {}", known.join(", ")),
            ));
        }
        Ok(())
    }
}

/// Reads a secret from the first line of `path` (trimmed), warning when the file is readable
/// by group or others.
fn read_secret_file(
    key: &str,
    path: &Path,
    what: &str,
    warnings: &mut Vec<String>,
) -> Result<Secret, ConfigError> {
    let file_error = |reason: String| ConfigError::KeyFile {
        key: key.to_owned(),
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|err| file_error(format!("cannot be read: {err}")))?;
    let secret = text.lines().next().unwrap_or("").trim();
    if secret.is_empty() {
        return Err(file_error(format!(
            "is empty: expected {what} on its first line"
        )));
    }
    if let Some(mode) = group_or_other_readable(path) {
        warnings.push(format!(
            "{key} {} has mode {mode:o}: readable by group or others; chmod 600 it",
            path.display()
        ));
    }
    Ok(Secret::new(secret))
}

fn invalid(key: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        expected: expected.into(),
    }
}

fn positive(key: &str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(invalid(
            key,
            "\"0s\"",
            "a duration above zero such as \"15s\"",
        ));
    }
    Ok(())
}

fn quoted(value: &str) -> String {
    format!("{value:?}")
}

#[cfg(unix)]
fn group_or_other_readable(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn group_or_other_readable(_path: &Path) -> Option<u32> {
    None
}

/// Accepts `[1, 2]`, `"1,2"` (the environment form) or a single `1`.
fn ids_from_list_or_csv<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrText {
        List(Vec<i64>),
        One(i64),
        Text(String),
    }
    match ListOrText::deserialize(de)? {
        ListOrText::List(ids) => Ok(ids),
        ListOrText::One(id) => Ok(vec![id]),
        ListOrText::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| {
                part.parse::<i64>().map_err(|_| {
                    serde::de::Error::custom(format!(
                        "{part:?} is not a strategy id: expected integers such as \"101,102\""
                    ))
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(env: &[(&str, &str)]) -> Settings {
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::load_from(None, env).expect("valid settings")
    }

    #[test]
    fn changed_keys_name_every_key_that_differs_set_or_unset() {
        let old = settings(&[]);
        assert!(changed_keys(&old, &old.clone()).is_empty());
        let new = settings(&[
            ("MESOLIVE__AUTOMATION__MODE", "paper"),
            ("MESOLIVE__RISK__MAX_ENTRIES_PER_DAY", "3"),
            ("MESOLIVE__HUBS__BASE_URL", "https://example.test"),
        ]);
        assert_eq!(
            changed_keys(&old, &new),
            [
                "automation.mode",
                "hubs.base_url",
                "risk.max_entries_per_day"
            ]
        );
        // Unsetting a limit is a change too.
        assert_eq!(
            changed_keys(&new, &old),
            [
                "automation.mode",
                "hubs.base_url",
                "risk.max_entries_per_day"
            ]
        );
    }

    #[test]
    fn every_risk_limit_is_validated_naming_its_key_and_value() {
        let refused = |key: &str, value: &str| {
            let env = [(key.to_owned(), value.to_owned())].into_iter().collect();
            match Settings::load_from(None, env) {
                Err(err) => err.to_string(),
                Ok(_) => panic!("{key}={value} accepted"),
            }
        };
        for (key, name) in [
            (
                "MESOLIVE__RISK__MAX_ENTRIES_PER_DAY",
                "risk.max_entries_per_day = 0",
            ),
            (
                "MESOLIVE__RISK__MAX_ORDERS_PER_MINUTE",
                "risk.max_orders_per_minute = 0",
            ),
            (
                "MESOLIVE__RISK__MAX_OPEN_POSITIONS_TOTAL",
                "risk.max_open_positions_total = 0",
            ),
        ] {
            assert!(refused(key, "0").starts_with(&format!("config: {name}")));
        }
        assert!(
            refused("MESOLIVE__RISK__MAX_DAILY_LOSS", "-5")
                .starts_with("config: risk.max_daily_loss = -5")
        );
        assert!(
            refused("MESOLIVE__RISK__ON_DAILY_LOSS", "active")
                .starts_with("config: risk.on_daily_loss = \"active\"")
        );
        assert!(
            refused("MESOLIVE__RISK__DAY_TIMEZONE", "Mars/Olympus")
                .starts_with("config: risk.day_timezone = \"Mars/Olympus\"")
        );
        let limits = settings(&[
            ("MESOLIVE__RISK__MAX_DAILY_LOSS", "750.5"),
            ("MESOLIVE__RISK__DAY_TIMEZONE", "Europe/London"),
        ])
        .risk;
        assert_eq!(
            limits.max_daily_loss,
            Some(rust_decimal::Decimal::new(7505, 1))
        );
        assert_eq!(limits.timezone(), chrono_tz::Europe::London);
        assert_eq!(limits.max_entries_per_day, None);
    }

    #[test]
    fn only_automation_risk_and_the_log_filter_apply_live() {
        for key in [
            "automation.mode",
            "automation.strategies.101.qty_multiplier",
            "risk.max_daily_loss",
            "log.filter",
        ] {
            assert!(applies_live(key), "{key}");
        }
        for key in [
            "hubs.base_url",
            "database.path",
            "ops.listen",
            "ops.control_socket",
            "supervisor.shutdown_grace",
            "events.batch_max",
            "monitor.stale_after",
            "log.format",
        ] {
            assert!(!applies_live(key), "{key}");
        }
    }

    #[test]
    fn config_show_names_the_layer_of_each_key_and_redacts_the_key() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let file = dir.path().join("mesolive.toml");
        std::fs::write(
            &file,
            "[automation]\nmode = \"paper\"\n[risk]\nmax_entries_per_day = 4\n",
        )
        .expect("config written");
        let env: HashMap<String, String> = [
            ("MESOLIVE__AUTOMATION__MODE", "live"),
            ("MESOLIVE__AUTOMATION__ALLOW_STRATEGIES", "101"),
            ("MESOLIVE_API_KEY", "secret-key-value"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let loaded = Settings::load_from(Some(&file), env.clone()).expect("valid");
        let shown = loaded.show_with(env).expect("shown");
        let layer = |key: &str| {
            shown
                .iter()
                .find(|s| s.key == key)
                .map(|s| (s.value.clone(), s.layer))
                .unwrap_or_else(|| panic!("{key} not shown: {shown:?}"))
        };
        assert_eq!(
            layer("automation.mode"),
            ("\"live\"".into(), Layer::Environment)
        );
        assert_eq!(layer("risk.max_entries_per_day"), ("4".into(), Layer::File));
        assert_eq!(layer("risk.day_timezone").1, Layer::Default);
        assert_eq!(layer("api_key"), ("<redacted>".into(), Layer::Environment));
        assert!(!format!("{shown:?}").contains("secret-key-value"));
    }
}
