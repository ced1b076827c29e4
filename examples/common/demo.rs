//! What the demo servers among the examples share, so that each shows only its own topic: the
//! command line, the one AppCode they accept, and the listener they announce.

use std::net::SocketAddr;
use std::process::ExitCode;

use apig_appcode::provider::StaticProvider;
use apig_appcode::AppCode;
use tokio::net::TcpListener;

/// What every demo takes on its command line.
pub(crate) struct Args {
    pub(crate) listen: SocketAddr,
    pub(crate) code: Option<AppCode>,
}

/// Parses `[--listen ADDR] [APPCODE]` (listening on `127.0.0.1:port` by default) and the flags
/// `own` knows: it is given each other flag and the arguments after it, and answers whether it
/// took the flag. On a bad command line, or `--help`, prints why and `usage` as the example
/// `name`, and returns exit status 2.
pub(crate) fn parse(
    name: &str,
    usage: &str,
    port: u16,
    own: impl FnMut(&str, &mut dyn Iterator<Item = String>) -> Result<bool, String>,
) -> Result<Args, ExitCode> {
    parse_from(std::env::args().skip(1), port, own).map_err(|why| {
        if !why.is_empty() {
            eprintln!("{name}: {why}");
        }
        eprintln!("{usage}");
        ExitCode::from(2)
    })
}

fn parse_from(
    mut it: impl Iterator<Item = String>,
    port: u16,
    mut own: impl FnMut(&str, &mut dyn Iterator<Item = String>) -> Result<bool, String>,
) -> Result<Args, String> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        code: None,
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--listen" => {
                let value = it.next().ok_or("--listen needs an address")?;
                args.listen = value
                    .parse()
                    .map_err(|e| format!("--listen {value}: {e}"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with('-') => {
                if !own(flag, &mut it)? {
                    return Err(format!("unknown option {flag}"));
                }
            }
            _ if args.code.is_some() => return Err("more than one APPCODE given".into()),
            // The error names the broken rule only, never the value: it is a secret.
            code => args.code = Some(AppCode::parse(code).map_err(|e| e.to_string())?),
        }
    }
    Ok(args)
}

/// A provider that knows one code, `code`, of the app `demo-app`.
pub(crate) fn provider(code: &AppCode) -> StaticProvider {
    StaticProvider::builder()
        .app_code("demo-app", "demo-code", code.clone())
        .build()
}

/// A listener on `addr` and the address it got, or (saying why, as the example `name`) exit
/// status 1.
pub(crate) async fn listen(
    name: &str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), ExitCode> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        eprintln!("{name}: cannot listen on {addr}: {e}");
        ExitCode::FAILURE
    })?;
    let bound = listener
        .local_addr()
        .expect("a bound socket has an address");
    Ok((listener, bound))
}
