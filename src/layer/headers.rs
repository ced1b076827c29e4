//! The headers the layer reads the AppCode from and writes the verified identity to.

use http::HeaderName;

/// The header APIG reads the AppCode from.
pub const X_APIG_APPCODE: HeaderName = HeaderName::from_static("x-apig-appcode");

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
