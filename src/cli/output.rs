//! How client commands print: aligned tables for people, the API's JSON as it came for scripts.

use std::io::Write;

use http::Method;
use serde_json::Value;

use super::client::{Answer, CliError, Client};

/// The body as the API sent it, one line.
pub(super) fn raw(out: &mut impl Write, answer: &Answer) -> Result<(), CliError> {
    out.write_all(&answer.raw)
        .and_then(|()| writeln!(out))
        .map_err(CliError::Io)
}

pub(super) fn items<'a>(json: &'a Value, key: &str) -> &'a [Value] {
    json.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

pub(super) fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The [`text`] of each of `keys`: one row of a table.
pub(super) fn texts(v: &Value, keys: &[&str]) -> Vec<String> {
    keys.iter().map(|key| text(v, key)).collect()
}

pub(super) fn number(v: &Value, key: &str) -> String {
    v.get(key).map(Value::to_string).unwrap_or_default()
}

pub(super) fn header(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// Rows in columns padded to the widest cell, two spaces apart; the last column unpadded.
pub(super) fn table(out: &mut impl Write, rows: &[Vec<String>]) -> Result<(), CliError> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[c] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", line.trim_end()).map_err(CliError::Io)?;
    }
    Ok(())
}

/// `DELETE path`, whose answer has no body to show: says `what` it did instead, or nothing in
/// JSON mode.
pub(super) async fn delete(
    client: &Client,
    path: &str,
    out: &mut impl Write,
    json_out: bool,
    what: &str,
) -> Result<(), CliError> {
    client.call(Method::DELETE, path, None).await?;
    if json_out {
        return Ok(());
    }
    writeln!(out, "{what}").map_err(CliError::Io)
}

/// `path` with the query parameters in `query`, if any.
pub(super) fn with_query(path: &str, query: &[String]) -> String {
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// "(3 of 45 apps; use --offset and --limit for more)" on stderr when the page is not
/// everything.
pub(super) fn footer(list: &Value, shown: usize, what: &str) {
    let total = list.get("total").and_then(Value::as_u64).unwrap_or(0);
    if (shown as u64) < total {
        // On stderr: stdout keeps only the table.
        eprintln!("({shown} of {total} {what}; use --offset and --limit for more)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let rows = vec![
            header(&["ID", "NAME", "X"]),
            vec!["abcdef".into(), "n".into(), "last".into()],
        ];
        let mut out = Vec::new();
        table(&mut out, &rows).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "ID      NAME  X\nabcdef  n     last\n"
        );
    }
}
