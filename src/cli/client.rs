//! The management API client of `apig-appcode apps`, `app-codes`, `quotas` and `import`: where
//! the server is, which credential to send (an admin token, or an AK/SK pair that signs each
//! request as the official SDKs do) and where it came from, one HTTP/1 call, and the errors a
//! person can act on.
//!
//! A credential is never printed, logged or put in an error: errors name its source instead.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use apig_appcode::apig_error::code as apig_code;
use apig_appcode::gateway::config::DatabaseUrl;
use apig_appcode::gateway::token_path;
use apig_appcode::signature::{self, SecretKey};
use apig_appcode::store::SecretString;
use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use zeroize::Zeroizing;

/// The environment variable `serve` reads its admin token from; the CLI reads the same one.
pub(crate) const TOKEN_ENV: &str = "APIG_ADMIN_TOKEN";

/// The gateway's answer to a request without an AppCode.
const GATEWAY_REJECTION: &str = apig_appcode::apig_error::code::APP_AUTH_FAILED;

/// How long one call may take, connection included, before the CLI gives up: a server that
/// accepts connections but never answers must not hang a script forever.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a command failed. Every message fits on one line and holds no secret.
#[derive(Debug)]
pub(crate) enum CliError {
    /// A setting or argument that cannot be used (exit status 2, like clap's).
    Usage(String),
    /// No token in the environment, and no token file where one was looked for.
    NoToken {
        /// The token file that does not exist, if one was looked for.
        looked_in: Option<PathBuf>,
    },
    /// The token file exists but cannot be read or holds no token.
    TokenFile(PathBuf, io::Error),
    /// Nothing answered at the server's address.
    Unreachable {
        /// The server URL as given.
        server: String,
        /// The flag that gave it (`--server`, `--from`).
        flag: &'static str,
        /// The cause, as the operating system put it.
        reason: String,
    },
    /// The server did not answer within [`CALL_TIMEOUT`].
    Timeout {
        /// The server URL as given.
        server: String,
    },
    /// `401`/`403`: the credential was refused.
    Refused {
        /// Which credential, and where it came from.
        credential: String,
        /// APIG's `error_code: error_msg`, or the status when the body was not APIG's.
        detail: String,
    },
    /// An APIG error body (`error_code`, `error_msg`) for any other failure status.
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// `error_code`.
        code: String,
        /// `error_msg`.
        message: String,
    },
    /// The AppCode gateway answered (`401 APIG.0303`): `--server` is the wrong listener.
    Gateway {
        /// The server URL as given.
        server: String,
        /// The flag that gave it.
        flag: &'static str,
    },
    /// An answer that is neither success nor an APIG error (not this API at that address?).
    Unexpected {
        /// The server URL as given.
        server: String,
        /// The HTTP status.
        status: StatusCode,
    },
    /// A success status whose body is not what the call answers: not JSON, or without the
    /// fields the command reads.
    BadAnswer {
        /// The server URL as given.
        server: String,
        /// What was wrong with it (never the body itself, which may hold secrets).
        detail: String,
    },
    /// The connection failed mid-call.
    Http(String),
    /// The store an import writes to could not be opened or used.
    Target(String),
    /// Interrupted (Ctrl-C) before the end.
    Interrupted,
    /// Reading stdin or writing stdout failed.
    Io(io::Error),
}

