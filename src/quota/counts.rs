//! Calls counted per app and window, on this node.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use dashmap::DashMap;

use super::policy::{secs, AppQuota};

/// One app's count in its current window.
struct Count {
    /// The app's first counted call, the anchor of a quota without a reset time.
    first_call: i64,
    window_start: i64,
    used: u64,
}

/// The counts of the apps that made a call under a quota: one entry per app, removed with the
/// app or its quota.
#[derive(Default)]
pub(crate) struct QuotaCounts {
    map: DashMap<Box<str>, Mutex<Count>>,
}

impl QuotaCounts {
    /// Counts one call of `app_id` at `now` under `quota`, or says how long until the window
    /// that `now` is in ends when its calls are used up (the refused call is not counted).
    pub(crate) fn charge(
        &self,
        app_id: &str,
        quota: &AppQuota,
        now: SystemTime,
    ) -> Result<(), Duration> {
        let now_secs = secs(now);
        let entry = match self.map.get(app_id) {
            Some(entry) => entry,
            None => self
                .map
                .entry(app_id.into())
                .or_insert_with(|| {
                    Mutex::new(Count {
                        first_call: now_secs,
                        window_start: i64::MIN,
                        used: 0,
                    })
                })
                .downgrade(),
        };
        // A count is two integers: a panic elsewhere cannot leave it half-written.
        let mut count = entry.lock().unwrap_or_else(|p| p.into_inner());
        let anchor = quota.anchor().map_or(count.first_call, secs);
        let (start, end) = quota.window_secs(now_secs, anchor);
        if count.window_start != start {
            count.window_start = start;
            count.used = 0;
        }
        if count.used >= quota.call_limits() {
            let end = super::policy::at(end);
            return Err(end.duration_since(now).unwrap_or_default());
        }
        count.used += 1;
        Ok(())
    }

    /// Keeps the counts of the apps `keep` selects.
    pub(crate) fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.map.retain(|app, _| keep(app));
    }

    /// Forgets `app_id`'s count.
    pub(crate) fn forget(&self, app_id: &str) {
        self.map.remove(app_id);
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::quota::TimeUnit;

    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn a_window_allows_its_calls_then_says_when_it_ends() {
        let counts = QuotaCounts::default();
        let quota = AppQuota::new(2, TimeUnit::Minute, 1).unwrap();
        // Anchored at the first call (100): windows 100-160, 160-220.
        assert_eq!(counts.charge("a", &quota, t(100)), Ok(()));
        assert_eq!(counts.charge("a", &quota, t(130)), Ok(()));
        assert_eq!(
            counts.charge("a", &quota, t(150)),
            Err(Duration::from_secs(10))
        );
        // Another app has its own count.
        assert_eq!(counts.charge("b", &quota, t(150)), Ok(()));
        // The next window starts empty; a refused call was not counted.
        assert_eq!(counts.charge("a", &quota, t(160)), Ok(()));
        assert_eq!(counts.charge("a", &quota, t(219)), Ok(()));
        assert_eq!(
            counts.charge("a", &quota, t(219)),
            Err(Duration::from_secs(1))
        );
    }

    #[test]
    fn concurrent_calls_never_exceed_the_limit() {
        let counts = std::sync::Arc::new(QuotaCounts::default());
        let quota = std::sync::Arc::new(AppQuota::new(100, TimeUnit::Day, 1).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (counts, quota) = (counts.clone(), quota.clone());
                std::thread::spawn(move || {
                    (0..250)
                        .filter(|_| counts.charge("a", &quota, t(1_000)).is_ok())
                        .count()
                })
            })
            .collect();
        let admitted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(admitted, 100);
    }

    #[test]
    fn a_reset_time_anchors_every_app() {
        let counts = QuotaCounts::default();
        let quota = AppQuota::new(1, TimeUnit::Hour, 1)
            .unwrap()
            .reset_time(t(300));
        // 3 600 s windows from 300: the call at 3 000 is in 300-3 900.
        assert_eq!(counts.charge("a", &quota, t(3_000)), Ok(()));
        assert_eq!(
            counts.charge("a", &quota, t(3_800)),
            Err(Duration::from_secs(100))
        );
        assert_eq!(counts.charge("a", &quota, t(3_900)), Ok(()));
        counts.forget("a");
        assert_eq!(counts.charge("a", &quota, t(3_901)), Ok(()));
    }
}
