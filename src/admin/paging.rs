//! Query strings and paging: `offset` and `limit` clamped as APIG clamps them.

use super::error::AdminError;
use crate::percent;

/// `limit` when absent or not positive.
pub(crate) const DEFAULT_LIMIT: u64 = 20;
/// The largest `limit`; larger values are clamped, not refused.
pub(crate) const MAX_LIMIT: u64 = 500;

/// A decoded query string. The first occurrence of a key wins; `+` is a literal plus (the SDK
/// writes a space as `%20`).
#[derive(Debug, Default)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Decodes `raw` (without the `?`). A malformed escape or invalid UTF-8 is an invalid
    /// parameter named after its key, when the key itself decodes.
    pub(crate) fn parse(raw: Option<&str>) -> Result<Self, AdminError> {
        let mut pairs = Vec::new();
        for piece in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
            let key = percent::decode(key).ok_or(AdminError::InvalidParameter("query"))?;
            let value = percent::decode(value)
                .ok_or_else(|| AdminError::InvalidParameter(known_name(&key).unwrap_or("query")))?;
            pairs.push((key, value));
        }
        Ok(Self { pairs })
    }

    /// The first value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `offset` and `limit`, defaulted and clamped: a negative offset is 0, a limit of 0 or
    /// less is [`DEFAULT_LIMIT`], above [`MAX_LIMIT`] it is [`MAX_LIMIT`]. A value that is not an
    /// integer is an invalid parameter.
    pub(crate) fn paging(&self) -> Result<(u64, u64), AdminError> {
        let offset = match self.integer("offset")? {
            Some(n) => n.max(0).unsigned_abs(),
            None => 0,
        };
        let limit = match self.integer("limit")? {
            Some(n) if n > 0 => n.unsigned_abs().min(MAX_LIMIT),
            _ => DEFAULT_LIMIT,
        };
        Ok((offset, limit))
    }

    /// An integer parameter; an empty value counts as absent.
    pub(crate) fn integer(&self, key: &'static str) -> Result<Option<i64>, AdminError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .map(Some)
                .map_err(|_| AdminError::InvalidParameter(key)),
        }
    }
}

/// The parameter names the API knows, as `'static` strings for error messages.
fn known_name(key: &str) -> Option<&'static str> {
    [
        "offset",
        "limit",
        "id",
        "name",
        "status",
        "app_key",
        "creator",
        "precise_search",
        "app_name",
    ]
    .into_iter()
    .find(|k| *k == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paging(q: &str) -> Result<(u64, u64), AdminError> {
        Query::parse(Some(q))?.paging()
    }

    #[test]
    fn offset_and_limit_are_clamped() {
        assert_eq!(paging("").unwrap(), (0, 20));
        assert_eq!(paging("offset=-5&limit=0").unwrap(), (0, 20));
        assert_eq!(paging("offset=7&limit=-1").unwrap(), (7, 20));
        assert_eq!(paging("limit=501").unwrap(), (0, 500));
        assert_eq!(paging("limit=500&offset=").unwrap(), (0, 500));
        assert_eq!(paging("limit=9223372036854775807").unwrap(), (0, 500));
        assert_eq!(
            paging("offset=-9223372036854775808").unwrap(),
            (0, DEFAULT_LIMIT)
        );
    }

    #[test]
    fn non_integers_are_named() {
        for (q, name) in [
            ("offset=x", "offset"),
            ("limit=1.5", "limit"),
            ("limit=99999999999999999999", "limit"),
            ("limit=%zz", "limit"),
            ("limit=%+1", "limit"),
            ("%zz=1", "query"),
            ("name=%ff", "name"),
        ] {
            match paging(q) {
                Err(AdminError::InvalidParameter(n)) => assert_eq!(n, name, "{q}"),
                other => panic!("{q}: {other:?}"),
            }
        }
    }

    #[test]
    fn values_are_decoded_and_the_first_wins() {
        let q = Query::parse(Some("name=%E5%BA%94%E7%94%A8+1&name=other&flag")).unwrap();
        assert_eq!(q.get("name"), Some("应用+1"));
        assert_eq!(q.get("flag"), Some(""));
        assert_eq!(q.get("absent"), None);
    }
}
