//! TLS to PostgreSQL with rustls (the `ring` provider the gateway uses), chosen by the URL's
//! `sslmode` and `sslrootcert`.
//!
//! | `sslmode` | TLS | Certificate and host name |
//! |---|---|---|
//! | `disable` (default) | never | - |
//! | `prefer` | if the server offers it, plain otherwise | verified when TLS is used |
//! | `require` | always: a server without TLS is refused | verified |
//! | `verify-full` | always | verified |
//!
//! Unlike libpq, `prefer` and `require` verify the server's certificate and host name: a user
//! who turns TLS on expects it to keep a man in the middle out, and an unverified session does
//! not. The roots are the file `sslrootcert` names (PEM; the CA that signed the server's
//! certificate), or the system's store when it is absent or `system`. libpq's `allow` and
//! `verify-ca` (TLS without a host-name check) are refused rather than silently strengthened or
//! weakened. The default stays `disable` (libpq's is `prefer`), as in earlier versions, which
//! never used TLS. SCRAM channel binding is not offered over these sessions.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::Socket;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// The URL's `sslmode`, as this crate reads it (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum SslMode {
    #[default]
    Disable,
    Prefer,
    Require,
    VerifyFull,
}

/// The TLS parameters taken out of a URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct TlsParams {
    pub(super) mode: SslMode,
    /// `None`: the system's roots.
    pub(super) root_cert: Option<PathBuf>,
}

/// Why a URL's TLS parameters or roots cannot be used. Never holds the URL.
#[derive(Debug)]
pub(super) enum TlsSetupError {
    /// `sslmode` has a value this crate does not accept.
    Mode(String),
    /// A key or value of the `key=value` form is malformed, or a `%` escape is invalid.
    Syntax(&'static str),
    /// `sslrootcert` could not be read, or holds no certificate.
    RootCert { path: PathBuf, why: String },
    /// No `sslrootcert`, and the system's store yielded no root.
    NoSystemRoots(String),
    /// rustls refused the configuration.
    Rustls(rustls::Error),
}

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mode(mode) => write!(
                f,
                "sslmode={mode} is not supported: use disable, prefer, require or verify-full \
                 (TLS sessions always verify the certificate and host name)"
            ),
            Self::Syntax(what) => write!(f, "malformed connection string: {what}"),
            Self::RootCert { path, why } => {
                write!(f, "sslrootcert {}: {why}", path.display())
            }
            Self::NoSystemRoots(why) => write!(
                f,
                "TLS needs root certificates: none found in the system's store ({why}); \
                 name the CA's certificate with sslrootcert=PATH"
            ),
            Self::Rustls(e) => write!(f, "TLS configuration: {e}"),
        }
    }
}

impl std::error::Error for TlsSetupError {}

/// Takes `sslmode` and `sslrootcert` out of `url` (either form tokio-postgres parses: a
/// `postgres://` URL or `key=value` pairs) and returns the rest, for tokio-postgres, which
/// knows neither `verify-full` nor `sslrootcert`.
pub(super) fn split_url(url: &str) -> Result<(String, TlsParams), TlsSetupError> {
    let mut params = TlsParams::default();
    let mut take = |key: &str, value: &str| -> Result<bool, TlsSetupError> {
        match key {
            "sslmode" => {
                params.mode = match value {
                    "disable" => SslMode::Disable,
                    "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-full" => SslMode::VerifyFull,
                    other => return Err(TlsSetupError::Mode(other.to_owned())),
                };
                Ok(true)
            }
            "sslrootcert" => {
                params.root_cert = (value != "system").then(|| PathBuf::from(value));
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), params));
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(&percent_decode(key)?, &percent_decode(value)?)? {
                kept.push(pair);
            }
        }
        if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else {
        let mut kept = String::new();
        for (key, value) in key_values(url)? {
            if !take(&key, &value)? {
                // Re-quoted: the value may have held spaces or quotes.
                let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
                kept.push_str(&format!("{key}='{quoted}' "));
            }
        }
        kept
    };
    Ok((rest, params))
}

