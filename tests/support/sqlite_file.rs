//! Damage done to a SQLite database file on purpose, as a disk or a bad copy would.

#![allow(dead_code, unreachable_pub)]

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use rusqlite::Connection;

/// Overwrites with garbage a page of the b-tree `name` (a table or an index) from the middle
/// of the closed database at `path`: a page `PRAGMA quick_check` reads, unlike a free page,
/// and not one the header or the schema lives on.
pub(crate) fn damage_a_page_of(path: &Path, name: &str) {
    let raw = Connection::open(path).unwrap();
    // Pages still in the WAL would hide the damage done to the file's copy.
    raw.pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .unwrap();
    let page_size: u64 = raw
        .pragma_query_value(None, "page_size", |r| r.get(0))
        .unwrap();
    let file_pages: u64 = raw
        .pragma_query_value(None, "page_count", |r| r.get(0))
        .unwrap();
    let pages: Vec<u64> = raw
        .prepare("SELECT pageno FROM dbstat WHERE name = ?1 ORDER BY pageno")
        .unwrap()
        .query_map([name], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    drop(raw);
    assert!(pages.len() >= 3, "{name} spans only pages {pages:?}");
    let page = pages[pages.len() / 2];
    assert!(1 < page && page < file_pages, "page {page} of {file_pages}");
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start((page - 1) * page_size)).unwrap();
    file.write_all(&vec![0xa5; page_size as usize]).unwrap();
    file.sync_all().unwrap();
}
