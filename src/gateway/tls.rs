//! TLS for the listeners: a rustls server configuration from PEM files.
//!
//! Returning clients resume their session instead of repeating the full handshake (a signature
//! and a key exchange, most of a new connection's CPU): TLS 1.3 clients with stateless tickets
//! whose keys rotate every 6 hours and expire after 12 (rustls' `Ticketer`), so a key that leaks
//! exposes half a day of sessions at most; TLS 1.2 clients by session ID, from a cache of
//! [`SESSION_CACHE`] sessions shared by every worker. This is what nginx does with
//! `ssl_session_tickets on` and `ssl_session_cache shared`, except that nginx keeps its ticket
//! key for the life of the process.

use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
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

/// Why a certificate and key could not be made into a TLS configuration. Messages name the
/// file and what is wrong with it, never key material.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be opened.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate file is not a PEM certificate chain.
    NotCertificates {
        /// The file.
        path: PathBuf,
        /// What the PEM reader found wrong.
        source: std::io::Error,
    },
    /// The certificate file holds no certificate.
    NoCertificate(PathBuf),
    /// The key file is not a PEM private key. The reader's own message is left out: it may
    /// quote the key's bytes.
    NotKey(PathBuf),
    /// The key file holds no private key.
    NoKey(PathBuf),
    /// rustls refused the pair (a key that does not match the certificate, say).
    Refused {
        /// The certificate chain.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
        /// Why.
        source: tokio_rustls::rustls::Error,
    },
    /// The TLS configuration could not be made.
    Setup(tokio_rustls::rustls::Error),
    /// The session-ticket keys could not be made.
    Tickets(tokio_rustls::rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source } => write!(f, "{}: {source}", path.display()),
            Self::NotCertificates { path, source } => {
                write!(
                    f,
                    "{}: not a PEM certificate chain: {source}",
                    path.display()
                )
            }
            Self::NoCertificate(path) => write!(f, "{}: no certificate found", path.display()),
            Self::NotKey(path) => write!(f, "{}: not a PEM private key", path.display()),
            Self::NoKey(path) => write!(f, "{}: no private key found", path.display()),
            Self::Refused { cert, key, source } => {
                write!(f, "{} / {}: {source}", cert.display(), key.display())
            }
            Self::Setup(e) => write!(f, "TLS setup: {e}"),
            Self::Tickets(e) => write!(f, "TLS session tickets: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } | Self::NotCertificates { source, .. } => Some(source),
            Self::Refused { source, .. } | Self::Setup(source) | Self::Tickets(source) => {
                Some(source)
            }
            Self::NoCertificate(_) | Self::NotKey(_) | Self::NoKey(_) => None,
        }
    }
}

/// A TLS acceptor for `files`, offering HTTP/2 and HTTP/1.1 by ALPN, and session resumption
/// (see the [module docs](self)).
///
/// ```
/// use apig_appcode::gateway::tls::{acceptor, TlsError, TlsFiles};
///
/// let files = TlsFiles { cert: "/no/such/cert.pem".into(), key: "/no/such/key.pem".into() };
/// let Err(err) = acceptor(&files) else { panic!("no such files") };
/// assert!(matches!(err, TlsError::Read { .. }));
/// assert!(err.to_string().starts_with("/no/such/cert.pem: "));
/// ```
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let open = |path: &Path| {
        File::open(path)
            .map(BufReader::new)
            .map_err(|source| TlsError::Read {
                path: path.to_owned(),
                source,
            })
    };
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut open(&files.cert)?)
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::NotCertificates {
            path: files.cert.clone(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(files.cert.clone()));
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut open(&files.key)?)
        .map_err(|_| TlsError::NotKey(files.key.clone()))?
        .ok_or_else(|| TlsError::NoKey(files.key.clone()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|source| TlsError::Refused {
            cert: files.cert.clone(),
            key: files.key.clone(),
            source,
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    config.ticketer = Ticketer::new().map_err(TlsError::Tickets)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn self_signed() -> rcgen::CertifiedKey {
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap()
    }

    #[test]
    fn a_matching_pair_makes_an_acceptor() {
        let dir = tempfile::tempdir().unwrap();
        let pair = self_signed();
        let files = TlsFiles {
            cert: write(dir.path(), "cert.pem", &pair.cert.pem()),
            key: write(dir.path(), "key.pem", &pair.key_pair.serialize_pem()),
        };
        assert!(acceptor(&files).is_ok());
    }

    #[test]
    fn each_bad_file_is_named_with_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let (pair, other) = (self_signed(), self_signed());
        let cert = write(dir.path(), "cert.pem", &pair.cert.pem());
        let key = write(dir.path(), "key.pem", &pair.key_pair.serialize_pem());
        let empty = write(dir.path(), "empty.pem", "");
        let other_key = write(dir.path(), "other.pem", &other.key_pair.serialize_pem());
        let check = |cert: &Path, key: &Path| {
            let files = TlsFiles {
                cert: cert.to_owned(),
                key: key.to_owned(),
            };
            match acceptor(&files) {
                Ok(_) => panic!("{files:?} accepted"),
                Err(e) => e,
            }
        };
        let e = check(&empty, &key);
        assert!(matches!(e, TlsError::NoCertificate(_)), "{e}");
        assert_eq!(
            e.to_string(),
            format!("{}: no certificate found", empty.display())
        );
        let e = check(&cert, &empty);
        assert!(matches!(e, TlsError::NoKey(_)), "{e}");
        let e = check(&cert, &other_key);
        assert!(matches!(e, TlsError::Refused { .. }), "{e}");
        assert!(e.to_string().starts_with(&format!(
            "{} / {}: ",
            cert.display(),
            other_key.display()
        )));
    }

    #[test]
    fn a_malformed_key_is_not_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let pair = self_signed();
        let cert = write(dir.path(), "cert.pem", &pair.cert.pem());
        // A key block whose base64 is broken: the PEM reader's own message would quote it.
        let key = write(
            dir.path(),
            "key.pem",
            "-----BEGIN PRIVATE KEY-----\nS3CR3T!KEY!BYTES\n-----END PRIVATE KEY-----\n",
        );
        let Err(e) = acceptor(&TlsFiles {
            cert,
            key: key.clone(),
        }) else {
            panic!("a malformed key was accepted")
        };
        let said = format!("{e} {e:?}");
        assert!(!said.contains("S3CR3T"), "{said}");
        assert!(matches!(e, TlsError::NotKey(_) | TlsError::NoKey(_)), "{e}");
    }

    /// The two rustls failures that have no file to name say which step failed.
    #[test]
    fn setup_failures_name_their_step() {
        use tokio_rustls::rustls::Error;
        let setup = TlsError::Setup(Error::General("no protocol".into()));
        let tickets = TlsError::Tickets(Error::General("no randomness".into()));
        assert_eq!(
            setup.to_string(),
            "TLS setup: unexpected error: no protocol"
        );
        assert_eq!(
            tickets.to_string(),
            "TLS session tickets: unexpected error: no randomness"
        );
        assert!(std::error::Error::source(&tickets).is_some());
    }
}
