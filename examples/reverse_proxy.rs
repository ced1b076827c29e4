//! A reverse proxy that lets through only requests with a valid `X-Apig-AppCode`.
//!
//! Run with
//! `cargo run --features gateway --example reverse_proxy -- --upstream http://127.0.0.1:8000 --codes codes.json`
//! (optional: `--listen 127.0.0.1:8088`). The codes file is JSON, TOML or one code per line (see
//! `FileProvider`); edits take effect within about a second, without a restart.
//!
//! The upstream receives the verified caller as `X-Apig-App-Id` and `X-Apig-AppCode-Id` (any
//! such header sent by the client is replaced), never the AppCode itself. When the upstream
//! cannot be reached the client gets APIG's `502 APIG.0201` body. Ctrl-C stops accepting and
//! lets open requests finish.
//!
//! The `apig-appcode serve` binary is this plus a management API and a database: both run the
//! same `gateway::Gateway` (worker threads, per-worker upstream connections, deadlines).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use apig_appcode::gateway::config::parse_upstream;
use apig_appcode::gateway::Gateway;
use apig_appcode::layer::IdentityHeaders;
use apig_appcode::provider::FileProvider;
use apig_appcode::AppCodeAuthLayer;
use http::uri::Authority;
use tokio::sync::watch;

const USAGE: &str = "\
usage: reverse_proxy --upstream http://HOST:PORT --codes FILE [--listen ADDR]

  --upstream URL   where authenticated requests go (plain http, no path)
  --codes FILE     AppCodes: .json, .toml, or one code per line; reloaded on change
  --listen ADDR    address to listen on (default 127.0.0.1:8088; port 0 picks a free one)";

/// How long open connections get to finish after Ctrl-C.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

struct Args {
    listen: SocketAddr,
    upstream: Authority,
    codes: PathBuf,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 8088));
    let mut upstream = None;
    let mut codes = None;
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                listen = v.parse().map_err(|e| format!("--listen {v}: {e}"))?;
            }
            "--upstream" => {
                upstream = Some(parse_upstream(&value("--upstream")?).map_err(|e| e.to_string())?)
            }
            "--codes" => codes = Some(PathBuf::from(value("--codes")?)),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    Ok(Args {
        listen,
        upstream: upstream.ok_or("--upstream is required")?,
        codes: codes.ok_or("--codes is required")?,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(why) => {
            if !why.is_empty() {
                eprintln!("reverse_proxy: {why}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .with_target(false)
        .init();

    // A typo in the path is better reported now than as endless 503s.
    if let Err(e) = std::fs::metadata(&args.codes) {
        eprintln!("reverse_proxy: --codes {}: {e}", args.codes.display());
        return ExitCode::FAILURE;
    }
    let auth = AppCodeAuthLayer::builder()
        .provider(FileProvider::new(&args.codes))
        .identity_headers(IdentityHeaders::default())
        .build();
    if tokio::time::timeout(Duration::from_secs(5), auth.cache().loaded())
        .await
        .is_err()
    {
        // The refresher keeps retrying and has logged why; requests get 503 until it succeeds.
        tracing::warn!(codes = %args.codes.display(), "no AppCodes loaded yet; answering 503");
    }

    let listener = match std::net::TcpListener::bind(args.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("reverse_proxy: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    // On stdout and first, so a script that asked for port 0 can learn the real one.
    println!("listening on http://{addr}");
    tracing::info!(upstream = %args.upstream, codes = %args.codes.display(), "proxying");

    let (stop, stopped) = watch::channel(false);
    let gateway = match Gateway::new(auth, args.upstream)
        .drain(DRAIN_TIMEOUT)
        .spawn(listener, stopped)
    {
        Ok(g) => g,
        Err(e) => {
            eprintln!("reverse_proxy: cannot start the workers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _ = tokio::signal::ctrl_c().await;
    let _ = stop.send(true);
    gateway.join().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse_args(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn upstream_must_be_plain_http_without_path() {
        assert!(args(&["--upstream", "http://127.0.0.1:9", "--codes", "c"]).is_ok());
        assert!(args(&["--upstream", "http://h:9/", "--codes", "c"]).is_ok());
        assert!(args(&["--upstream", "https://h:9", "--codes", "c"]).is_err());
        assert!(args(&["--upstream", "http://h:9/api", "--codes", "c"]).is_err());
        assert!(args(&["--upstream", "h:9", "--codes", "c"]).is_err());
        assert!(args(&["--codes", "c"]).is_err());
        assert!(args(&["--upstream", "http://h:9"]).is_err());
        assert!(args(&["--upstream"]).is_err());
        assert!(args(&["--listen", "nope", "--upstream", "http://h", "--codes", "c"]).is_err());
    }
}
