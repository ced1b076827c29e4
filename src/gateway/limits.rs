//! Deadlines and connection caps of a listener, with defaults modelled on nginx's.
//!
//! | phase | setting | default | nginx's |
//! |---|---|---:|---|
//! | connected, nothing sent yet; TLS handshake; request headers | `header_timeout` | 10 s | `client_header_timeout` 60 s |
//! | idle between two requests (HTTP/1) or with no open stream (HTTP/2) | `keepalive_timeout` | 75 s | `keepalive_timeout` 75 s |
//! | a request body that stops arriving (between two reads) | `body_timeout` | 60 s | `client_body_timeout` 60 s |
//! | the upstream's response headers, and its body between two reads | `upstream_timeout` | 60 s | `proxy_read_timeout` 60 s |
//! | an upload the upstream takes none of (between two parts it takes) | `upstream_timeout` | 60 s | `proxy_send_timeout` 60 s |
//! | a response the client does not read (a write that cannot finish; HTTP/2: a stream granted no credit) | `send_timeout` | 60 s | `send_timeout` 60 s |
//! | HTTP/2 keep-alive ping interval, and how long its answer may take | `h2_ping_interval`, `h2_ping_timeout` | 30 s, 20 s | — |
//! | draining a client that is still sending after the answer | `linger_timeout` | 5 s | `lingering_timeout` 5 s |
//!
//! | size | setting | default | nginx's |
//! |---|---|---:|---|
//! | a request's line and headers (HTTP/1), its header list (HTTP/2) | `max_header_size` | 32 KiB | `large_client_header_buffers` 4 × 8 KiB |
//!
//! The header deadline is shorter than nginx's: a gateway in front of an API has no client that
//! needs a minute to send a few hundred bytes of headers, and every slow one holds a socket.
//! The send deadline is what frees a connection whose client asked for an answer and then reads
//! none of it: while the answer waits, the connection counts as busy, so no idle deadline
//! applies, and its upstream connection stays taken too.
//!
//! The header size bounds what a connection holds while its headers arrive: without it, hyper
//! buffers up to 408 KiB per connection, and a client opening thousands of connections that
//! each send headers without end holds that much memory on each until the header deadline.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use apig_appcode::gateway::limits::Limits;
//!
//! let limits = Limits::default()
//!     .header_timeout(Duration::from_secs(5))
//!     .max_connections(2_000);
//! assert_ne!(limits, Limits::default());
//! ```

use std::time::Duration;

/// The deadlines and the connection cap of one listener (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub(crate) header_timeout: Duration,
    pub(crate) keepalive_timeout: Duration,
    pub(crate) body_timeout: Duration,
    pub(crate) upstream_timeout: Duration,
    pub(crate) send_timeout: Duration,
    pub(crate) h2_ping_interval: Duration,
    pub(crate) h2_ping_timeout: Duration,
    pub(crate) linger_timeout: Duration,
    pub(crate) max_header_size: usize,
    pub(crate) max_connections: usize,
}

/// The least [`Limits::max_header_size`] takes: a request line and a few headers of an
/// ordinary client fit many times over.
pub const MIN_HEADER_SIZE: usize = 8 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(75),
            body_timeout: Duration::from_secs(60),
            upstream_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            h2_ping_interval: Duration::from_secs(30),
            h2_ping_timeout: Duration::from_secs(20),
            linger_timeout: Duration::from_secs(5),
            max_header_size: 32 * 1024,
            max_connections: default_max_connections().gateway,
        }
    }
}

impl Limits {
    /// How long a new connection may stay silent, and how long its TLS handshake and each
    /// request's headers may take. A connection over it is closed.
    pub fn header_timeout(mut self, d: Duration) -> Self {
        self.header_timeout = d;
        self
    }

    /// How long a connection may stay open with no request in progress.
    pub fn keepalive_timeout(mut self, d: Duration) -> Self {
        self.keepalive_timeout = d;
        self
    }

    /// How long a request body may go without sending anything; then the client gets
    /// `408 APIG.0201` and the upstream connection is released.
    pub fn body_timeout(mut self, d: Duration) -> Self {
        self.body_timeout = d;
        self
    }

