//! The `apig-appcode` gateway: the management API and the AppCode-checking reverse proxy on two
//! listeners, with TLS, health checks, Prometheus metrics and graceful shutdown.
//!
//! The binary's `serve` command is [`run`] with a [`Config`](config::Config) built from flags,
//! `APIG_*` environment variables and an optional TOML file.

pub mod config;
pub mod logging;
pub mod metrics;
pub mod proxy;
mod run;
pub mod server;
pub mod tls;

pub use run::{run, token_path, RunError};
