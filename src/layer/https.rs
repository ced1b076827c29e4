//! How the layer learns that a request came over HTTPS.
//!
//! APIG accepts simple authentication only over HTTPS. With [`HttpsPolicy::required`] the layer
//! refuses plain HTTP with `400 APIG.0607`. A request counts as HTTPS when either holds:
//!
//! 1. it carries a [`ConnectionInfo`] extension with `tls: true` (the server that terminated TLS
//!    inserts it; the `apig-appcode` gateway does);
//! 2. it carries `X-Forwarded-Proto: https` **and** its [`ConnectionInfo::peer`] is in the trusted
//!    proxy networks. A forwarded header from any other peer is ignored, so a client cannot claim
//!    HTTPS over a plain connection.
//!
//! The request's URI scheme never counts: the client writes it (an absolute-form target
//! `https://host/path` over plain TCP, or an HTTP/2 `:scheme` over h2c), so it proves nothing
//! about the connection. Without a [`ConnectionInfo`], every request counts as plain HTTP.
//!
//! # Example
//!
//! ```
//! use apig_appcode::layer::HttpsPolicy;
//!
//! let policy = HttpsPolicy::required()
//!     .trust_forwarded_proto_from("10.0.0.0/8".parse().unwrap());
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::Request;

/// Facts about the connection a request came on, inserted into request extensions by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The address of the immediate peer.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// Whether plain HTTP is refused, and which proxies are trusted to say the client used HTTPS.
#[derive(Debug, Clone, Default)]
pub struct HttpsPolicy {
    required: bool,
    trusted: Vec<IpNetwork>,
}

impl HttpsPolicy {
    /// Plain HTTP is accepted (the default).
    pub fn optional() -> Self {
        Self::default()
    }

    /// Plain HTTP is refused with `400 APIG.0607`.
    pub fn required() -> Self {
        Self {
            required: true,
            trusted: Vec::new(),
        }
    }

    /// Trusts `X-Forwarded-Proto` from peers in `network` (needs [`ConnectionInfo`]).
    pub fn trust_forwarded_proto_from(mut self, network: IpNetwork) -> Self {
        self.trusted.push(network);
        self
    }

    /// Whether plain HTTP is refused.
    pub fn is_required(&self) -> bool {
        self.required
    }

    /// The proxies it trusts.
    pub(crate) fn trusted(&self) -> &[IpNetwork] {
        &self.trusted
    }

    /// Trusts these proxies too.
    pub(crate) fn trusting(mut self, networks: impl IntoIterator<Item = IpNetwork>) -> Self {
        self.trusted.extend(networks);
        self
    }

    /// Whether the policy lets `req` through.
    pub(crate) fn admits<B>(&self, req: &Request<B>) -> bool {
        !self.required || is_https(req, &self.trusted)
    }
}

fn is_https<B>(req: &Request<B>, trusted: &[IpNetwork]) -> bool {
    let Some(conn) = req.extensions().get::<ConnectionInfo>() else {
        return false;
    };
    if conn.tls {
        return true;
    }
    let peer = conn.peer.ip();
    trusted.iter().any(|net| net.contains(peer))
        && req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// An IP network in CIDR notation (`10.0.0.0/8`, `::1/128`); a bare address is a /32 or /128.
///
/// Our own type rather than `ipnet::IpNet`: ipnet refuses a bare address and does not match
/// IPv4-mapped IPv6 peers against IPv4 networks, so wrapping it would take as much code as this,
/// and a type of another crate in the core's public API would tie our semver to its.
///
/// ```
/// use apig_appcode::layer::IpNetwork;
///
/// let proxies: IpNetwork = "10.0.0.0/8".parse().unwrap();
/// assert!(proxies.contains("10.1.2.3".parse().unwrap()));
/// assert!(proxies.contains("::ffff:10.1.2.3".parse().unwrap()));
/// assert_eq!("192.0.2.7".parse::<IpNetwork>().unwrap().to_string(), "192.0.2.7/32");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// Whether `ip` is inside the network. IPv4-mapped IPv6 addresses match IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// A string that is not an IP network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpNetworkError(String);

impl fmt::Display for IpNetworkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not an IP network (want ADDR or ADDR/PREFIX): {:?}",
            self.0
        )
    }
}

impl std::error::Error for IpNetworkError {}

impl FromStr for IpNetwork {
    type Err = IpNetworkError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IpNetworkError(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(err)?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, conn: Option<ConnectionInfo>, fwd: Option<&str>) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        if let Some(f) = fwd {
            b = b.header("x-forwarded-proto", f);
        }
        let mut r = b.body(()).unwrap();
        if let Some(c) = conn {
            r.extensions_mut().insert(c);
        }
        r
    }

    fn conn(peer: &str, tls: bool) -> Option<ConnectionInfo> {
        Some(ConnectionInfo {
            peer: peer.parse().unwrap(),
            tls,
        })
    }

    #[test]
    fn scheme_sources() {
        let p = HttpsPolicy::required().trust_forwarded_proto_from("10.0.0.0/8".parse().unwrap());
        assert!(
            !p.admits(&req("https://h/x", None, None)),
            "the client writes the scheme"
        );
        assert!(
            !p.admits(&req("https://h/x", conn("1.2.3.4:5", false), None)),
            "an absolute-form https target over plain TCP"
        );
        assert!(!p.admits(&req("/x", None, None)));
        assert!(p.admits(&req("/x", conn("1.2.3.4:5", true), None)));
        assert!(!p.admits(&req("/x", conn("1.2.3.4:5", false), None)));
        assert!(p.admits(&req("/x", conn("10.1.2.3:5", false), Some("HTTPS"))));
        assert!(
            !p.admits(&req("/x", conn("11.1.2.3:5", false), Some("https"))),
            "untrusted peer"
        );
        assert!(!p.admits(&req("/x", None, Some("https"))), "no peer known");
        assert!(!p.admits(&req("/x", conn("10.1.2.3:5", false), Some("http"))));
        assert!(HttpsPolicy::optional().admits(&req("/x", None, None)));
    }

    #[test]
    fn networks() {
        let n: IpNetwork = "192.168.1.0/24".parse().unwrap();
        assert!(n.contains("192.168.1.77".parse().unwrap()));
        assert!(!n.contains("192.168.2.1".parse().unwrap()));
        assert!(n.contains("::ffff:192.168.1.5".parse().unwrap()));
        let all: IpNetwork = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let one: IpNetwork = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
        for bad in ["", "10.0.0.0/33", "::/129", "host", "1.2.3.4/x"] {
            assert!(bad.parse::<IpNetwork>().is_err(), "{bad}");
        }
    }
}
