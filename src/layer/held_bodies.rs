//! [`HeldBodies`]: the bytes of signed bodies being read, summed over every request of the
//! layers that share it, against a cap, and per app key against a share of it.
//!
//! A signed body is held until its end (its hash is signed), and a client chooses how fast it
//! sends it: without a cap over all requests, connections that each send most of a 12 MB body
//! and then stall would make the process hold 12 MB apiece. The cap turns that into a refusal
//! (`503` and `Retry-After: 1`) for the signed bodies that do not fit, while bodies that are not
//! held (unsigned, or of unknown keys) stream on as before.
//!
//! An app key is no secret, so one key's clients could still take the whole cap and have every
//! other app's signed bodies refused. Each key may hold a quarter of the cap (or one body of
//! the largest size, if that is more): it takes four keys to fill it. A key's count lives only
//! while one of its bodies is being read.

use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

/// The default cap on the bytes the signed bodies being read may hold together: 256 MiB, about
/// twenty signed bodies of the largest size at once, or thousands of small ones.
pub const DEFAULT_MAX_HELD_BODIES: usize = 256 * 1024 * 1024;

/// Bytes held against a cap, and by each app key; shared by reference counting between layers.
#[derive(Debug)]
pub(crate) struct HeldBodies {
    held: AtomicUsize,
    max: usize,
    /// What each key's bodies being read hold; a key holding nothing has no entry.
    by_key: DashMap<Box<str>, usize>,
}

impl HeldBodies {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            held: AtomicUsize::new(0),
            max,
            by_key: DashMap::new(),
        }
    }

    /// Takes `n` more bytes for a body of `key`, whose bodies may be `body_limit` long, if they
    /// fit under the cap and under the key's share.
    pub(crate) fn take(&self, key: &str, n: usize, body_limit: usize) -> bool {
        let taken = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(n).filter(|total| *total <= self.max)
            });
        if taken.is_err() {
            return false;
        }
        let share = (self.max / 4).max(body_limit);
        let mut held = self.by_key.entry(key.into()).or_insert(0);
        match held.checked_add(n).filter(|total| *total <= share) {
            Some(total) => {
                *held = total;
                true
            }
            None => {
                let nothing_held = *held == 0;
                drop(held);
                if nothing_held {
                    self.by_key.remove_if(key, |_, held| *held == 0);
                }
                self.held.fetch_sub(n, Ordering::AcqRel);
                false
            }
        }
    }

    /// Gives back `n` bytes taken before for a body of `key`.
    pub(crate) fn give_back(&self, key: &str, n: usize) {
        if n == 0 {
            return;
        }
        if let Entry::Occupied(mut held) = self.by_key.entry(key.into()) {
            *held.get_mut() -= n;
            if *held.get() == 0 {
                held.remove();
            }
        }
        self.held.fetch_sub(n, Ordering::AcqRel);
    }

    /// The bytes held now.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// The cap.
    pub(crate) fn max(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes bytes for bodies of up to `limit` bytes, step by step: (key, bytes, whether they
    /// are taken).
    fn takes(held: &HeldBodies, limit: usize, steps: &[(&str, usize, bool)]) {
        for &(key, n, taken) in steps {
            assert_eq!(held.take(key, n, limit), taken, "{key} taking {n}");
        }
    }

    #[test]
    fn what_fits_is_taken_and_what_is_given_back_fits_again() {
        let held = HeldBodies::new(10);
        // Bodies of up to 10 bytes: each key may hold the whole cap.
        takes(
            &held,
            10,
            &[("a", 6, true), ("b", 5, false), ("b", 4, true)],
        );
        assert_eq!(held.held(), 10);
        held.give_back("a", 6);
        takes(&held, 10, &[("a", 5, true), ("c", usize::MAX, false)]);
        assert_eq!(held.held(), 9);
        held.give_back("a", 5);
        held.give_back("b", 4);
        assert_eq!(held.held(), 0);
        assert!(
            held.by_key.is_empty(),
            "a key holding nothing keeps no entry"
        );
    }

    #[test]
    fn one_key_holds_a_quarter_of_the_cap_and_the_others_the_rest() {
        let held = HeldBodies::new(100);
        // Bodies of up to 10 bytes: a key's share is a quarter of the cap, 25.
        takes(
            &held,
            10,
            &[
                ("greedy", 25, true),
                ("greedy", 1, false),
                ("other", 25, true),
                ("third", 25, true),
                ("fourth", 25, true),
                ("fifth", 1, false),
            ],
        );
        assert_eq!(held.held(), 100, "a refused take holds nothing");
        assert_eq!(
            held.by_key.len(),
            4,
            "a key refused before it held anything keeps no entry"
        );
        // Bodies longer than a quarter of the cap: one such body fits.
        takes(&HeldBodies::new(100), 60, &[("big", 60, true)]);
    }
}
