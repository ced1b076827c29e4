//! `apig-appcode apps ...` (with `apps acl ...`) and `apig-appcode app-codes ...`: the
//! management API from the command line, tables for people and `--json` for scripts.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;

use apig_appcode::gateway::config::{DEFAULT_INSTANCE_ID, DEFAULT_PROJECT_ID};
use apig_appcode::store::SecretString;
use clap::{Args, Subcommand};
use http::Method;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::client::{segment, Answer, CliError, Client, Credential, Token, TOKEN_ENV};
use super::output::{delete, footer, header, items, number, raw, table, text, texts, with_query};

/// Where the server is, where the admin token is, and how to print. Shared by every client
/// subcommand, and accepted before or after the action (`global`).
// No secret here: the token itself is read from the environment or a file by `Token::resolve`.
#[derive(Clone, Args)]
pub(crate) struct ConnectArgs {
    /// The management API's address, `http[s]://HOST:PORT` (`serve`'s --admin-listen).
    #[arg(
        long,
        env = "APIG_SERVER",
        default_value = "http://127.0.0.1:8081",
        global = true
    )]
    server: String,
    /// Project ID (`serve`'s --project-id).
    #[arg(long, env = "APIG_PROJECT_ID", default_value = DEFAULT_PROJECT_ID, global = true)]
    project: String,
    /// Gateway instance ID (`serve`'s --instance-id).
    #[arg(long, env = "APIG_INSTANCE_ID", default_value = DEFAULT_INSTANCE_ID, global = true)]
    instance: String,
    /// A file holding the admin token; first choice. Without it: the APIG_ADMIN_TOKEN
    /// environment variable, then the server's first-run token file beside --database.
    #[arg(long, env = "APIG_ADMIN_TOKEN_FILE", global = true)]
    token_file: Option<PathBuf>,
    /// The server's database, to find its first-run token file (`PATH.admin-token`).
    #[arg(
        long,
        env = "APIG_DATABASE",
        default_value = "sqlite://apig-appcode.db",
        hide_env_values = true,
        global = true
    )]
    database: String,
    /// Print the API's JSON as it came, for scripts.
    #[arg(long, global = true)]
    pub(super) json: bool,
}

/// `apig-appcode apps`.
#[derive(Args)]
pub(crate) struct AppsCommand {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    action: AppsAction,
}

#[derive(Subcommand)]
enum AppsAction {
    /// Create an app.
    #[command(after_help = "Examples:
  apig-appcode apps create shop --remark \"the shop\"
  APP=$(apig-appcode apps create depot --json | jq -r .id)")]
    Create {
        /// Name: 3 to 64 characters (letters, digits, `_`), starting with a letter.
        name: String,
        /// Description.
        #[arg(long)]
        remark: Option<String>,
    },
    /// List apps (one page).
    #[command(after_help = "Examples:
  apig-appcode apps list
  apig-appcode apps list --offset 500 --limit 500 --json")]
    List {
        /// Apps skipped.
        #[arg(long)]
        offset: Option<u64>,
        /// Apps per page [server default: 20, at most 500].
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Show one app (its secret only with --json).
    #[command(after_help = "Examples:
  apig-appcode apps show 5443c4e4d41901c94d245af849a19edf
  apig-appcode apps show 5443c4e4d41901c94d245af849a19edf --json | jq -r .app_secret")]
    Show {
        /// App ID.
        app_id: String,
    },
    /// Change an app's name, remark or app key; what is not given is kept.
    #[command(after_help = "Examples:
  apig-appcode apps update 5443c4e4d41901c94d245af849a19edf --remark \"the new shop\"
  apig-appcode apps update 5443c4e4d41901c94d245af849a19edf --name shop_eu --app-key shop-eu-key-01")]
    Update {
        /// App ID.
        app_id: String,
        /// New name: 3 to 64 characters (letters, digits, `_`), starting with a letter.
        #[arg(long)]
        name: Option<String>,
        /// New description.
        #[arg(long)]
        remark: Option<String>,
        /// New app key (8 to 200 letters, digits, `_`, `-`) for signed requests.
        #[arg(long)]
        app_key: Option<String>,
    },
    /// Give an app a new secret and print it once; with --stdin, set the secret read from
    /// stdin (one line) instead. Signatures made with the old secret fail at once.
    #[command(after_help = "Examples:
  apig-appcode apps reset-secret 5443c4e4d41901c94d245af849a19edf      # prints the new secret
  printf '%s\\n' \"$SECRET\" | apig-appcode apps reset-secret 5443c4e4d41901c94d245af849a19edf --stdin")]
    ResetSecret {
        /// App ID.
        app_id: String,
        /// Read the new secret from stdin (8 to 128 characters) instead of generating one.
        #[arg(long)]
        stdin: bool,
    },
    /// Delete an app and its AppCodes.
    #[command(after_help = "Example:
  apig-appcode apps delete 5443c4e4d41901c94d245af849a19edf")]
    Delete {
        /// App ID.
        app_id: String,
    },
    /// The app's ACL: which client addresses may use its credentials.
    #[command(subcommand)]
    Acl(AclAction),
}

