//! Which protocol a plain connection speaks, told from its first bytes without consuming them.

use std::fmt;
use std::time::Duration;

use tokio::net::TcpStream;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    Http1,
    Http2,
}

/// Why a connection ended before serving anything.
#[derive(Debug)]
pub(super) enum Refused {
    Silent,
    Closed,
    Io(std::io::Error),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Silent => f.write_str("sent nothing within the header deadline"),
            Self::Closed => f.write_str("closed before sending a request"),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Peeks at a plain connection until it shows which protocol it speaks, without consuming.
pub(super) async fn detect(stream: &TcpStream) -> Result<Protocol, Refused> {
    let mut buf = [0u8; 24];
    loop {
        let n = stream.peek(&mut buf).await.map_err(Refused::Io)?;
        if n == 0 {
            return Err(Refused::Closed);
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(Protocol::Http1);
        }
        if n == H2_PREFACE.len() {
            return Ok(Protocol::Http2);
        }
        // A partial preface: peek returns at once while those bytes sit unread, so wait a
        // little for the rest (bounded by the caller's deadline).
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
