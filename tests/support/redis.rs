//! A Redis for the tests that share rate limits through it, and a TCP forwarder that can cut
//! the gateway off from it.
//!
//! Tests that need Redis read `APIG_TEST_REDIS_URL`. Without it they print that they were
//! skipped and pass, unless `CI` is set: then they fail, so CI cannot skip them silently. Each
//! test keeps its keys under a prefix of its own, so tests run in parallel on one Redis.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use redis::{AsyncCommands, ConnectionAddr, IntoConnectionInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

// `support/postgres.rs` loads it too, in the test crates that take both: a copy each.
#[allow(clippy::duplicate_mod)]
#[path = "external.rs"]
mod external;
use external::{random_tag, url_or_skip};

/// The variable that names the test Redis.
pub(crate) const ENV: &str = "APIG_TEST_REDIS_URL";

/// The test Redis and this test's key prefix; the test's keys are deleted when it is dropped.
pub(crate) struct TestRedis {
    /// The URL as configured.
    pub(crate) url: String,
    /// Where Redis listens.
    pub(crate) addr: SocketAddr,
    /// `apig:test:RANDOM:`: the start of every key of this test.
    pub(crate) prefix: String,
    conn: redis::aio::MultiplexedConnection,
}

impl TestRedis {
    /// The Redis of `APIG_TEST_REDIS_URL` with a fresh prefix, or `None` (after saying so) when
    /// none is configured.
    ///
    /// # Panics
    ///
    /// When `CI` is set and `APIG_TEST_REDIS_URL` is not, or Redis cannot be used.
    pub(crate) async fn connect(test: &str) -> Option<Self> {
        let url = url_or_skip(ENV, "Redis", "redis://...", test)?;
        let info = url.as_str().into_connection_info().expect("a Redis URL");
        let addr = match &info.addr {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .expect("the Redis host resolves")
                    .next()
                    .expect("an address")
            }
            ConnectionAddr::Unix(_) => panic!("{ENV} must name a TCP address"),
        };
        let conn = redis::Client::open(info)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("{ENV}: Redis cannot be used: {e}"));
        let prefix = format!("apig:test:{}:", random_tag());
        Some(Self {
            url,
            addr,
            prefix,
            conn,
        })
    }

    /// The configured URL with `addr` in place of Redis's host and port (for a forwarder).
    pub(crate) fn url_via(&self, addr: SocketAddr) -> String {
        let (scheme, rest) = self.url.split_once("://").unwrap();
        let (userinfo, hostpath) = match rest.rsplit_once('@') {
            Some((userinfo, hostpath)) => (format!("{userinfo}@"), hostpath),
            None => (String::new(), rest),
        };
        let path = hostpath
            .find(['/', '?', '#'])
            .map_or("", |i| &hostpath[i..]);
        format!("{scheme}://{userinfo}{addr}{path}")
    }

    /// The keys under this test's prefix.
    pub(crate) async fn keys(&self) -> Vec<String> {
        let mut conn = self.conn.clone();
        let mut keys: Vec<String> = conn.keys(format!("{}*", self.prefix)).await.unwrap();
        keys.sort();
        keys
    }

    /// A key's remaining time to live in milliseconds (-2: no such key, -1: no expiry).
    pub(crate) async fn pttl(&self, key: &str) -> i64 {
        self.conn.clone().pttl(key).await.unwrap()
    }

    /// A field of the hash at `key`, as a number (`None`: no such key or field).
    pub(crate) async fn hget(&self, key: &str, field: &str) -> Option<i64> {
        self.conn.clone().hget(key, field).await.unwrap()
    }

    /// Deletes `key`.
    pub(crate) async fn delete(&self, key: &str) {
        let _: i64 = self.conn.clone().del(key).await.unwrap();
    }
}

impl Drop for TestRedis {
    /// Deletes every key of this test, whatever its outcome.
    fn drop(&mut self) {
        // On a thread of its own, with a connection of its own: the test's runtime may be
        // the one this drop blocks.
        let (url, pattern) = (self.url.clone(), format!("{}*", self.prefix));
        let cleaned = std::thread::spawn(move || -> redis::RedisResult<()> {
            let mut conn = redis::Client::open(url.as_str())?.get_connection()?;
            let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut conn)?;
            for key in keys {
                redis::cmd("DEL").arg(key).exec(&mut conn)?;
            }
            Ok(())
        })
        .join();
        if !matches!(cleaned, Ok(Ok(()))) && !std::thread::panicking() {
            panic!(
                "could not delete the keys under {}: {cleaned:?}",
                self.prefix
            );
        }
    }
}

/// A TCP forwarder to `target` that can be cut (every connection closed, new ones closed at
/// once) and restored, or lose one reply.
pub(crate) struct Forwarder {
    pub(crate) addr: SocketAddr,
    open: Arc<AtomicBool>,
    /// Set: the next reply that is an array (a script's answer) is swallowed and its connection
    /// closed, after Redis ran the command.
    lose_array: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Forwarder {
    pub(crate) async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let lose_array = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::<JoinHandle<()>>::new()));
        let accept = tokio::spawn({
            let open = Arc::clone(&open);
            let lose_array = Arc::clone(&lose_array);
            let connections = Arc::clone(&connections);
            async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    if !open.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let lose_array = Arc::clone(&lose_array);
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(target).await {
                            forward(&mut client, &mut server, &lose_array).await;
                        }
                    });
                    connections.lock().unwrap().push(task);
                }
            }
        });
        Self {
            addr,
            open,
            lose_array,
            connections,
            accept,
        }
    }

    /// Swallows the next array reply (a script's answer) and closes its connection: the
    /// client sees the connection drop after Redis ran the script.
    pub(crate) fn lose_next_array_reply(&self) {
        self.lose_array.store(true, Ordering::SeqCst);
    }

    /// Whether the reply [`lose_next_array_reply`](Self::lose_next_array_reply) asked for was
    /// lost.
    pub(crate) fn lost_a_reply(&self) -> bool {
        !self.lose_array.load(Ordering::SeqCst)
    }

    /// Refuses new connections (accepted, then closed at once) and closes every open one;
    /// returns once they are closed.
    pub(crate) async fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        let tasks: Vec<_> = self.connections.lock().unwrap().drain(..).collect();
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
    }

    /// Forwards new connections again.
    pub(crate) fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// Copies both ways until either side closes, or until a reply to lose arrives.
async fn forward(client: &mut TcpStream, server: &mut TcpStream, lose_array: &AtomicBool) {
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let requests = tokio::io::copy(&mut client_read, &mut server_write);
    let replies = async {
        let mut buf = vec![0; 16 * 1024];
        loop {
            let n = server_read.read(&mut buf).await?;
            // RESP replies are answered one request at a time here: a script's array reply
            // starts a read.
            if n == 0 || (buf[0] == b'*' && lose_array.swap(false, Ordering::SeqCst)) {
                return Ok::<_, std::io::Error>(());
            }
            client_write.write_all(&buf[..n]).await?;
        }
    };
    tokio::select! {
        _ = requests => {}
        _ = replies => {}
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.accept.abort();
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}
