//! Random IDs, keys and AppCodes, and the shape of IDs accepted in paths.

use super::error::AdminError;
use crate::code::AppCode;
use crate::hex;
use crate::secret::Secret;

/// The longest ID accepted in a path.
pub(crate) const MAX_ID_LEN: usize = 64;

/// Whether `id` may name a project, instance, app or AppCode: 1 to 64 ASCII letters, digits,
/// `-` or `_`. APIG's IDs (and the ones generated here) are 32 lowercase hex characters; the
/// rule is looser so stores filled by other tools and test IDs like `proj1` keep working,
/// and strict enough that nothing odd reaches a store query, a log line or a message.
pub(crate) fn is_plain_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `N` random bytes as `2 * N` lowercase hex characters.
fn random_hex<const N: usize>() -> Result<String, AdminError> {
    let mut raw = Secret::new([0u8; N]);
    getrandom::fill(raw.expose_mut())
        .map_err(|e| AdminError::Internal(format!("the OS random number generator failed: {e}")))?;
    let mut out = String::with_capacity(2 * N);
    hex::push(&mut out, raw.expose());
    Ok(out)
}

/// A new ID, app key or app secret: 32 lowercase hex characters (128 random bits).
pub(crate) fn random_id() -> Result<String, AdminError> {
    random_hex::<16>()
}

/// A new AppCode as APIG generates them: 64 lowercase hex characters (256 random bits).
/// Unlike [`AppCode::generate`] it reports a failing random source instead of panicking.
pub(crate) fn random_app_code() -> Result<AppCode, AdminError> {
    let hex = Secret::new(random_hex::<32>()?);
    AppCode::parse(hex.expose())
        .map_err(|e| AdminError::Internal(format!("generated AppCode is invalid: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_have_apigs_shape() {
        let id = random_id().unwrap();
        assert_eq!(id.len(), 32);
        assert!(is_plain_id(&id));
        assert_ne!(id, random_id().unwrap());
        let code = random_app_code().unwrap();
        assert_eq!(code.expose().len(), 64);
        assert!(code
            .expose()
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }

    #[test]
    fn path_ids() {
        assert!(is_plain_id("proj1"));
        assert!(is_plain_id(&"a".repeat(64)));
        for bad in ["", "a b", "a/b", "ü", "a%20", "..", &"a".repeat(65)] {
            assert!(!is_plain_id(bad), "{bad}");
        }
    }
}