impl CliError {
    /// The process's exit status: 2 for usage errors (as clap), 1 for the rest.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            // As a shell reports a process ended by SIGINT.
            Self::Interrupted => 130,
            _ => 1,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(msg) => f.write_str(msg),
            Self::NoToken { looked_in } => {
                write!(f, "no admin token: set {TOKEN_ENV} or pass --token-file")?;
                if let Some(path) = looked_in {
                    write!(
                        f,
                        " (the server's first-run token file {} does not exist; --database \
                         names the server's database)",
                        path.display()
                    )?;
                }
                Ok(())
            }
            Self::TokenFile(path, e) => write!(f, "admin token file {}: {e}", path.display()),
            Self::Unreachable {
                server,
                flag,
                reason,
            } => write!(
                f,
                "cannot connect to {server} ({reason}): the server may not be running \
                 (start it with `apig-appcode serve`, or give its address with {flag})"
            ),
            Self::Timeout { server } => write!(
                f,
                "{server} did not answer within {} s",
                CALL_TIMEOUT.as_secs()
            ),
            Self::Refused { credential, detail } => {
                write!(f, "the server refused {credential} ({detail})")
            }
            Self::Api { code, message, .. } => write!(f, "{code}: {message}"),
            Self::Gateway { server, flag } => write!(
                f,
                "{server} is the AppCode gateway (it answered APIG.0303); give the management \
                 API's address with {flag} (serve's --admin-listen, 127.0.0.1:8081 by default)"
            ),
            Self::Unexpected { server, status } => write!(
                f,
                "unexpected answer {status} from {server}: is the management API listening there?"
            ),
            Self::BadAnswer { server, detail } => write!(
                f,
                "unexpected answer from {server}: {detail} (is the management API listening \
                 there?)"
            ),
            Self::Http(e) => write!(f, "HTTP: {e}"),
            Self::Target(e) => write!(f, "the target store: {e}"),
            Self::Interrupted => f.write_str(
                "interrupted; what was copied stays: run the same command again to resume",
            ),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CliError {}

/// Where a credential came from, for the message when it is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CredentialSource {
    /// An environment variable ([`TOKEN_ENV`] for the admin token).
    Env(&'static str),
    /// Two environment variables: an access key and its secret key.
    EnvPair(&'static str, &'static str),
    /// A file: `--token-file`, or the server's first-run token file.
    File(PathBuf),
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => write!(f, "the environment variable {name}"),
            Self::EnvPair(a, b) => write!(f, "the environment variables {a} and {b}"),
            Self::File(path) => write!(f, "the file {}", path.display()),
        }
    }
}

/// An `X-Auth-Token` and its source. The value is zeroed on drop; `Debug` shows the source only.
#[derive(Debug)]
pub(crate) struct Token {
    value: SecretString,
    source: CredentialSource,
}

/// What a client proves itself with: an `X-Auth-Token`, or an access key whose secret signs
/// every request (`SDK-HMAC-SHA256`). `Debug` shows the sources and the access key only.
#[derive(Debug)]
pub(crate) enum Credential {
    /// The admin token of `apps`, `app-codes` and `quotas`.
    AdminToken(Token),
    /// Another server's token (`import`'s source).
    Token(Token),
    /// An AK/SK pair, as the official SDKs sign.
    AccessKey {
        /// The AK, sent in the clear in `Authorization`.
        access_key: String,
        /// The SK: the HMAC key, never sent.
        secret: SecretKey,
        /// Where the pair came from.
        source: CredentialSource,
    },
}

impl Credential {
    /// "the admin token from the environment variable APIG_ADMIN_TOKEN", for messages.
    fn describe(&self) -> String {
        match self {
            Self::AdminToken(t) => format!("the admin token from {}", t.source),
            Self::Token(t) => format!("the token from {}", t.source),
            Self::AccessKey { source, .. } => format!("the access key from {source}"),
        }
    }
}

impl Token {
    /// The token, first found of: `token_file` (`--token-file`), the [`TOKEN_ENV`] variable
    /// (`env`), then the first-run token file that `serve` writes beside its SQLite database
    /// (`database`, `sqlite://apig-appcode.db` by default: `apig-appcode.db.admin-token`).
    pub(crate) fn resolve(
        token_file: Option<&Path>,
        env: Option<String>,
        database: &str,
    ) -> Result<Self, CliError> {
        if let Some(path) = token_file {
            return Self::read(path);
        }
        if let Some(value) = env.filter(|v| !v.trim().is_empty()) {
            return Ok(Self::from_env(TOKEN_ENV, value.trim()));
        }
        let db = match DatabaseUrl::parse(database) {
            Ok(DatabaseUrl::Sqlite(db)) => db,
            // PostgreSQL servers have no token file (serve refuses to start without credentials).
            Ok(DatabaseUrl::Postgres(_)) => return Err(CliError::NoToken { looked_in: None }),
            Err(e) => return Err(CliError::Usage(format!("--database: {e}"))),
        };
        let path = token_path(&db);
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(CliError::NoToken {
                looked_in: Some(path),
            }),
            _ => Self::read(&path),
        }
    }

    fn read(path: &Path) -> Result<Self, CliError> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| CliError::TokenFile(path.to_owned(), e))?,
        );
        let value = text.trim();
        if value.is_empty() {
            return Err(CliError::TokenFile(
                path.to_owned(),
                io::Error::other("the file is empty"),
            ));
        }
        Ok(Self {
            value: SecretString::new(value),
            source: CredentialSource::File(path.to_owned()),
        })
    }

    /// `value`, read from the environment variable `name`.
    pub(crate) fn from_env(name: &'static str, value: &str) -> Self {
        Self {
            value: SecretString::new(value),
            source: CredentialSource::Env(name),
        }
    }
}