#[derive(Subcommand)]
enum AclAction {
    /// Set the app's ACL, replacing any it had.
    #[command(after_help = "Examples:
  apig-appcode apps acl set APP_ID --type DENY 192.0.2.0/24 198.51.100.7
  apig-appcode apps acl set APP_ID --type PERMIT 10.0.0.1-10.0.0.99 2001:db8::/32")]
    Set {
        /// App ID.
        app_id: String,
        /// PERMIT: only these addresses may use the app; DENY: these may not.
        #[arg(long = "type", value_parser = ["PERMIT", "DENY"], ignore_case = true)]
        kind: String,
        /// Addresses (`192.0.2.1`, `2001:db8::1`), ranges (`a-b`) or CIDR blocks; at most 100.
        #[arg(required = true)]
        values: Vec<String>,
    },
    /// Show the app's ACL.
    #[command(after_help = "Example:
  apig-appcode apps acl show APP_ID --json")]
    Show {
        /// App ID.
        app_id: String,
    },
    /// Remove the app's ACL: every address may use the app again.
    #[command(after_help = "Example:
  apig-appcode apps acl delete APP_ID")]
    Delete {
        /// App ID.
        app_id: String,
    },
}

/// `apig-appcode app-codes`.
#[derive(Args)]
pub(crate) struct AppCodesCommand {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    action: AppCodesAction,
}

#[derive(Subcommand)]
enum AppCodesAction {
    /// Add an AppCode of your own to an app; the value is read from stdin (one line), never
    /// from the command line, where other users could see it.
    #[command(after_help = "Example:
  printf '%s\\n' \"$MY_CODE\" | apig-appcode app-codes create APP_ID")]
    Create {
        /// App ID.
        app_id: String,
    },
    /// Generate an AppCode for an app and print it, value included.
    #[command(after_help = "Examples:
  apig-appcode app-codes generate APP_ID
  CODE=$(apig-appcode app-codes generate APP_ID --json | jq -r .app_code)")]
    Generate {
        /// App ID.
        app_id: String,
    },
    /// List an app's AppCodes (IDs and dates; values only with --json).
    #[command(after_help = "Example:
  apig-appcode app-codes list APP_ID")]
    List {
        /// App ID.
        app_id: String,
    },
    /// Show one AppCode, value included.
    #[command(after_help = "Example:
  apig-appcode app-codes show APP_ID APP_CODE_ID")]
    Show {
        /// App ID.
        app_id: String,
        /// AppCode ID.
        app_code_id: String,
    },
    /// Delete an AppCode: the gateway refuses it at once.
    #[command(after_help = "Example:
  apig-appcode app-codes delete APP_ID APP_CODE_ID")]
    Delete {
        /// App ID.
        app_id: String,
        /// AppCode ID.
        app_code_id: String,
    },
}

pub(super) fn client(connect: &ConnectArgs) -> Result<Client, CliError> {
    let token = Token::resolve(
        connect.token_file.as_deref(),
        std::env::var(TOKEN_ENV).ok(),
        &connect.database,
    )?;
    Client::new(
        ("--server", &connect.server),
        &connect.project,
        &connect.instance,
        Credential::AdminToken(token),
    )
}

