//! Calls counted per app and window: on this node, and, when a store shares counts between
//! nodes, what every node counted as of the last flush.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use dashmap::DashMap;
use tokio::sync::Notify;

use super::policy::{at, secs, AppQuota};
use super::shared::{QuotaCount, SharedCount};

/// One app's count in its current window.
struct Count {
    /// The app's first counted call, the anchor of a quota without a reset time.
    first_call: i64,
    window_start: i64,
    window_end: i64,
    /// Every node's calls in the window, as of the last flush (this node's flushed ones
    /// included).
    shared: u64,
    /// This node's calls on their way to the store.
    in_flight: u64,
    /// This node's calls not yet sent.
    unflushed: u64,
    /// This node's calls being counted one by one in the shared counts (see
    /// [`QuotaCounts::begin_ask`]), not yet answered.
    asking: u64,
    /// When the shared count was last read in this window, and what it was.
    settled: Option<(Instant, u64)>,
    /// The cluster's calls of the app per second, as the last two reads of the shared count
    /// measured it.
    per_second: u64,
}

impl Count {
    fn used(&self) -> u64 {
        self.shared
            .saturating_add(self.in_flight)
            .saturating_add(self.unflushed)
            .saturating_add(self.asking)
    }

    /// Starts the window `start`..`end`, empty.
    fn start_window(&mut self, start: i64, end: i64) {
        self.window_start = start;
        self.window_end = end;
        self.shared = 0;
        self.in_flight = 0;
        self.unflushed = 0;
        self.asking = 0;
        self.settled = None;
    }
}

/// The counts of the apps that made a call under a quota: one entry per app, removed with the
/// app or its quota.
#[derive(Default)]
pub(crate) struct QuotaCounts {
    map: DashMap<Box<str>, Mutex<Count>>,
    /// Whether a flusher shares the counts; without one, nothing is ever taken to flush.
    shared: AtomicBool,
    /// Some count has calls not yet flushed.
    dirty: AtomicBool,
    /// An app's first count here, or one near its limit: the shared count is worth reading
    /// at once, not at the end of the interval.
    urgent: AtomicBool,
    /// Wakes the flusher when a call is counted while none was waiting.
    wake: Notify,
    /// Wakes the flusher early when the counts turn urgent.
    hurry: Notify,
}

impl QuotaCounts {
    /// Counts one call of `app_id` at `now` under `quota` and says how many calls are left in
    /// its window, or how long until the window ends when its calls are used up (the refused
    /// call is not counted).
    pub(crate) fn charge(
        &self,
        app_id: &str,
        quota: &AppQuota,
        now: SystemTime,
    ) -> Result<u64, Duration> {
        self.with_call_left(app_id, quota, now, |count| {
            count.unflushed += 1;
            let left = quota.call_limits().saturating_sub(count.used());
            self.after_unflushed(count, left);
            left
        })
    }

    /// Runs `f` on `app_id`'s count when its window has a call left, else says how long until
    /// the window ends.
    fn with_call_left<T>(
        &self,
        app_id: &str,
        quota: &AppQuota,
        now: SystemTime,
        f: impl FnOnce(&mut Count) -> T,
    ) -> Result<T, Duration> {
        self.with_count(app_id, quota, now, |count| {
            if count.used() >= quota.call_limits() {
                return Err(wait_until(count.window_end, now));
            }
            Ok(f(count))
        })
    }

    /// Runs `f` on `app_id`'s count, in the window of `now`.
    fn with_count<T>(
        &self,
        app_id: &str,
        quota: &AppQuota,
        now: SystemTime,
        f: impl FnOnce(&mut Count) -> T,
    ) -> T {
        let now_secs = secs(now);
        let entry = match self.map.get(app_id) {
            Some(entry) => entry,
            None => {
                if self.shared.load(Ordering::Relaxed) {
                    self.hurry_flush();
                }
                self.map
                    .entry(app_id.into())
                    .or_insert_with(|| {
                        Mutex::new(Count {
                            first_call: now_secs,
                            window_start: i64::MIN,
                            window_end: i64::MIN,
                            shared: 0,
                            in_flight: 0,
                            unflushed: 0,
                            asking: 0,
                            settled: None,
                            per_second: 0,
                        })
                    })
                    .downgrade()
            }
        };
        // A count is a few integers: a panic elsewhere cannot leave it half-written.
        let mut count = entry.lock().unwrap_or_else(|p| p.into_inner());
        let anchor = quota.anchor().map_or(count.first_call, secs);
        let (start, end) = quota.window_secs(now_secs, anchor);
        if count.window_start != start {
            count.start_window(start, end);
        }
        f(&mut count)
    }

