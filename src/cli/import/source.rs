//! The source of an import: another Huawei-compatible management API, read page by page, each
//! call retried with back-off while the source is throttling (429) or failing (5xx).
//!
//! The source's credential comes from the environment only ([`SourceCredentialEnv`]): an
//! AK/SK pair signs each request as the official SDKs do, or a token is sent as
//! `X-Auth-Token`. Neither is ever printed; errors name the variables instead.

use std::time::Duration;

use apig_appcode::acl::AppAcl;
use apig_appcode::signature::SecretKey;
use apig_appcode::store::{AppCodeRecord, AppQuotaRecord};
use http::{Method, StatusCode};
use serde_json::Value;

use super::records::{self, SourceApp, SourceBinding};
use crate::cli::client::{segment, Answer, CliError, Client, Credential, CredentialSource, Token};

/// The access key of the source's AK/SK pair.
pub(crate) const ACCESS_KEY_ENV: &str = "APIG_SOURCE_ACCESS_KEY";
/// The secret key of the source's AK/SK pair.
pub(crate) const SECRET_KEY_ENV: &str = "APIG_SOURCE_SECRET_KEY";
/// The source's `X-Auth-Token`, when it has no AK/SK pair.
pub(crate) const TOKEN_ENV: &str = "APIG_SOURCE_TOKEN";

/// The most items APIG returns in one page.
const PAGE: u64 = 500;

/// Tries of one call while the source answers 429 or 5xx, or drops the connection.
const ATTEMPTS: u32 = 8;
/// The first pause between tries; each next one doubles, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest pause between tries, whatever `Retry-After` asks for.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The source's credential as the environment holds it (the values, not yet checked).
#[derive(Default)]
pub(crate) struct SourceCredentialEnv {
    pub(crate) access_key: Option<String>,
    pub(crate) secret_key: Option<String>,
    pub(crate) token: Option<String>,
}

impl SourceCredentialEnv {
    /// The variables of this process.
    pub(crate) fn from_process() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            access_key: var(ACCESS_KEY_ENV),
            secret_key: var(SECRET_KEY_ENV),
            token: var(TOKEN_ENV),
        }
    }

    /// The credential: the AK/SK pair when both are set, else the token.
    pub(crate) fn credential(self) -> Result<Credential, CliError> {
        match (self.access_key, self.secret_key, self.token) {
            (Some(ak), Some(sk), _) => Ok(Credential::AccessKey {
                access_key: ak.trim().to_owned(),
                secret: SecretKey::from(sk.trim()),
                source: CredentialSource::EnvPair(ACCESS_KEY_ENV, SECRET_KEY_ENV),
            }),
            (Some(_), None, _) | (None, Some(_), _) => Err(CliError::Usage(format!(
                "set both {ACCESS_KEY_ENV} and {SECRET_KEY_ENV} for the source, or neither"
            ))),
            (None, None, Some(token)) => {
                Ok(Credential::Token(Token::from_env(TOKEN_ENV, token.trim())))
            }
            (None, None, None) => Err(CliError::Usage(format!(
                "no credential for the source: set {ACCESS_KEY_ENV} and {SECRET_KEY_ENV} \
                 (AK/SK, as the official SDKs sign), or {TOKEN_ENV} (X-Auth-Token)"
            ))),
        }
    }
}

/// One page of the source's apps, and how many it holds in all.
pub(crate) struct AppsPage {
    pub(crate) total: u64,
    pub(crate) apps: Vec<SourceApp>,
}

/// The management API an import reads from.
#[derive(Debug)]
pub(crate) struct Source {
    client: Client,
}

impl Source {
    pub(crate) fn new(client: Client) -> Self {
        Self { client }
    }

    /// The page of apps from `offset`; an app whose list entry lacks its secret (a source
    /// that hides it in lists) is read on its own.
    pub(crate) async fn apps(&self, offset: u64) -> Result<AppsPage, CliError> {
        let answer = self
            .get(&format!("/apps?offset={offset}&limit={PAGE}"))
            .await?;
        let total = self.total(&answer)?;
        let mut apps = Vec::new();
        for item in answer.list("apps")? {
            let mut app = records::app(item).map_err(|e| self.bad(&e))?;
            if app.app_secret.is_none() {
                let one = self.get(&format!("/apps/{}", segment(&app.id))).await?;
                app = records::app(&one.json).map_err(|e| self.bad(&e))?;
            }
            apps.push(app);
        }
        Ok(AppsPage { total, apps })
    }

    /// Every AppCode of an app, values included.
    pub(crate) async fn app_codes(&self, app_id: &str) -> Result<Vec<AppCodeRecord>, CliError> {
        let path = format!("/apps/{}/app-codes", segment(app_id));
        self.every(&path, "app_codes", |item| records::app_code(app_id, item))
            .await
    }

