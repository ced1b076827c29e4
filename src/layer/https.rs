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

use http::Request;

use crate::network::{ConnectionInfo, IpNetwork};

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
}
