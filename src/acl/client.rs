//! Whose address an app ACL is checked against.

use std::net::{IpAddr, SocketAddr};

use http::header::HeaderName;
use http::Request;

use crate::network::{ConnectionInfo, IpNetwork};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The address of the client that sent `req`, as an app ACL sees it.
///
/// It is the TCP peer ([`ConnectionInfo::peer`]), unless the peer is in `trusted`: then it is
/// the right-most `X-Forwarded-For` address that is not itself in `trusted` (or, if every one
/// is, the left-most). A client's own `X-Forwarded-For` or `X-Real-IP` is never read, because
/// its peer is not trusted. Several `X-Forwarded-For` fields count as one list, in order.
///
/// `None` when the address cannot be told: the request carries no [`ConnectionInfo`], or the
/// part of a trusted proxy's `X-Forwarded-For` that must be read holds something that is not
/// an address (`1.2.3.4`, `1.2.3.4:80`, `2001:db8::1` and `[2001:db8::1]:80` are). No
/// allocation.
///
/// ```
/// use apig_appcode::acl::client_ip;
/// use apig_appcode::layer::{ConnectionInfo, IpNetwork};
///
/// let proxy: IpNetwork = "10.0.0.0/8".parse().unwrap();
/// let req = |peer: &str, xff: &str| {
///     let mut req = http::Request::builder().header("x-forwarded-for", xff).body(()).unwrap();
///     req.extensions_mut().insert(ConnectionInfo { peer: peer.parse().unwrap(), tls: true });
///     req
/// };
/// // A client that names itself is not believed.
/// assert_eq!(client_ip(&req("203.0.113.9:5000", "192.0.2.1"), &[proxy]), Some("203.0.113.9".parse().unwrap()));
/// // A trusted proxy is, up to the first address it does not vouch for.
/// let via = req("10.0.0.2:5000", "192.0.2.1, 198.51.100.4, 10.0.0.7");
/// assert_eq!(client_ip(&via, &[proxy]), Some("198.51.100.4".parse().unwrap()));
/// ```
pub fn client_ip<B>(req: &Request<B>, trusted: &[IpNetwork]) -> Option<IpAddr> {
    let peer = req.extensions().get::<ConnectionInfo>()?.peer.ip();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut last = peer;
    for field in req.headers().get_all(&X_FORWARDED_FOR).iter().rev() {
        let text = field.to_str().ok()?;
        for part in text.rsplit(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let ip = address(part)?;
            if !is_trusted(ip) {
                return Some(ip);
            }
            last = ip;
        }
    }
    Some(last)
}

/// An address, with or without a port.
fn address(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            let inner = text.strip_prefix('[')?.strip_suffix(']')?;
            inner.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(peer: Option<&str>, xff: &[&str]) -> Request<()> {
        let mut b = Request::builder();
        for v in xff {
            b = b.header("x-forwarded-for", *v);
        }
        let mut req = b.header("x-real-ip", "192.0.2.99").body(()).unwrap();
        if let Some(p) = peer {
            req.extensions_mut().insert(ConnectionInfo {
                peer: p.parse().unwrap(),
                tls: false,
            });
        }
        req
    }

    fn nets(list: &[&str]) -> Vec<IpNetwork> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(&req(Some("192.0.2.5:1"), &["10.0.0.1"]), &trusted),
            ip("192.0.2.5")
        );
        assert_eq!(
            client_ip(&req(Some("192.0.2.5:1"), &["junk"]), &trusted),
            ip("192.0.2.5")
        );
        assert_eq!(
            client_ip(&req(Some("192.0.2.5:1"), &[]), &[]),
            ip("192.0.2.5")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_first_untrusted_hop_from_the_right() {
        let trusted = nets(&["10.0.0.0/8", "2001:db8::/32"]);
        let r = req(
            Some("10.1.1.1:1"),
            &["203.0.113.1, 198.51.100.2", "10.2.2.2, [2001:db8::5]:443"],
        );
        assert_eq!(client_ip(&r, &trusted), ip("198.51.100.2"));
        // Every hop trusted: the left-most is as far as anyone can see.
        let r = req(Some("10.1.1.1:1"), &["10.3.3.3, 10.2.2.2"]);
        assert_eq!(client_ip(&r, &trusted), ip("10.3.3.3"));
        // No header: the proxy itself.
        assert_eq!(
            client_ip(&req(Some("10.1.1.1:1"), &[]), &trusted),
            ip("10.1.1.1")
        );
        // Ports and empty parts.
        let r = req(Some("10.1.1.1:1"), &["198.51.100.9:4431, ,"]);
        assert_eq!(client_ip(&r, &trusted), ip("198.51.100.9"));
        // An IPv4-mapped proxy is the IPv4 proxy.
        let r = req(Some("[::ffff:10.1.1.1]:1"), &["198.51.100.3"]);
        assert_eq!(client_ip(&r, &trusted), ip("198.51.100.3"));
    }

    #[test]
    fn what_cannot_be_read_is_unknown() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(&req(Some("10.1.1.1:1"), &["not-an-ip"]), &trusted),
            None
        );
        assert_eq!(client_ip(&req(None, &["198.51.100.3"]), &trusted), None);
        // Garbage beyond the first untrusted hop is never read.
        let r = req(Some("10.1.1.1:1"), &["garbage, 198.51.100.3"]);
        assert_eq!(client_ip(&r, &trusted), ip("198.51.100.3"));
    }
}
