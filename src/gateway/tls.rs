//! TLS for the listeners: a rustls server configuration from PEM files.
//!
//! Returning clients resume their session instead of repeating the full handshake (a signature
//! and a key exchange, most of a new connection's CPU): TLS 1.3 clients with stateless tickets
//! whose keys rotate every 6 hours and expire after 12 (rustls' `Ticketer`), so a key that leaks
//! exposes half a day of sessions at most; TLS 1.2 clients by session ID, from a cache of
//! [`SESSION_CACHE`] sessions shared by every worker. This is what nginx does with
//! `ssl_session_tickets on` and `ssl_session_cache shared`, except that nginx keeps its ticket
//! key for the life of the process.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_rustls::rustls::crypto::ring::Ticketer;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::ServerSessionMemoryCache;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// How many TLS 1.2 sessions are remembered for resumption by ID: about 2.5 MiB at most. nginx's
/// `shared:SSL:10m` holds about 40 000; a TLS 1.2 client past the cache's reach pays one full
/// handshake and is remembered again.
pub const SESSION_CACHE: usize = 10_000;

/// A certificate chain and its private key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// A TLS acceptor for `files`, offering HTTP/2 and HTTP/1.1 by ALPN, and session resumption
/// (see the [module docs](self)).
///
/// Errors name the file and what is wrong with it, never key material.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, String> {
    let open = |path: &std::path::Path| {
        File::open(path)
            .map(BufReader::new)
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut open(&files.cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate chain: {e}", files.cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", files.cert.display()));
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut open(&files.key)?)
        .map_err(|_| format!("{}: not a PEM private key", files.key.display()))?
        .ok_or_else(|| format!("{}: no private key found", files.key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{} / {}: {e}", files.cert.display(), files.key.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    config.ticketer = Ticketer::new().map_err(|e| format!("TLS session tickets: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
