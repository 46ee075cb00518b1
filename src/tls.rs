//! TLS setup shared by every outbound connection: rustls with the `ring` provider (no C/CMake
//! build) and the system's roots. Certificate verification is never switched off; a private or
//! self-signed server is trusted only through an explicitly configured extra CA file.

/// Installs `ring` as the process-wide rustls provider, which reqwest needs before building any
/// client. Idempotent: a provider already installed is kept.
pub fn install_default_provider() {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
}
