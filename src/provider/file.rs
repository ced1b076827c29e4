//! AppCodes from a file, reloaded when it changes.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::{AppCodeProvider, BoxFuture, Change, ChangeStream, ProviderError, Snapshot};
use crate::code::AppCode;
use crate::identity::AppIdentity;

/// Reads apps and their AppCodes from a JSON, TOML or plain-text file.
///
/// The format follows the extension:
///
/// - `.json`: `{"apps": [{"id": "app-1", "attributes": {"name": "shop"},
///   "app_codes": [{"id": "code-1", "value": "..."}]}]}`
/// - `.toml`: the same structure (`[[apps]]` tables with `[[apps.app_codes]]`).
/// - anything else: one AppCode per line, blank lines and lines starting with `#` skipped; every
///   code belongs to the app `default` and its ID is `line-N`.
///
/// The file is polled for changes (modification time and size) every second by default and
/// reloaded when it changed. A file that fails to parse, holds an invalid code or repeats a code
/// is refused as a whole: the layer keeps the last good set and logs why (never a code value).
///
/// ```no_run
/// use apig_appcode::provider::FileProvider;
///
/// let provider = FileProvider::new("codes.json");
/// ```
#[derive(Debug, Clone)]
pub struct FileProvider {
    path: PathBuf,
    poll_interval: Duration,
}

impl FileProvider {
    /// A provider reading `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            poll_interval: Duration::from_secs(1),
        }
    }

    /// How often the file is checked for changes (default 1 s).
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every.max(Duration::from_millis(10));
        self
    }

    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl AppCodeProvider for FileProvider {
    fn snapshot(&self) -> BoxFuture<'_, Result<Snapshot, ProviderError>> {
        let path = self.path.clone();
        Box::pin(async move {
            let text = tokio::fs::read_to_string(&path).await.map_err(|e| {
                ProviderError::Unavailable(format!("reading {}: {e}", path.display()).into())
            })?;
            parse(&path, &text)
        })
    }

    fn changes(&self) -> Option<ChangeStream> {
        let (tx, rx) = ChangeStream::channel(1);
        let path = self.path.clone();
        let every = self.poll_interval;
        tokio::spawn(async move {
            let mut seen = stamp(&path).await;
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if tx.is_closed() {
                    return;
                }
                let now = stamp(&path).await;
                if now != seen {
                    seen = now;
                    if tx.send(Change::Resync).await.is_err() {
                        return;
                    }
                }
            }
        });
        Some(rx)
    }
}

/// What identifies a version of the file without reading it.
async fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = tokio::fs::metadata(path).await.ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    apps: Vec<FileApp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileApp {
    id: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    app_codes: Vec<FileCode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCode {
    id: String,
    value: String,
}

pub(crate) fn parse(path: &Path, text: &str) -> Result<Snapshot, ProviderError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    // serde's messages may quote the offending input, which could be a code: keep only the
    // position of the error.
    let doc: FileDoc = match ext {
        "json" => serde_json::from_str(text).map_err(|e| {
            ProviderError::Invalid(format!(
                "{}: malformed JSON at line {} column {} ({:?})",
                path.display(),
                e.line(),
                e.column(),
                e.classify()
            ))
        })?,
        "toml" => toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| s.start).unwrap_or(0);
            ProviderError::Invalid(format!("{}: malformed TOML at byte {at}", path.display()))
        })?,
        _ => return parse_lines(path, text),
    };
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for app in doc.apps {
        let attributes = Arc::new(app.attributes);
        for code in app.app_codes {
            let value = AppCode::parse(&code.value).map_err(|e| {
                ProviderError::Invalid(format!(
                    "{}: app {} code {}: {e}",
                    path.display(),
                    app.id,
                    code.id
                ))
            })?;
            if !seen.insert(value.expose().to_owned()) {
                return Err(ProviderError::Invalid(format!(
                    "{}: app {} code {}: the same AppCode value appears twice",
                    path.display(),
                    app.id,
                    code.id
                )));
            }
            let identity =
                AppIdentity::new(&app.id, code.id).with_attributes(Arc::clone(&attributes));
            out.push((value, identity));
        }
    }
    Ok(out)
}

fn parse_lines(path: &Path, text: &str) -> Result<Snapshot, ProviderError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let n = n + 1;
        let code = AppCode::parse(line)
            .map_err(|e| ProviderError::Invalid(format!("{} line {n}: {e}", path.display())))?;
        if !seen.insert(code.expose().to_owned()) {
            return Err(ProviderError::Invalid(format!(
                "{} line {n}: the same AppCode value appears twice",
                path.display()
            )));
        }
        out.push((code, AppIdentity::new("default", format!("line-{n}"))));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    #[test]
    fn json_toml_and_lines_agree() {
        let (a, b) = (code('a'), code('b'));
        let json = format!(
            r#"{{"apps":[{{"id":"app1","attributes":{{"name":"shop"}},"app_codes":[{{"id":"c1","value":"{a}"}},{{"id":"c2","value":"{b}"}}]}}]}}"#
        );
        let toml = format!(
            "[[apps]]\nid = \"app1\"\nattributes = {{ name = \"shop\" }}\n[[apps.app_codes]]\nid = \"c1\"\nvalue = \"{a}\"\n[[apps.app_codes]]\nid = \"c2\"\nvalue = \"{b}\"\n"
        );
        for (name, text) in [("x.json", json), ("x.toml", toml)] {
            let snap = parse(Path::new(name), &text).unwrap();
            assert_eq!(snap.len(), 2, "{name}");
            assert_eq!(snap[0].0.expose(), a);
            assert_eq!(snap[1].1.app_code_id(), "c2");
            assert_eq!(snap[1].1.attribute("name"), Some("shop"));
        }
        let lines = parse(Path::new("codes.txt"), &format!("# comment\n{a}\n\n{b}\n")).unwrap();
        assert_eq!(lines[1].1.app_code_id(), "line-4");
        assert_eq!(lines[1].1.app_id(), "default");
    }

    #[test]
    fn broken_files_are_refused_without_echoing_codes() {
        let secret = format!("{}*", code('q'));
        let cases = [
            (
                "x.json",
                format!(
                    r#"{{"apps":[{{"id":"a","app_codes":[{{"id":"c","value":"{secret}"}}]}}]}}"#
                ),
            ),
            (
                "x.json",
                format!(r#"{{"apps":[{{"id":"a","app_codes":[{{"id":"c","value":"{secret}" }}"#),
            ),
            ("x.json", format!(r#"{{"apps":[], "{secret}": 1}}"#)),
            ("x.toml", format!("[[apps]]\nid = \"a\"\n{secret} = 1\n")),
            ("x.txt", format!("{secret}\n")),
            ("x.txt", format!("{}\n{}\n", code('q'), code('q'))),
        ];
        for (name, text) in cases {
            let err = parse(Path::new(name), &text).unwrap_err().to_string();
            assert!(!err.contains(&code('q')), "{name}: {err}");
        }
    }
}
