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
use std::net::SocketAddr;
use std::process::ExitCode;

use apig_appcode::layer::{ConnectionInfo, HttpsPolicy, IpNetwork};
use apig_appcode::provider::StaticProvider;
use apig_appcode::{AppCode, AppCodeAuthLayer, AppIdentity};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tower::{service_fn, ServiceBuilder};

const USAGE: &str = "usage: hyper [--listen ADDR] [--trust-proxy CIDR] [APPCODE]";

struct Args {
    listen: SocketAddr,
    trust_proxy: Option<IpNetwork>,
    code: Option<AppCode>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
        trust_proxy: None,
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
            "--trust-proxy" => {
                let value = it.next().ok_or("--trust-proxy needs a network")?;
                args.trust_proxy = Some(value.parse().map_err(|e| format!("{e}"))?);
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
    let args = match parse_args() {
        Ok(args) => args,
        Err(why) => {
            if !why.is_empty() {
                eprintln!("hyper: {why}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let code = args.code.unwrap_or_else(AppCode::generate);
    let https = match args.trust_proxy {
        Some(net) => HttpsPolicy::required().trust_forwarded_proto_from(net),
        None => HttpsPolicy::optional(),
    };
    // Behind a trusted proxy, a plain request is refused (400 APIG.0607): the printed command
    // then says what the proxy would, that the client's side was HTTPS.
    let proxy_header = match args.trust_proxy {
        Some(_) => "-H 'X-Forwarded-Proto: https' ",
        None => "",
    };

    let auth = AppCodeAuthLayer::builder()
        .provider(
            StaticProvider::builder()
                .app_code("demo-app", "demo-code", code.clone())
                .build(),
        )
        .https(https)
        .build();
    // Until the first snapshot is in, the layer answers 503; wait so the first curl works.
    auth.cache().loaded().await;

    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hyper: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
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
