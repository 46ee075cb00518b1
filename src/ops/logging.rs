//! Process-wide structured logging: text for humans, JSON for log shippers, always to stderr
//! (systemd's journal and Docker both collect it there).

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Log targets whose most verbose records would carry the API key, capped whatever the filter
/// says: tungstenite traces the whole WebSocket upgrade request, `Authorization` header and
/// `access_token` query included.
const SECRET_BEARING_TARGETS: &[&str] = &["tungstenite::handshake::client=debug"];

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `log.filter` (except for
/// [`SECRET_BEARING_TARGETS`]). Calling it twice is harmless (the second call keeps the first
/// subscriber).
pub fn init(settings: &LogSettings) {
    let mut filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    for cap in SECRET_BEARING_TARGETS {
        if let Ok(directive) = cap.parse() {
            filter = filter.add_directive(directive);
        }
    }
    // A closed stderr must not take the daemon down (the internal-error report would panic).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let _already_set = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
