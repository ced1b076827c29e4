//! `apig-appcode`: the management API and the AppCode gateway in one process.
//!
//! ```text
//! apig-appcode serve --upstream http://127.0.0.1:8000
//! ```
//!
//! `apig-appcode serve --help` lists every flag; each has an `APIG_*` environment variable.
//! `apig-appcode apps ...` and `apig-appcode app-codes ...` manage apps and AppCodes through a
//! running server's management API; `apig-appcode import` copies them from another one into
//! the store; `apig-appcode completions SHELL` prints a shell's completion script.

use std::io::{stdout, Write};
use std::process::ExitCode;

use apig_appcode::gateway::{self, logging};
use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

mod cli;

use cli::args::ServeArgs;
use cli::commands::{AppCodesCommand, AppsCommand};
use cli::import::ImportArgs;
use cli::quotas::QuotasCommand;

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
    // Boxed: the serve flags are far larger than the client commands'.
    Serve(Box<ServeArgs>),
    /// Create, list, show, update and delete apps on a running server; reset their secrets.
    Apps(AppsCommand),
    /// Create, generate, list, show and delete an app's AppCodes on a running server.
    #[command(name = "app-codes")]
    AppCodes(AppCodesCommand),
    /// Create, list, show, update and delete app quotas, and bind apps to them.
    Quotas(QuotasCommand),
    /// Copy apps, AppCodes, ACLs and app quotas from another APIG-compatible management API
    /// into the store, keeping their IDs; safe to repeat.
    // Boxed: its flags are larger than the other commands'.
    Import(Box<ImportArgs>),
    /// Print the completion script of a shell, to be sourced or installed.
    #[command(after_help = "Examples:
  apig-appcode completions bash > /etc/bash_completion.d/apig-appcode
  apig-appcode completions zsh > \"${fpath[1]}/_apig-appcode\"
  apig-appcode completions fish > ~/.config/fish/completions/apig-appcode.fish")]
    Completions {
        /// The shell.
        shell: Shell,
    },
}

fn main() -> ExitCode {
    let args = match Cli::parse().command {
        Command::Serve(args) => *args,
        Command::Apps(cmd) => return client_command(cli::commands::apps(cmd, &mut stdout())),
        Command::AppCodes(cmd) => {
            return client_command(cli::commands::app_codes(cmd, &mut stdout()))
        }
        Command::Quotas(cmd) => return client_command(cli::quotas::quotas(cmd, &mut stdout())),
        Command::Import(args) => return import(*args),
        Command::Completions { shell } => return completions(shell),
    };
    serve(args)
}

/// Prints the completion script for `shell`. Generated into memory first: clap_complete
/// panics on a failed write, and a reader that stops early (`| head`) is no reason to.
fn completions(shell: Shell) -> ExitCode {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "apig-appcode", &mut script);
    match stdout().write_all(&script).and_then(|()| stdout().flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader has what it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("apig-appcode: cannot write the completions: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `import` on a runtime of its own: exit 0 when every item was copied, skipped or
/// reported, 1 when one failed (after the report), a one-line error when it could not run.
fn import(args: ImportArgs) -> ExitCode {
    // Two workers: the source's answers are parsed while the store writes.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2);
    let runtime = match runtime(builder) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(cli::import::import(args, &mut stdout())) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("apig-appcode: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs a management API command on a small runtime of its own; one-line error, no log.
fn client_command(
    command: impl std::future::Future<Output = Result<(), cli::client::CliError>>,
) -> ExitCode {
    // One thread: a command makes a few calls in a row.
    let runtime = match runtime(tokio::runtime::Builder::new_current_thread()) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("apig-appcode: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
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
    let runtime = match runtime(tokio::runtime::Builder::new_multi_thread()) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(gateway::run(settings.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Every error `run` returns stops the start (a port taken, a store that cannot be
            // opened, an unusable certificate): one plain line, as for a bad flag, whatever the
            // log format, so that the operator reads it first and a script can match it.
            eprintln!("apig-appcode: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `builder`'s runtime with I/O and timers, or the exit status after saying why not.
fn runtime(mut builder: tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, ExitCode> {
    builder.enable_all().build().map_err(|e| {
        eprintln!("apig-appcode: cannot start the runtime: {e}");
        ExitCode::FAILURE
    })
}
