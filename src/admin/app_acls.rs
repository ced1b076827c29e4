//! App ACL handlers (reference section 9): set, show and remove the client addresses that may
//! (`PERMIT`) or may not (`DENY`) use an app's credentials. Every change reaches the instance's
//! [`AppCodeCache`](crate::AppCodeCache) before the response is sent, and the other nodes
//! through the store's change log.

use std::sync::Arc;

use axum::response::Response;
use http::StatusCode;
use serde::Serialize;
use serde_json::Value;

use super::audit::audit;
use super::call::{string_field, Call};
use super::error::AdminError;
use super::views::{json, no_content};
use crate::acl::{AclError, AclType, AppAcl};

/// An app's ACL as APIG shows it.
#[derive(Serialize)]
struct AclView<'a> {
    app_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_acl_type: Option<&'static str>,
    app_acl_values: &'a [String],
}

impl<'a> AclView<'a> {
    fn new(app_id: &'a str, acl: Option<&'a AppAcl>) -> Self {
        Self {
            app_id,
            app_acl_type: acl.map(|a| a.kind().as_str()),
            app_acl_values: acl.map_or(&[], |a| a.values()),
        }
    }
}

/// `PUT .../apps/{app_id}/app-acl` with `{"app_acl_type", "app_acl_values"}` → `201`.
pub(crate) async fn set(call: Call) -> Result<Response, AdminError> {
    let body = call.json_object()?;
    let kind: AclType = string_field(&body, "app_acl_type")?
        .ok_or(AdminError::InvalidParameter("app_acl_type"))?
        .parse()
        .map_err(|_| AdminError::InvalidParameter("app_acl_type"))?;
    let values = match body.get("app_acl_values") {
        Some(Value::Array(values)) => values
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or(AdminError::InvalidParameter("app_acl_values"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(AdminError::InvalidParameter("app_acl_values")),
    };
    let acl = AppAcl::new(kind, values).map_err(|e| invalid(&call, &e))?;
    call.write(
        |store| store.set_app_acl(&call.scope, &call.app_id, acl.clone()),
        |cache, _| cache.set_app_acl(&call.app_id, Arc::new(acl.clone())),
    )
    .await?;
    audit!(
        call,
        app_id = %call.app_id,
        acl_type = acl.kind().as_str(),
        values = acl.values().len(),
        "app ACL set"
    );
    json(StatusCode::CREATED, &AclView::new(&call.app_id, Some(&acl)))
}

/// `GET .../apps/{app_id}/app-acl` → `200`; an app without an ACL shows no type and no values.
pub(crate) async fn show(call: Call) -> Result<Response, AdminError> {
    let acl = call
        .stored(call.store().get_app_acl(&call.scope, &call.app_id))
        .await?;
    json(StatusCode::OK, &AclView::new(&call.app_id, acl.as_ref()))
}

/// `DELETE .../apps/{app_id}/app-acl` → `204`, whether or not the app had an ACL.
pub(crate) async fn delete(call: Call) -> Result<Response, AdminError> {
    let had = call
        .write(
            |store| store.delete_app_acl(&call.scope, &call.app_id),
            |cache, _| {
                cache.remove_app_acl(&call.app_id);
            },
        )
        .await?;
    if had {
        audit!(call, app_id = %call.app_id, "app ACL removed");
    }
    Ok(no_content())
}

/// A refused ACL: logged with its reason (addresses are not secret), answered as APIG does.
fn invalid(call: &Call, e: &AclError) -> AdminError {
    tracing::info!(request_id = %call.request_id, reason = %e, "app ACL refused");
    AdminError::InvalidParameter(match e {
        AclError::Type => "app_acl_type",
        _ => "app_acl_values",
    })
}
