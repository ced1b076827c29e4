//! AppCode authentication in front of a tonic gRPC service.
//!
//! Serve with `cargo run --example tonic -- [--listen 127.0.0.1:50051] [APPCODE]`; without an
//! APPCODE one is generated. Call with `cargo run --example tonic -- --call URL [APPCODE]`, or
//! with `grpcurl` (the server prints both commands).
//!
//! Refusals are answered with [`GrpcStatus`]: a call without a code, or with another code, ends
//! as gRPC `UNAUTHENTICATED` with `APIG.0303: ...` as its message. The default APIG JSON answer,
//! an HTTP 401, would reach a gRPC client as a protocol error; it does not even fit here, as
//! tonic's response body cannot be built from bytes. The service, its messages and the client
//! are hand-written in `greeter.rs`, so no `protoc` is needed.

#[path = "../common/demo.rs"]
mod demo;
mod greeter;

use std::process::ExitCode;

use apig_appcode::layer::GrpcStatus;
use apig_appcode::{AppCode, AppCodeAuthLayer};
use greeter::{GreeterClient, GreeterServer, HelloRequest};
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

const USAGE: &str = "usage: tonic [--listen ADDR] [APPCODE]\n       tonic --call URL [APPCODE]";

/// One `SayHello` call, with `code` (if any) as `x-apig-appcode` metadata.
async fn call(url: String, code: Option<AppCode>) -> Result<(), String> {
    let mut client = GreeterClient::connect(url.clone())
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    let mut req = tonic::Request::new(HelloRequest {
        name: "world".into(),
    });
    if let Some(code) = code {
        let value = code.expose().parse().expect("an AppCode is visible ASCII");
        req.metadata_mut().insert("x-apig-appcode", value);
    }
    match client.say_hello(req).await {
        Ok(res) => {
            let reply = res.into_inner();
            println!(
                "{} (app {}, AppCode {})",
                reply.message, reply.app_id, reply.app_code_id
            );
            Ok(())
        }
        // For example `UNAUTHENTICATED: APIG.0303: Incorrect app authentication information:
        // AppCode missing`.
        Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut call_url = None;
    let own = |flag: &str, rest: &mut dyn Iterator<Item = String>| match flag {
        "--call" => {
            call_url = Some(rest.next().ok_or("--call needs a URL")?);
            Ok(true)
        }
        _ => Ok(false),
    };
    let args = match demo::parse("tonic", USAGE, 50051, own) {
        Ok(args) => args,
        Err(status) => return status,
    };
    if let Some(url) = call_url {
        return match call(url, args.code).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(why) => {
                eprintln!("tonic: {why}");
                ExitCode::FAILURE
            }
        };
    }
    let code = args.code.unwrap_or_else(AppCode::generate);

    let auth = AppCodeAuthLayer::builder()
        .provider(demo::provider(&code))
        .build()
        // gRPC clients read `grpc-status`, not the HTTP status.
        .on_reject(GrpcStatus);
    // Until the first snapshot is in, the layer answers UNAVAILABLE; wait so the first call works.
    auth.cache().loaded().await;

    let (listener, addr) = match demo::listen("tonic", args.listen).await {
        Ok(bound) => bound,
        Err(status) => return status,
    };
    println!("listening on http://{addr} (gRPC, helloworld.Greeter/SayHello)");
    // Printing the code is what a demo is for; a real service never logs it.
    println!(
        "try: cargo run --example tonic -- --call http://{addr} {}",
        code.expose()
    );
    println!(
        " or: grpcurl -plaintext -import-path examples/tonic -proto greeter.proto \
         -H 'x-apig-appcode: {}' -d '{{\"name\":\"world\"}}' {addr} helloworld.Greeter/SayHello",
        code.expose()
    );

    // The layer wraps tonic's whole router: every service added below is behind it.
    let server = Server::builder()
        .layer(auth)
        .add_service(GreeterServer)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
            let _ = tokio::signal::ctrl_c().await;
        });
    if let Err(e) = server.await {
        eprintln!("tonic: server error: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
