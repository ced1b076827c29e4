//! `apig-appcode quotas ...`: app quotas and their bindings from the command line.

use std::io::Write;

use clap::{Args, Subcommand};
use http::Method;
use serde_json::{json, Value};

use super::client::{segment, Answer, CliError, Client};
use super::commands::{client, ConnectArgs};
use super::output::{delete, footer, header, number, raw, table, text, texts, with_query};

/// `apig-appcode quotas`.
#[derive(Args)]
pub(crate) struct QuotasCommand {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    action: QuotasAction,
}

/// A quota's fields, for `create` and `update` (an update replaces them all).
#[derive(Args)]
struct QuotaFields {
    /// Name: 3 to 255 characters, unique in the instance.
    name: String,
    /// Calls each bound app may make per period.
    #[arg(long)]
    calls: u64,
    /// The period's unit.
    #[arg(long, value_parser = ["SECOND", "MINUTE", "HOUR", "DAY"], ignore_case = true)]
    unit: String,
    /// How many units a period lasts.
    #[arg(long, default_value_t = 1)]
    interval: u32,
    /// The anchor of every period, `YYYY-MM-DD HH:MM:SS` in UTC; without it, each app's periods
    /// start when it is bound.
    #[arg(long)]
    reset_time: Option<String>,
    /// Description.
    #[arg(long)]
    remark: Option<String>,
}

impl QuotaFields {
    fn body(self) -> Value {
        let mut body = json!({
            "name": self.name,
            "call_limits": self.calls,
            "time_unit": self.unit.to_ascii_uppercase(),
            "time_interval": self.interval,
        });
        if let Some(at) = self.reset_time {
            body["reset_time"] = Value::String(at);
        }
        if let Some(remark) = self.remark {
            body["remark"] = Value::String(remark);
        }
        body
    }
}

