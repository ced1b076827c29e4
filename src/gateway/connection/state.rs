//! What a connection's deadline watcher reads, and when an idle HTTP/1 connection may be taken
//! apart: atomics the socket wrapper and the service adapter write as the connection goes.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Milliseconds since a process-wide origin, plus one (0 means "not set").
pub(super) fn now_ms() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// The instant of `ms` (from [`now_ms`]), for a timer.
pub(super) fn instant_of(ms: u64) -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_millis(ms.saturating_sub(now_ms()))
}

/// What the deadline watcher needs to know about a connection.
#[derive(Debug)]
pub(crate) struct ConnState {
    pub(super) in_flight: AtomicU32,
    /// When the first byte of a request arrived (0: no request being read).
    pub(super) reading_since: AtomicU64,
    /// When the last request finished.
    pub(super) idle_since: AtomicU64,
    /// Since when a write to the client could not finish (0: the last one did).
    pub(super) write_blocked_since: AtomicU64,
    /// HTTP/2: for each answer in progress, since when it waits for the client to take what it
    /// was handed (0: it does not). A stream whose client grants no flow-control credit blocks
    /// no write on the socket, so only this shows it.
    streams: Mutex<Vec<Arc<AtomicU64>>>,
    /// [`READ_BLOCKED`], [`WRITE_BLOCKED`], [`SERVED`]: what the socket and hyper left.
    pub(super) flags: AtomicU8,
}

/// The socket's last read found nothing to read.
pub(super) const READ_BLOCKED: u8 = 1;
/// The socket's last write or flush could not finish: bytes are waiting in a buffer.
pub(super) const WRITE_BLOCKED: u8 = 2;
/// A request started since the current hyper connection was made.
pub(super) const SERVED: u8 = 4;

/// How long an HTTP/1 connection stays whole with no request in progress before it is taken
/// apart. A client that sends its next request at once (most of those under load) keeps its
/// hyper connection, so it pays for no new one; and a request body may still be arriving after
/// an early answer, which hyper must see to the end to keep the connection.
pub(super) const PARK_DELAY: Duration = Duration::from_secs(1);

/// Whether an HTTP/1 connection may be taken apart.
pub(super) enum Park {
    No,
    Now,
    /// Once idle until then (from [`now_ms`]).
    At(u64),
}

impl ConnState {
    /// The state of a connection accepted at `accepted` (from [`now_ms`]). An HTTP/1 one owes
    /// its first request's headers within the header deadline of that moment.
    pub(super) fn new(accepted: u64, awaiting_first_request: bool) -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicU32::new(0),
            reading_since: AtomicU64::new(if awaiting_first_request { accepted } else { 0 }),
            idle_since: AtomicU64::new(now_ms()),
            write_blocked_since: AtomicU64::new(0),
            streams: Mutex::new(Vec::new()),
            flags: AtomicU8::new(0),
        })
    }

    /// Sets or clears `flag`; whether that changed it.
    pub(super) fn set_flag(&self, flag: u8, on: bool) -> bool {
        let flags = self.flags.load(Ordering::Relaxed);
        let changed = (flags & flag != 0) != on;
        if changed {
            self.flags.store(flags ^ flag, Ordering::Relaxed);
        }
        changed
    }

    /// Notes whether the last write to the client could finish, and since when it could not:
    /// the clock is read only when a write starts to wait.
    pub(super) fn wrote(&self, blocked: bool) {
        if self.set_flag(WRITE_BLOCKED, blocked) {
            let since = if blocked { now_ms() } else { 0 };
            self.write_blocked_since.store(since, Ordering::Relaxed);
        }
    }

    /// Whether an HTTP/1 connection may be taken apart, as far as the socket tells: no request
    /// in progress, nothing waiting to be written, nothing more to read, for [`PARK_DELAY`].
    pub(super) fn park(&self) -> Park {
        if self.in_flight.load(Ordering::Relaxed) != 0
            || self.flags.load(Ordering::Relaxed) & (READ_BLOCKED | WRITE_BLOCKED) != READ_BLOCKED
        {
            return Park::No;
        }
        let at = self.parkable_at();
        if now_ms() >= at {
            Park::Now
        } else {
            Park::At(at)
        }
    }

    pub(super) fn parkable_at(&self) -> u64 {
        let idle = self.idle_since.load(Ordering::Relaxed);
        idle.saturating_add(PARK_DELAY.as_millis() as u64)
    }

    /// Since when the client has taken nothing it was sent: the oldest of a write that cannot
    /// finish and an HTTP/2 answer waiting on its client (0: none).
    pub(super) fn stuck_since(&self) -> u64 {
        let streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        streams
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .chain([self.write_blocked_since.load(Ordering::Relaxed)])
            .filter(|&since| since != 0)
            .min()
            .unwrap_or(0)
    }

    pub(super) fn saw_bytes(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.reading_since.load(Ordering::Relaxed) == 0
        {
            self.reading_since.store(now_ms(), Ordering::Relaxed);
        }
    }
}

/// Counts a request in progress on its connection until dropped (with the response body).
#[derive(Debug)]
pub(crate) struct InFlight {
    state: Arc<ConnState>,
    /// The request is one of a multiplexed (HTTP/2) connection's.
    stream: bool,
    /// Since when its answer waits on the client (see [`ConnState::stuck_since`]); made the
    /// first time it waits, so that an answer handed whole costs nothing.
    waiting: Option<Arc<AtomicU64>>,
}

impl InFlight {
    pub(super) fn start(state: &Arc<ConnState>, stream: bool) -> Self {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        state.reading_since.store(0, Ordering::Relaxed);
        Self {
            state: Arc::clone(state),
            stream,
            waiting: None,
        }
    }

    /// Notes that the answer was handed a part to send and waits for the client to take it
    /// (`true`), or was asked for more (`false`). Only HTTP/2 streams are watched this way.
    pub(super) fn handed(&mut self, waiting: bool) {
        match &self.waiting {
            Some(since) if waiting => since.store(now_ms(), Ordering::Relaxed),
            Some(since) if since.load(Ordering::Relaxed) != 0 => since.store(0, Ordering::Relaxed),
            Some(_) => {}
            None if waiting && self.stream => {
                let since = Arc::new(AtomicU64::new(now_ms()));
                let mut streams = self.state.streams.lock().unwrap_or_else(|p| p.into_inner());
                streams.push(Arc::clone(&since));
                self.waiting = Some(since);
            }
            None => {}
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(since) = self.waiting.take() {
            let mut streams = self.state.streams.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = streams.iter().position(|s| Arc::ptr_eq(s, &since)) {
                streams.swap_remove(i);
            }
        }
        self.state.idle_since.store(now_ms(), Ordering::Relaxed);
        self.state.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