/// The management API of one server, project and instance.
pub(crate) struct Client {
    http: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// The server URL as the user gave it, for messages.
    server: String,
    /// The flag that gave it, for messages.
    flag: &'static str,
    /// `http://host:port/v2/{project}/apigw/instances/{instance}`.
    base: String,
    /// Sent as `X-Project-Id` with signed requests, as the SDK does.
    project: String,
    credential: Credential,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("credential", &self.credential)
            .finish()
    }
}

/// A successful answer's body, as sent and parsed. It may hold AppCode values and app secrets:
/// `Debug` shows its length only.
pub(crate) struct Answer {
    /// The body as sent, for `--json`.
    pub(crate) raw: Bytes,
    /// The body parsed (`Null` when empty).
    pub(crate) json: Value,
    /// The server URL as given, for messages about the body.
    server: String,
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answer")
            .field("body_len", &self.raw.len())
            .finish_non_exhaustive()
    }
}

impl Answer {
    /// The body, when it is an object holding every one of `fields`: what a command prints
    /// from. Anything else is [`CliError::BadAnswer`], so a 200 from something that is not
    /// this API never passes for success.
    pub(crate) fn object_with(&self, fields: &[&str]) -> Result<&Value, CliError> {
        let object = self
            .json
            .as_object()
            .ok_or_else(|| self.bad("not a JSON object"))?;
        match fields.iter().find(|f| !object.contains_key(**f)) {
            Some(missing) => Err(self.bad(&format!("no `{missing}` in the body"))),
            None => Ok(&self.json),
        }
    }

    /// The array `field` of the body (a list's page).
    pub(crate) fn list(&self, field: &str) -> Result<&[Value], CliError> {
        self.json
            .get(field)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .ok_or_else(|| self.bad(&format!("no `{field}` list in the body")))
    }

    fn bad(&self, detail: &str) -> CliError {
        CliError::BadAnswer {
            server: self.server.clone(),
            detail: detail.to_owned(),
        }
    }
}

/// One exchange's raw outcome, before it is judged: what a caller that retries looks at.
#[derive(Debug)]
pub(crate) struct Exchange {
    /// The HTTP status.
    pub(crate) status: StatusCode,
    /// `Retry-After` in seconds, when the server sent one.
    pub(crate) retry_after: Option<Duration>,
    raw: Bytes,
}

impl Client {
    /// A client for `server` (`http://host:port`, given by the flag `flag`), scoped to
    /// `project` and `instance`.
    pub(crate) fn new(
        (flag, server): (&'static str, &str),
        project: &str,
        instance: &str,
        credential: Credential,
    ) -> Result<Self, CliError> {
        let origin = parse_server(flag, server)?;
        let connector = connector(origin.starts_with("https:"))?;
        let base = format!(
            "{origin}/v2/{}/apigw/instances/{}",
            segment(project),
            segment(instance)
        );
        Ok(Self {
            http: HyperClient::builder(TokioExecutor::new()).build(connector),
            server: server.to_owned(),
            flag,
            base,
            project: project.to_owned(),
            credential,
        })
    }

    /// The server URL as given.
    pub(crate) fn server(&self) -> &str {
        &self.server
    }

    /// `method {base}{path}` with the credential and, if given, a JSON body. Success is any
    /// 2xx with a JSON body or none; the rest become [`CliError`]s.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, CliError> {
        let exchange = self.exchange(method, path, body).await?;
        self.judge(exchange)
    }

