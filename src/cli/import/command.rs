//! `apig-appcode import`: its flags, and the run: quotas first, then apps page by page (each
//! app with its AppCodes and ACL, several apps at a time), then the quotas' bindings.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Instant;

use apig_appcode::gateway::config::{DEFAULT_INSTANCE_ID, DEFAULT_PROJECT_ID};
use apig_appcode::store::{Scope, Store, StoreError, Timestamp};
use clap::Args;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::progress::Progress;
use super::records::SourceApp;
use super::report::{Kind, Report};
use super::source::{Source, SourceCredentialEnv};
use super::sync::{self, Mode, Outcome};
use super::target;
use crate::cli::client::{CliError, Client};

/// `apig-appcode import`.
#[derive(Args)]
#[command(
    after_help = "The source's credential comes from the environment only: \
APIG_SOURCE_ACCESS_KEY and APIG_SOURCE_SECRET_KEY (an AK/SK pair, signed as the official SDKs \
sign), or APIG_SOURCE_TOKEN (X-Auth-Token). A target encrypted at rest needs APIG_MASTER_KEY, \
as serve does.

Examples:
  # From another apig-appcode into the local SQLite file, first as a plan
  APIG_SOURCE_TOKEN=$(cat old.db.admin-token) apig-appcode import --from http://old-node:8081 \\
      --source-project 00000000000000000000000000000001 \\
      --source-instance 00000000000000000000000000000001 --dry-run
  # The same for real, into PostgreSQL, making what differs match the source
  apig-appcode import --from http://old-node:8081 --source-project P --source-instance I \\
      --database postgres://apig@db/apig --update"
)]
pub(crate) struct ImportArgs {
    /// The source's management API, `http[s]://HOST[:PORT]`: Huawei Cloud APIG's endpoint, or
    /// another apig-appcode's --admin-listen.
    #[arg(long, value_name = "URL")]
    from: String,
    /// The source's project ID.
    #[arg(long, value_name = "ID")]
    source_project: String,
    /// The source's gateway instance ID.
    #[arg(long, value_name = "ID")]
    source_instance: String,
    /// The target store, as for `serve`: `sqlite://PATH` or `postgres://...`.
    #[arg(
        long,
        env = "APIG_DATABASE",
        default_value = "sqlite://apig-appcode.db",
        hide_env_values = true
    )]
    database: String,
    /// The target project ID (`serve`'s --project-id).
    #[arg(long, env = "APIG_PROJECT_ID", default_value = DEFAULT_PROJECT_ID)]
    project_id: String,
    /// The target gateway instance ID (`serve`'s --instance-id).
    #[arg(long, env = "APIG_INSTANCE_ID", default_value = DEFAULT_INSTANCE_ID)]
    instance_id: String,
    /// Make what differs in the target match the source, instead of only reporting it.
    #[arg(long)]
    update: bool,
    /// Write nothing: print what would be created and updated, by IDs and names.
    #[arg(long)]
    dry_run: bool,
    /// Apps copied at a time.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
}

/// What every app's task shares.
struct Run {
    source: Source,
    store: Arc<dyn Store>,
    scope: Scope,
    mode: Mode,
    report: Report,
    progress: Progress,
}

/// Why a run stopped before its end: the source or the target cannot be used at all.
enum Stop {
    Source(CliError),
    Target(StoreError),
}

impl From<Stop> for CliError {
    fn from(stop: Stop) -> Self {
        match stop {
            Stop::Source(e) => e,
            Stop::Target(e) => CliError::Target(e.to_string()),
        }
    }
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Target(e)
    }
}

/// A source error that no other item would escape either: the run stops.
fn stops(e: &CliError) -> bool {
    !matches!(
        e,
        CliError::Api { .. } | CliError::BadAnswer { .. } | CliError::Unexpected { .. }
    )
}

/// Runs the import, printing the plan or the report to `out` and progress to stderr. Returns
/// whether every item was handled (no failure); a source or target that cannot be used at
/// all, or an interruption, is the error.
pub(crate) async fn import(args: ImportArgs, out: &mut impl Write) -> Result<bool, CliError> {
    let credential = SourceCredentialEnv::from_process().credential()?;
    let client = Client::new(
        ("--from", &args.from),
        &args.source_project,
        &args.source_instance,
        credential,
    )?;
    let store = target::open(&args.database).await?;
    let run = Arc::new(Run {
        source: Source::new(client),
        store,
        scope: Scope::new(args.project_id, args.instance_id),
        mode: Mode {
            dry_run: args.dry_run,
            update: args.update,
        },
        report: Report::new(args.dry_run),
        progress: Progress::new(std::io::stderr().is_terminal()),
    });
    let started = Instant::now();
    let work = everything(Arc::clone(&run), usize::from(args.concurrency));
    let outcome = tokio::select! {
        outcome = work => outcome.map_err(CliError::from),
        _ = tokio::signal::ctrl_c() => Err(CliError::Interrupted),
    };
    // A run that stopped before its first item is its one-line error alone; one that stopped
    // later reports what it did, which tells where it stood.
    let started_work = !run.report.is_empty();
    run.progress.finish(outcome.is_ok() || started_work);
    if outcome.is_ok() || started_work {
        run.report.print(out, started.elapsed())?;
    }
    outcome?;
    Ok(run.report.failed() == 0)
}

