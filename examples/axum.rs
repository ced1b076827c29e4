//! AppCode authentication in front of an axum router.
//!
//! Run with `cargo run --example axum -- [--listen 127.0.0.1:3000] [APPCODE]`. Without an
//! APPCODE one is generated; either way the example prints a `curl` command that passes the
//! check. Requests without the header, or with another code, get APIG's `401 APIG.0303`.

use std::process::ExitCode;

use apig_appcode::{AppCode, AppCodeAuthLayer, AppIdentity};
use axum::routing::get;
use axum::{Extension, Router};

#[path = "common/demo.rs"]
mod demo;

const USAGE: &str = "usage: axum [--listen ADDR] [APPCODE]";

async fn whoami(Extension(id): Extension<AppIdentity>) -> String {
    format!(
        "hello, app {} (AppCode {})\n",
        id.app_id(),
        id.app_code_id()
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match demo::parse("axum", USAGE, 3000, |_, _| Ok(false)) {
        Ok(args) => args,
        Err(status) => return status,
    };
    let code = args.code.unwrap_or_else(AppCode::generate);

    let layer = AppCodeAuthLayer::builder()
        .provider(demo::provider(&code))
        .build();
    // Until the first snapshot is in, the layer answers 503; wait so the first curl works.
    layer.cache().loaded().await;

    let app = Router::new().route("/", get(whoami)).layer(layer);

    let (listener, addr) = match demo::listen("axum", args.listen).await {
        Ok(bound) => bound,
        Err(status) => return status,
    };
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
