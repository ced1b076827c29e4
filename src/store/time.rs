//! UTC timestamps with nanoseconds, formatted like APIG's (`2020-07-24T02:37:24.835128293Z`).

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::civil::{civil_from_days, days_from_civil};

/// Nanoseconds since the Unix epoch, UTC.
///
/// ```
/// use apig_appcode::store::Timestamp;
///
/// let t = Timestamp::from_unix_nanos(1_595_558_244_835_128_293);
/// assert_eq!(t.to_string(), "2020-07-24T02:37:24.835128293Z");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// Now.
    pub fn now() -> Self {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self(i64::try_from(since.as_nanos()).unwrap_or(i64::MAX))
    }

    /// From nanoseconds since the epoch.
    pub fn from_unix_nanos(nanos: i64) -> Self {
        Self(nanos)
    }

    /// Nanoseconds since the epoch.
    pub fn unix_nanos(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with nine fractional digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ((y, m, d), (hh, mm, ss)) = civil_time(self.0.div_euclid(1_000_000_000));
        let nanos = self.0.rem_euclid(1_000_000_000);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{nanos:09}Z"
        )
    }
}

/// The UTC date (year, month, day) and time of day (hour, minute, second) of `secs` since the
/// epoch: what both of APIG's forms ([`Timestamp`]'s and [`format_date_time`]'s) write.
fn civil_time(secs: i64) -> ((i64, u32, u32), (i64, i64, i64)) {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    (
        civil_from_days(days),
        (rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

/// What is not a timestamp in APIG's RFC 3339 form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampError;

impl fmt::Display for TimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected a UTC time such as 2020-07-24T02:37:24.835128293Z")
    }
}

impl std::error::Error for TimestampError {}

impl FromStr for Timestamp {
    type Err = TimestampError;

    /// Reads what [`Display`](fmt::Display) writes, and the same with zero to nine fractional
    /// digits: the times another APIG shows, kept when its apps are copied here.
    ///
    /// ```
    /// use apig_appcode::store::Timestamp;
    ///
    /// let t: Timestamp = "2020-07-24T02:37:24.835128293Z".parse().unwrap();
    /// assert_eq!(t, Timestamp::from_unix_nanos(1_595_558_244_835_128_293));
    /// assert_eq!("2020-07-24T02:37:24Z".parse::<Timestamp>().unwrap().unix_nanos() % 1_000_000_000, 0);
    /// assert!("2020-07-24 02:37:24".parse::<Timestamp>().is_err());
    /// ```
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let rest = text.strip_suffix('Z').ok_or(TimestampError)?;
        let (date, time) = rest.split_once('T').ok_or(TimestampError)?;
        let (hms, fraction) = match time.split_once('.') {
            Some((hms, fraction)) => (hms, fraction),
            None => (time, ""),
        };
        let digits = fraction.len() <= 9 && fraction.bytes().all(|b| b.is_ascii_digit());
        if !digits || (time.contains('.') && fraction.is_empty()) {
            return Err(TimestampError);
        }
        let secs = parse_date_time(&format!("{date} {hms}")).ok_or(TimestampError)?;
        let nanos = format!("{fraction:0<9}")
            .parse::<i64>()
            .map_err(|_| TimestampError)?;
        secs.checked_mul(1_000_000_000)
            .and_then(|n| n.checked_add(nanos))
            .map(Self)
            .ok_or(TimestampError)
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, as APIG writes an app quota's `reset_time`.
#[cfg_attr(not(feature = "admin"), allow(dead_code))]
pub(crate) fn format_date_time(secs: i64) -> String {
    let ((y, m, d), (hh, mm, ss)) = civil_time(secs);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}")
}

/// Seconds since the epoch of `YYYY-MM-DD HH:MM:SS` read as UTC; `None` unless the text is
/// exactly that shape and a real date and time.
pub(crate) fn parse_date_time(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let shape = b.len() == 19
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':';
    if !shape {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = &text[range];
        digits
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| digits.parse().ok())
            .flatten()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if d < 1 || d > month_days || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(
            Timestamp::from_unix_nanos(0).to_string(),
            "1970-01-01T00:00:00.000000000Z"
        );
        // A leap day and the last nanosecond of a year.
        assert_eq!(
            Timestamp::from_unix_nanos(951_782_400_000_000_001).to_string(),
            "2000-02-29T00:00:00.000000001Z"
        );
        assert_eq!(
            Timestamp::from_unix_nanos(1_735_689_599_999_999_999).to_string(),
            "2024-12-31T23:59:59.999999999Z"
        );
        assert_eq!(
            Timestamp::from_unix_nanos(-1).to_string(),
            "1969-12-31T23:59:59.999999999Z"
        );
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-719_468, -1, 0, 11_016, 19_724, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(
                days_from_civil(y, i64::from(m), i64::from(d)),
                days,
                "{y}-{m}-{d}"
            );
        }
    }

    #[test]
    fn date_times_read_and_write_as_apig_spells_them() {
        assert_eq!(parse_date_time("2020-02-29 05:05:00"), Some(1_582_952_700));
        assert_eq!(format_date_time(1_582_952_700), "2020-02-29 05:05:00");
        assert_eq!(format_date_time(0), "1970-01-01 00:00:00");
        for bad in [
            "2021-02-29 00:00:00",
            "2020-13-01 00:00:00",
            "2020-01-01T00:00:00",
            "2020-01-01 24:00:00",
            "2020-1-01 00:00:00",
            "2020-01-01 00:00:0x",
            "+020-01-01 00:00:00",
            "",
        ] {
            assert_eq!(parse_date_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn timestamps_read_back_what_they_write() {
        for nanos in [0, -1, 951_782_400_000_000_001, 1_735_689_599_999_999_999] {
            let t = Timestamp::from_unix_nanos(nanos);
            assert_eq!(t.to_string().parse::<Timestamp>(), Ok(t));
        }
        assert_eq!(
            "2020-07-24T02:37:24.5Z".parse::<Timestamp>(),
            Ok(Timestamp::from_unix_nanos(1_595_558_244_500_000_000))
        );
        for bad in [
            "2020-07-24T02:37:24.Z",
            "2020-07-24T02:37:24.1234567890Z",
            "2020-07-24T02:37:24",
            "2020-07-24 02:37:24Z",
            "2020-02-30T00:00:00Z",
            "",
        ] {
            assert_eq!(bad.parse::<Timestamp>(), Err(TimestampError), "{bad}");
        }
    }

    #[test]
    fn now_is_after_2020() {
        assert!(Timestamp::now().to_string().as_str() > "2020");
    }
}
