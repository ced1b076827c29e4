//! The `apig-appcode` gateway: the management API and the AppCode-checking reverse proxy on two
//! listeners, with TLS, health checks, Prometheus metrics and graceful shutdown.
//!
//! The binary's `serve` command is [`run`](fn@run) with a [`Config`](config::Config), which the binary
//! builds from its flags, `APIG_*` environment variables and an optional TOML file. The data
//! plane is [`Gateway`]: worker threads, their upstream connections, and the deadlines of
//! [`limits`]. An optional third listener, the verify listener, answers only whether a request's
//! AppCode is good, for a proxy already in place (nginx `auth_request`, Caddy `forward_auth`,
//! Envoy `ext_authz`); without an upstream it runs alone beside the management API (auth-only
//! mode, [`Config::auth_only`](config::Config::auth_only)).

mod body;
mod body_error;
mod client_body;
pub mod config;
mod connection;
pub mod limits;
pub mod listener;
// The binary's logging: public only because the binary is another crate. A library installs
// a tracing subscriber of its own choosing.
#[doc(hidden)]
pub mod logging;
mod memory;
pub mod metrics;
mod open_connections;
mod proxy;
mod request_body;
mod run;
mod shares;
mod streamed_or_held;
pub mod tls;
mod token_file;
mod upstream;
mod verify;
mod workers;

pub use body::ProxyBody;
pub use body_error::{Peer, ProxyBodyError};
pub use run::{run, RunError};
pub use shares::WorkerConnections;
pub use token_file::path as token_path;
pub use workers::{Gateway, GatewayHandle};
