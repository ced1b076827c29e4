//! `apig-appcode`: the management API and the AppCode gateway in one process.
//!
//! ```text
//! apig-appcode serve --upstream http://127.0.0.1:8000
//! ```
//!
//! `apig-appcode serve --help` lists every flag; each has an `APIG_*` environment variable.

/// Memory that a snapshot load allocates and frees goes back to the system (see Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use apig_appcode::gateway::{self, logging};
use clap::{Parser, Subcommand};

mod cli;

use cli::args::ServeArgs;

#[derive(Parser)]
#[command(
    name = "apig-appcode",
    version,
    about = "Huawei Cloud APIG AppCode authentication: management API and gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the management API and the gateway.
    Serve(ServeArgs),
}

fn main() -> ExitCode {
    let Command::Serve(args) = Cli::parse().command;
    let settings = match cli::load(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("apig-appcode: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = logging::init(settings.log_format, &settings.log) {
        eprintln!("apig-appcode: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("apig-appcode: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(gateway::run(settings.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The logger writes to stderr too: print the error through it (in the log format
            // the operator chose) or, if the filter drops errors, directly; never both.
            if tracing::enabled!(tracing::Level::ERROR) {
                tracing::error!(error = %e, "apig-appcode stopped");
            } else {
                eprintln!("apig-appcode: {e}");
            }
            ExitCode::FAILURE
        }
    }
}