    /// After a call was counted as unflushed, with `left` calls left: wakes the flusher, and
    /// hurries it when the cluster could use up what is left before two more flushes.
    fn after_unflushed(&self, count: &mut Count, left: u64) {
        let near_limit = left <= count.per_second.saturating_mul(2);
        if !self.shared.load(Ordering::Relaxed) {
            return;
        }
        // Once the cluster could use up what is left before two more flushes, a total read a
        // second ago lets this node overshoot by what the others admitted since: read it now.
        if near_limit {
            self.hurry_flush();
        }
        // Read before written: while a flush is pending (most of the time under load) every
        // worker only reads the flag, and its cache line is not bounced between cores.
        if !self.dirty.load(Ordering::Relaxed) && !self.dirty.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }

    /// Reserves one call of `app_id` at `now` to be counted in the shared counts by itself
    /// (per-call counting): the count to add, one call, which counts here as asked until
    /// [`answer_ask`](Self::answer_ask), [`fail_ask`](Self::fail_ask) or
    /// [`drop_ask`](Self::drop_ask) ends it; or, when what is known already uses up the window,
    /// how long until it ends (nothing asked: a refused flood costs no round trip).
    pub(crate) fn begin_ask(
        &self,
        app_id: &str,
        quota: &AppQuota,
        now: SystemTime,
    ) -> Result<QuotaCount, Duration> {
        self.with_call_left(app_id, quota, now, |count| {
            count.asking += 1;
            QuotaCount {
                app_id: app_id.to_owned(),
                first_call: count.first_call,
                window_start: count.window_start,
                window_end: count.window_end,
                calls: 1,
            }
        })
    }

    /// The shared counts added `asked` and answered `total`: the calls left in the window, or,
    /// when the call went over the limit, how long until the window ends. An answer for a newer
    /// window (this node's clock is behind the cluster's) did not count the call: it is
    /// counted here, to be flushed, in that window.
    pub(crate) fn answer_ask(
        &self,
        asked: &QuotaCount,
        total: SharedCount,
        quota: &AppQuota,
        now: SystemTime,
    ) -> Result<u64, Duration> {
        let limit = quota.call_limits();
        let Some(entry) = self.map.get(asked.app_id.as_str()) else {
            // The quota went while the call was asked: it is not held to it.
            return Ok(limit.saturating_sub(total.calls));
        };
        let mut count = entry.lock().unwrap_or_else(|p| p.into_inner());
        if count.window_start == asked.window_start {
            count.asking = count.asking.saturating_sub(1);
        }
        count.first_call = total.first_call;
        if total.window_start == asked.window_start {
            if count.window_start == asked.window_start {
                // Answers may arrive out of order: a window's count only grows.
                count.shared = count.shared.max(total.calls);
            }
            return if total.calls <= limit {
                Ok(limit - total.calls)
            } else {
                Err(wait_until(asked.window_end, now))
            };
        }
        if total.window_start > count.window_start {
            let end = count.window_end + (total.window_start - count.window_start);
            count.start_window(total.window_start, end);
            count.shared = total.calls;
        }
        if count.used() >= limit {
            return Err(wait_until(count.window_end, now));
        }
        count.unflushed += 1;
        let left = limit.saturating_sub(count.used());
        self.after_unflushed(&mut count, left);
        Ok(left)
    }

    /// The shared counts could not count `asked` (they failed, or were late): the call counts
    /// here, to be added by the next flush, and is let through (it was within what is known of
    /// the window when asked). The calls left.
    pub(crate) fn fail_ask(&self, asked: &QuotaCount, quota: &AppQuota) -> u64 {
        let Some(entry) = self.map.get(asked.app_id.as_str()) else {
            return quota.call_limits();
        };
        let mut count = entry.lock().unwrap_or_else(|p| p.into_inner());
        if count.window_start != asked.window_start {
            return quota.call_limits().saturating_sub(count.used());
        }
        count.asking = count.asking.saturating_sub(1);
        count.unflushed += 1;
        let left = quota.call_limits().saturating_sub(count.used());
        self.after_unflushed(&mut count, left);
        left
    }

    /// The request of `asked` went away before the answer: its reservation ends. If the shared
    /// counts counted it, they hold one call more than was made; the window is never shorter.
    pub(crate) fn drop_ask(&self, asked: &QuotaCount) {
        if let Some(entry) = self.map.get(asked.app_id.as_str()) {
            let mut count = entry.lock().unwrap_or_else(|p| p.into_inner());
            if count.window_start == asked.window_start {
                count.asking = count.asking.saturating_sub(1);
            }
        }
    }

