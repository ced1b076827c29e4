//! What an app quota admits, for the tests of a quota counted by several nodes.

use std::future::Future;

use http::StatusCode;

/// Makes calls with `call` until the app's quota refuses one (405), running `settle` after each
/// call it admits (200); returns how many it admitted. Any other answer fails the test.
pub(crate) async fn admitted_until_refused<C, S>(
    mut call: impl FnMut() -> C,
    mut settle: impl FnMut() -> S,
) -> usize
where
    C: Future<Output = StatusCode>,
    S: Future<Output = ()>,
{
    let mut admitted = 0;
    loop {
        match call().await {
            StatusCode::OK => admitted += 1,
            StatusCode::METHOD_NOT_ALLOWED => return admitted,
            other => panic!("unexpected {other}"),
        }
        settle().await;
    }
}
