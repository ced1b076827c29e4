//! The headers the layer reads the AppCode from and writes the verified identity to.

use http::{HeaderName, HeaderValue, Request, Response};

use crate::quota::AppQuota;

/// The header APIG reads the AppCode from.
pub const X_APIG_APPCODE: HeaderName = HeaderName::from_static("x-apig-appcode");

/// `X-Apig-Mode: debug` on a request asks for APIG's debug headers on its response.
pub const X_APIG_MODE: HeaderName = HeaderName::from_static("x-apig-mode");

/// The app's quota on the response of a debug request, in APIG's form for limits:
/// `remain:9,limit:10,time:1 day` (calls left in the window, the quota, its period).
pub const X_APIG_QUOTA_APP: HeaderName = HeaderName::from_static("x-apig-quota-app");

/// The app's rate limit on the response of a debug request, as APIG sends it:
/// `remain:9,limit:10,time:1 second` (requests that would pass at once, the limit, its period).
pub const X_APIG_RATELIMIT_APP: HeaderName = HeaderName::from_static("x-apig-ratelimit-app");

/// Whether `req` asks for debug headers (`X-Apig-Mode: debug`, any case).
pub(crate) fn debug_mode<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(X_APIG_MODE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"debug"))
}

/// `res` with the debug header `name` set to `value`, when the request asked for debug headers
/// (`value` is then `Some`).
pub(crate) fn with_debug_header<B>(
    mut res: Response<B>,
    name: HeaderName,
    value: Option<Box<HeaderValue>>,
) -> Response<B> {
    if let Some(value) = value {
        res.headers_mut().insert(name, *value);
    }
    res
}

/// The value of [`X_APIG_QUOTA_APP`]: `left` calls of `quota`'s window remain.
pub(crate) fn quota_header(quota: &AppQuota, left: u64) -> HeaderValue {
    let unit = quota.time_unit().as_str().to_ascii_lowercase();
    let text = format!(
        "remain:{left},limit:{},time:{} {unit}",
        quota.call_limits(),
        quota.time_interval()
    );
    HeaderValue::from_str(&text).expect("digits, letters, commas, colons and a space")
}

/// Names of the headers that carry the verified identity to an upstream.
///
/// ```
/// use apig_appcode::layer::IdentityHeaders;
///
/// let h = IdentityHeaders::default();
/// assert_eq!(h.app_id.as_str(), "x-apig-app-id");
/// assert_eq!(h.app_code_id.as_str(), "x-apig-appcode-id");
/// ```
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    /// Carries [`AppIdentity::app_id`](crate::AppIdentity::app_id).
    pub app_id: HeaderName,
    /// Carries [`AppIdentity::app_code_id`](crate::AppIdentity::app_code_id).
    pub app_code_id: HeaderName,
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        Self {
            app_id: HeaderName::from_static("x-apig-app-id"),
            app_code_id: HeaderName::from_static("x-apig-appcode-id"),
        }
    }
}