    /// Asks the flusher to send every call waiting now, rather than at the end of its interval.
    pub(crate) fn flush_now(&self) {
        if self.pending() == 0 {
            return;
        }
        if !self.dirty.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
        self.urgent.store(true, Ordering::Release);
        self.hurry.notify_one();
    }

    /// Asks the flusher to flush now rather than at the end of its interval.
    fn hurry_flush(&self) {
        if !self.urgent.load(Ordering::Relaxed) && !self.urgent.swap(true, Ordering::AcqRel) {
            self.hurry.notify_one();
        }
    }

    /// Forgets `app_id`'s count.
    pub(crate) fn forget(&self, app_id: &str) {
        self.map.remove(app_id);
    }

    /// Keeps the counts of the apps `keep` selects.
    pub(crate) fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.map.retain(|app, _| keep(app));
    }

    /// From now on calls are counted to be flushed (see [`take_unflushed`](Self::take_unflushed)).
    pub(crate) fn share(&self) {
        self.shared.store(true, Ordering::Relaxed);
    }

    /// Waits until some call is waiting to be flushed.
    pub(crate) async fn unflushed(&self) {
        loop {
            let woken = self.wake.notified();
            if self.dirty.load(Ordering::Acquire) {
                return;
            }
            woken.await;
        }
    }

    /// Waits until the counts turn urgent (see [`hurry_flush`](Self::hurry_flush)), and clears
    /// that.
    pub(crate) async fn urgent(&self) {
        loop {
            let woken = self.hurry.notified();
            if self.urgent.swap(false, Ordering::AcqRel) {
                return;
            }
            woken.await;
        }
    }

    /// Takes every call not yet flushed, at most `max` apps, as counts to add to the shared
    /// ones; they stay counted here (in flight) until [`settle`](Self::settle) says how it went.
    pub(crate) fn take_unflushed(&self, max: usize) -> Vec<QuotaCount> {
        self.dirty.store(false, Ordering::Release);
        let mut taken = Vec::new();
        for entry in &self.map {
            let mut count = entry.value().lock().unwrap_or_else(|p| p.into_inner());
            if count.unflushed == 0 {
                continue;
            }
            if taken.len() == max {
                // The rest go with the next flush, which follows at once.
                self.dirty.store(true, Ordering::Release);
                break;
            }
            taken.push(QuotaCount {
                app_id: entry.key().to_string(),
                first_call: count.first_call,
                window_start: count.window_start,
                window_end: count.window_end,
                calls: count.unflushed,
            });
            count.in_flight += count.unflushed;
            count.unflushed = 0;
        }
        taken
    }

    /// Applies the store's answer to counts taken with [`take_unflushed`](Self::take_unflushed):
    /// the shared totals (`Some`, in the same order), or a failure (`None`: the calls go back to
    /// be sent again).
    pub(crate) fn settle(&self, sent: &[QuotaCount], shared: Option<&[SharedCount]>) {
        for (i, sent) in sent.iter().enumerate() {
            let Some(entry) = self.map.get(sent.app_id.as_str()) else {
                continue;
            };
            let mut count = entry.lock().unwrap_or_else(|p| p.into_inner());
            if count.window_start != sent.window_start {
                // The window ended while the calls were in flight: they counted in it.
                continue;
            }
            match shared.and_then(|s| s.get(i)) {
                None => {
                    count.unflushed += count.in_flight;
                    count.in_flight = 0;
                    self.dirty.store(true, Ordering::Release);
                }
                Some(total) => {
                    // The cluster's first call anchors every node's windows from now on.
                    count.first_call = total.first_call;
                    if total.window_start >= count.window_start {
                        if total.window_start > sent.window_start {
                            count.unflushed = 0;
                            count.asking = 0;
                            count.settled = None;
                        }
                        // A newer window of the same length.
                        count.window_end += total.window_start - count.window_start;
                        count.window_start = total.window_start;
                        count.shared = total.calls;
                        count.in_flight = 0;
                        let now = Instant::now();
                        if let Some((then, calls)) = count.settled {
                            let secs = now.duration_since(then).as_secs_f64();
                            if secs > 0.0 {
                                let added = total.calls.saturating_sub(calls) as f64;
                                count.per_second = (added / secs) as u64;
                            }
                        }
                        count.settled = Some((now, total.calls));
                    }
                }
            }
        }
    }

    /// Calls counted here and not yet in the shared counts.
    /// 0 when the counts are not shared: nothing waits to be sent.
    pub(crate) fn pending(&self) -> u64 {
        if !self.shared.load(Ordering::Relaxed) {
            return 0;
        }
        self.map
            .iter()
            .map(|e| {
                let count = e.value().lock().unwrap_or_else(|p| p.into_inner());
                count.in_flight + count.unflushed
            })
            .sum()
    }
}

