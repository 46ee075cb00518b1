//! The default TLS client configuration: system roots, `ring` provider.

use std::sync::{Arc, OnceLock};

use rustls::ClientConfig;

use crate::error::SignalrError;

/// Built once per process: loading the system roots reads many files, and connects must stay
/// cheap because a reconnect is a new connection.
static DEFAULT_CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();

/// The configuration used when `ConnectOptions::tls` is `None`. It names the `ring` provider
/// itself, so no process-wide default provider has to be installed.
pub(super) fn default_client_config() -> Result<Arc<ClientConfig>, SignalrError> {
    if let Some(config) = DEFAULT_CONFIG.get() {
        return Ok(config.clone());
    }
    let config = build_client_config()?;
    Ok(DEFAULT_CONFIG.get_or_init(|| config).clone())
}

fn build_client_config() -> Result<Arc<ClientConfig>, SignalrError> {
    crate::tls::client_config(std::path::Path::new(""))
        .map_err(|error| SignalrError::Tls(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_configuration_builds_without_a_process_wide_provider_and_is_shared() {
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
        let first = default_client_config().expect("builds");
        let second = default_client_config().expect("builds");
        assert!(Arc::ptr_eq(&first, &second), "built once per process");
    }
}
