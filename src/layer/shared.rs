//! [`Shared`]: what every clone of a layer and of its services holds. Apart from the layer's
//! public face, so that the service and its future need not import the layer.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;

use super::headers::IdentityHeaders;
use super::https::HttpsPolicy;
use crate::cache::refresher::RefresherHandle;
use crate::cache::AppCodeCache;
use crate::provider::AppCodeProvider;

/// What every clone of a layer and its services shares.
pub(crate) struct Shared {
    pub(crate) cache: AppCodeCache,
    pub(crate) provider: Option<Arc<dyn AppCodeProvider>>,
    pub(crate) header: HeaderName,
    pub(crate) strip_header: bool,
    pub(crate) identity_headers: Option<IdentityHeaders>,
    pub(crate) https: HttpsPolicy,
    pub(crate) lookup_timeout: Duration,
    /// Held, never read: dropping the last clone stops the refresher.
    pub(super) _refresher: Option<RefresherHandle>,
}