    /// One request and its answer, whatever the status: the transport's errors only.
    pub(crate) async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Exchange, CliError> {
        let uri = format!("{}{path}", self.base);
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let mut req = Request::builder()
            .method(method)
            .uri(&uri)
            .header(header::ACCEPT, "application/json");
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let (mut parts, ()) = req
            .body(())
            .map_err(|e| CliError::Usage(format!("bad request URL: {e}")))?
            .into_parts();
        self.authenticate(&mut parts, &bytes)?;
        let req = Request::from_parts(parts, Full::new(bytes));
        let send = async {
            let res = self
                .http
                .request(req)
                .await
                .map_err(|e| self.send_error(e))?;
            let status = res.status();
            let retry_after = res
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
                .map(Duration::from_secs);
            let raw = res
                .into_body()
                .collect()
                .await
                .map_err(|e| CliError::Http(e.to_string()))?
                .to_bytes();
            Ok::<_, CliError>(Exchange {
                status,
                retry_after,
                raw,
            })
        };
        tokio::time::timeout(CALL_TIMEOUT, send)
            .await
            .map_err(|_| CliError::Timeout {
                server: self.server.clone(),
            })?
    }

    /// Sets the credential's headers: the token, or `X-Project-Id` and the signature over the
    /// request as it will be sent (`Host` included, as the SDK signs it).
    fn authenticate(&self, parts: &mut Parts, body: &[u8]) -> Result<(), CliError> {
        let token = match &self.credential {
            Credential::AdminToken(token) | Credential::Token(token) => token,
            Credential::AccessKey {
                access_key, secret, ..
            } => {
                let host = parts.uri.authority().map(|a| a.as_str().to_owned());
                if let Some(host) = host.and_then(|h| HeaderValue::from_str(&h).ok()) {
                    parts.headers.insert(header::HOST, host);
                }
                let project = HeaderValue::from_str(&self.project)
                    .map_err(|_| CliError::Usage("the project ID is not a header value".into()))?;
                parts.headers.insert("x-project-id", project);
                let signed = signature::sign(parts, body, access_key, secret, SystemTime::now());
                return signed.map_err(|e| {
                    CliError::Usage(format!(
                        "cannot sign with {}: {e}",
                        self.credential.describe()
                    ))
                });
            }
        };
        let mut value = HeaderValue::from_str(token.value.expose()).map_err(|_| {
            CliError::Usage(format!(
                "{} is not a valid header value",
                self.credential.describe()
            ))
        })?;
        value.set_sensitive(true);
        parts.headers.insert("x-auth-token", value);
        Ok(())
    }

    /// An exchange judged: a 2xx with a JSON body (or none) is the [`Answer`]; every other
    /// outcome the [`CliError`] a person can act on.
    pub(crate) fn judge(&self, exchange: Exchange) -> Result<Answer, CliError> {
        let Exchange { status, raw, .. } = exchange;
        let parsed = if raw.is_empty() {
            Ok(Value::Null)
        } else {
            serde_json::from_slice(&raw)
        };
        if status.is_success() {
            let json = parsed.map_err(|_| CliError::BadAnswer {
                server: self.server.clone(),
                detail: format!("{} with a body that is not JSON", status.as_u16()),
            })?;
            return Ok(Answer {
                raw,
                json,
                server: self.server.clone(),
            });
        }
        let json = parsed.unwrap_or(Value::Null);
        let apig = apig_error(&json);
        // The management API never answers APIG.0303 (it has its own 1000-series codes for
        // credentials); only the gateway does, for a request without an AppCode.
        if matches!(&apig, Some((code, _)) if code == GATEWAY_REJECTION) {
            return Err(CliError::Gateway {
                flag: self.flag,
                server: self.server.clone(),
            });
        }
        // A refusal of the credential itself; other 401/403 answers (the five-code limit,
        // 403 APIG.3131) are about the request and say so with their own code.
        let credential_refused = match &apig {
            None => true,
            Some((code, _)) => [
                apig_code::NO_CREDENTIALS,
                apig_code::INCORRECT_CREDENTIALS,
                apig_code::NO_PERMISSION,
            ]
            .contains(&code.as_str()),
        };
        if credential_refused
            && (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN)
        {
            let detail = match apig {
                Some((code, msg)) => format!("{} {code}: {msg}", status.as_u16()),
                None => status.to_string(),
            };
            return Err(CliError::Refused {
                credential: self.credential.describe(),
                detail,
            });
        }
        match apig {
            Some((code, message)) => Err(CliError::Api {
                status,
                code,
                message,
            }),
            None => Err(CliError::Unexpected {
                server: self.server.clone(),
                status,
            }),
        }
    }

    fn send_error(&self, e: hyper_util::client::legacy::Error) -> CliError {
        if e.is_connect() {
            // The innermost cause is the operating system's ("Connection refused (os error
            // 111)"); hyper's own wrappers add nothing a person can act on.
            let mut reason = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                reason = s.to_string();
                source = s.source();
            }
            return CliError::Unreachable {
                flag: self.flag,
                server: self.server.clone(),
                reason,
            };
        }
        CliError::Http(e.to_string())
    }
}

