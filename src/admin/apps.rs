//! App handlers: create, show, list, update, delete and reset-secret (reference section 3).

use std::sync::Arc;

use axum::response::Response;
use http::StatusCode;
use serde_json::{Map, Value};

use super::audit::audit;
use super::call::{string_field, Call};
use super::error::AdminError;
use super::ids::random_id;
use super::paging::Query;
use super::views::{json, no_content, AppList, AppView};
use crate::store::{App, AppChanges, AppFilter, SecretString, Timestamp};

/// `creator` of apps created through the API.
const CREATOR: &str = "USER";
/// `status` of a valid app.
const STATUS_VALID: i32 = 1;

/// `POST /v2/{project_id}/apigw/instances/{instance_id}/apps` → `201` App.
pub(crate) async fn create(call: Call) -> Result<Response, AdminError> {
    let body = call.json_object()?;
    let fields = AppFields::parse(&body)?;
    let app_key = match fields.app_key {
        Some(key) => key.to_owned(),
        None => random_id()?,
    };
    let app_secret = match fields.app_secret {
        Some(secret) => secret,
        None => random_secret()?,
    };
    let remark = fields.remark.unwrap_or_default();
    let now = Timestamp::now();
    let app = App {
        id: random_id()?,
        scope: call.scope.clone(),
        name: fields.name.to_owned(),
        remark: remark.to_owned(),
        creator: CREATOR.to_owned(),
        app_key,
        app_secret,
        register_time: now,
        update_time: now,
        status: STATUS_VALID,
    };
    let app = call.stored(call.store().create_app(app)).await?;
    call.instance
        .cache
        .set_app_key(&app.id, Arc::new(app.signing_key()));
    audit!(call, app_id = %app.id, "app created");
    json(StatusCode::CREATED, &AppView::new(&app, None))
}

/// `GET .../apps/{app_id}` → `200` App.
pub(crate) async fn show(call: Call) -> Result<Response, AdminError> {
    let app = call
        .stored(call.store().get_app(&call.scope, &call.app_id))
        .await?;
    json(StatusCode::OK, &AppView::new(&app, None))
}

/// `GET .../apps` → `200 {"total","size","apps"}`, filtered and paged.
///
/// `bind_num` is APIG's count of APIs bound to the app. This crate has no API bindings (a
/// gateway decides per route with `AuthorizeApp`), so it is always 0.
pub(crate) async fn list(call: Call) -> Result<Response, AdminError> {
    let query = Query::parse(call.query.as_deref())?;
    let (offset, limit) = query.paging()?;
    let text = |key: &str| query.get(key).filter(|v| !v.is_empty()).map(str::to_owned);
    let status = match query.integer("status")? {
        Some(s) => Some(i32::try_from(s).map_err(|_| AdminError::InvalidParameter("status"))?),
        None => None,
    };
    let name_exact = match query.get("precise_search") {
        None | Some("") => false,
        Some("name") => true,
        Some(_) => return Err(AdminError::InvalidParameter("precise_search")),
    };
    let filter = AppFilter {
        id: text("id"),
        name: text("name"),
        name_exact,
        status,
        app_key: text("app_key"),
        creator: text("creator"),
    };
    let page = call
        .stored(call.store().list_apps(&call.scope, &filter, offset, limit))
        .await?;
    json(
        StatusCode::OK,
        &AppList {
            total: page.total,
            size: page.items.len(),
            apps: page
                .items
                .iter()
                .map(|app| AppView::new(app, Some(0)))
                .collect(),
        },
    )
}

/// `PUT .../apps/{app_id}` → `201` App (APIG documents 201 for this update), with the body's
/// fields validated as on creation. `name` is required, as APIG's documents say; a field left
/// out keeps its value (see the README's decisions).
pub(crate) async fn update(call: Call) -> Result<Response, AdminError> {
    let body = call.json_object()?;
    let fields = AppFields::parse(&body)?;
    let changes = AppChanges {
        name: Some(fields.name.to_owned()),
        remark: fields.remark.map(str::to_owned),
        app_key: fields.app_key.map(str::to_owned),
        app_secret: fields.app_secret,
        update_time: Timestamp::now(),
    };
    let app = store_update(&call, changes).await?;
    audit!(call, app_id = %app.id, "app updated");
    json(StatusCode::CREATED, &AppView::new(&app, None))
}

/// `PUT .../apps/secret/{app_id}` with an optional `{"app_secret"}` → `200` App, its new
/// secret included: handing it over is the point of the call. Without a body or a secret in
/// it, the secret is generated as on creation.
pub(crate) async fn reset_secret(call: Call) -> Result<Response, AdminError> {
    let given = match call.optional_json_object()? {
        Some(body) => valid_secret_field(&body)?,
        None => None,
    };
    let mut changes = AppChanges::at(Timestamp::now());
    changes.app_secret = Some(match given {
        Some(secret) => secret,
        None => random_secret()?,
    });
    let app = store_update(&call, changes).await?;
    audit!(call, app_id = %app.id, "app secret reset");
    json(StatusCode::OK, &AppView::new(&app, None))
}