async fn everything(run: Arc<Run>, concurrency: usize) -> Result<(), Stop> {
    let quotas = run.source.quotas().await.map_err(Stop::Source)?;
    for quota in &quotas {
        let subject = format!("app quota {} ({})", quota.id, quota.name);
        let outcome = sync::app_quota(&*run.store, &run.scope, run.mode, quota.clone()).await?;
        run.report.record(Kind::AppQuota, &subject, &outcome);
    }
    apps(&run, concurrency).await?;
    for quota in &quotas {
        let bound = run.source.bindings(&quota.id).await;
        let bound = match bound {
            Ok(bound) => bound,
            Err(e) if stops(&e) => return Err(Stop::Source(e)),
            Err(e) => {
                let subject = format!("bindings of app quota {}", quota.id);
                let outcome = Outcome::Failed(format!("source: {e}"));
                run.report.record(Kind::QuotaBinding, &subject, &outcome);
                continue;
            }
        };
        for b in bound {
            let at = b.bound_time.unwrap_or_else(Timestamp::now);
            let outcome =
                sync::binding(&*run.store, &run.scope, run.mode, &quota.id, &b.app_id, at).await?;
            let subject = format!("binding of app {} to app quota {}", b.app_id, quota.id);
            run.report.record(Kind::QuotaBinding, &subject, &outcome);
        }
    }
    Ok(())
}

/// Every app of the source, `concurrency` at a time, page after page.
async fn apps(run: &Arc<Run>, concurrency: usize) -> Result<(), Stop> {
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    let mut offset = 0;
    loop {
        let page = run.source.apps(offset).await.map_err(Stop::Source)?;
        run.progress.set_total(page.total);
        if page.apps.is_empty() {
            break;
        }
        offset += page.apps.len() as u64;
        for app in page.apps {
            let permit = Arc::clone(&permits)
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let run = Arc::clone(run);
            tasks.spawn(async move {
                let result = one_app(&run, app).await;
                drop(permit);
                result
            });
            // Finished tasks are collected as they end: a stop is seen at once.
            while let Some(done) = tasks.try_join_next() {
                done.expect("an app's task does not panic")?;
            }
        }
        if offset >= page.total {
            break;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("an app's task does not panic")?;
    }
    Ok(())
}

/// One app, its AppCodes and its ACL.
async fn one_app(run: &Run, app: SourceApp) -> Result<(), Stop> {
    let subject = format!("app {} ({})", app.id, app.name);
    let Some(target_app) = app.to_app(&run.scope) else {
        let outcome = Outcome::Failed("the source shows no app_secret".into());
        run.report.record(Kind::App, &subject, &outcome);
        run.progress.app_done(0);
        return Ok(());
    };
    let outcome = sync::app(&*run.store, run.mode, target_app).await?;
    run.report.record(Kind::App, &subject, &outcome);
    let is_new = match outcome {
        Outcome::Failed(_) => {
            run.progress.app_done(0);
            return Ok(());
        }
        outcome => outcome == Outcome::Created,
    };
    let codes = codes(run, &app.id, is_new).await?;
    acl(run, &app.id, is_new).await?;
    run.progress.app_done(codes);
    Ok(())
}

/// The app's AppCodes; returns how many the source holds.
async fn codes(run: &Run, app_id: &str, is_new: bool) -> Result<u64, Stop> {
    let failed = |reason: String| {
        let subject = format!("AppCodes of app {app_id}");
        run.report
            .record(Kind::AppCode, &subject, &Outcome::Failed(reason));
    };
    let codes = match run.source.app_codes(app_id).await {
        Ok(codes) => codes,
        Err(e) if stops(&e) => return Err(Stop::Source(e)),
        Err(e) => {
            failed(format!("source: {e}"));
            return Ok(0);
        }
    };
    let held = match is_new {
        true => Vec::new(),
        false => match run.store.list_app_codes(&run.scope, app_id, 0, 500).await {
            Ok(page) => page.items,
            Err(e) => {
                let subject = format!("AppCodes of app {app_id}");
                run.report
                    .record(Kind::AppCode, &subject, &sync::refused(e)?);
                return Ok(codes.len() as u64);
            }
        },
    };
    let count = codes.len() as u64;
    for code in codes {
        let subject = format!("AppCode {} of app {app_id}", code.id);
        let outcome = sync::app_code(&*run.store, &run.scope, run.mode, code, &held).await?;
        run.report.record(Kind::AppCode, &subject, &outcome);
    }
    Ok(count)
}

/// The app's ACL.
async fn acl(run: &Run, app_id: &str, is_new: bool) -> Result<(), Stop> {
    let subject = format!("ACL of app {app_id}");
    let acl = match run.source.app_acl(app_id).await {
        Ok(acl) => acl,
        Err(e) if stops(&e) => return Err(Stop::Source(e)),
        Err(e) => {
            let outcome = Outcome::Failed(format!("source: {e}"));
            run.report.record(Kind::AppAcl, &subject, &outcome);
            return Ok(());
        }
    };
    let held = match is_new {
        true => None,
        false => match run.store.get_app_acl(&run.scope, app_id).await {
            Ok(held) => held,
            Err(e) => {
                let outcome = sync::refused(e)?;
                run.report.record(Kind::AppAcl, &subject, &outcome);
                return Ok(());
            }
        },
    };
    if let Some(outcome) =
        sync::app_acl(&*run.store, &run.scope, run.mode, app_id, acl, held).await?
    {
        run.report.record(Kind::AppAcl, &subject, &outcome);
    }
    Ok(())
}