/// Runs `apps ACTION`, printing to `out`.
pub(crate) async fn apps(cmd: AppsCommand, out: &mut impl Write) -> Result<(), CliError> {
    let json_out = cmd.connect.json;
    // Read before any call: a missing secret is a usage error whatever the server's state.
    let secret = match &cmd.action {
        AppsAction::ResetSecret { stdin: true, .. } => Some(read_secret_line(
            "app secret",
            "apps reset-secret --stdin reads the new secret from stdin, and it was empty \
             (leave out --stdin to have one generated)",
        )?),
        _ => None,
    };
    let client = client(&cmd.connect)?;
    let app_path = |id: &str| format!("/apps/{}", segment(id));
    // Creating, showing and updating all answer with the app.
    let (method, path, body) = match cmd.action {
        AppsAction::Create { name, remark } => {
            let mut body = json!({ "name": name });
            if let Some(remark) = remark {
                body["remark"] = Value::String(remark);
            }
            (Method::POST, "/apps".to_owned(), Some(body))
        }
        AppsAction::List { offset, limit } => {
            let mut query = Vec::new();
            query.extend(offset.map(|o| format!("offset={o}")));
            query.extend(limit.map(|l| format!("limit={l}")));
            let path = with_query("/apps", &query);
            let answer = client.call(Method::GET, &path, None).await?;
            let apps = answer.list("apps")?;
            if json_out {
                return raw(out, &answer);
            }
            let mut rows = vec![header(&["ID", "NAME", "STATUS", "CODES", "CREATED"])];
            for app in apps {
                let id = text(app, "id");
                // `bind_num` is APIG's count of bound APIs, not of AppCodes: ask for the
                // codes' total (one small call per app; APIG allows at most 5 per app).
                let path = format!("/apps/{}/app-codes?limit=1", segment(&id));
                let codes = match client.call(Method::GET, &path, None).await {
                    Ok(answer) => number(&answer.json, "total"),
                    // Deleted since the list was read: the row stays, without a count.
                    Err(CliError::Api { .. }) => "-".into(),
                    Err(e) => return Err(e),
                };
                rows.push(vec![
                    id,
                    text(app, "name"),
                    status(app),
                    codes,
                    text(app, "register_time"),
                ]);
            }
            table(out, &rows)?;
            footer(&answer.json, apps.len(), "apps");
            return Ok(());
        }
        AppsAction::Show { app_id } => (Method::GET, app_path(&app_id), None),
        AppsAction::Update {
            app_id,
            name,
            remark,
            app_key,
        } => {
            let path = app_path(&app_id);
            // APIG's update requires the name: keep the app's own when none is given.
            let name = match name {
                Some(name) => name,
                None => {
                    let current = client.call(Method::GET, &path, None).await?;
                    text(current.object_with(&["name"])?, "name")
                }
            };
            let mut body = json!({ "name": name });
            if let Some(remark) = remark {
                body["remark"] = Value::String(remark);
            }
            if let Some(key) = app_key {
                body["app_key"] = Value::String(key);
            }
            (Method::PUT, path, Some(body))
        }
        AppsAction::ResetSecret { app_id, .. } => {
            let path = format!("/apps/secret/{}", segment(&app_id));
            let body = secret.as_ref().map(|s| json!({ "app_secret": s.expose() }));
            let answer = client.call(Method::PUT, &path, body.as_ref()).await?;
            let app = answer.object_with(&["id", "app_key", "app_secret"])?;
            if json_out {
                return raw(out, &answer);
            }
            if secret.is_some() {
                // The caller knows the secret it chose: not echoed.
                return writeln!(out, "set the secret of app {app_id}").map_err(CliError::Io);
            }
            let rows = vec![
                header(&["ID", "NAME", "APP KEY", "APP SECRET"]),
                texts(app, &["id", "name", "app_key", "app_secret"]),
            ];
            return table(out, &rows);
        }
        AppsAction::Delete { app_id } => {
            let what = format!("deleted app {app_id}");
            return delete(&client, &app_path(&app_id), out, json_out, &what).await;
        }
        AppsAction::Acl(action) => return acl(&client, action, json_out, out).await,
    };
    let answer = client.call(method, &path, body.as_ref()).await?;
    print_app(out, json_out, &answer)
}

/// Runs `apps acl ACTION`.
async fn acl(
    client: &Client,
    action: AclAction,
    json_out: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let path = |app: &str| format!("/apps/{}/app-acl", segment(app));
    // Setting and showing both answer with the ACL.
    let (method, app_id, body) = match action {
        AclAction::Set {
            app_id,
            kind,
            values,
        } => {
            let body = json!({
                "app_acl_type": kind.to_ascii_uppercase(),
                "app_acl_values": values,
            });
            (Method::PUT, app_id, Some(body))
        }
        AclAction::Show { app_id } => (Method::GET, app_id, None),
        AclAction::Delete { app_id } => {
            let what = format!("removed the ACL of app {app_id}");
            return delete(client, &path(&app_id), out, json_out, &what).await;
        }
    };
    let answer = client.call(method, &path(&app_id), body.as_ref()).await?;
    print_acl(out, json_out, &answer)
}

fn print_acl(out: &mut impl Write, json_out: bool, answer: &Answer) -> Result<(), CliError> {
    let acl = answer.object_with(&["app_id"])?;
    if json_out {
        return raw(out, answer);
    }
    let values = items(acl, "app_acl_values");
    if values.is_empty() {
        return writeln!(out, "app {} has no ACL", text(acl, "app_id")).map_err(CliError::Io);
    }
    // One value a row: an ACL holds up to 100.
    let kind = text(acl, "app_acl_type");
    let mut rows = vec![header(&["APP ID", "TYPE", "VALUE"])];
    for value in values {
        let value = value.as_str().unwrap_or_default().to_owned();
        rows.push(vec![text(acl, "app_id"), kind.clone(), value]);
    }
    table(out, &rows)
}

