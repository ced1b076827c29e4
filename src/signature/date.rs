//! `X-Sdk-Date` (`%Y%m%dT%H%M%SZ`, UTC) read and written as the SDK does, and the clock-skew
//! window.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::civil::{civil_from_days, days_from_civil};

use super::SignatureError;

/// Parses `%Y%m%dT%H%M%SZ` as the SDK writes it (always zero-padded, 16 characters).
///
/// Python's `strptime` would also take unpadded fields, but the SDK formats the header with
/// `strftime` and signs the re-formatted time, so only the padded form can verify.
pub(super) fn parse_sdk_date(value: &str) -> Result<SystemTime, SignatureError> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return Err(SignatureError::DateMalformed);
    }
    let number = |range: std::ops::Range<usize>| -> Result<u32, SignatureError> {
        let digits = b.get(range).ok_or(SignatureError::DateMalformed)?;
        digits.iter().try_fold(0u32, |acc, &d| {
            if d.is_ascii_digit() {
                Ok(acc * 10 + u32::from(d - b'0'))
            } else {
                Err(SignatureError::DateMalformed)
            }
        })
    };
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute, second) = (number(9..11)?, number(11..13)?, number(13..15)?);

    // Python's datetime has no year 0 and rejects leap seconds.
    let valid = year >= 1
        && (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(year, month)
        && hour < 24
        && minute < 60
        && second < 60;
    if !valid {
        return Err(SignatureError::DateMalformed);
    }
    let days = days_from_civil(i64::from(year), i64::from(month), i64::from(day));
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    let magnitude = Duration::from_secs(secs.unsigned_abs());
    let time = if secs >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    };
    time.ok_or(SignatureError::DateMalformed)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// `at` as `%Y%m%dT%H%M%SZ` (UTC), for years 1 to 9999.
pub(crate) fn format_sdk_date(at: SystemTime) -> Result<String, SignatureError> {
    // Whole seconds, rounded down (towards the past, also before the epoch).
    let secs = match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).ok(),
        Err(before) => i64::try_from(before.duration().as_secs())
            .ok()
            .map(|s| -s - i64::from(before.duration().subsec_nanos() > 0)),
    }
    .ok_or(SignatureError::DateMalformed)?;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    if !(1..=9999).contains(&year) {
        return Err(SignatureError::DateMalformed);
    }
    Ok(format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

/// Whether `signed_at` lies within `max_skew` of `now`, in either direction.
pub(super) fn check_skew(
    signed_at: SystemTime,
    now: SystemTime,
    max_skew: Duration,
) -> Result<(), SignatureError> {
    let skew = match now.duration_since(signed_at) {
        Ok(behind) => behind,
        Err(ahead) => ahead.duration(),
    };
    if skew > max_skew {
        return Err(SignatureError::DateOutOfWindow);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::vectors::VECTOR_TIME;
    use super::*;

    #[test]
    fn date_parsing() {
        let secs =
            |s: &str| parse_sdk_date(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs());
        assert_eq!(secs("19700101T000000Z"), Ok(0));
        assert_eq!(secs("20240102T030405Z"), Ok(VECTOR_TIME));
        assert_eq!(secs("20240229T235959Z"), Ok(1_709_251_199));
        assert_eq!(secs("20000229T000000Z"), Ok(951_782_400));
        assert!(parse_sdk_date("19690101T000000Z").is_ok());
        assert!(parse_sdk_date("00010101T000000Z").is_ok());
        for bad in [
            "20230229T000000Z",
            "19000229T000000Z",
            "20241301T000000Z",
            "20240100T000000Z",
            "20240101T240000Z",
            "20240101T006000Z",
            "20240101T000060Z",
            "00000101T000000Z",
            "2024010 T000000Z",
            "+0240101T000000Z",
            "20240101T000000Z ",
            "２０２40101T0000Z",
        ] {
            assert_eq!(
                parse_sdk_date(bad),
                Err(SignatureError::DateMalformed),
                "{bad}"
            );
        }
    }
}
