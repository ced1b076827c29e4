//! [`AppQuota`]: how many calls an app may make per period (APIG's "client quota").

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The unit of a quota's period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    /// `SECOND`.
    Second,
    /// `MINUTE`.
    Minute,
    /// `HOUR`.
    Hour,
    /// `DAY`: 86 400 seconds, whatever the calendar says.
    Day,
}

impl TimeUnit {
    /// APIG's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Second => "SECOND",
            Self::Minute => "MINUTE",
            Self::Hour => "HOUR",
            Self::Day => "DAY",
        }
    }

    fn seconds(self) -> u64 {
        match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }
}

impl FromStr for TimeUnit {
    type Err = QuotaError;

    /// `SECOND`, `MINUTE`, `HOUR` or `DAY`, as APIG spells them.
    fn from_str(s: &str) -> Result<Self, QuotaError> {
        match s {
            "SECOND" => Ok(Self::Second),
            "MINUTE" => Ok(Self::Minute),
            "HOUR" => Ok(Self::Hour),
            "DAY" => Ok(Self::Day),
            _ => Err(QuotaError::TimeUnit),
        }
    }
}

impl fmt::Display for TimeUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a quota was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuotaError {
    /// `call_limits` below 1.
    CallLimits,
    /// A unit other than `SECOND`, `MINUTE`, `HOUR` or `DAY`.
    TimeUnit,
    /// `time_interval` below 1, or a period too long to count in seconds.
    TimeInterval,
}

impl fmt::Display for QuotaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CallLimits => "a quota allows at least one call",
            Self::TimeUnit => "the time unit must be SECOND, MINUTE, HOUR or DAY",
            Self::TimeInterval => "the period must be at least one unit, and at most 100 years",
        })
    }
}

impl std::error::Error for QuotaError {}

/// The longest period accepted, in seconds: 100 years.
const MAX_PERIOD_SECS: u64 = 100 * 366 * 86_400;

/// At most `call_limits` calls per period of `time_interval` units, counted for each app bound
/// to it on its own.
///
/// Periods are fixed windows, not sliding ones: anchored at `reset_time` when it is given
/// (a period of one hour from 05:05 runs 05:05-06:05, 06:05-07:05, ...), else at the app's first
/// counted call. A call in a window whose count is used up waits for the window's end.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use apig_appcode::quota::{AppQuota, TimeUnit};
///
/// let five_past = UNIX_EPOCH + Duration::from_secs(5 * 60);
/// let quota = AppQuota::new(1000, TimeUnit::Hour, 1)?.reset_time(five_past);
/// let (start, end) = quota.window(UNIX_EPOCH + Duration::from_secs(3 * 3600 + 60), five_past);
/// assert_eq!(start, UNIX_EPOCH + Duration::from_secs(2 * 3600 + 5 * 60));
/// assert_eq!(end, UNIX_EPOCH + Duration::from_secs(3 * 3600 + 5 * 60));
/// # Ok::<(), apig_appcode::quota::QuotaError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppQuota {
    call_limits: u64,
    time_unit: TimeUnit,
    time_interval: u32,
    reset_time: Option<SystemTime>,
}

impl AppQuota {
    /// `call_limits` calls per `time_interval` `time_unit`s, anchored at each app's first call.
    pub fn new(
        call_limits: u64,
        time_unit: TimeUnit,
        time_interval: u32,
    ) -> Result<Self, QuotaError> {
        if call_limits == 0 {
            return Err(QuotaError::CallLimits);
        }
        let period = u64::from(time_interval) * time_unit.seconds();
        if period == 0 || period > MAX_PERIOD_SECS {
            return Err(QuotaError::TimeInterval);
        }
        Ok(Self {
            call_limits,
            time_unit,
            time_interval,
            reset_time: None,
        })
    }

    /// Anchors every app's windows at `at` instead of at its first call. Whole seconds count:
    /// a fraction is dropped.
    pub fn reset_time(mut self, at: SystemTime) -> Self {
        self.reset_time = Some(at);
        self
    }

    /// Calls allowed per window.
    pub fn call_limits(&self) -> u64 {
        self.call_limits
    }

    /// The unit of the period.
    pub fn time_unit(&self) -> TimeUnit {
        self.time_unit
    }

    /// How many units a period lasts.
    pub fn time_interval(&self) -> u32 {
        self.time_interval
    }

    /// The anchor of every window, when one was given.
    pub fn anchor(&self) -> Option<SystemTime> {
        self.reset_time
    }

    /// How long a window lasts.
    pub fn period(&self) -> Duration {
        Duration::from_secs(self.period_secs())
    }

    fn period_secs(&self) -> u64 {
        u64::from(self.time_interval) * self.time_unit.seconds()
    }

    /// The window holding `now`, as `[start, end)`: anchored at the reset time if the quota has
    /// one, else at `first_call` (the app's first counted call).
    pub fn window(&self, now: SystemTime, first_call: SystemTime) -> (SystemTime, SystemTime) {
        let (start, end) = self.window_secs(secs(now), secs(self.reset_time.unwrap_or(first_call)));
        (at(start), at(end))
    }

    /// [`window`](Self::window) in whole seconds since the Unix epoch (before it: negative).
    pub(crate) fn window_secs(&self, now: i64, anchor: i64) -> (i64, i64) {
        let period = i64::try_from(self.period_secs()).unwrap_or(i64::MAX);
        let start = anchor + (now - anchor).div_euclid(period) * period;
        (start, start.saturating_add(period))
    }
}

/// Whole seconds since the Unix epoch, negative before it.
pub(crate) fn secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

pub(crate) fn at(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_fixed_and_anchored() {
        let q = AppQuota::new(10, TimeUnit::Minute, 5).unwrap();
        // Anchored at 100: windows 100-400, 400-700, and before the anchor -200-100.
        assert_eq!(q.window_secs(100, 100), (100, 400));
        assert_eq!(q.window_secs(399, 100), (100, 400));
        assert_eq!(q.window_secs(400, 100), (400, 700));
        assert_eq!(q.window_secs(99, 100), (-200, 100));
        let day = AppQuota::new(1, TimeUnit::Day, 1).unwrap();
        assert_eq!(day.window_secs(86_400 * 3 + 7, 0), (86_400 * 3, 86_400 * 4));
        assert_eq!(day.period(), Duration::from_secs(86_400));
    }

    #[test]
    fn bad_quotas_are_refused() {
        assert_eq!(
            AppQuota::new(0, TimeUnit::Second, 1),
            Err(QuotaError::CallLimits)
        );
        assert_eq!(
            AppQuota::new(1, TimeUnit::Second, 0),
            Err(QuotaError::TimeInterval)
        );
        assert_eq!(
            AppQuota::new(1, TimeUnit::Day, 40_000),
            Err(QuotaError::TimeInterval)
        );
        assert_eq!("day".parse::<TimeUnit>(), Err(QuotaError::TimeUnit));
        assert_eq!("HOUR".parse::<TimeUnit>(), Ok(TimeUnit::Hour));
    }
}
