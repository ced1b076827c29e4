//! The routes, built from one table ([`ROUTES`]) that the OpenAPI document is checked against,
//! and the outer middleware every response passes: `X-Request-Id`, `Cache-Control: no-store`
//! and APIG's JSON body for every error.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use http::{header, HeaderValue, Method, StatusCode};

use super::error::{AdminError, Failure};
use super::state::Shared;
use super::{app_acls, app_codes, app_quotas, apps, quota_bindings};
use crate::apig_error;
use crate::request_id::{RequestId, X_REQUEST_ID};

/// The OpenAPI 3 document of this API, served at `GET /openapi.json`.
pub(crate) const OPENAPI_JSON: &str = include_str!("openapi.json");

/// An HTTP method the API routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Get,
    Post,
    Put,
    Delete,
}

impl Verb {
    fn filter(self) -> MethodFilter {
        match self {
            Self::Get => MethodFilter::GET,
            Self::Post => MethodFilter::POST,
            Self::Put => MethodFilter::PUT,
            Self::Delete => MethodFilter::DELETE,
        }
    }

    /// The method's name as OpenAPI spells it.
    #[cfg(test)]
    pub(crate) fn openapi_name(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Post => "post",
            Self::Put => "put",
            Self::Delete => "delete",
        }
    }
}

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    CreateApp,
    ListApps,
    ShowApp,
    UpdateApp,
    DeleteApp,
    ResetAppSecret,
    CreateAppCode,
    GenerateAppCode,
    ListAppCodes,
    ShowAppCode,
    DeleteAppCode,
    SetAppAcl,
    ShowAppAcl,
    DeleteAppAcl,
    CreateAppQuota,
    ListAppQuotas,
    ShowAppQuota,
    UpdateAppQuota,
    DeleteAppQuota,
    BindAppQuota,
    ListQuotaBoundApps,
    ListQuotaBindableApps,
    UnbindAppQuota,
    ShowAppBoundQuota,
    OpenApi,
}

const APPS: &str = "/v2/{project_id}/apigw/instances/{instance_id}/apps";
const APP: &str = "/v2/{project_id}/apigw/instances/{instance_id}/apps/{app_id}";
/// APIG puts the app ID after `secret`, not before it as everywhere else.
const APP_SECRET: &str = "/v2/{project_id}/apigw/instances/{instance_id}/apps/secret/{app_id}";
const CODES: &str = "/v2/{project_id}/apigw/instances/{instance_id}/apps/{app_id}/app-codes";
const CODE: &str =
    "/v2/{project_id}/apigw/instances/{instance_id}/apps/{app_id}/app-codes/{app_code_id}";
const ACL: &str = "/v2/{project_id}/apigw/instances/{instance_id}/apps/{app_id}/app-acl";
const BOUND_QUOTA: &str =
    "/v2/{project_id}/apigw/instances/{instance_id}/apps/{app_id}/bound-quota";
const QUOTAS: &str = "/v2/{project_id}/apigw/instances/{instance_id}/app-quotas";
const QUOTA: &str = "/v2/{project_id}/apigw/instances/{instance_id}/app-quotas/{app_quota_id}";
const QUOTA_BIND: &str =
    "/v2/{project_id}/apigw/instances/{instance_id}/app-quotas/{app_quota_id}/binding-apps";
const QUOTA_BOUND: &str =
    "/v2/{project_id}/apigw/instances/{instance_id}/app-quotas/{app_quota_id}/bound-apps";
const QUOTA_BINDABLE: &str =
    "/v2/{project_id}/apigw/instances/{instance_id}/app-quotas/{app_quota_id}/bindable-apps";
const QUOTA_BOUND_APP: &str =
    "/v2/{project_id}/apigw/instances/{instance_id}/app-quotas/{app_quota_id}/bound-apps/{app_id}";
const V1_CODES: &str = "/v1/{project_id}/apigw/instances/{instance_id}/apps/{app_id}/app-codes";

/// Every route: method, path (axum's and OpenAPI's syntax alike) and operation.
pub(crate) const ROUTES: &[(Verb, &str, Op)] = &[
    (Verb::Post, APPS, Op::CreateApp),
    (Verb::Get, APPS, Op::ListApps),
    (Verb::Get, APP, Op::ShowApp),
    (Verb::Put, APP, Op::UpdateApp),
    (Verb::Delete, APP, Op::DeleteApp),
    (Verb::Put, APP_SECRET, Op::ResetAppSecret),
    (Verb::Post, CODES, Op::CreateAppCode),
    (Verb::Put, CODES, Op::GenerateAppCode),
    (Verb::Get, CODES, Op::ListAppCodes),
    (Verb::Get, CODE, Op::ShowAppCode),
    (Verb::Delete, CODE, Op::DeleteAppCode),
    (Verb::Put, ACL, Op::SetAppAcl),
    (Verb::Get, ACL, Op::ShowAppAcl),
    (Verb::Delete, ACL, Op::DeleteAppAcl),
    (Verb::Get, BOUND_QUOTA, Op::ShowAppBoundQuota),
    (Verb::Post, QUOTAS, Op::CreateAppQuota),
    (Verb::Get, QUOTAS, Op::ListAppQuotas),
    (Verb::Get, QUOTA, Op::ShowAppQuota),
    (Verb::Put, QUOTA, Op::UpdateAppQuota),
    (Verb::Delete, QUOTA, Op::DeleteAppQuota),
    (Verb::Post, QUOTA_BIND, Op::BindAppQuota),
    (Verb::Get, QUOTA_BOUND, Op::ListQuotaBoundApps),
    (Verb::Get, QUOTA_BINDABLE, Op::ListQuotaBindableApps),
    (Verb::Delete, QUOTA_BOUND_APP, Op::UnbindAppQuota),
    (Verb::Post, V1_CODES, Op::CreateAppCode),
    (Verb::Get, "/openapi.json", Op::OpenApi),
];