/// How long from `now` until `end` (seconds since the epoch); zero once it passed.
fn wait_until(end: i64, now: SystemTime) -> Duration {
    at(end).duration_since(now).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::quota::TimeUnit;

    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    /// Counts a flusher shares with other nodes.
    fn shared_counts() -> QuotaCounts {
        let counts = QuotaCounts::default();
        counts.share();
        counts
    }

    /// `calls` a minute, in windows from 0: 0-60, 60-120…
    fn per_minute_from_zero(calls: u64) -> AppQuota {
        AppQuota::new(calls, TimeUnit::Minute, 1)
            .unwrap()
            .reset_time(t(0))
    }

    /// The shared count of an app first called at `first_call`: `calls` in the window from
    /// `window_start`.
    fn shared(first_call: i64, window_start: i64, calls: u64) -> SharedCount {
        SharedCount {
            first_call,
            window_start,
            calls,
        }
    }

    #[test]
    fn a_window_allows_its_calls_then_says_when_it_ends() {
        let counts = QuotaCounts::default();
        let quota = AppQuota::new(2, TimeUnit::Minute, 1).unwrap();
        // Anchored at the first call (100): windows 100-160, 160-220.
        assert_eq!(counts.charge("a", &quota, t(100)), Ok(1));
        assert_eq!(counts.charge("a", &quota, t(130)), Ok(0));
        assert_eq!(
            counts.charge("a", &quota, t(150)),
            Err(Duration::from_secs(10))
        );
        // Another app has its own count.
        assert_eq!(counts.charge("b", &quota, t(150)), Ok(1));
        // Counts not shared are not waiting to be: nothing shows as unflushed.
        assert_eq!(counts.pending(), 0);
        // The next window starts empty; a refused call was not counted.
        assert_eq!(counts.charge("a", &quota, t(160)), Ok(1));
        assert_eq!(counts.charge("a", &quota, t(219)), Ok(0));
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
    fn shared_counts_refuse_what_other_nodes_used() {
        let counts = shared_counts();
        let quota = AppQuota::new(10, TimeUnit::Minute, 1).unwrap();
        for _ in 0..3 {
            counts.charge("a", &quota, t(100)).unwrap();
        }
        let sent = counts.take_unflushed(100);
        assert_eq!(
            sent,
            [QuotaCount {
                app_id: "a".into(),
                first_call: 100,
                window_start: 100,
                window_end: 160,
                calls: 3
            }]
        );
        // In flight, the calls still count: 7 more are allowed, not 10.
        counts.charge("a", &quota, t(101)).unwrap();
        // Another node made 5 calls in the same window: 3 + 5 shared, 1 unflushed here.
        let total = shared(100, 100, 8);
        counts.settle(&sent, Some(&[total]));
        assert_eq!(counts.pending(), 1);
        assert_eq!(counts.charge("a", &quota, t(102)), Ok(0));
        assert_eq!(
            counts.charge("a", &quota, t(103)),
            Err(Duration::from_secs(57))
        );
        // A failed flush puts the calls back to be sent again.
        let sent = counts.take_unflushed(100);
        assert_eq!(sent[0].calls, 2);
        counts.settle(&sent, None);
        assert_eq!(counts.take_unflushed(100)[0].calls, 2);
    }

    #[test]
    fn a_newer_window_from_the_store_ends_this_nodes_window() {
        let counts = shared_counts();
        let quota = per_minute_from_zero(10);
        counts.charge("a", &quota, t(59)).unwrap();
        let sent = counts.take_unflushed(100);
        counts.settle(&sent, Some(&[shared(0, 60, 10)]));
        // The clock here still says 59, but the cluster's window 60-120 is used up.
        assert_eq!(counts.pending(), 0);
        assert_eq!(
            counts.charge("a", &quota, t(61)),
            Err(Duration::from_secs(59))
        );
        // Taking at most one app at a time leaves the rest for the next flush.
        counts.charge("b", &quota, t(61)).unwrap();
        counts.charge("c", &quota, t(61)).unwrap();
        assert_eq!(counts.take_unflushed(1).len(), 1);
        assert_eq!(counts.take_unflushed(1).len(), 1);
        assert!(counts.take_unflushed(1).is_empty());
    }

    #[test]
    fn a_node_hurries_its_flush_once_the_cluster_could_use_up_the_rest_soon() {
        let counts = shared_counts();
        let roomy = AppQuota::new(1_000_000_000_000, TimeUnit::Day, 1).unwrap();
        counts.charge("a", &roomy, t(100)).unwrap();
        let urgent = || counts.urgent.swap(false, Ordering::AcqRel);
        assert!(
            urgent(),
            "an app's first call here reads the shared count at once"
        );
        // Two reads of the shared count 10 ms or more apart, 1 000 calls between them: at most
        // 100 000 calls a second.
        let total = |calls| shared(100, 100, calls);
        let sent = counts.take_unflushed(10);
        counts.settle(&sent, Some(&[total(1)]));
        std::thread::sleep(Duration::from_millis(10));
        counts.charge("a", &roomy, t(100)).unwrap();
        let sent = counts.take_unflushed(10);
        counts.settle(&sent, Some(&[total(1_001)]));
        counts.charge("a", &roomy, t(100)).unwrap();
        assert!(
            !urgent(),
            "far from the limit, flushes wait for the interval"
        );
        // The same count under a limit 10 calls away: the cluster could use that up at once.
        let tight = AppQuota::new(1_012, TimeUnit::Day, 1).unwrap();
        counts.charge("a", &tight, t(100)).unwrap();
        assert!(urgent(), "near the limit, the flush goes at once");
    }

    #[test]
    fn an_asked_call_is_decided_by_the_shared_total() {
        let counts = shared_counts();
        let quota = per_minute_from_zero(3);
        let asked = counts.begin_ask("a", &quota, t(10)).unwrap();
        assert_eq!(
            (asked.window_start, asked.window_end, asked.calls),
            (0, 60, 1)
        );
        // While asked, the call holds its place: two more may be asked, not three.
        let second = counts.begin_ask("a", &quota, t(10)).unwrap();
        let third = counts.begin_ask("a", &quota, t(10)).unwrap();
        assert_eq!(
            counts.begin_ask("a", &quota, t(10)),
            Err(Duration::from_secs(50))
        );
        let total = |window_start, calls| shared(0, window_start, calls);
        // Other nodes made two calls: this one is the third, the last of the window.
        assert_eq!(counts.answer_ask(&asked, total(0, 3), &quota, t(11)), Ok(0));
        assert_eq!(
            counts.answer_ask(&second, total(0, 4), &quota, t(11)),
            Err(Duration::from_secs(49))
        );
        // A failed ask counts here, to be flushed; a dropped one is given back.
        assert_eq!(counts.fail_ask(&third, &quota), 0);
        assert_eq!(counts.pending(), 1);
        let fourth = counts.begin_ask("b", &quota, t(10)).unwrap();
        counts.drop_ask(&fourth);
        assert!(counts.begin_ask("b", &quota, t(10)).is_ok());
    }

    #[test]
    fn an_answer_for_a_newer_window_counts_the_call_here_in_it() {
        let counts = shared_counts();
        let quota = per_minute_from_zero(3);
        // This node's clock says 59; the cluster is in the window 60-120 with two calls.
        let asked = counts.begin_ask("a", &quota, t(59)).unwrap();
        let newer = shared(0, 60, 2);
        assert_eq!(counts.answer_ask(&asked, newer, &quota, t(59)), Ok(0));
        let sent = counts.take_unflushed(10);
        assert_eq!((sent[0].window_start, sent[0].calls), (60, 1));
        let full = SharedCount { calls: 3, ..newer };
        let again = counts.begin_ask("b", &quota, t(59)).unwrap();
        assert_eq!(
            counts.answer_ask(&again, full, &quota, t(59)),
            Err(Duration::from_secs(61))
        );
    }

    #[test]
    fn a_reset_time_anchors_every_app() {
        let counts = QuotaCounts::default();
        let quota = AppQuota::new(1, TimeUnit::Hour, 1)
            .unwrap()
            .reset_time(t(300));
        // 3 600 s windows from 300: the call at 3 000 is in 300-3 900.
        assert!(counts.charge("a", &quota, t(3_000)).is_ok());
        assert_eq!(
            counts.charge("a", &quota, t(3_800)),
            Err(Duration::from_secs(100))
        );
        assert!(counts.charge("a", &quota, t(3_900)).is_ok());
        counts.forget("a");
        assert!(counts.charge("a", &quota, t(3_901)).is_ok());
    }
}
