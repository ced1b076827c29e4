//! The AppCode secret: validation rules, redaction and generation.
//!
//! # Example
//!
//! ```
//! use apig_appcode::AppCode;
//!
//! let code: AppCode = "a".repeat(64).parse().unwrap();
//! assert_eq!(format!("{code:?}"), "AppCode(<redacted>)");
//! assert!("too-short".parse::<AppCode>().is_err());
//! ```

use std::fmt;
use std::str::FromStr;

use crate::hex;
use crate::secret::{Secret, REDACTED};
use http::HeaderValue;

/// Shortest AppCode APIG accepts.
pub const MIN_LEN: usize = 64;
/// Longest AppCode APIG accepts.
pub const MAX_LEN: usize = 180;

/// An AppCode: the secret a caller sends in `X-Apig-AppCode`.
///
/// Only values that follow APIG's rules can be built: 64 to 180 characters of ASCII letters, digits
/// and `+ _ ! @ # $ % - / =`, starting with a letter, a digit, `+` or `/`.
/// `Debug` and `Display` never show the value, and its memory is zeroed on drop.
///
/// ```
/// use apig_appcode::AppCode;
///
/// let code = AppCode::generate();
/// assert_eq!(code.expose().len(), 64);
/// assert_eq!(code.to_string(), "<redacted>");
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AppCode(Secret<String>);

impl AppCode {
    /// Checks `value` against APIG's rules and wraps it.
    ///
    /// ```
    /// use apig_appcode::{AppCode, AppCodeError};
    ///
    /// assert_eq!(AppCode::parse("x").unwrap_err(), AppCodeError::TooShort { len: 1 });
    /// assert!(AppCode::parse(&"Z".repeat(180)).is_ok());
    /// ```
    pub fn parse(value: &str) -> Result<Self, AppCodeError> {
        validate(value.as_bytes())?;
        Ok(Self(Secret::new(value.to_owned())))
    }

    /// Wraps bytes that [`validate`] accepted, without checking them again. The rules admit
    /// ASCII only, so the conversion to text is exact.
    pub(crate) fn from_validated(raw: &[u8]) -> Self {
        debug_assert!(validate(raw).is_ok());
        Self(Secret::new(String::from_utf8_lossy(raw).into_owned()))
    }

    /// A new random AppCode in the shape APIG auto-generates: 64 lowercase hex characters carrying
    /// 256 bits from the operating system's CSPRNG.
    ///
    /// # Panics
    ///
    /// If the operating system cannot provide random bytes, which leaves no safe way to go on.
    ///
    /// ```
    /// use apig_appcode::AppCode;
    ///
    /// let (a, b) = (AppCode::generate(), AppCode::generate());
    /// assert_ne!(a.expose(), b.expose());
    /// assert!(a.expose().bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    /// ```
    pub fn generate() -> Self {
        let mut raw = Secret::new([0u8; 32]);
        getrandom::fill(raw.expose_mut()).expect("the OS random number generator failed");
        let mut out = String::with_capacity(64);
        hex::push(&mut out, raw.expose());
        Self(Secret::new(out))
    }

    /// The secret value. Call it only where the value must leave the process (a response to its
    /// owner, a store): every use is a place where it could leak.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The value as a header value marked sensitive, so that HTTP/2 HPACK never indexes it and
    /// `Debug` of the header map hides it.
    ///
    /// ```
    /// use apig_appcode::AppCode;
    ///
    /// assert!(AppCode::generate().to_header_value().is_sensitive());
    /// ```
    pub fn to_header_value(&self) -> HeaderValue {
        let mut value = HeaderValue::from_str(self.0.expose())
            .expect("a validated AppCode is a valid header value");
        value.set_sensitive(true);
        value
    }
}

impl fmt::Display for AppCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl FromStr for AppCode {
    type Err = AppCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&HeaderValue> for AppCode {
    type Error = AppCodeError;

    fn try_from(value: &HeaderValue) -> Result<Self, Self::Error> {
        validate(value.as_bytes())?;
        // Validation admits ASCII only, so this cannot fail.
        let text = std::str::from_utf8(value.as_bytes())
            .map_err(|_| AppCodeError::InvalidCharacter { index: 0 })?;
        Ok(Self(Secret::new(text.to_owned())))
    }
}

/// Why a value is not an AppCode. Names the rule, never the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AppCodeError {
    /// Shorter than 64 characters.
    TooShort {
        /// The length seen, in bytes.
        len: usize,
    },
    /// Longer than 180 characters.
    TooLong {
        /// The length seen, in bytes.
        len: usize,
    },
    /// The first character is not a letter, a digit, `+` or `/`.
    InvalidFirstCharacter,
    /// A character outside letters, digits and `+ _ ! @ # $ % - / =`.
    InvalidCharacter {
        /// Its position, counted in bytes from 0.
        index: usize,
    },
}

impl fmt::Display for AppCodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len } => {
                write!(f, "AppCode is {len} characters long; at least {MIN_LEN} are required")
            }
            Self::TooLong { len } => {
                write!(f, "AppCode is {len} characters long; at most {MAX_LEN} are allowed")
            }
            Self::InvalidFirstCharacter => {
                f.write_str("AppCode must start with a letter, a digit, '+' or '/'")
            }
            Self::InvalidCharacter { index } => write!(
                f,
                "AppCode character {index} is not allowed; use letters, digits and + _ ! @ # $ % - / ="
            ),
        }
    }
}

