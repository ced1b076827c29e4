//! The first-run admin token file, `<database file>.admin-token`: created by `serve` when no
//! management credential is configured, read by the CLI to find the token. The token itself is
//! never logged or printed.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::admin::MIN_TOKEN_LEN;

/// `<database file>.admin-token`.
///
/// ```
/// use std::path::Path;
///
/// let file = apig_appcode::gateway::token_path(Path::new("/var/lib/apig/apig.db"));
/// assert_eq!(file, Path::new("/var/lib/apig/apig.db.admin-token"));
/// ```
pub fn path(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".admin-token");
    db.with_file_name(name)
}

/// The token in the file at `path`, created (mode 0600, a new random token) if there is none;
/// `true` if it was created now.
pub(crate) fn read_or_create(path: &Path) -> std::io::Result<(String, bool)> {
    let (token, created) = match std::fs::read_to_string(path) {
        Ok(text) => (text.trim().to_owned(), false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = crate::AppCode::generate().expose().to_owned();
            match publish(path, &token) {
                Ok(()) => (token, true),
                // Another server on the same database created it first: use that one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    (std::fs::read_to_string(path)?.trim().to_owned(), false)
                }
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    if token.len() < MIN_TOKEN_LEN {
        return Err(std::io::Error::other(format!(
            "the token in the file is shorter than {MIN_TOKEN_LEN} characters"
        )));
    }
    Ok((token, created))
}

/// Writes `token` to a private (0600) temporary file, then links it to `path` in one step, so
/// that a server starting at the same moment on the same database reads either no file or the
/// whole token, never a partial one. Fails with `AlreadyExists` if `path` appeared meanwhile.
fn publish(path: &Path, token: &str) -> std::io::Result<()> {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(name);
    // A leftover of a crashed process that had the same ID.
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(token.as_bytes())?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    linked
}
