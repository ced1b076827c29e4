//! [`Quota`]: N requests per period, with a burst; parsed from `"100/s"`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How many requests an app may send: `requests` per `period`, at most `burst` at once.
///
/// The limit is a GCRA (a leaky bucket without a timer): one request's worth of room comes
/// back every `period / requests`, and up to `burst` requests may arrive back to back. The
/// burst defaults to `requests`, so `100/s` allows 100 requests at once and then one every
/// 10 ms.
///
/// ```
/// use apig_appcode::throttle::Quota;
/// use std::time::Duration;
///
/// let q: Quota = "100/s".parse().unwrap();
/// assert_eq!(q, Quota::new(100, Duration::from_secs(1)).unwrap());
/// assert_eq!(q.burst(), 100);
/// let smooth = q.with_burst(1).unwrap();
/// assert_eq!(smooth.to_string(), "100/s (burst 1)");
/// assert!("0/s".parse::<Quota>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    requests: u32,
    period: Duration,
    burst: u32,
    /// `period / requests` in nanoseconds (the GCRA emission interval), at least 1.
    interval_ns: u64,
}

/// Why a [`Quota`] was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuotaError {
    /// Zero requests per period (use no limit, or refuse the app, instead).
    ZeroRequests,
    /// A zero period.
    ZeroPeriod,
    /// A zero burst: no request could ever pass.
    ZeroBurst,
    /// More than one request per nanosecond, or a period beyond what the clock can hold.
    OutOfRange,
    /// Not `N/s`, `N/m`, `N/h` or `N/d`.
    Syntax,
}

impl fmt::Display for QuotaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ZeroRequests => "a rate limit needs at least 1 request per period",
            Self::ZeroPeriod => "a rate limit needs a non-zero period",
            Self::ZeroBurst => "a burst must be at least 1",
            Self::OutOfRange => "rate limit out of range",
            Self::Syntax => "a rate limit is N/s, N/m, N/h or N/d (such as 100/s)",
        })
    }
}

impl std::error::Error for QuotaError {}

/// Longest period accepted: a year, far below where nanosecond arithmetic could overflow.
const MAX_PERIOD: Duration = Duration::from_secs(366 * 24 * 3600);

impl Quota {
    /// `requests` per `period`, with a burst of `requests`.
    pub fn new(requests: u32, period: Duration) -> Result<Self, QuotaError> {
        if requests == 0 {
            return Err(QuotaError::ZeroRequests);
        }
        if period.is_zero() {
            return Err(QuotaError::ZeroPeriod);
        }
        if period > MAX_PERIOD {
            return Err(QuotaError::OutOfRange);
        }
        // Fits: at most a year of nanoseconds, about 2^55.
        let interval_ns = period.as_nanos() as u64 / u64::from(requests);
        if interval_ns == 0 {
            return Err(QuotaError::OutOfRange);
        }
        Ok(Self {
            requests,
            period,
            burst: requests,
            interval_ns,
        })
    }

    /// `requests` per second, with a burst of `requests`.
    pub fn per_second(requests: u32) -> Result<Self, QuotaError> {
        Self::new(requests, Duration::from_secs(1))
    }

    /// The same rate with at most `burst` requests back to back.
    pub fn with_burst(self, burst: u32) -> Result<Self, QuotaError> {
        if burst == 0 {
            return Err(QuotaError::ZeroBurst);
        }
        Ok(Self { burst, ..self })
    }

    /// Requests per [`period`](Self::period).
    pub fn requests(&self) -> u32 {
        self.requests
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Requests allowed back to back.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The GCRA emission interval: how often one request's worth of room comes back,
    /// `period / requests` (at least 1 ns).
    pub fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns)
    }

    /// How far ahead of now an app's theoretical arrival time may run before its requests are
    /// refused (GCRA's tau): `burst - 1` emission intervals.
    pub fn tolerance(&self) -> Duration {
        Duration::from_nanos(self.tolerance_ns())
    }

    pub(crate) fn interval_ns(&self) -> u64 {
        self.interval_ns
    }

    /// How far ahead of now an app's theoretical arrival time may run (GCRA's tau):
    /// `burst - 1` intervals.
    pub(crate) fn tolerance_ns(&self) -> u64 {
        // At most 2^32 * 2^55 would overflow; saturate, which only means "never throttled by
        // burst" for absurd bursts.
        self.interval_ns.saturating_mul(u64::from(self.burst - 1))
    }
}

impl FromStr for Quota {
    type Err = QuotaError;

    /// `N/s`, `N/m`, `N/h` or `N/d` (also `sec`, `min`, `hour`, `day`), burst `N`.
    fn from_str(s: &str) -> Result<Self, QuotaError> {
        let (n, unit) = s.trim().split_once('/').ok_or(QuotaError::Syntax)?;
        let n: u32 = n.trim().parse().map_err(|_| QuotaError::Syntax)?;
        let period = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            _ => return Err(QuotaError::Syntax),
        };
        Self::new(n, Duration::from_secs(period))
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period.as_secs() {
            _ if self.period.subsec_nanos() != 0 => None,
            1 => Some("s"),
            60 => Some("m"),
            3600 => Some("h"),
            86_400 => Some("d"),
            _ => None,
        };
        match unit {
            Some(u) => write!(f, "{}/{u}", self.requests)?,
            None => write!(f, "{} per {:?}", self.requests, self.period)?,
        }
        if self.burst != self.requests {
            write!(f, " (burst {})", self.burst)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_refuses_the_rest() {
        assert_eq!("2/s".parse::<Quota>().unwrap().interval_ns(), 500_000_000);
        assert_eq!(
            " 60 / min ".parse::<Quota>().unwrap().period(),
            Duration::from_secs(60)
        );
        assert_eq!("1/h".parse::<Quota>().unwrap().to_string(), "1/h");
        assert_eq!("5/d".parse::<Quota>().unwrap().to_string(), "5/d");
        for bad in ["", "10", "10/", "/s", "-1/s", "1.5/s", "10/week", "x/s"] {
            assert_eq!(bad.parse::<Quota>(), Err(QuotaError::Syntax), "{bad}");
        }
        assert_eq!("0/s".parse::<Quota>(), Err(QuotaError::ZeroRequests));
    }

    #[test]
    fn refuses_zero_and_out_of_range() {
        assert_eq!(Quota::new(1, Duration::ZERO), Err(QuotaError::ZeroPeriod));
        assert_eq!(
            Quota::new(2, Duration::from_nanos(1)),
            Err(QuotaError::OutOfRange)
        );
        assert_eq!(
            Quota::new(1, MAX_PERIOD + Duration::from_secs(1)),
            Err(QuotaError::OutOfRange)
        );
        assert_eq!(
            Quota::per_second(1).unwrap().with_burst(0),
            Err(QuotaError::ZeroBurst)
        );
        let q = Quota::per_second(1).unwrap().with_burst(u32::MAX).unwrap();
        assert_eq!(q.tolerance_ns(), 1_000_000_000 * u64::from(u32::MAX - 1));
    }
}
