//! Single-flight provider lookups: at most one call per distinct code at a time, whatever its
//! outcome.
//!
//! The first request that misses the cache on a code starts a flight; requests for the same code
//! that arrive while it is up join it and share its [`Outcome`], a failure or a timeout as much as
//! a success. The flight belongs to the task that runs the lookup, not to any request: a request
//! dropped while it waits leaves nothing behind, and the flight's entry goes when it lands.

use std::sync::{Arc, OnceLock};

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
}

impl Flights {
    pub(crate) fn new() -> Self {
        Self {
            map: DashMap::with_hasher(PassThrough),
        }
    }

    /// Joins the flight for `digest`, or starts one: `true` when the caller started it and must
    /// [`land`](Self::land) it.
    pub(crate) fn join(&self, digest: Digest) -> (Arc<Flight>, bool) {
        match self.map.entry(digest) {
            Entry::Occupied(up) => (Arc::clone(up.get()), false),
            Entry::Vacant(slot) => {
                let flight = Arc::new(Flight::default());
                slot.insert(Arc::clone(&flight));
                (flight, true)
            }
        }
    }

    /// Ends `flight` with `outcome`: every waiter gets it, and the next miss on `digest` starts
    /// afresh. The caller has already written the outcome into the cache, so a request that
    /// misses the flight finds the cache (or the negative cache) answering instead.
    pub(crate) fn land(&self, digest: &Digest, flight: &Arc<Flight>, outcome: Outcome) {
        // Only the starter lands a flight, once: a second outcome cannot happen.
        let _ = flight.outcome.set(outcome);
        self.map.remove_if(digest, |_, up| Arc::ptr_eq(up, flight));
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
        let (first, started) = flights.join(digest(1));
        assert!(started);
        let (second, started_again) = flights.join(digest(1));
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
        assert!(flights.join(digest(1)).1, "the next miss starts afresh");
    }
}
