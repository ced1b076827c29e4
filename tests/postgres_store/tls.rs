//! TLS to the database: `sslmode` and `sslrootcert` against a server with and without TLS.

use apig_appcode::store::{PostgresOptions, PostgresStore, Store};

use super::pg::TestDb;
use super::records::{app_in, id};
use super::scope;

/// A root certificate file for `sslrootcert`: a self-signed certificate for `localhost`.
fn self_signed(dir: &std::path::Path, file: &str) -> (rcgen::CertifiedKey, std::path::PathBuf) {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let path = dir.join(file);
    std::fs::write(&path, generated.cert.pem()).unwrap();
    (generated, path)
}

/// What the client sees once the test server has read its startup message over TLS.
const REACHED: &str = "reached the test server over TLS";

/// A server that speaks only the start of PostgreSQL's protocol: it answers the SSLRequest
/// with `S`, completes a TLS handshake with `identity`, reads the startup message and refuses
/// the login with a FATAL error saying [`REACHED`].
async fn tls_test_server(identity: &rcgen::CertifiedKey) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;

    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let key =
        rustls::pki_types::PrivateKeyDer::try_from(identity.key_pair.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![identity.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 8];
                tcp.read_exact(&mut request).await?;
                // Length 8, code 80877103: SSLRequest.
                assert_eq!(request, [0, 0, 0, 8, 4, 210, 22, 47]);
                tcp.write_all(b"S").await?;
                let mut tls = acceptor.accept(tcp).await?;
                let len = tls.read_u32().await? as usize;
                let mut startup = vec![0u8; len - 4];
                tls.read_exact(&mut startup).await?;
                let mut fields = Vec::new();
                for (tag, value) in [(b'S', "FATAL"), (b'C', "28000"), (b'M', REACHED)] {
                    fields.push(tag);
                    fields.extend_from_slice(value.as_bytes());
                    fields.push(0);
                }
                fields.push(0);
                let mut message = vec![b'E'];
                message.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
                message.extend_from_slice(&fields);
                tls.write_all(&message).await?;
                tls.shutdown().await
            });
        }
    });
    addr
}

/// `verify-full` (and `require`, which verifies as well) reach the server over TLS when its
/// certificate chains to `sslrootcert` and names the host; a certificate from another root,
/// or for another name, is refused before any credential is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_sessions_verify_the_certificate_and_the_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let (server_identity, root) = self_signed(dir.path(), "root.pem");
    let (_, other_root) = self_signed(dir.path(), "other.pem");
    let addr = tls_test_server(&server_identity).await;
    let connect = |host: &str, mode: &str, root: &std::path::Path| {
        let url = format!(
            "postgres://apig:secret-pw@{host}:{}/db?hostaddr=127.0.0.1&connect_timeout=10\
             &sslmode={mode}&sslrootcert={}",
            addr.port(),
            root.display()
        );
        async move {
            let err = PostgresStore::connect(&url, PostgresOptions::new())
                .await
                .expect_err("the test server refuses every login");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("secret-pw"), "{shown}");
            shown
        }
    };
    for mode in ["verify-full", "require", "prefer"] {
        let shown = connect("localhost", mode, &root).await;
        assert!(shown.contains(REACHED), "{mode}: {shown}");
    }
    let shown = connect("localhost", "verify-full", &other_root).await;
    assert!(
        shown.contains("TLS")
            && shown.contains("invalid peer certificate")
            && !shown.contains(REACHED),
        "{shown}"
    );
    let shown = connect("127.0.0.1", "require", &root).await;
    assert!(
        shown.contains("TLS") && shown.contains("not valid for name") && !shown.contains(REACHED),
        "{shown}"
    );
}

/// Against a server without TLS: `require` fails, saying so; `prefer` falls back to a plain
/// session; `disable` (the default) never asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_tls_is_refused_only_when_tls_is_required() {
    let Some(db) = TestDb::create("a_server_without_tls_is_refused").await else {
        return;
    };
    let plain: Option<bool> = db
        .client()
        .await
        .query_one("SELECT current_setting('ssl') = 'off'", &[])
        .await
        .ok()
        .map(|r| r.get(0));
    if plain != Some(true) {
        eprintln!("SKIPPED: the test database offers TLS");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, root) = self_signed(dir.path(), "root.pem");
    let with = |mode: &str| format!("{}&sslmode={mode}&sslrootcert={}", db.url(), root.display());
    let err = PostgresStore::connect(&with("require"), PostgresOptions::new())
        .await
        .expect_err("no TLS, no connection");
    assert!(err.to_string().contains("TLS"), "{err}");
    for mode in ["prefer", "disable"] {
        let store = PostgresStore::connect(&with(mode), PostgresOptions::new())
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        store.create_app(app_in(&scope(), 1)).await.ok();
        assert_eq!(store.get_app(&scope(), &id(1)).await.unwrap().id, id(1));
    }
}
