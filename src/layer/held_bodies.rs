//! [`HeldBodies`]: the bytes of signed bodies being read, summed over every request of the
//! layers that share it, against a cap.
//!
//! A signed body is held until its end (its hash is signed), and a client chooses how fast it
//! sends it: without a cap over all requests, connections that each send most of a 12 MB body
//! and then stall would make the process hold 12 MB apiece. The cap turns that into a refusal
//! (`503` and `Retry-After: 1`) for the signed bodies that do not fit, while bodies that are not
//! held (unsigned, or of unknown keys) stream on as before.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The default cap on the bytes the signed bodies being read may hold together: 256 MiB, about
/// twenty signed bodies of the largest size at once, or thousands of small ones.
pub const DEFAULT_MAX_HELD_BODIES: usize = 256 * 1024 * 1024;

/// Bytes held against a cap; shared by reference counting between layers.
#[derive(Debug)]
pub(crate) struct HeldBodies {
    held: AtomicUsize,
    max: usize,
}

impl HeldBodies {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            held: AtomicUsize::new(0),
            max,
        }
    }

    /// Takes `n` more bytes if they fit under the cap.
    pub(crate) fn take(&self, n: usize) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(n).filter(|total| *total <= self.max)
            })
            .is_ok()
    }

    /// Gives back `n` bytes taken before.
    pub(crate) fn give_back(&self, n: usize) {
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

    #[test]
    fn what_fits_is_taken_and_what_is_given_back_fits_again() {
        let held = HeldBodies::new(10);
        assert!(held.take(6));
        assert!(!held.take(5), "11 bytes over a cap of 10");
        assert!(held.take(4));
        assert_eq!(held.held(), 10);
        held.give_back(6);
        assert!(held.take(5));
        assert!(!held.take(usize::MAX), "an overflowing sum never fits");
        assert_eq!(held.held(), 9);
    }
}
