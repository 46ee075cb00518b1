//! TLS setup shared by every outbound connection: rustls with the `ring` provider (no C/CMake
//! build) and the system's roots. Certificate verification is never switched off; a private or
//! self-signed server is trusted only through an explicitly configured extra CA file
//! (for example a private CA of the server).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Why the TLS client configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The extra CA file cannot be read or holds no usable certificate.
    #[error("{path}: {reason}")]
    ExtraCa {
        /// The configured file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("rustls: {0}")]
    Rustls(String),
}

/// Installs `ring` as the process-wide rustls provider, which reqwest needs before building any
/// client. Idempotent: a provider already installed is kept.
pub fn install_default_provider() {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
}

/// The client configuration: system roots plus the certificates of `extra_ca_file` (empty path:
/// none).
///
/// # Errors
///
/// [`TlsError`] when the extra CA file is unreadable or holds no certificate, or rustls refuses
/// the configuration.
pub fn client_config(extra_ca_file: &Path) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!(%error, "a system root certificate could not be loaded");
    }
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    let mut total = added;
    if !extra_ca_file.as_os_str().is_empty() {
        let extra = ca_file(extra_ca_file)?;
        let (added, _) = roots.add_parsable_certificates(extra);
        if added == 0 {
            return Err(TlsError::ExtraCa {
                path: extra_ca_file.display().to_string(),
                reason: "no usable certificate in it".into(),
            });
        }
        total += added;
    }
    if total == 0 {
        tracing::warn!(
            "no trusted root certificates (install ca-certificates or configure an extra CA file): https hubs will be refused"
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsError::Rustls(err.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |reason: String| TlsError::ExtraCa {
        path: path.display().to_string(),
        reason,
    };
    let iter = CertificateDer::pem_file_iter(path).map_err(|err| fail(err.to_string()))?;
    iter.collect::<Result<Vec<_>, _>>()
        .map_err(|err| fail(err.to_string()))
}