/// The router over `shared`.
pub(crate) fn build(shared: Arc<Shared>) -> Router {
    let mut router = Router::new();
    for &(verb, path, op) in ROUTES {
        router = router.route(path, method_router(verb.filter(), op));
    }
    router
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn(frame))
        .with_state(shared)
}

fn method_router(filter: MethodFilter, op: Op) -> MethodRouter<Arc<Shared>> {
    match op {
        Op::CreateApp => on(filter, apps::create),
        Op::ListApps => on(filter, apps::list),
        Op::ShowApp => on(filter, apps::show),
        Op::UpdateApp => on(filter, apps::update),
        Op::DeleteApp => on(filter, apps::delete),
        Op::ResetAppSecret => on(filter, apps::reset_secret),
        Op::CreateAppCode => on(filter, app_codes::create),
        Op::GenerateAppCode => on(filter, app_codes::generate),
        Op::ListAppCodes => on(filter, app_codes::list),
        Op::ShowAppCode => on(filter, app_codes::show),
        Op::DeleteAppCode => on(filter, app_codes::delete),
        Op::SetAppAcl => on(filter, app_acls::set),
        Op::ShowAppAcl => on(filter, app_acls::show),
        Op::DeleteAppAcl => on(filter, app_acls::delete),
        Op::CreateAppQuota => on(filter, app_quotas::create),
        Op::ListAppQuotas => on(filter, app_quotas::list),
        Op::ShowAppQuota => on(filter, app_quotas::show),
        Op::UpdateAppQuota => on(filter, app_quotas::update),
        Op::DeleteAppQuota => on(filter, app_quotas::delete),
        Op::ShowAppBoundQuota => on(filter, app_quotas::of_app),
        Op::BindAppQuota => on(filter, quota_bindings::bind),
        Op::ListQuotaBoundApps => on(filter, quota_bindings::bound),
        Op::ListQuotaBindableApps => on(filter, quota_bindings::bindable),
        Op::UnbindAppQuota => on(filter, quota_bindings::unbind),
        Op::OpenApi => on(filter, openapi),
    }
}

async fn no_route() -> AdminError {
    AdminError::NoRoute
}

async fn wrong_method(method: Method) -> AdminError {
    AdminError::MethodNotAllowed(method)
}

/// `GET /openapi.json`: public, like any API documentation; it holds no secrets.
async fn openapi() -> Response {
    let mut res = Response::new(Body::from(OPENAPI_JSON));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// Gives the request its ID, and every response the ID, `Cache-Control: no-store` (responses
/// carry secrets) and, for an error, APIG's JSON body.
async fn frame(mut req: Request, next: Next) -> Response {
    let request_id = RequestId::from_header(req.headers().get(&X_REQUEST_ID));
    req.extensions_mut().insert(request_id);
    let mut res = next.run(req).await;
    if let Some(failure) = res.extensions_mut().remove::<Failure>() {
        render(&mut res, &failure, &request_id);
    }
    let headers = res.headers_mut();
    headers.insert(X_REQUEST_ID, request_id.to_header_value());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn render(res: &mut Response, failure: &Failure, request_id: &RequestId) {
    let status = res.status();
    match &failure.detail {
        Some(detail) => tracing::error!(
            request_id = %request_id,
            status = status.as_u16(),
            error_code = failure.code,
            detail = %detail,
            "management call failed"
        ),
        None if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN => {
            tracing::info!(
                request_id = %request_id,
                status = status.as_u16(),
                error_code = failure.code,
                "management call refused"
            )
        }
        None => tracing::debug!(
            request_id = %request_id,
            status = status.as_u16(),
            error_code = failure.code,
            "management call rejected"
        ),
    }
    *res.body_mut() = Body::from(apig_error::json(failure.code, &failure.message, request_id));
    let headers = res.headers_mut();
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn openapi_documents_exactly_the_routed_operations() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if [
                    "get", "put", "post", "delete", "patch", "head", "options", "trace",
                ]
                .contains(&method.as_str())
                {
                    documented.insert((method.clone(), path.clone()));
                }
            }
        }
        let routed: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(verb, path, _)| (verb.openapi_name().to_owned(), (*path).to_owned()))
            .collect();
        assert_eq!(routed.len(), ROUTES.len(), "a route is listed twice");
        assert_eq!(documented, routed);
    }
}
