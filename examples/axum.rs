//! AppCode authentication in front of an axum router.
//!
//! Run with `cargo run --example axum -- [--listen 127.0.0.1:3000] [APPCODE]`. Without an
//! APPCODE one is generated; either way the example prints a `curl` command that passes the
//! check. Requests without the header, or with another code, get APIG's `401 APIG.0303`.

use std::net::SocketAddr;
use std::process::ExitCode;

use apig_appcode::provider::StaticProvider;
use apig_appcode::{AppCode, AppCodeAuthLayer, AppIdentity};
use axum::routing::get;
use axum::{Extension, Router};

const USAGE: &str = "usage: axum [--listen ADDR] [APPCODE]";

struct Args {
    listen: SocketAddr,
    code: Option<AppCode>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
        code: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--listen" => {
                let value = it.next().ok_or("--listen needs an address")?;
                args.listen = value
                    .parse()
                    .map_err(|e| format!("--listen {value}: {e}"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            _ if args.code.is_some() => return Err("more than one APPCODE given".into()),
            // The error names the broken rule only, never the value: it is a secret.
            code => args.code = Some(AppCode::parse(code).map_err(|e| e.to_string())?),
        }
    }
    Ok(args)
}

async fn whoami(Extension(id): Extension<AppIdentity>) -> String {
    format!(
        "hello, app {} (AppCode {})\n",
        id.app_id(),
        id.app_code_id()
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(why) => {
            if !why.is_empty() {
                eprintln!("axum: {why}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let code = args.code.unwrap_or_else(AppCode::generate);

    let layer = AppCodeAuthLayer::builder()
        .provider(
            StaticProvider::builder()
                .app_code("demo-app", "demo-code", code.clone())
                .build(),
        )
        .build();
    // Until the first snapshot is in, the layer answers 503; wait so the first curl works.
    layer.cache().loaded().await;

    let app = Router::new().route("/", get(whoami)).layer(layer);

    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("axum: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    println!("listening on http://{addr}");
    // Printing the code is what a demo is for; a real service never logs it.
    println!(
        "try: curl -i -H 'X-Apig-AppCode: {}' http://{addr}/",
        code.expose()
    );

    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        eprintln!("axum: server error: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