impl std::error::Error for AppCodeError {}

/// Byte classes of the AppCode alphabet: bit 0 = allowed anywhere, bit 1 = allowed first.
const CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let alnum = c.is_ascii_alphanumeric();
        let first = alnum || c == b'+' || c == b'/';
        let any = first || matches!(c, b'_' | b'!' | b'@' | b'#' | b'$' | b'%' | b'-' | b'=');
        table[b] = (any as u8) | ((first as u8) << 1);
        b += 1;
    }
    table
};

/// Checks raw bytes against APIG's AppCode rules without allocating.
///
/// The loop always runs over the whole input, so its time depends on the length only.
///
/// ```
/// use apig_appcode::code::validate;
///
/// assert!(validate("/".repeat(64).as_bytes()).is_ok());
/// assert!(validate("=".repeat(64).as_bytes()).is_err());
/// ```
pub fn validate(bytes: &[u8]) -> Result<(), AppCodeError> {
    let len = bytes.len();
    if len < MIN_LEN {
        return Err(AppCodeError::TooShort { len });
    }
    if len > MAX_LEN {
        return Err(AppCodeError::TooLong { len });
    }
    if CLASS[usize::from(bytes[0])] & 2 == 0 {
        return Err(AppCodeError::InvalidFirstCharacter);
    }
    // Four accumulators let the table loads run in parallel instead of one AND chain.
    let mut acc = [1u8; 4];
    let mut chunks = bytes.chunks_exact(4);
    for c in &mut chunks {
        for i in 0..4 {
            acc[i] &= CLASS[usize::from(c[i])];
        }
    }
    for &b in chunks.remainder() {
        acc[0] &= CLASS[usize::from(b)];
    }
    if acc[0] & acc[1] & acc[2] & acc[3] & 1 == 0 {
        let index = bytes
            .iter()
            .position(|&b| CLASS[usize::from(b)] & 1 == 0)
            .unwrap_or(0);
        return Err(AppCodeError::InvalidCharacter { index });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALLOWED: &str =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+_!@#$%-/=";

    #[test]
    fn documented_example_is_accepted() {
        // From the APIG reference's create example (176 characters, starts with a letter).
        let doc = "GjOD3g80AABuuFeEJpVQADBlAjBh3UzC7W+gr4VJBB5BtJ4fdVOQoSvoji3gFxUDb5pWBz9wUcw9+8/bFZ1B/4pq29wCMQC0pQWX6zTndljDEl99As1pw+WntAU9xcq+ffagoH6zDpKUvdxV6Ezj8LcCcPZN6BU=";
        assert!(AppCode::parse(doc).is_ok());
    }

    #[test]
    fn lengths_at_the_bounds() {
        assert_eq!(
            validate(&[b'a'; 63]),
            Err(AppCodeError::TooShort { len: 63 })
        );
        assert!(validate(&[b'a'; 64]).is_ok());
        assert!(validate(&[b'a'; 180]).is_ok());
        assert_eq!(
            validate(&[b'a'; 181]),
            Err(AppCodeError::TooLong { len: 181 })
        );
        assert_eq!(validate(b""), Err(AppCodeError::TooShort { len: 0 }));
    }

    #[test]
    fn errors_and_debug_never_echo_the_value() {
        let secret = format!("{}*", "s3cretValue".repeat(6));
        let err = AppCode::parse(&secret).unwrap_err();
        assert_eq!(err, AppCodeError::InvalidCharacter { index: 66 });
        assert!(!err.to_string().contains("s3cretValue"));
        let ok = AppCode::parse(&"s3cretValue".repeat(6)).unwrap();
        assert!(!format!("{ok:?} {ok}").contains("s3cretValue"));
    }

    #[test]
    fn header_value_round_trip_is_sensitive() {
        let code = AppCode::generate();
        let header = code.to_header_value();
        assert!(header.is_sensitive());
        assert_eq!(AppCode::try_from(&header).unwrap().expose(), code.expose());
        assert!(!format!("{header:?}").contains(code.expose()));
    }

    fn regex_match(s: &str) -> bool {
        let b = s.as_bytes();
        (64..=180).contains(&b.len())
            && (b[0].is_ascii_alphanumeric() || b[0] == b'+' || b[0] == b'/')
            && b.iter().all(|c| ALLOWED.as_bytes().contains(c))
    }

    proptest! {
        #[test]
        fn valid_codes_are_accepted(s in "[A-Za-z0-9+/][A-Za-z0-9+_!@#$%/=-]{63,179}") {
            prop_assert!(AppCode::parse(&s).is_ok());
        }

        #[test]
        fn validation_agrees_with_the_documented_regex(s in "[ -~\u{80}-\u{10ffff}]{0,200}") {
            prop_assert_eq!(validate(s.as_bytes()).is_ok(), regex_match(&s));
        }

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = validate(&bytes);
        }

        #[test]
        fn bad_first_character_is_named(first in "[_!@#$%=-]", rest in "[a-z]{63}") {
            prop_assert_eq!(validate(format!("{first}{rest}").as_bytes()), Err(AppCodeError::InvalidFirstCharacter));
        }
    }
}
