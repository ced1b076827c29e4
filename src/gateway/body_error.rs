//! [`ProxyBodyError`]: why a body the gateway streams from one peer to the other ended early.

use std::fmt;
use std::time::Duration;

/// The side a streamed body comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// The client's request body, on its way upstream.
    Client,
    /// The upstream's response body, on its way to the client.
    Upstream,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Client => "client",
            Self::Upstream => "upstream",
        })
    }
}

/// Why a body the gateway streams ended before its end. The receiving side is then cut: an
/// upstream never takes a truncated request for a whole one, and a client's connection
/// (HTTP/1) or stream (HTTP/2) is closed short of the answer.
///
/// ```
/// use std::time::Duration;
/// use apig_appcode::gateway::{Peer, ProxyBodyError};
///
/// let e = ProxyBodyError::Stalled { from: Peer::Upstream, after: Duration::from_secs(60) };
/// assert_eq!(e.to_string(), "the upstream sent no body data for 60s");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ProxyBodyError {
    /// Reading the peer failed: it closed or reset its connection mid-body, or broke the
    /// body's framing.
    Read {
        /// Whose body it was.
        from: Peer,
        /// What hyper reported.
        error: hyper::Error,
    },
    /// The peer sent nothing for this long while the body was being read (the client's body
    /// deadline, or the upstream's).
    Stalled {
        /// Whose body it was.
        from: Peer,
        /// The deadline that passed.
        after: Duration,
    },
}

impl fmt::Display for ProxyBodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { from, error } => write!(f, "reading the {from}'s body: {error}"),
            Self::Stalled { from, after } => {
                write!(f, "the {from} sent no body data for {after:?}")
            }
        }
    }
}

impl std::error::Error for ProxyBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { error, .. } => Some(error),
            Self::Stalled { .. } => None,
        }
    }
}
