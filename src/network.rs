//! What a request's connection tells about its client: the peer's address and whether it used
//! TLS ([`ConnectionInfo`]), and the IP networks trusted to speak for a client ([`IpNetwork`]).
//! The layer's HTTPS policy and the app ACLs both read them; the server that accepts the
//! connection fills them in.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// Facts about the connection a request came on, inserted into request extensions by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The address of the immediate peer.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
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
