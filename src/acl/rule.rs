//! [`AppAcl`]: which client addresses may use an app's credentials (APIG's "app ACL").

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The most values one ACL holds (APIG's limit).
pub const MAX_ACL_VALUES: usize = 100;

/// Whether an ACL's addresses are the only ones allowed, or the ones refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AclType {
    /// Only the listed addresses may use the app (`PERMIT`).
    Permit,
    /// The listed addresses may not use the app (`DENY`).
    Deny,
}

impl AclType {
    /// APIG's spelling: `PERMIT` or `DENY`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Permit => "PERMIT",
            Self::Deny => "DENY",
        }
    }
}

impl FromStr for AclType {
    type Err = AclError;

    /// `PERMIT` or `DENY`, as APIG spells them (upper case only).
    fn from_str(s: &str) -> Result<Self, AclError> {
        match s {
            "PERMIT" => Ok(Self::Permit),
            "DENY" => Ok(Self::Deny),
            _ => Err(AclError::Type),
        }
    }
}

impl fmt::Display for AclType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an ACL was refused. The value at fault is named (addresses are not secret).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AclError {
    /// The type is neither `PERMIT` nor `DENY`.
    Type,
    /// No value at all.
    Empty,
    /// More than [`MAX_ACL_VALUES`] values.
    TooMany {
        /// How many were given.
        count: usize,
    },
    /// A value that is not an address, a range `a-b` of one family with `a <= b`, or a CIDR.
    Value(String),
}

impl fmt::Display for AclError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Type => f.write_str("the ACL type must be PERMIT or DENY"),
            Self::Empty => f.write_str("an ACL needs at least one value"),
            Self::TooMany { count } => write!(
                f,
                "an ACL holds at most {MAX_ACL_VALUES} values, got {count}"
            ),
            Self::Value(v) => write!(
                f,
                "not an IP address, a range a-b or a CIDR: {:?}",
                v.chars().take(64).collect::<String>()
            ),
        }
    }
}

impl std::error::Error for AclError {}

/// An app's ACL: a type and up to [`MAX_ACL_VALUES`] addresses, ranges (`a-b`) or CIDR blocks,
/// of IPv4 and IPv6 alike.
///
/// The values are kept as given, for the management API to show, and as merged, sorted
/// intervals for the check: [`admits`](Self::admits) is a binary search, without allocation.
/// IPv4-mapped IPv6 clients (`::ffff:a.b.c.d`, what a dual-stack socket reports for an IPv4
/// peer) match IPv4 values.
///
/// ```
/// use apig_appcode::acl::{AclType, AppAcl};
///
/// let acl = AppAcl::new(AclType::Permit, ["192.0.2.0/24", "198.51.100.7", "2001:db8::1-2001:db8::ff"])?;
/// assert!(acl.admits("192.0.2.200".parse().unwrap()));
/// assert!(acl.admits("::ffff:198.51.100.7".parse().unwrap()));
/// assert!(acl.admits("2001:db8::80".parse().unwrap()));
/// assert!(!acl.admits("203.0.113.1".parse().unwrap()));
///
/// let deny = AppAcl::new(AclType::Deny, ["10.0.0.0/8"])?;
/// assert!(!deny.admits("10.1.2.3".parse().unwrap()));
/// assert!(deny.admits("192.0.2.1".parse().unwrap()));
/// # Ok::<(), apig_appcode::acl::AclError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct AppAcl {
    kind: AclType,
    values: Vec<String>,
    /// Inclusive, sorted, non-overlapping and non-adjacent intervals of addresses in one space
    /// (see [`key`]).
    intervals: Box<[(u128, u128)]>,
}

impl fmt::Debug for AppAcl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppAcl")
            .field("kind", &self.kind)
            .field("values", &self.values)
            .finish()
    }
}