    /// How long the upstream may take to answer with headers, then the client gets `504`; how
    /// long it may take none of a request body that is still arriving, then `504` too; and how
    /// long it may stop sending in the middle of its body, then the client's connection
    /// (HTTP/2: its stream) is cut and the upstream connection closed.
    pub fn upstream_timeout(mut self, d: Duration) -> Self {
        self.upstream_timeout = d;
        self
    }

    /// How long a write to the client may stay unfinished (the client reads nothing of its
    /// answer), or an HTTP/2 stream's answer wait for the client to grant it flow-control
    /// credit; then the connection is closed, and with it the upstream connection its answer
    /// came from.
    pub fn send_timeout(mut self, d: Duration) -> Self {
        self.send_timeout = d;
        self
    }

    /// How often an HTTP/2 connection is pinged, and how long the answer may take.
    pub fn h2_ping(mut self, interval: Duration, timeout: Duration) -> Self {
        self.h2_ping_interval = interval;
        self.h2_ping_timeout = timeout;
        self
    }

    /// How long a client that is still sending after its answer is drained before the
    /// connection is closed (so that it reads the answer rather than a reset).
    pub fn linger_timeout(mut self, d: Duration) -> Self {
        self.linger_timeout = d;
        self
    }

    /// How many bytes a request's line and headers may take (HTTP/1), or its header list
    /// (HTTP/2); a request over it gets `431` and its connection is closed, as soon as that
    /// many bytes of headers have arrived. At least [`MIN_HEADER_SIZE`]; a smaller value is
    /// raised to it.
    pub fn max_header_size(mut self, bytes: usize) -> Self {
        self.max_header_size = bytes.max(MIN_HEADER_SIZE);
        self
    }

    /// How many connections the listener keeps open at once; one more is refused. On the
    /// gateway listener it also caps the requests in progress upstream, on all workers together
    /// (an HTTP/2 connection may carry many): one more gets `503` with `Retry-After: 1`.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }
}

/// Connection caps derived from the process's open-file limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultCaps {
    /// The gateway listener's cap: each of its connections may hold an upstream socket too.
    pub gateway: usize,
    /// The admin listener's cap.
    pub admin: usize,
}

/// Descriptors kept for the store, the change listener, logs and the listeners themselves.
const RESERVED_FDS: usize = 32;

/// The default caps: three eighths of the usable descriptors for the gateway (two each), a
/// quarter for the management API, so that neither listener can starve the other or the store.
///
/// ```
/// let caps = apig_appcode::gateway::limits::default_max_connections();
/// assert!(caps.gateway >= 1 && caps.admin >= 1);
/// ```
pub fn default_max_connections() -> DefaultCaps {
    caps_for(open_file_limit())
}

fn caps_for(nofile: Option<usize>) -> DefaultCaps {
    let usable = nofile.unwrap_or(1024).saturating_sub(RESERVED_FDS).max(8);
    DefaultCaps {
        gateway: (usable * 3 / 8).clamp(1, 16_384),
        admin: (usable / 4).clamp(1, 256),
    }
}

/// The soft `RLIMIT_NOFILE`, read from `/proc/self/limits` (Linux); `None` elsewhere.
fn open_file_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.split_whitespace().nth(3)?;
    match soft {
        "unlimited" => Some(usize::MAX / 2),
        n => n.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_leave_room_for_the_admin_listener_under_a_small_limit() {
        let caps = caps_for(Some(64));
        assert_eq!(
            caps,
            DefaultCaps {
                gateway: 12,
                admin: 8
            }
        );
        // Two descriptors per gateway connection plus the admin's stay under the limit.
        assert!(caps.gateway * 2 + caps.admin + RESERVED_FDS <= 64);
        let big = caps_for(Some(1 << 20));
        assert_eq!(
            big,
            DefaultCaps {
                gateway: 16_384,
                admin: 256
            }
        );
        assert_eq!(caps_for(None), caps_for(Some(1024)));
        assert!(caps_for(Some(0)).gateway >= 1);
    }

    #[test]
    fn the_limit_of_this_process_is_read() {
        if cfg!(target_os = "linux") {
            assert!(open_file_limit().is_some_and(|n| n > 0));
        }
    }
}
