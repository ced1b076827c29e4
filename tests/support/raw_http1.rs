//! HTTP/1.1 written and read by hand on one connection, for the tests that control how the
//! bytes are split and when they are sent.

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use super::REQUEST_TIMEOUT;

/// Reads one HTTP/1.1 response with a `content-length` (head and body) from `stream`, starting
/// with the bytes in `carry`; what follows it (pipelined responses) is left in `carry`.
pub(crate) async fn read_response_from<T: AsyncRead + Unpin>(
    stream: &mut T,
    carry: &mut Vec<u8>,
) -> (StatusCode, String, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    loop {
        if let Some(end) = carry.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&carry[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("a content-length");
            if carry.len() >= end + 4 + len {
                let status = head.split(' ').nth(1).unwrap().parse::<u16>().unwrap();
                let body = carry[end + 4..end + 4 + len].to_vec();
                carry.drain(..end + 4 + len);
                return (StatusCode::from_u16(status).unwrap(), head, body);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, stream.read(&mut buf))
            .await
            .expect("a response in time")
            .expect("reading the response");
        assert!(
            n > 0,
            "closed mid-response: {}",
            String::from_utf8_lossy(carry)
        );
        carry.extend_from_slice(&buf[..n]);
    }
}

/// Drives one keep-alive connection (plain or TLS, HTTP/1.1) through requests separated by
/// waits with nothing in progress, long enough for the gateway to release the connection's
/// buffers (a second), and checks every answer: pipelined requests after a wait, a request
/// whose head or body is split by a wait, a request with a body then a wait, and
/// `Connection: close` after a wait. `code` is a valid AppCode.
pub(crate) async fn idle_waits_between_requests<T>(conn: &mut T, code: &str)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let wait = || tokio::time::sleep(Duration::from_millis(1200));
    let get = |path: &str, code: Option<&str>| {
        let code = code.map_or(String::new(), |c| format!("X-Apig-AppCode: {c}\r\n"));
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{code}\r\n")
    };
    let post = |path: &str| {
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nX-Apig-AppCode: {code}\r\nContent-Length: 5\r\n\r\n")
    };
    let mut carry = Vec::new();
    let send = async |conn: &mut T, bytes: &[u8]| conn.write_all(bytes).await.unwrap();
    let mut expect = async |conn: &mut T, status: StatusCode, path: Option<&str>| {
        let (got, head, body) = read_response_from(conn, &mut carry).await;
        assert_eq!(got, status, "{head}");
        if let Some(path) = path {
            let echo: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(echo["path"], path, "{echo}");
            echo["body_len"].as_u64()
        } else {
            None
        }
    };

    send(conn, get("/first", Some(code)).as_bytes()).await;
    expect(conn, StatusCode::OK, Some("/first")).await;
    wait().await;

    // Three requests in one write, the second without a code: answered in order.
    let batch = [
        get("/p1", Some(code)),
        get("/p2", None),
        get("/p3", Some(code)),
    ];
    send(conn, batch.concat().as_bytes()).await;
    expect(conn, StatusCode::OK, Some("/p1")).await;
    expect(conn, StatusCode::UNAUTHORIZED, None).await;
    expect(conn, StatusCode::OK, Some("/p3")).await;
    wait().await;

    // A head split by a wait, its second half sent with the whole next request.
    let split = get("/split", Some(code));
    let (first_half, second_half) = split.split_at(split.len() / 2);
    send(conn, first_half.as_bytes()).await;
    wait().await;
    send(
        conn,
        [second_half, &get("/after-split", Some(code))]
            .concat()
            .as_bytes(),
    )
    .await;
    expect(conn, StatusCode::OK, Some("/split")).await;
    expect(conn, StatusCode::OK, Some("/after-split")).await;

    // A body split by a wait; then a request with a body after a wait.
    send(conn, format!("{}he", post("/body")).as_bytes()).await;
    wait().await;
    send(conn, b"llo").await;
    assert_eq!(expect(conn, StatusCode::OK, Some("/body")).await, Some(5));
    wait().await;
    send(conn, format!("{}hello", post("/body-again")).as_bytes()).await;
    assert_eq!(
        expect(conn, StatusCode::OK, Some("/body-again")).await,
        Some(5)
    );
    wait().await;

    // `Connection: close` after a wait: answered, then closed.
    let last = get("/last", Some(code)).replace("Host: x\r\n", "Host: x\r\nConnection: close\r\n");
    send(conn, last.as_bytes()).await;
    expect(conn, StatusCode::OK, Some("/last")).await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        REQUEST_TIMEOUT,
        tokio::io::AsyncReadExt::read_to_end(conn, &mut rest),
    )
    .await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))) && carry.is_empty(),
        "not closed after Connection: close: {read:?} {carry:?}"
    );
}
