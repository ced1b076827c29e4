//! [`DatabaseUrl`]: where the store lives, shown without its password.

use std::fmt;
use std::path::PathBuf;

use super::ConfigError;

/// What `--database` names. `Display` and `Debug` hide a password in a PostgreSQL URL.
///
/// ```
/// use apig_appcode::gateway::config::DatabaseUrl;
///
/// let url = DatabaseUrl::parse("postgres://apig:s3cret@db:5432/apig").unwrap();
/// assert_eq!(url.to_string(), "postgres://apig:***@db:5432/apig");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://` or `postgresql://` URL, as given).
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses `sqlite://PATH` (or `sqlite:PATH`), or a `postgres://` / `postgresql://` URL
    /// (checked when the store connects).
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Self::Postgres(s.to_owned()));
        }
        let path = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
            .ok_or_else(|| {
                ConfigError::new(format!(
                    "--database {:?}: expected sqlite://PATH or postgres://USER@HOST/DBNAME",
                    redact_url(s)
                ))
            })?;
        if path.is_empty() {
            return Err(ConfigError::new("--database sqlite:// needs a file path"));
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            Self::Postgres(url) => f.write_str(&redact_url(url)),
        }
    }
}

/// `url` with the password of its user information and any `password=` query parameter
/// replaced by `***`. When unsure where the user information ends (an `@` anywhere before the
/// query), everything after the user name up to the last `@` is hidden.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let query_at = rest.find(['?', '#']).unwrap_or(rest.len());
    let (before_query, query) = rest.split_at(query_at);
    let mut out = format!("{scheme}://");
    match before_query.rsplit_once('@') {
        Some((userinfo, host)) => {
            match userinfo.split_once(':') {
                Some((user, _password)) => out.push_str(&format!("{user}:***")),
                None => out.push_str(userinfo),
            }
            out.push('@');
            out.push_str(host);
        }
        None => out.push_str(before_query),
    }
    let Some(params) = query.strip_prefix('?') else {
        out.push_str(query);
        return out;
    };
    out.push('?');
    for (i, param) in params.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match param.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                out.push_str(key);
                out.push_str("=***");
            }
            _ => out.push_str(param),
        }
    }
    out
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_are_accepted_and_shown_without_password() {
        for (given, shown) in [
            (
                "postgres://apig:pa55@db.internal:5432/apig",
                "postgres://apig:***@db.internal:5432/apig",
            ),
            (
                "postgresql://apig@db/apig?password=pa55&application_name=n1",
                "postgresql://apig@db/apig?password=***&application_name=n1",
            ),
            ("postgres://db/apig", "postgres://db/apig"),
            // An unencoded '@' or '/' in the password: hidden up to the last '@'.
            (
                "postgres://apig:pa/5@5@db/apig",
                "postgres://apig:***@db/apig",
            ),
        ] {
            let url = DatabaseUrl::parse(given).unwrap();
            assert_eq!(url, DatabaseUrl::Postgres(given.to_owned()));
            assert_eq!(url.to_string(), shown);
            assert_eq!(format!("{url:?}"), shown);
        }
    }

    #[test]
    fn other_schemes_are_refused_without_echoing_a_password() {
        let err = DatabaseUrl::parse("mysql://u:pa55word@h/d")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("postgres://") && !err.contains("pa55word"),
            "{err}"
        );
        assert!(DatabaseUrl::parse("sqlite://").is_err());
        assert_eq!(
            DatabaseUrl::parse("sqlite:relative.db").unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("relative.db"))
        );
    }
}
