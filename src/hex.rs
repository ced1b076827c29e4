//! Lowercase hex, the form of APIG's IDs, of request IDs, of generated AppCodes and of UUIDs' text;
//! digits of either case are read where people or percent escapes write them.

/// The hex digit of a nibble (`n < 16`).
pub(crate) fn digit(n: u8) -> u8 {
    n + if n < 10 { b'0' } else { b'a' - 10 }
}

/// Appends the lowercase hex of `bytes` to `out` (which should have the room, so that a secret
/// is never left behind in a freed buffer by a reallocation).
pub(crate) fn push(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        out.push(char::from(digit(b >> 4)));
        out.push(char::from(digit(b & 0x0f)));
    }
}

/// The lowercase hex of 16 bytes. Written as separate passes over fixed-size arrays, so that
/// the compiler turns each into a few vector instructions: a cache hit encodes two IDs.
#[inline(always)]
pub(crate) fn encode16(bytes: &[u8; 16]) -> [u8; 32] {
    let high: [u8; 16] = std::array::from_fn(|i| digit(bytes[i] >> 4));
    let low: [u8; 16] = std::array::from_fn(|i| digit(bytes[i] & 0x0f));
    let mut out = [0u8; 32];
    for i in 0..16 {
        out[2 * i] = high[i];
        out[2 * i + 1] = low[i];
    }
    out
}

/// The value of a hex digit of either case (percent escapes, keys typed by people).
pub(crate) fn value(c: u8) -> Option<u8> {
    lowercase_value(c.to_ascii_lowercase())
}

/// The value of a lowercase hex digit.
fn lowercase_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// The `N` bytes written as exactly `2 * N` lowercase hex digits in `text`, if it is that.
pub(crate) fn decode<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = lowercase_value(pair[0])? << 4 | lowercase_value(pair[1])?;
    }
    Some(out)
}

/// The 16 bytes written as exactly 32 lowercase hex digits in `text`, if it is that.
pub(crate) fn decode16(text: &[u8]) -> Option<[u8; 16]> {
    decode(text)
}

/// Where the dashes of a UUID's text go (8-4-4-4-12 digits).
const UUID_DASHES: [usize; 4] = [8, 13, 18, 23];

/// A UUID in its lowercase text form (`8-4-4-4-12` hex digits), from its 16 bytes.
pub(crate) fn encode_uuid(bytes: &[u8; 16]) -> [u8; 36] {
    let digits = encode16(bytes);
    let mut out = [b'-'; 36];
    let mut from = 0;
    for (start, end) in [(0, 8), (9, 13), (14, 18), (19, 23), (24, 36)] {
        out[start..end].copy_from_slice(&digits[from..from + end - start]);
        from += end - start;
    }
    out
}

/// The 16 bytes of a UUID written in lowercase text form, if `text` is exactly that.
pub(crate) fn decode_uuid(text: &[u8]) -> Option<[u8; 16]> {
    if text.len() != 36 || UUID_DASHES.iter().any(|&i| text[i] != b'-') {
        return None;
    }
    let mut digits = [0u8; 32];
    let mut at = 0;
    for (i, &c) in text.iter().enumerate() {
        if !UUID_DASHES.contains(&i) {
            digits[at] = c;
            at += 1;
        }
    }
    decode16(&digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_at_every_position_agrees_with_format() {
        for seed in 0u8..=255 {
            // 31 is odd, so each position sees all 256 values as the seed runs.
            let bytes: [u8; 16] =
                std::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8 * 17));
            let plain: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(encode16(&bytes), plain.as_bytes());
            assert_eq!(decode16(plain.as_bytes()), Some(bytes));
            let mut pushed = String::new();
            push(&mut pushed, &bytes);
            assert_eq!(pushed, plain);
        }
    }

    #[test]
    fn uuids_round_trip_in_their_lowercase_form_only() {
        let text = "0f8fad5b-d9cb-469f-a165-70867728950e";
        let bytes = decode_uuid(text.as_bytes()).expect("a UUID");
        assert_eq!(encode_uuid(&bytes), text.as_bytes());
        for other in [
            "0F8FAD5B-D9CB-469F-A165-70867728950E",
            "0f8fad5bd9cb-469f-a165-70867728950e-",
            "0f8fad5b-d9cb-469f-a165-70867728950",
            "0f8fad5b-d9cb-469f-a165-70867728950g",
        ] {
            assert_eq!(decode_uuid(other.as_bytes()), None, "{other}");
        }
    }

    #[test]
    fn only_32_lowercase_digits_decode() {
        let upper = "0123456789ABCDEF0123456789ABCDEF";
        assert_eq!(decode16(upper.as_bytes()), None);
        assert_eq!(decode16(&upper.as_bytes()[..30]), None);
        assert_eq!(decode16(b"0123456789abcdef0123456789abcdeg"), None);
        assert_eq!(decode::<2>(b"ab01"), Some([0xab, 0x01]));
        assert_eq!(decode::<2>(b"ab0"), None);
    }

    #[test]
    fn values_of_either_case() {
        let digits: Vec<u8> = (0..=255u8).filter_map(value).collect();
        let expected: Vec<u8> = (0..10).chain(10..16).chain(10..16).collect();
        assert_eq!(digits, expected);
        assert_eq!(value(b'F'), Some(15));
        assert_eq!(value(b'g'), None);
    }
}
