//! `helloworld.Greeter` (see `greeter.proto`) without protoc or tonic-build: the prost messages,
//! the server and the client, written by hand. Shared by the example and `tests/grpc.rs`, so the
//! test runs the example's own service.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use apig_appcode::AppIdentity;
use http::uri::PathAndQuery;
use tonic::body::Body;
use tonic::codec::ProstCodec;
use tonic::server::NamedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};
use tower::{service_fn, Service};

/// The one method's path: `/{package}.{service}/{method}`.
const SAY_HELLO: &str = "/helloworld.Greeter/SayHello";

/// `message HelloRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HelloRequest {
    /// Whom to greet.
    #[prost(string, tag = "1")]
    pub(crate) name: String,
}

/// `message HelloReply`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HelloReply {
    /// The greeting.
    #[prost(string, tag = "1")]
    pub(crate) message: String,
    /// The caller's app ID, as the layer verified it.
    #[prost(string, tag = "2")]
    pub(crate) app_id: String,
    /// The ID of the AppCode the caller used.
    #[prost(string, tag = "3")]
    pub(crate) app_code_id: String,
}

/// The handler. tonic keeps the HTTP request's extensions in `tonic::Request`, so the identity
/// `AppCodeAuth` inserted is read the same way as in any tower service.
async fn say_hello(req: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
    // Behind the layer it is always there; without it, fail the call rather than the process.
    let id = req
        .extensions()
        .get::<AppIdentity>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no AppIdentity: is AppCodeAuthLayer applied?"))?;
    let name = &req.get_ref().name;
    Ok(Response::new(HelloReply {
        message: format!("hello, {name}"),
        app_id: id.app_id().to_owned(),
        app_code_id: id.app_code_id().to_owned(),
    }))
}

/// The `helloworld.Greeter` service, for `tonic::transport::Server::add_service`.
#[derive(Debug, Clone, Default)]
pub(crate) struct GreeterServer;

impl NamedService for GreeterServer {
    // The router sends `/helloworld.Greeter/*` here.
    const NAME: &'static str = "helloworld.Greeter";
}

impl Service<http::Request<Body>> for GreeterServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        Box::pin(async move {
            Ok(match req.uri().path() {
                // tonic's `Grpc` decodes the message, calls the handler and encodes the reply or
                // the status; what codegen would emit, minus the options.
                SAY_HELLO => {
                    let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                    grpc.unary(service_fn(say_hello), req).await
                }
                _ => Status::unimplemented("no such method").into_http(),
            })
        })
    }
}

/// A client of `helloworld.Greeter`.
#[derive(Debug, Clone)]
pub(crate) struct GreeterClient {
    inner: tonic::client::Grpc<Channel>,
}

impl GreeterClient {
    /// Connects to `url` (`http://host:port`).
    pub(crate) async fn connect(url: String) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::from_shared(url)?.connect().await?;
        Ok(Self {
            inner: tonic::client::Grpc::new(channel),
        })
    }

    /// Calls `SayHello`. Put the AppCode in the request's metadata as `x-apig-appcode`.
    pub(crate) async fn say_hello(
        &mut self,
        req: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        self.inner
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("not ready: {e}")))?;
        let path = PathAndQuery::from_static(SAY_HELLO);
        self.inner.unary(req, path, ProstCodec::default()).await
    }
}
