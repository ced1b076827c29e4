//! How many connections one listener has open, and how many it refused at its cap.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// The open connections of one listener, shared by the tasks (and threads) that accept on it,
/// and how many it refused at its cap.
#[derive(Debug, Clone, Default)]
pub struct OpenConnections(Arc<AtomicUsize>, Arc<AtomicU64>);

impl OpenConnections {
    /// How many connections are open now.
    ///
    /// ```
    /// let open = apig_appcode::gateway::listener::OpenConnections::default();
    /// assert_eq!(open.get(), 0);
    /// ```
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// How many connections were refused at the cap since the start.
    ///
    /// ```
    /// let open = apig_appcode::gateway::listener::OpenConnections::default();
    /// assert_eq!(open.refused(), 0);
    /// ```
    pub fn refused(&self) -> u64 {
        self.1.load(Ordering::Relaxed)
    }

    /// Counts a refusal; returns the new total.
    pub(super) fn refuse(&self) -> u64 {
        self.1.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(super) fn try_open(&self, max: usize) -> Option<Slot> {
        let prev = self.0.fetch_add(1, Ordering::Relaxed);
        let slot = Slot(Arc::clone(&self.0));
        (prev < max).then_some(slot)
    }
}

/// One open connection's place under the cap, given back on drop.
#[derive(Debug)]
pub(super) struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_count_open_connections_and_the_cap_refuses_one_more() {
        let open = OpenConnections::default();
        let a = open.try_open(2).unwrap();
        let b = open.try_open(2).unwrap();
        assert!(open.try_open(2).is_none());
        assert_eq!(open.get(), 2);
        drop(a);
        assert!(open.try_open(2).is_some());
        drop(b);
        assert_eq!(open.get(), 0);
    }
}
