//! Single-flight provider lookups: at most one call per distinct code at a time, whatever its
//! outcome.
//!
//! The first request that misses the cache on a code starts a flight; requests for the same code
//! that arrive while it is up join it and share its [`Outcome`], a failure or a timeout as much as
//! a success. The flight belongs to the task that runs the lookup, not to any request: a request
//! dropped while it waits leaves nothing behind, and the flight's entry goes when it lands.
//!
//! A flight outlives the requests that wait on it (its answer fills the cache), up to the lookup
//! timeout: against a provider that hangs, a flood of distinct unknown codes would hold one
//! flight per code for that long. So at most a fixed number are up at a time, and a miss past
//! it starts none.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use tokio::sync::Notify;

use super::digest::{Digest, PassThrough};
use crate::identity::AppIdentity;

/// How a lookup ended, for every request that waited on it.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// The code stands for this identity.
    Found(AppIdentity),
    /// The provider does not know the code, or it was revoked while the lookup ran.
    Unknown,
    /// The provider failed or did not answer in time.
    Failed,
}

/// One lookup in progress, and the outcome once it landed.
#[derive(Default)]
pub(crate) struct Flight {
    outcome: OnceLock<Outcome>,
    landed: Notify,
}

impl Flight {
    /// Waits for the flight to land. Dropping this future leaves the flight untouched.
    pub(crate) async fn outcome(&self) -> Outcome {
        loop {
            let notified = self.landed.notified();
            tokio::pin!(notified);
            // Registered before the check, so a landing between the two is not missed.
            notified.as_mut().enable();
            if let Some(outcome) = self.outcome.get() {
                return outcome.clone();
            }
            notified.await;
        }
    }
}

/// The flights up, by digest.
pub(crate) struct Flights {
    map: DashMap<Digest, Arc<Flight>, PassThrough>,
    /// Flights up: the map's length, without visiting its shards.
    up: AtomicUsize,
    base: Instant,
    /// When a miss that found no place was last logged, in ms since `base` plus one (0: never).
    shed_logged: AtomicU64,
}

/// How often, at most, misses that found no place for a lookup are logged.
pub(crate) const SHED_LOG_INTERVAL: Duration = Duration::from_secs(10);

impl Flights {
    pub(crate) fn new() -> Self {
        Self {
            map: DashMap::with_hasher(PassThrough),
            up: AtomicUsize::new(0),
            base: Instant::now(),
            shed_logged: AtomicU64::new(0),
        }
    }

    /// Whether a miss that found no place should be logged now: the first, then one every
    /// [`SHED_LOG_INTERVAL`].
    pub(crate) fn log_shed(&self) -> bool {
        let now = u64::try_from(self.base.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = self.shed_logged.load(Ordering::Relaxed);
        let due = last == 0 || now >= last.saturating_add(SHED_LOG_INTERVAL.as_millis() as u64);
        due && self
            .shed_logged
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Joins the flight for `digest`, or starts one when fewer than `max` are up: `true` when
    /// the caller started it and must [`land`](Self::land) it. `None`: `max` flights are up, and
    /// none is for `digest`.
    pub(crate) fn join(&self, digest: Digest, max: usize) -> Option<(Arc<Flight>, bool)> {
        match self.map.entry(digest) {
            Entry::Occupied(up) => Some((Arc::clone(up.get()), false)),
            Entry::Vacant(slot) => {
                if self.up.fetch_add(1, Ordering::AcqRel) >= max {
                    self.up.fetch_sub(1, Ordering::AcqRel);
                    return None;
                }
                let flight = Arc::new(Flight::default());
                slot.insert(Arc::clone(&flight));
                Some((flight, true))
            }
        }
    }

    /// Ends `flight` with `outcome`: every waiter gets it, and the next miss on `digest` starts
    /// afresh. The caller has already written the outcome into the cache, so a request that
    /// misses the flight finds the cache (or the negative cache) answering instead.
    pub(crate) fn land(&self, digest: &Digest, flight: &Arc<Flight>, outcome: Outcome) {
        // Only the starter lands a flight, once: a second outcome cannot happen.
        let _ = flight.outcome.set(outcome);
        if self
            .map
            .remove_if(digest, |_, up| Arc::ptr_eq(up, flight))
            .is_some()
        {
            self.up.fetch_sub(1, Ordering::AcqRel);
        }
        flight.landed.notify_waiters();
    }

    /// How many flights are up.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u64) -> Digest {
        Digest::from_words([n, 0])
    }

    #[tokio::test]
    async fn joiners_share_the_outcome_and_the_entry_goes_on_landing() {
        let flights = Flights::new();
        let (first, started) = flights.join(digest(1), 1).unwrap();
        assert!(started);
        let (second, started_again) = flights.join(digest(1), 1).unwrap();
        assert!(!started_again, "a second flight for one code");
        assert!(Arc::ptr_eq(&first, &second));
        let waiter = tokio::spawn({
            let second = Arc::clone(&second);
            async move { second.outcome().await }
        });
        tokio::task::yield_now().await;
        flights.land(&digest(1), &first, Outcome::Failed);
        assert!(matches!(waiter.await.unwrap(), Outcome::Failed));
        assert_eq!(flights.len(), 0);
        // A waiter that arrives after the landing still gets the outcome.
        assert!(matches!(first.outcome().await, Outcome::Failed));
        assert!(
            flights.join(digest(1), 1).unwrap().1,
            "the next miss starts afresh"
        );
    }

    #[test]
    fn at_most_max_flights_are_up_and_a_landing_frees_a_place() {
        let flights = Flights::new();
        let (a, _) = flights.join(digest(1), 2).unwrap();
        flights.join(digest(2), 2).unwrap();
        assert!(flights.join(digest(3), 2).is_none(), "a third flight");
        // Joining one that is up still works.
        assert!(!flights.join(digest(1), 2).unwrap().1);
        flights.land(&digest(1), &a, Outcome::Unknown);
        // A second landing of the same flight frees nothing more.
        flights.land(&digest(1), &a, Outcome::Unknown);
        assert!(flights.join(digest(3), 2).unwrap().1);
        assert!(flights.join(digest(4), 2).is_none());
        // Logged once, not once per miss.
        assert!(flights.log_shed());
        assert!(!flights.log_shed());
    }
}