/// `http[s]://host[:port]` with no path, as `scheme://authority`; anything else is a usage
/// error.
fn parse_server(flag: &str, server: &str) -> Result<String, CliError> {
    let bad = |why: &str| CliError::Usage(format!("{flag} {server}: {why}"));
    let uri: Uri = server.parse().map_err(|_| bad("not a URL"))?;
    let scheme = match uri.scheme_str() {
        Some(scheme @ ("http" | "https")) => scheme,
        _ => return Err(bad("expected http://HOST:PORT or https://HOST:PORT")),
    };
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("expected a URL with no path"));
    }
    Ok(format!("{scheme}://{authority}"))
}

/// HTTP/1 over TCP, with TLS for `https` origins: the server's certificate is checked against
/// the system's roots (`SSL_CERT_FILE` or `SSL_CERT_DIR` name others).
fn connector(https: bool) -> Result<HttpsConnector<HttpConnector>, CliError> {
    let mut tcp = HttpConnector::new();
    tcp.set_connect_timeout(Some(CALL_TIMEOUT));
    tcp.enforce_http(false);
    let tls = HttpsConnectorBuilder::new();
    let tls = if https {
        tls.with_native_roots().map_err(|e| {
            CliError::Usage(format!(
                "https: no usable root certificates on this system ({e})"
            ))
        })?
    } else {
        // Plain HTTP checks no certificate: the system's roots are not even read.
        tls.with_tls_config(
            ClientConfig::builder()
                .with_root_certificates(RootCertStore::empty())
                .with_no_client_auth(),
        )
    };
    Ok(tls.https_or_http().enable_http1().wrap_connector(tcp))
}

/// `error_code` and `error_msg` of an APIG error body.
fn apig_error(json: &Value) -> Option<(String, String)> {
    let code = json.get("error_code")?.as_str()?;
    let msg = json.get("error_msg").and_then(Value::as_str).unwrap_or("");
    Some((code.to_owned(), msg.to_owned()))
}

/// `s` percent-encoded as one path segment: an ID typed by a person cannot add a path level
/// or a query.
pub(crate) fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        assert_eq!(
            parse_server("--server", "http://127.0.0.1:8081/").unwrap(),
            "http://127.0.0.1:8081"
        );
        assert_eq!(
            parse_server("--from", "https://apig.example.com").unwrap(),
            "https://apig.example.com"
        );
        for bad in ["127.0.0.1:8081", "http://x:1/v2", "ftp://x", "https://x/p"] {
            assert!(
                matches!(parse_server("--server", bad), Err(CliError::Usage(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("ab-C_9.~"), "ab-C_9.~");
        assert_eq!(segment("a/b?c d"), "a%2Fb%3Fc%20d");
    }

    #[test]
    fn token_order_and_sources() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let url = format!("sqlite://{}", db.display());
        let file = token_path(&db);
        // Nothing: the message names the file looked for.
        let err = Token::resolve(None, None, &url).unwrap_err();
        assert!(
            err.to_string().contains(&file.display().to_string()),
            "{err}"
        );
        std::fs::write(&file, "file-token-0123456789\n").unwrap();
        let t = Token::resolve(None, None, &url).unwrap();
        assert_eq!(t.source, CredentialSource::File(file.clone()));
        assert_eq!(t.value.expose(), "file-token-0123456789");
        // The environment over the first-run file; --token-file over both.
        let t = Token::resolve(None, Some("env-token-0123456789".into()), &url).unwrap();
        assert_eq!(t.source, CredentialSource::Env(TOKEN_ENV));
        let other = dir.path().join("other");
        std::fs::write(&other, "other-token-0123456789").unwrap();
        let t = Token::resolve(Some(&other), Some("env".into()), &url).unwrap();
        assert_eq!(t.source, CredentialSource::File(other));
        let shown = format!("{t:?}");
        assert!(!shown.contains("other-token"), "{shown}");
        // PostgreSQL: no file to look for, and the URL (password) is not echoed.
        let err = Token::resolve(None, None, "postgres://u:pw@h/db").unwrap_err();
        assert!(!err.to_string().contains("pw"), "{err}");
    }
}