#[derive(Subcommand)]
enum QuotasAction {
    /// Create an app quota.
    #[command(after_help = "Examples:
  apig-appcode quotas create partners --calls 10000 --unit DAY --reset-time \"2026-12-01 00:00:00\"
  apig-appcode quotas create burst --calls 100 --unit MINUTE --interval 5")]
    Create(QuotaFields),
    /// List app quotas (one page).
    #[command(after_help = "Example:
  apig-appcode quotas list --name partner")]
    List {
        /// Only quotas whose name contains this.
        #[arg(long)]
        name: Option<String>,
        /// Quotas skipped.
        #[arg(long)]
        offset: Option<u64>,
        /// Quotas per page [server default: 20, at most 500].
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Show one app quota, with the apps bound to it.
    #[command(after_help = "Example:
  apig-appcode quotas show APP_QUOTA_ID")]
    Show {
        /// App quota ID.
        app_quota_id: String,
    },
    /// Replace an app quota's name, limit and remark; bound apps keep their calls so far.
    #[command(after_help = "Example:
  apig-appcode quotas update APP_QUOTA_ID partners --calls 20000 --unit DAY")]
    Update {
        /// App quota ID.
        app_quota_id: String,
        #[command(flatten)]
        fields: QuotaFields,
    },
    /// Delete an app quota; its apps are unbound.
    #[command(after_help = "Example:
  apig-appcode quotas delete APP_QUOTA_ID")]
    Delete {
        /// App quota ID.
        app_quota_id: String,
    },
    /// Bind apps to an app quota (an app has at most one).
    #[command(after_help = "Example:
  apig-appcode quotas bind APP_QUOTA_ID APP_ID OTHER_APP_ID")]
    Bind {
        /// App quota ID.
        app_quota_id: String,
        /// App IDs, at most 100.
        #[arg(required = true)]
        app_ids: Vec<String>,
    },
    /// Unbind an app from an app quota.
    #[command(after_help = "Example:
  apig-appcode quotas unbind APP_QUOTA_ID APP_ID")]
    Unbind {
        /// App quota ID.
        app_quota_id: String,
        /// App ID.
        app_id: String,
    },
}

/// Runs `quotas ACTION`, printing to `out`.
pub(crate) async fn quotas(cmd: QuotasCommand, out: &mut impl Write) -> Result<(), CliError> {
    let json_out = cmd.connect.json;
    let client = client(&cmd.connect)?;
    let path = |id: &str| format!("/app-quotas/{}", segment(id));
    // Creating and updating both answer with the quota.
    let (method, path, body) = match cmd.action {
        QuotasAction::Create(fields) => (Method::POST, "/app-quotas".to_owned(), fields.body()),
        QuotasAction::Update {
            app_quota_id,
            fields,
        } => (Method::PUT, path(&app_quota_id), fields.body()),
        QuotasAction::List {
            name,
            offset,
            limit,
        } => {
            let mut query = Vec::new();
            if let Some(name) = name {
                query.push(format!("name={}", segment(&name)));
            }
            query.extend(offset.map(|o| format!("offset={o}")));
            query.extend(limit.map(|l| format!("limit={l}")));
            let path = with_query("/app-quotas", &query);
            let answer = client.call(Method::GET, &path, None).await?;
            let quotas = answer.list("quotas")?;
            print_quotas(out, json_out, &answer, quotas)?;
            if !json_out {
                footer(&answer.json, quotas.len(), "quotas");
            }
            return Ok(());
        }
        QuotasAction::Show { app_quota_id } => {
            let answer = client.call(Method::GET, &path(&app_quota_id), None).await?;
            print_quota(out, json_out, &answer)?;
            if json_out {
                return Ok(());
            }
            return bound_apps(&client, &app_quota_id, out).await;
        }
        QuotasAction::Delete { app_quota_id } => {
            let what = format!("deleted app quota {app_quota_id}");
            return delete(&client, &path(&app_quota_id), out, json_out, &what).await;
        }
        QuotasAction::Bind {
            app_quota_id,
            app_ids,
        } => {
            let body = json!({ "app_ids": app_ids });
            let path = format!("{}/binding-apps", path(&app_quota_id));
            let answer = client.call(Method::POST, &path, Some(&body)).await?;
            let applies = answer.list("applies")?;
            if json_out {
                return raw(out, &answer);
            }
            let mut rows = vec![header(&["APP ID", "APP QUOTA ID", "BOUND"])];
            for applied in applies {
                rows.push(texts(applied, &["app_id", "app_quota_id", "bound_time"]));
            }
            return table(out, &rows);
        }
        QuotasAction::Unbind {
            app_quota_id,
            app_id,
        } => {
            let path = format!("{}/bound-apps/{}", path(&app_quota_id), segment(&app_id));
            let what = format!("unbound app {app_id} from app quota {app_quota_id}");
            return delete(&client, &path, out, json_out, &what).await;
        }
    };
    let answer = client.call(method, &path, Some(&body)).await?;
    print_quota(out, json_out, &answer)
}

/// One quota: the body of a create, show or update.
fn print_quota(out: &mut impl Write, json_out: bool, answer: &Answer) -> Result<(), CliError> {
    let quota = answer.object_with(&["app_quota_id"])?;
    print_quotas(out, json_out, answer, std::slice::from_ref(quota))
}

fn print_quotas(
    out: &mut impl Write,
    json_out: bool,
    answer: &Answer,
    quotas: &[Value],
) -> Result<(), CliError> {
    if json_out {
        return raw(out, answer);
    }
    let mut rows = vec![header(&["ID", "NAME", "LIMIT", "RESET AT", "APPS"])];
    for quota in quotas {
        let limit = format!(
            "{}/{} {}",
            number(quota, "call_limits"),
            number(quota, "time_interval"),
            text(quota, "time_unit")
        );
        let reset = match text(quota, "reset_time") {
            at if at.is_empty() => "at binding".to_owned(),
            at => at,
        };
        rows.push(vec![
            text(quota, "app_quota_id"),
            text(quota, "name"),
            limit,
            reset,
            number(quota, "bound_app_num"),
        ]);
    }
    table(out, &rows)
}

/// The apps bound to a quota, after its row: every page.
async fn bound_apps(client: &Client, quota_id: &str, out: &mut impl Write) -> Result<(), CliError> {
    let mut rows = vec![header(&["BOUND APP ID", "NAME", "BOUND"])];
    loop {
        let path = format!(
            "/app-quotas/{}/bound-apps?offset={}&limit=500",
            segment(quota_id),
            rows.len() - 1
        );
        let answer = client.call(Method::GET, &path, None).await?;
        let apps = answer.list("apps")?;
        for app in apps {
            rows.push(vec![
                text(app, "app_id"),
                text(app, "name"),
                text(app, "bound_time"),
            ]);
        }
        let total = answer
            .json
            .get("total")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if apps.is_empty() || rows.len() as u64 > total {
            break;
        }
    }
    if rows.len() == 1 {
        return writeln!(out, "no app is bound to it").map_err(CliError::Io);
    }
    writeln!(out).map_err(CliError::Io)?;
    table(out, &rows)
}