impl AppAcl {
    /// Checks and parses `values` (surrounding spaces are ignored; repeats are kept as given).
    pub fn new<I, V>(kind: AclType, values: I) -> Result<Self, AclError>
    where
        I: IntoIterator<Item = V>,
        V: AsRef<str>,
    {
        let values: Vec<String> = values
            .into_iter()
            .map(|v| v.as_ref().trim().to_owned())
            .collect();
        if values.is_empty() {
            return Err(AclError::Empty);
        }
        if values.len() > MAX_ACL_VALUES {
            return Err(AclError::TooMany {
                count: values.len(),
            });
        }
        let mut intervals = values
            .iter()
            .map(|v| interval(v).ok_or_else(|| AclError::Value(v.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        intervals.sort_unstable();
        let mut merged: Vec<(u128, u128)> = Vec::with_capacity(intervals.len());
        for (lo, hi) in intervals {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        Ok(Self {
            kind,
            values,
            intervals: merged.into_boxed_slice(),
        })
    }

    /// `PERMIT` or `DENY`.
    pub fn kind(&self) -> AclType {
        self.kind
    }

    /// The values as given.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether a client at `ip` may use the app's credentials.
    pub fn admits(&self, ip: IpAddr) -> bool {
        let k = key(ip);
        // The last interval starting at or below `k` is the only one that can hold it.
        let i = self.intervals.partition_point(|&(lo, _)| lo <= k);
        let listed = i > 0 && k <= self.intervals[i - 1].1;
        match self.kind {
            AclType::Permit => listed,
            AclType::Deny => !listed,
        }
    }
}

/// An address as a point in one space: IPv6 as is, IPv4 at its IPv4-mapped IPv6 address, so
/// that a mapped client and an IPv4 value meet.
fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The inclusive interval a value stands for, or `None` if it is none of the three forms.
fn interval(value: &str) -> Option<(u128, u128)> {
    if let Some((a, b)) = value.split_once('-') {
        let (a, b): (IpAddr, IpAddr) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        if a.is_ipv4() != b.is_ipv4() || key(a) > key(b) {
            return None;
        }
        return Some((key(a), key(b)));
    }
    if let Some((addr, prefix)) = value.split_once('/') {
        let addr: IpAddr = addr.parse().ok()?;
        // Digits only: `u8::from_str` would take a leading `+`.
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let prefix: u32 = prefix.parse().ok()?;
        // An IPv4 address is the last 32 bits of its key, so its prefix is 96 bits longer there.
        let prefix = match addr {
            IpAddr::V4(_) if prefix <= 32 => prefix + 96,
            IpAddr::V6(_) if prefix <= 128 => prefix,
            _ => return None,
        };
        let host = u128::MAX.checked_shr(prefix).unwrap_or(0);
        let lo = key(addr) & !host;
        return Some((lo, lo | host));
    }
    let ip: IpAddr = value.parse().ok()?;
    Some((key(ip), key(ip)))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_form_of_value_is_understood() {
        let acl = AppAcl::new(
            AclType::Permit,
            [
                "192.0.2.1",
                " 198.51.100.10-198.51.100.20 ",
                "203.0.113.0/25",
                "2001:db8::/126",
                "fe80::1-fe80::3",
                "0.0.0.0/32",
            ],
        )
        .unwrap();
        for yes in [
            "192.0.2.1",
            "198.51.100.10",
            "198.51.100.20",
            "203.0.113.127",
            "2001:db8::3",
            "fe80::2",
            "::ffff:192.0.2.1",
            "0.0.0.0",
        ] {
            assert!(acl.admits(ip(yes)), "{yes}");
        }
        for no in [
            "192.0.2.2",
            "198.51.100.9",
            "198.51.100.21",
            "203.0.113.128",
            "2001:db8::4",
            "fe80::4",
            "::192.0.2.1",
            "0.0.0.1",
        ] {
            assert!(!acl.admits(ip(no)), "{no}");
        }
        assert_eq!(acl.values()[1], "198.51.100.10-198.51.100.20");
    }

    #[test]
    fn deny_refuses_the_listed_and_admits_the_rest() {
        let acl = AppAcl::new(AclType::Deny, ["10.0.0.0/8", "::1"]).unwrap();
        assert!(!acl.admits(ip("10.255.255.255")));
        assert!(!acl.admits(ip("::1")));
        assert!(acl.admits(ip("11.0.0.0")));
        assert!(acl.admits(ip("::2")));
    }

    #[test]
    fn whole_spaces_and_overlaps_merge() {
        let acl = AppAcl::new(
            AclType::Permit,
            ["0.0.0.0/0", "10.0.0.0/8", "::/0", "1.2.3.4-1.2.3.4"],
        )
        .unwrap();
        assert!(acl.admits(ip("255.255.255.255")));
        assert!(acl.admits(ip("ffff::1")));
        assert_eq!(acl.intervals.len(), 1, "{:?}", acl.intervals);
    }

    #[test]
    fn bad_values_are_named() {
        for bad in [
            "",
            "x",
            "1.2.3",
            "1.2.3.4/33",
            "::/129",
            "1.2.3.4/",
            "1.2.3.4/+8",
            "1.2.3.4/-1",
            "1.2.3.9-1.2.3.4",
            "1.2.3.4-::1",
            "1.2.3.4-",
            "01.2.3.4",
        ] {
            assert_eq!(
                AppAcl::new(AclType::Permit, [bad]).unwrap_err(),
                AclError::Value(bad.to_owned()),
                "{bad:?}"
            );
        }
        assert_eq!(
            AppAcl::new(AclType::Deny, Vec::<String>::new()).unwrap_err(),
            AclError::Empty
        );
        let many: Vec<String> = (0..=MAX_ACL_VALUES)
            .map(|i| format!("10.0.0.{}", i % 256))
            .collect();
        assert_eq!(
            AppAcl::new(AclType::Deny, &many).unwrap_err(),
            AclError::TooMany { count: 101 }
        );
        assert!(AppAcl::new(AclType::Deny, &many[..MAX_ACL_VALUES]).is_ok());
        assert_eq!("permit".parse::<AclType>().unwrap_err(), AclError::Type);
    }

    proptest::proptest! {
        /// The binary search over merged intervals agrees with checking every value in turn.
        #[test]
        fn the_search_agrees_with_a_scan(
            ranges in proptest::collection::vec((0u32..4096, 0u32..64), 1..20),
            probe in 0u32..4200,
            deny in proptest::bool::ANY,
        ) {
            let base = u32::from(Ipv4Addr::new(10, 0, 0, 0));
            let values: Vec<String> = ranges
                .iter()
                .map(|&(start, len)| {
                    let a = Ipv4Addr::from(base + start);
                    let b = Ipv4Addr::from(base + start + len);
                    format!("{a}-{b}")
                })
                .collect();
            let kind = if deny { AclType::Deny } else { AclType::Permit };
            let acl = AppAcl::new(kind, &values).unwrap();
            let p = base + probe;
            let listed = ranges.iter().any(|&(s, l)| base + s <= p && p <= base + s + l);
            proptest::prop_assert_eq!(acl.admits(Ipv4Addr::from(p).into()), listed != deny);
        }
    }
}