/// Runs `app-codes ACTION`, printing to `out`.
pub(crate) async fn app_codes(cmd: AppCodesCommand, out: &mut impl Write) -> Result<(), CliError> {
    let json_out = cmd.connect.json;
    // Read before any call: a missing value is a usage error whatever the server's state.
    let value = match &cmd.action {
        AppCodesAction::Create { .. } => Some(read_secret_line(
            "AppCode",
            "app-codes create reads the AppCode from stdin, and it was empty \
             (use `app-codes generate` to have one generated)",
        )?),
        _ => None,
    };
    let client = client(&cmd.connect)?;
    let codes = |app: &str| format!("/apps/{}/app-codes", segment(app));
    let code = |app: &str, id: &str| format!("{}/{}", codes(app), segment(id));
    // Creating, generating and showing all answer with one AppCode.
    let (method, path, body) = match cmd.action {
        AppCodesAction::Create { app_id } => {
            // The JSON copy of the value is not zeroed (serde_json has no such type); it lives
            // only for this call.
            let body = json!({ "app_code": value.as_ref().map(SecretString::expose) });
            (Method::POST, codes(&app_id), Some(body))
        }
        AppCodesAction::Generate { app_id } => (Method::PUT, codes(&app_id), None),
        AppCodesAction::Show {
            app_id,
            app_code_id,
        } => (Method::GET, code(&app_id, &app_code_id), None),
        AppCodesAction::List { app_id } => {
            // The most a page holds: an app has at most a few codes.
            let path = format!("{}?limit=500", codes(&app_id));
            let answer = client.call(Method::GET, &path, None).await?;
            let list = answer.list("app_codes")?;
            if json_out {
                return raw(out, &answer);
            }
            let mut rows = vec![header(&["ID", "CREATED"])];
            for code in list {
                rows.push(texts(code, &["id", "create_time"]));
            }
            table(out, &rows)?;
            footer(&answer.json, list.len(), "AppCodes");
            return Ok(());
        }
        AppCodesAction::Delete {
            app_id,
            app_code_id,
        } => {
            let what = format!("deleted AppCode {app_code_id} of app {app_id}");
            return delete(&client, &code(&app_id, &app_code_id), out, json_out, &what).await;
        }
    };
    let answer = client.call(method, &path, body.as_ref()).await?;
    print_code(out, json_out, &answer)
}

/// A secret for `app-codes create` or `apps reset-secret --stdin`: the first line of stdin,
/// trimmed; `if_empty` is the usage error when there is none.
fn read_secret_line(what: &str, if_empty: &str) -> Result<SecretString, CliError> {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        // A prompt on stderr, so that stdout stays the command's output.
        eprint!("{what} (one line): ");
    }
    let mut line = Zeroizing::new(String::new());
    stdin.lock().read_line(&mut line).map_err(CliError::Io)?;
    let value = line.trim();
    if value.is_empty() {
        return Err(CliError::Usage(if_empty.to_owned()));
    }
    Ok(SecretString::new(value))
}

fn print_app(out: &mut impl Write, json_out: bool, answer: &Answer) -> Result<(), CliError> {
    let app = answer.object_with(&["id", "name"])?;
    if json_out {
        return raw(out, answer);
    }
    // The app secret is left out: APIG's console hides it too; --json has it.
    let rows = vec![
        header(&["ID", "NAME", "STATUS", "APP KEY", "CREATED", "REMARK"]),
        vec![
            text(app, "id"),
            text(app, "name"),
            status(app),
            text(app, "app_key"),
            text(app, "register_time"),
            text(app, "remark"),
        ],
    ];
    table(out, &rows)
}

fn print_code(out: &mut impl Write, json_out: bool, answer: &Answer) -> Result<(), CliError> {
    let code = answer.object_with(&["id", "app_code"])?;
    if json_out {
        return raw(out, answer);
    }
    // The value last: it is long, and the other columns stay aligned.
    let rows = vec![
        header(&["ID", "APP ID", "CREATED", "APP CODE"]),
        texts(code, &["id", "app_id", "create_time", "app_code"]),
    ];
    table(out, &rows)
}

/// APIG's app status: 1 is valid.
fn status(app: &Value) -> String {
    match app.get("status").and_then(Value::as_i64) {
        Some(1) => "valid".into(),
        Some(n) => n.to_string(),
        None => String::new(),
    }
}