/// `%XX` escapes decoded (the URL form); `+` stays `+`, as tokio-postgres reads it.
fn percent_decode(s: &str) -> Result<String, TlsSetupError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(TlsSetupError::Syntax("invalid % escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| TlsSetupError::Syntax("a % escape is not UTF-8"))
}

/// The pairs of libpq's `key = value` form: values bare or in single quotes, `\` escaping.
fn key_values(s: &str) -> Result<Vec<(String, String)>, TlsSetupError> {
    let mut chars = s.chars().peekable();
    let mut pairs = Vec::new();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(TlsSetupError::Syntax("a key without '='"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.push(
                        chars
                            .next()
                            .ok_or(TlsSetupError::Syntax("unterminated quoted value"))?,
                    ),
                    Some(c) => value.push(c),
                    None => return Err(TlsSetupError::Syntax("unterminated quoted value")),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(escaped) = chars.next() {
                        value.push(escaped);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

impl TlsParams {
    /// tokio-postgres's mode for these parameters.
    pub(super) fn driver_mode(&self) -> DriverSslMode {
        match self.mode {
            SslMode::Disable => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            SslMode::Require | SslMode::VerifyFull => DriverSslMode::Require,
        }
    }

    /// The connector: with a verifying rustls configuration unless TLS is disabled.
    pub(super) fn connector(&self) -> Result<MakeRustls, TlsSetupError> {
        if self.mode == SslMode::Disable {
            return Ok(MakeRustls(None));
        }
        let roots = match &self.root_cert {
            Some(path) => file_roots(path)?,
            None => system_roots()?,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsSetupError::Rustls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(MakeRustls(Some(Arc::new(config))))
    }
}

fn file_roots(path: &PathBuf) -> Result<RootCertStore, TlsSetupError> {
    let fail = |why: String| TlsSetupError::RootCert {
        path: path.clone(),
        why,
    };
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| fail(format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(fail("no CERTIFICATE in the file".to_owned()));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| fail(format!("unusable certificate: {e}")))?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, TlsSetupError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "the store is empty".to_owned(), ToString::to_string);
        return Err(TlsSetupError::NoSystemRoots(why));
    }
    Ok(roots)
}

/// Makes rustls sessions for tokio-postgres; `None` when TLS is disabled (the driver's mode is
/// then `Disable`, so it never asks for one).
#[derive(Clone)]
pub(super) struct MakeRustls(Option<Arc<ClientConfig>>);

impl fmt::Debug for MakeRustls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MakeRustls")
            .field(&self.0.as_ref().map(|_| "verifying"))
            .finish()
    }
}

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        // Called for every connection, TLS or not (and with "" for a Unix socket): a name
        // that cannot be verified fails the handshake, if there is one.
        Ok(RustlsConnect {
            config: self.0.clone(),
            name: ServerName::try_from(domain).map(|n| n.to_owned()).ok(),
        })
    }
}

/// One connection's TLS handshake.
pub(super) struct RustlsConnect {
    config: Option<Arc<ClientConfig>>,
    name: Option<ServerName<'static>>,
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let config = self
                .config
                .ok_or_else(|| io::Error::other("TLS is disabled"))?;
            let name = self.name.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the host is not a name or address a certificate can be verified against",
                )
            })?;
            let stream = TlsConnector::from(config).connect(name, stream).await?;
            Ok(RustlsStream(Box::new(stream)))
        })
    }
}

/// A TLS session to the server.
pub(super) struct RustlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> (String, TlsParams) {
        split_url(url).unwrap()
    }

    #[test]
    fn the_default_is_no_tls() {
        let (rest, params) = split("postgres://u:pw@db/app");
        assert_eq!(rest, "postgres://u:pw@db/app");
        assert_eq!(params, TlsParams::default());
        assert_eq!(params.driver_mode(), DriverSslMode::Disable);
    }

    #[test]
    fn url_parameters_are_taken_out_and_the_rest_kept() {
        let (rest, params) = split(
            "postgres://u:pw@db/app?application_name=x&sslmode=verify-full\
             &sslrootcert=%2Fetc%2Fca.pem&options=-c%20a%3Db",
        );
        assert_eq!(
            rest,
            "postgres://u:pw@db/app?application_name=x&options=-c%20a%3Db"
        );
        assert_eq!(params.mode, SslMode::VerifyFull);
        assert_eq!(params.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        let (rest, params) = split("postgresql://db/app?sslmode=require&sslrootcert=system");
        assert_eq!(rest, "postgresql://db/app");
        assert_eq!(params.mode, SslMode::Require);
        assert_eq!(params.root_cert, None);
        assert_eq!(params.driver_mode(), DriverSslMode::Require);
        assert_eq!(
            split("postgres://db/a?sslmode=prefer").1.mode,
            SslMode::Prefer
        );
    }

    #[test]
    fn key_value_parameters_are_taken_out_and_the_rest_requoted() {
        let (rest, params) = split(
            r"host=db password='it\'s' user = me sslmode=verify-full sslrootcert='/a b/ca.pem'",
        );
        assert_eq!(params.mode, SslMode::VerifyFull);
        assert_eq!(params.root_cert, Some(PathBuf::from("/a b/ca.pem")));
        assert!(!rest.contains("ssl"), "{rest}");
        let config: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(config.get_user(), Some("me"));
        assert_eq!(config.get_password(), Some(&b"it's"[..]));
    }

    #[test]
    fn weaker_or_unknown_modes_are_refused_without_quoting_the_url() {
        for mode in ["allow", "verify-ca", "bogus"] {
            let url = format!("postgres://u:secret-pw@db/app?sslmode={mode}");
            let e = split_url(&url).unwrap_err().to_string();
            assert!(e.contains(mode) && e.contains("verify-full"), "{e}");
            assert!(!e.contains("secret-pw"), "{e}");
        }
        assert!(split_url("postgres://db/a?sslrootcert=%zz").is_err());
        assert!(split_url("host='unterminated").is_err());
    }

    #[test]
    fn a_missing_root_file_is_named() {
        let params = TlsParams {
            mode: SslMode::Require,
            root_cert: Some(PathBuf::from("/nonexistent/ca.pem")),
        };
        let e = params.connector().unwrap_err().to_string();
        assert!(e.contains("sslrootcert /nonexistent/ca.pem"), "{e}");
    }
}