    /// The app's ACL, `None` when it has none (an empty one, or none found).
    pub(crate) async fn app_acl(&self, app_id: &str) -> Result<Option<AppAcl>, CliError> {
        let path = format!("/apps/{}/app-acl", segment(app_id));
        let answer = match self.get(&path).await {
            Ok(answer) => answer,
            // A source may answer 404 for an app without an ACL; an unknown app is APIG.3004.
            Err(CliError::Api { status, code, .. })
                if status == StatusCode::NOT_FOUND && code != "APIG.3004" =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        records::acl(answer.object_with(&["app_acl_values"])?).map_err(|e| self.bad(&e))
    }

    /// Every app quota.
    pub(crate) async fn quotas(&self) -> Result<Vec<AppQuotaRecord>, CliError> {
        self.every("/app-quotas", "quotas", records::quota).await
    }

    /// The apps bound to a quota, with the times of their bindings.
    pub(crate) async fn bindings(&self, quota_id: &str) -> Result<Vec<SourceBinding>, CliError> {
        let path = format!("/app-quotas/{}/bound-apps", segment(quota_id));
        self.every(&path, "apps", records::binding).await
    }

    /// Every page of the list at `path`, each item read by `read`.
    async fn every<T>(
        &self,
        path: &str,
        field: &str,
        read: impl Fn(&Value) -> Result<T, String>,
    ) -> Result<Vec<T>, CliError> {
        let mut all = Vec::new();
        loop {
            let at = all.len();
            let answer = self
                .get(&format!("{path}?offset={at}&limit={PAGE}"))
                .await?;
            let total = self.total(&answer)?;
            let items = answer.list(field)?;
            for item in items {
                all.push(read(item).map_err(|e| self.bad(&e))?);
            }
            if items.is_empty() || all.len() as u64 >= total {
                return Ok(all);
            }
        }
    }

    /// `GET {path}`, tried again while the source throttles, fails with 5xx or drops the
    /// connection mid-call. A source that cannot be reached at all is not waited for.
    async fn get(&self, path: &str) -> Result<Answer, CliError> {
        let mut pause = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            let last = attempt == ATTEMPTS;
            match self.client.exchange(Method::GET, path, None).await {
                Ok(exchange) if !last && retried(exchange.status) => {
                    let wait = exchange.retry_after.unwrap_or(pause).min(MAX_BACKOFF);
                    tokio::time::sleep(wait).await;
                }
                Ok(exchange) => return self.client.judge(exchange),
                Err(CliError::Timeout { .. } | CliError::Http(_)) if !last => {
                    tokio::time::sleep(pause).await;
                }
                Err(e) => return Err(e),
            }
            pause = (pause * 2).min(MAX_BACKOFF);
        }
        unreachable!("the last attempt returns")
    }

    /// A list's `total`.
    fn total(&self, answer: &Answer) -> Result<u64, CliError> {
        answer
            .object_with(&["total"])?
            .get("total")
            .and_then(Value::as_u64)
            .ok_or_else(|| self.bad("`total` is not a count"))
    }

    fn bad(&self, detail: &str) -> CliError {
        CliError::BadAnswer {
            server: self.client.server().to_owned(),
            detail: detail.to_owned(),
        }
    }
}

/// Throttled, or failing in a way that may pass.
fn retried(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_comes_from_a_pair_or_a_token_and_never_shows() {
        let env = |ak: Option<&str>, sk: Option<&str>, token: Option<&str>| SourceCredentialEnv {
            access_key: ak.map(str::to_owned),
            secret_key: sk.map(str::to_owned),
            token: token.map(str::to_owned),
        };
        let pair = env(Some("AK1"), Some("secret-sk-value"), Some("a-token-value"))
            .credential()
            .unwrap();
        assert!(matches!(pair, Credential::AccessKey { .. }));
        let shown = format!("{pair:?}");
        assert!(!shown.contains("secret-sk-value"), "{shown}");
        let token = env(None, None, Some("a-token-value")).credential().unwrap();
        assert!(!format!("{token:?}").contains("a-token-value"));
        for half in [env(Some("AK1"), None, None), env(None, Some("sk"), None)] {
            assert!(matches!(half.credential(), Err(CliError::Usage(_))));
        }
        let none = env(None, None, None).credential().unwrap_err();
        assert!(none.to_string().contains(TOKEN_ENV), "{none}");
    }

    #[test]
    fn throttling_and_server_errors_are_retried_the_rest_not() {
        assert!(retried(StatusCode::TOO_MANY_REQUESTS));
        assert!(retried(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!retried(StatusCode::UNAUTHORIZED));
        assert!(!retried(StatusCode::NOT_FOUND));
    }
}
