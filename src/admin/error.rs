//! Every way a management call can fail, and the APIG answer to each.
//!
//! Handlers return [`AdminError`]; its response carries a [`Failure`] in its extensions, which
//! the router's outer middleware turns into APIG's JSON body with the request's ID (the one place
//! bodies are built is [`crate::apig_error::json`]). Internal detail goes to the log only.

use std::fmt;

use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::apig_error::code;
use crate::store::{StoreError, MAX_APP_CODES_PER_APP};

/// A failed management call.
#[derive(Debug)]
pub(crate) enum AdminError {
    /// `401 APIG.1000`: neither `X-Auth-Token` nor `Authorization`.
    MissingCredentials,
    /// `401 APIG.1002`: a token or signature that does not verify; the text is safe to show.
    BadCredentials(&'static str),
    /// `403 APIG.1005`: authenticated, but not for this project or method.
    Forbidden(&'static str),
    /// `400 APIG.2012`: the named parameter is invalid.
    InvalidParameter(&'static str),
    /// `415 APIG.2012` (`parameterName:Content-Type`): a body that is not `application/json`.
    UnsupportedMediaType,
    /// `413 APIG.0201`: the body exceeds the configured limit.
    PayloadTooLarge(usize),
    /// `400 APIG.0201`: the body could not be read.
    BodyUnreadable,
    /// `404 APIG.0101`: no route.
    NoRoute,
    /// `405 APIG.0101`: a route, but not for this method.
    MethodNotAllowed(http::Method),
    /// `404 APIG.3030`.
    InstanceNotFound(String),
    /// `404 APIG.3004`.
    AppNotFound(String),
    /// `404 APIG.3082`.
    AppCodeNotFound(String),
    /// `400 APIG.3203`.
    AppNameExists,
    /// `400 APIG.3310`.
    AppKeyExists,
    /// `400 APIG.3311` (see [`APP_CODE_EXISTS`](code::APP_CODE_EXISTS)).
    AppCodeExists,
    /// `403 APIG.3131`.
    AppCodeQuotaExceeded,
    /// `404 APIG.3093`.
    QuotaNotFound(String),
    /// `400 APIG.3325`.
    QuotaNameExists,
    /// `400 APIG.3326`: the app is bound to another app quota.
    AppHasQuota,
    /// `503 APIG.0202`: the store did not answer in time or could not be reached; the detail
    /// is logged with the request ID, never sent.
    Unavailable(String),
    /// `500 APIG.9999`; the detail is logged with the request ID, never sent.
    Internal(String),
}

impl AdminError {
    /// Maps a store error, naming the app, AppCode and app quota the call was about.
    pub(crate) fn from_store(
        e: StoreError,
        app_id: &str,
        app_code_id: &str,
        app_quota_id: &str,
    ) -> Self {
        match e {
            StoreError::QuotaNotFound => Self::QuotaNotFound(app_quota_id.to_owned()),
            StoreError::QuotaNameExists => Self::QuotaNameExists,
            StoreError::AppHasQuota => Self::AppHasQuota,
            StoreError::AppNotFound => Self::AppNotFound(app_id.to_owned()),
            StoreError::AppCodeNotFound => Self::AppCodeNotFound(app_code_id.to_owned()),
            StoreError::AppNameExists => Self::AppNameExists,
            StoreError::AppKeyExists => Self::AppKeyExists,
            StoreError::AppCodeExists => Self::AppCodeExists,
            StoreError::AppCodeQuotaExceeded => Self::AppCodeQuotaExceeded,
            // Retrying may help, so not a 500: clients and load balancers treat 503 as such.
            unavailable @ StoreError::Unavailable(_) => Self::Unavailable(unavailable.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::MissingCredentials | Self::BadCredentials(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::AppCodeQuotaExceeded => StatusCode::FORBIDDEN,
            Self::InvalidParameter(_)
            | Self::BodyUnreadable
            | Self::AppNameExists
            | Self::AppKeyExists
            | Self::AppCodeExists
            | Self::QuotaNameExists
            | Self::AppHasQuota => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NoRoute
            | Self::InstanceNotFound(_)
            | Self::AppNotFound(_)
            | Self::AppCodeNotFound(_)
            | Self::QuotaNotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::MissingCredentials => code::NO_CREDENTIALS,
            Self::BadCredentials(_) => code::INCORRECT_CREDENTIALS,
            Self::Forbidden(_) => code::NO_PERMISSION,
            Self::InvalidParameter(_) | Self::UnsupportedMediaType => code::INVALID_PARAMETER,
            Self::PayloadTooLarge(_) | Self::BodyUnreadable => code::BAD_REQUEST,
            Self::NoRoute | Self::MethodNotAllowed(_) => code::NO_SUCH_API,
            Self::InstanceNotFound(_) => code::INSTANCE_NOT_FOUND,
            Self::AppNotFound(_) => code::APP_NOT_FOUND,
            Self::AppCodeNotFound(_) => code::APP_CODE_NOT_FOUND,
            Self::AppNameExists => code::APP_NAME_EXISTS,
            Self::AppKeyExists => code::APP_KEY_EXISTS,
            Self::AppCodeExists => code::APP_CODE_EXISTS,
            Self::AppCodeQuotaExceeded => code::APP_CODE_QUOTA_EXCEEDED,
            Self::QuotaNotFound(_) => code::APP_QUOTA_NOT_FOUND,
            Self::QuotaNameExists => code::APP_QUOTA_NAME_EXISTS,
            Self::AppHasQuota => code::APP_HAS_QUOTA,
            Self::Unavailable(_) => code::BACKEND_UNAVAILABLE,
            Self::Internal(_) => code::SYSTEM_ERROR,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::MissingCredentials => "Incorrect IAM authentication information: \
                send X-Auth-Token or an SDK-HMAC-SHA256 signature"
                .to_owned(),
            Self::BadCredentials(why) => {
                format!("Incorrect IAM authentication information: {why}")
            }
            Self::Forbidden(why) => format!("No permissions to request this method: {why}"),
            Self::InvalidParameter(name) => invalid_parameter(name),
            Self::UnsupportedMediaType => invalid_parameter("Content-Type"),
            Self::PayloadTooLarge(limit) => {
                format!("Request entity too large: the body may hold at most {limit} bytes")
            }
            Self::BodyUnreadable => "Bad request: the body could not be read".to_owned(),
            Self::NoRoute => {
                "The API does not exist or has not been published in the environment".to_owned()
            }
            Self::MethodNotAllowed(m) => {
                format!("The API does not exist: method {m} is not allowed on this path")
            }
            Self::InstanceNotFound(id) => format!("Instance {id} does not exist"),
            Self::AppNotFound(id) => format!("App {id} does not exist"),
            Self::AppCodeNotFound(id) => format!("AppCode {id} does not exist"),
            Self::AppNameExists => "The app name already exists".to_owned(),
            Self::AppKeyExists => "The app key already exists".to_owned(),
            Self::AppCodeExists => "The AppCode already exists".to_owned(),
            Self::AppCodeQuotaExceeded => format!(
                "The number of AppCodes of the app has reached the limit of {MAX_APP_CODES_PER_APP}"
            ),
            Self::QuotaNotFound(id) => format!("App quota {id} does not exist"),
            Self::QuotaNameExists => "The app quota name already exists".to_owned(),
            Self::AppHasQuota => "The app is already bound to another app quota".to_owned(),
            Self::Unavailable(_) => {
                "The service is temporarily unavailable: the store did not answer in time"
                    .to_owned()
            }
            Self::Internal(_) => "System error".to_owned(),
        }
    }
}

/// APIG's message for `APIG.2012`.
fn invalid_parameter(name: &str) -> String {
    format!(
        "Invalid parameter value,parameterName:{name}. Please refer to the support documentation"
    )
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.message())
    }
}

impl std::error::Error for AdminError {}

/// An error response not yet rendered: the outer middleware adds the body and the request ID.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// For the log only.
    pub(crate) detail: Option<String>,
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = self.status();
        let failure = Failure {
            code: self.code(),
            message: self.message(),
            detail: match self {
                Self::Internal(detail) | Self::Unavailable(detail) => Some(detail),
                _ => None,
            },
        };
        let mut res = status.into_response();
        res.extensions_mut().insert(failure);
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `e` answered: its status, and the detail logged beside the response.
    fn answered(e: AdminError) -> (StatusCode, String) {
        let res = e.into_response();
        let f = res.extensions().get::<Failure>().unwrap();
        (res.status(), f.detail.clone().unwrap())
    }

    #[test]
    fn internal_detail_stays_out_of_the_message() {
        let e = AdminError::from_store(StoreError::Backend("disk on fire".into()), "a", "c", "");
        assert_eq!(e.code(), "APIG.9999");
        assert_eq!(e.message(), "System error");
        let (status, detail) = answered(e);
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(detail.contains("disk on fire"));
    }

    #[test]
    fn an_unavailable_store_is_a_503_with_the_detail_logged_only() {
        let unavailable =
            StoreError::Unavailable("PostgreSQL: read app: no answer within 5s".into());
        let e = AdminError::from_store(unavailable, "a", "c", "");
        assert_eq!(e.code(), "APIG.0202");
        assert!(!e.message().contains("PostgreSQL"));
        let (status, detail) = answered(e);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(detail.contains("read app"));
    }

    #[test]
    fn invalid_parameter_message_is_apigs() {
        assert_eq!(
            AdminError::InvalidParameter("name").message(),
            "Invalid parameter value,parameterName:name. Please refer to the support documentation"
        );
    }
}