/// Updates the app in the store, then its signing key in this node's cache (the old key or
/// secret stops verifying here at once; other nodes hear of it from the store).
async fn store_update(call: &Call, changes: AppChanges) -> Result<App, AdminError> {
    let touches_key = changes.touches_key();
    let app = call
        .stored(call.store().update_app(&call.scope, &call.app_id, changes))
        .await?;
    if touches_key {
        call.instance
            .cache
            .set_app_key(&app.id, Arc::new(app.signing_key()));
    }
    Ok(app)
}

/// `DELETE .../apps/{app_id}` → `204`, after its AppCodes left the store and the cache.
pub(crate) async fn delete(call: Call) -> Result<Response, AdminError> {
    let codes = call
        .write(
            |store| store.delete_app(&call.scope, &call.app_id),
            |cache, codes| {
                for code in codes {
                    cache.remove(&code.value);
                }
                cache.remove_app_acl(&call.app_id);
                cache.remove_app_quota(&call.app_id);
                cache.remove_app_key(&call.app_id);
            },
        )
        .await?;
    audit!(call, app_id = %call.app_id, revoked_app_codes = codes.len(), "app deleted");
    Ok(no_content())
}

/// The fields of APIG's create and update body (`AppReqBase`), each checked against its rule:
/// one validation for both calls.
struct AppFields<'a> {
    name: &'a str,
    remark: Option<&'a str>,
    app_key: Option<&'a str>,
    app_secret: Option<SecretString>,
}

impl<'a> AppFields<'a> {
    fn parse(body: &'a Map<String, Value>) -> Result<Self, AdminError> {
        let name = string_field(body, "name")?.ok_or(AdminError::InvalidParameter("name"))?;
        if !valid_name(name) {
            return Err(AdminError::InvalidParameter("name"));
        }
        let remark = string_field(body, "remark")?;
        if remark.is_some_and(|r| r.chars().count() > 255) {
            return Err(AdminError::InvalidParameter("remark"));
        }
        let app_key = string_field(body, "app_key")?;
        if app_key.is_some_and(|k| !valid_app_key(k)) {
            return Err(AdminError::InvalidParameter("app_key"));
        }
        Ok(Self {
            name,
            remark,
            app_key,
            app_secret: valid_secret_field(body)?,
        })
    }
}

/// The body's `app_secret`, if it has one that keeps the rule.
fn valid_secret_field(body: &Map<String, Value>) -> Result<Option<SecretString>, AdminError> {
    match string_field(body, "app_secret")? {
        Some(secret) if valid_app_secret(secret) => Ok(Some(SecretString::new(secret))),
        Some(_) => Err(AdminError::InvalidParameter("app_secret")),
        None => Ok(None),
    }
}

/// A generated app secret, as APIG generates them: 32 hex characters.
fn random_secret() -> Result<SecretString, AdminError> {
    random_id().map(SecretString::new)
}

/// A Chinese character as APIG's rules mean it: CJK Unified Ideographs and Extension A.
fn is_chinese(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}')
}

/// 3 to 64 letters, digits, `_` or Chinese characters, starting with a letter or a Chinese
/// character.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || is_chinese(c));
    first_ok
        && (3..=64).contains(&name.chars().count())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || is_chinese(c))
}

/// 8 to 200 letters, digits, `_` or `-`, starting with a letter or digit.
fn valid_app_key(key: &str) -> bool {
    (8..=200).contains(&key.len())
        && key.starts_with(|c: char| c.is_ascii_alphanumeric())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// 8 to 128 letters, digits or `_ - ! @ # $ %`, starting with a letter or digit.
fn valid_app_secret(secret: &str) -> bool {
    (8..=128).contains(&secret.len())
        && secret.starts_with(|c: char| c.is_ascii_alphanumeric())
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-!@#$%".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Check = fn(&str) -> bool;

    /// Each check with inputs it must accept and inputs it must refuse.
    #[test]
    fn names_keys_and_secrets() {
        let cases: [(&str, Check, &[&str], &[&str]); 3] = [
            (
                "name",
                valid_name,
                &[
                    "app",
                    "App_1",
                    "应用一",
                    "a应用_9",
                    &"a".repeat(64),
                    &"应".repeat(64),
                ],
                &[
                    "ap",
                    "1app",
                    "_app",
                    "app-1",
                    "app 1",
                    "",
                    &"a".repeat(65),
                    "ąpp",
                ],
            ),
            (
                "app key",
                valid_app_key,
                &["0abc-def_", &"k".repeat(200)],
                &["short", "-abcdefgh", "abcdefg!", &"k".repeat(201)],
            ),
            (
                "app secret",
                valid_app_secret,
                &["S3cret!@#$%_-", &"s".repeat(128)],
                &[
                    "short",
                    "!abcdefgh",
                    "abcdefg^",
                    &"s".repeat(129),
                    "abcdefgé",
                ],
            ),
        ];
        for (what, valid, good, bad) in cases {
            for ok in good {
                assert!(valid(ok), "{what} {ok:?} refused");
            }
            for bad in bad {
                assert!(!valid(bad), "{what} {bad:?} accepted");
            }
        }
    }
}
