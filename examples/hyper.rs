//! AppCode authentication on a plain hyper 1 server, without a framework.
//!
//! Run with `cargo run --example hyper -- [--listen 127.0.0.1:3000] [--trust-proxy CIDR] [APPCODE]`.
//! Without an APPCODE one is generated and a `curl` command is printed.
//!
//! With `--trust-proxy 127.0.0.1/32` the server demands HTTPS the way APIG does: a plain request
//! gets `400 APIG.0607` unless it comes from the trusted proxy with `X-Forwarded-Proto: https`.
//! The layer can only know who the proxy is because each request carries a
//! [`ConnectionInfo`] with the peer address, which this server inserts.

use std::convert::Infallible;
use std::process::ExitCode;

use apig_appcode::layer::{ConnectionInfo, HttpsPolicy, IpNetwork};
use apig_appcode::{AppCode, AppCodeAuthLayer, AppIdentity};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tower::{service_fn, ServiceBuilder};

#[path = "common/demo.rs"]
mod demo;

const USAGE: &str = "usage: hyper [--listen ADDR] [--trust-proxy CIDR] [APPCODE]";

async fn whoami(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // The layer only calls us after a successful check, so the identity is always there.
    let id = req
        .extensions()
        .get::<AppIdentity>()
        .expect("AppCodeAuth inserts the identity");
    let body = format!(
        "hello, app {} (AppCode {})\n",
        id.app_id(),
        id.app_code_id()
    );
    Ok(Response::new(Full::from(body)))
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut trust_proxy: Option<IpNetwork> = None;
    let own = |flag: &str, rest: &mut dyn Iterator<Item = String>| match flag {
        "--trust-proxy" => {
            let value = rest.next().ok_or("--trust-proxy needs a network")?;
            trust_proxy = Some(value.parse().map_err(|e| format!("{e}"))?);
            Ok(true)
        }
        _ => Ok(false),
    };
    let args = match demo::parse("hyper", USAGE, 3000, own) {
        Ok(args) => args,
        Err(status) => return status,
    };
    let code = args.code.unwrap_or_else(AppCode::generate);
    let https = match trust_proxy {
        Some(net) => HttpsPolicy::required().trust_forwarded_proto_from(net),
        None => HttpsPolicy::optional(),
    };
    // Behind a trusted proxy, a plain request is refused (400 APIG.0607): the printed command
    // then says what the proxy would, that the client's side was HTTPS.
    let proxy_header = match trust_proxy {
        Some(_) => "-H 'X-Forwarded-Proto: https' ",
        None => "",
    };

    let auth = AppCodeAuthLayer::builder()
        .provider(demo::provider(&code))
        .https(https)
        .build();
    // Until the first snapshot is in, the layer answers 503; wait so the first curl works.
    auth.cache().loaded().await;

    let (listener, addr) = match demo::listen("hyper", args.listen).await {
        Ok(bound) => bound,
        Err(status) => return status,
    };
    println!("listening on http://{addr}");
    // Printing the code is what a demo is for; a real service never logs it.
    println!(
        "try: curl -i {proxy_header}-H 'X-Apig-AppCode: {}' http://{addr}/",
        code.expose()
    );

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Running out of file descriptors is worth a pause, not an exit.
                    eprintln!("hyper: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
        };
        // One service per connection, so each knows its peer. Cloning the layer is cheap: every
        // clone shares one cache and one refresher.
        let svc = ServiceBuilder::new()
            // Outermost, so the layer below already sees the connection's facts.
            .map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut()
                    .insert(ConnectionInfo { peer, tls: false });
                req
            })
            .layer(auth.clone())
            .service(service_fn(whoami));
        tokio::spawn(async move {
            let io = TokioIo::new(stream);
            if let Err(e) = http1::Builder::new()
                .serve_connection(io, TowerToHyperService::new(svc))
                .await
            {
                eprintln!("hyper: connection from {peer}: {e}");
            }
        });
    }
}
