//! Store records for the tests that write to a store directly, every field derived from a
//! number so that a test can rebuild what it wrote.

#![allow(dead_code, unreachable_pub)]

use apig_appcode::store::{App, AppCodeRecord, Scope, SecretString, Timestamp};
use apig_appcode::AppCode;

/// `n` as a store ID: 32 hex digits.
pub(crate) fn id(n: u64) -> String {
    format!("{n:032x}")
}

/// App `n` of `scope`, `app_{n}`, with a key and a secret of its own.
pub(crate) fn app_in(scope: &Scope, n: u64) -> App {
    App {
        id: id(n),
        scope: scope.clone(),
        name: format!("app_{n}"),
        remark: String::new(),
        creator: "USER".into(),
        app_key: format!("key_{n:028}"),
        app_secret: SecretString::new(format!("AppSecret{n:023}")),
        register_time: Timestamp::from_unix_nanos(1),
        update_time: Timestamp::from_unix_nanos(2),
        status: 1,
    }
}

/// AppCode `n` of app `app`: an ID and a value of its own for each pair, created in
/// the order of the pairs.
pub(crate) fn code(app: u64, n: u64) -> AppCodeRecord {
    AppCodeRecord {
        id: format!("{app:016x}{n:016x}"),
        app_id: id(app),
        value: AppCode::parse(&format!("Code{app:08}x{n:010}{}", "v".repeat(60))).unwrap(),
        create_time: Timestamp::from_unix_nanos(1_700_000_000_000_000_000 + (app << 24 | n) as i64),
    }
}
