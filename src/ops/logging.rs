//! Process-wide structured logging: text for humans, JSON for log shippers, always to stderr
//! (systemd's journal and Docker both collect it there). The filter can be replaced while the
//! process runs ([`set_filter`], a reload of `log.filter`).

use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Registry, reload};

use crate::config::{LogFormat, LogSettings};

/// Log targets whose most verbose records would carry the API key, with the most verbose level
/// they may log at whatever the filter says: tungstenite traces the whole WebSocket upgrade
/// request, `Authorization` header and `access_token` query included.
const SECRET_BEARING_TARGETS: &[(&str, LevelFilter)] =
    &[("tungstenite::handshake::client", LevelFilter::DEBUG)];

/// Installs the global subscriber. `RUST_LOG`, when set and not empty, wins over `log.filter`.
/// Either way [`SECRET_BEARING_TARGETS`] are capped: a second filter that only ever lowers
/// their level (an `EnvFilter` directive would also raise it, logging their debug records
/// under `log.filter = "warn"`). Calling it twice is harmless (the second call keeps the first
/// subscriber).
pub fn init(settings: &LogSettings) {
    let filter = env_directives()
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .or_else(|| EnvFilter::try_new(&settings.filter).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let caps = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(SECRET_BEARING_TARGETS.iter().copied());
    // A closed stderr must not take the daemon down (the internal-error report would panic).
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let (filter, handle) = reload::Layer::new(filter);
    let _first = FILTER.set(Handle {
        reload: handle,
        from_env: env_wins(),
    });
    let registry = tracing_subscriber::registry().with(filter).with(caps);
    let _already_set = match settings.format {
        LogFormat::Text => registry.with(output).try_init(),
        LogFormat::Json => registry.with(output.json().flatten_event(true)).try_init(),
    };
}

/// The filter installed by [`init`], and whether `RUST_LOG` chose it.
struct Handle {
    reload: reload::Handle<EnvFilter, Registry>,
    from_env: bool,
}

static FILTER: OnceLock<Handle> = OnceLock::new();

fn env_directives() -> Option<String> {
    std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|directives| !directives.trim().is_empty())
}

fn env_wins() -> bool {
    env_directives().is_some_and(|directives| EnvFilter::try_new(directives).is_ok())
}

/// Replaces the filter with `directives` (a reload of `log.filter`). A filter chosen by
/// `RUST_LOG` stays (the environment wins, as at start); `Err` says why nothing changed.
pub fn set_filter(directives: &str) -> Result<(), String> {
    let Some(handle) = FILTER.get() else {
        return Err("logging is not initialised".into());
    };
    if handle.from_env {
        return Err("RUST_LOG is set and wins over log.filter".into());
    }
    let filter = EnvFilter::try_new(directives).map_err(|err| err.to_string())?;
    handle.reload.reload(filter).map_err(|err| err.to_string())
}
