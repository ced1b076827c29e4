//! [`RedisUrl`]: a Redis URL parsed once, shown everywhere without its password.

use std::fmt;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

/// A `redis://` or `rediss://` URL, parsed; `Display` and `Debug` hide its password.
///
/// ```
/// use apig_appcode::throttle::RedisUrl;
///
/// let url = RedisUrl::parse("rediss://apig:pa55@cache.internal:6380/2").unwrap();
/// assert_eq!(url.to_string(), "rediss://apig:***@cache.internal:6380/2");
/// assert_eq!(format!("{url:?}"), "rediss://apig:***@cache.internal:6380/2");
/// let err = RedisUrl::parse("http://:pa55@cache.internal").unwrap_err();
/// assert!(!err.to_string().contains("pa55"));
/// ```
#[derive(Clone)]
pub struct RedisUrl {
    /// Boxed: a configuration holds the URL by value beside small variants.
    pub(super) info: Box<ConnectionInfo>,
    shown: String,
    /// PEM CA certificates trusted instead of the system's, for `rediss://`.
    pub(super) root_certificates: Option<Vec<u8>>,
}

/// A Redis URL that cannot be used. The message never holds the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisUrlError(&'static str);

impl fmt::Display for RedisUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}; expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or rediss://… for TLS",
            self.0
        )
    }
}

impl std::error::Error for RedisUrlError {}

impl RedisUrl {
    /// Parses `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`, or `rediss://…` for TLS, verified
    /// against the system's root certificates or
    /// [`root_certificates`](Self::root_certificates).
    pub fn parse(s: &str) -> Result<Self, RedisUrlError> {
        if !(s.starts_with("redis://") || s.starts_with("rediss://")) {
            return Err(RedisUrlError("not a redis:// or rediss:// URL"));
        }
        // The crate's error may quote the URL: only its verdict is kept.
        let info = s
            .into_connection_info()
            .map_err(|_| RedisUrlError("not a valid Redis URL"))?;
        let (scheme, host, port, insecure) = match &info.addr {
            ConnectionAddr::Tcp(host, port) => ("redis", host, port, false),
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure,
                ..
            } => ("rediss", host, port, *insecure),
            ConnectionAddr::Unix(_) => return Err(RedisUrlError("not a TCP address")),
        };
        if insecure {
            return Err(RedisUrlError(
                "`#insecure` (TLS without verification) is not supported; trust Redis's CA \
                 certificate instead",
            ));
        }
        // Built from the parsed parts, so no spelling of a password can slip through.
        let user = match (&info.redis.username, &info.redis.password) {
            (Some(user), Some(_)) => format!("{user}:***@"),
            (None, Some(_)) => ":***@".to_owned(),
            (Some(user), None) => format!("{user}@"),
            (None, None) => String::new(),
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let shown = format!("{scheme}://{user}{host}:{port}/{}", info.redis.db);
        Ok(Self {
            info: Box::new(info),
            shown,
            root_certificates: None,
        })
    }

    /// Trusts the CA certificates in `pem` (one or more, PEM) instead of the system's, for a
    /// private CA; `rediss://` URLs only.
    pub fn root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Result<Self, RedisUrlError> {
        if !matches!(self.info.addr, ConnectionAddr::TcpTls { .. }) {
            return Err(RedisUrlError("CA certificates need a rediss:// URL"));
        }
        self.root_certificates = Some(pem.into());
        Ok(self)
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

// By what is connected to and with which credentials; the password is compared, not shown.
impl PartialEq for RedisUrl {
    fn eq(&self, other: &Self) -> bool {
        self.shown == other.shown && self.info.redis.password == other.info.redis.password
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password() {
        for (given, shown) in [
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            (
                "redis://:pa55word@cache:6379/3",
                "redis://:***@cache:6379/3",
            ),
            (
                "redis://apig:pa55word@cache/1",
                "redis://apig:***@cache:6379/1",
            ),
            (
                "rediss://:pa55word@cache:6380",
                "rediss://:***@cache:6380/0",
            ),
            ("redis://[::1]:7000/2", "redis://[::1]:7000/2"),
        ] {
            let url = RedisUrl::parse(given).unwrap();
            assert_eq!(url.to_string(), shown, "{given}");
            assert_eq!(format!("{url:?}"), shown, "{given}");
        }
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        for bad in [
            "http://:pa55word@cache:6379",
            "redis://:pa55word@cache:notaport/0",
            "redis://:pa55word@cache:6379/notadb",
            "rediss://:pa55word@cache:6379/0#insecure",
            "pa55word",
        ] {
            let err = RedisUrl::parse(bad).unwrap_err().to_string();
            assert!(err.contains("redis://"), "{bad}: {err}");
            assert!(!err.contains("pa55word"), "{bad}: {err}");
        }
    }

    #[test]
    fn ca_certificates_go_with_tls_only() {
        let plain = RedisUrl::parse("redis://cache").unwrap();
        assert!(plain.root_certificates(b"pem".to_vec()).is_err());
        let tls = RedisUrl::parse("rediss://cache").unwrap();
        assert!(tls.root_certificates(b"pem".to_vec()).is_ok());
    }
}
